"""Spectral kernels (issue 3; spec svd-covariance-conditioning Sec. 6).

float64 golden references run inside ``jax.enable_x64(True)``; scipy/numpy are the
independent references.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from jax.test_util import check_grads

from jaxvision import ops
from jaxvision.ops import spectral

x64 = functools.partial(jax.enable_x64, True)
METHODS = ops.SQRTM_METHODS


def _spd(seed, spectrum):
  """``Q diag(spectrum) Q^T`` with a random orthogonal ``Q`` (numpy float64)."""
  spectrum = np.asarray(spectrum, np.float64)
  q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(spectrum.size,) * 2))
  return (q * spectrum) @ q.T


def _rel(a, b):
  return float(np.linalg.norm(np.asarray(a) - b) / np.linalg.norm(b))


def _naive_power(P, p):
  """``U Lambda^p U^T`` differentiated by JAX's own ``eigh`` rule."""
  lam, U = jnp.linalg.eigh(P)
  return (U * lam**p) @ U.T


# ------------------------------------------------------------------------------------------
# Property 1: eqs. (5)-(8) by hand equal autodiff through eigh.


@pytest.mark.parametrize("p", [0.5, -0.5])
def test_hand_written_backward_eqs_5_to_8_match_autodiff(p):
  with x64():
    n, d = 64, 4
    rng = np.random.default_rng(0)
    z = rng.normal(size=(n, d))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(z.T @ z / n)).T  # exactly whitened samples
    target = _spd(1, [4.0, 2.5, 1.5, 0.7])
    x = jnp.asarray(z @ np.linalg.cholesky(target).T + 3.0)  # covariance(x) == target
    c = jnp.asarray(rng.normal(size=(d, d)))
    loss = lambda x: jnp.sum(c * _naive_power(ops.covariance(x), p))

    P = ops.covariance(x)
    np.testing.assert_allclose(P, target, atol=1e-12)
    lam, U = jnp.linalg.eigh(P)
    p_bar = spectral._eigen_power_backward(U, lam, c, p, spectral._exact_k(lam))  # eq. (7)
    # Autodiff through (symmetrising) eigh sees sym(P_bar).
    g_p = jax.grad(lambda P: jnp.sum(c * _naive_power(P, p)))(P)
    np.testing.assert_allclose(0.5 * (p_bar + p_bar.T), g_p, atol=1e-10)
    # Eq. (8): dl/dX = (P_bar + P_bar^T) X J; in (samples, features) layout J x = (x - mu) / n.
    x_bar = (x - x.mean(0)) / n @ (p_bar + p_bar.T)
    np.testing.assert_allclose(x_bar, jax.grad(loss)(x), atol=1e-10)


# ------------------------------------------------------------------------------------------
# Property 2: the Loewner custom_vjp.


@pytest.mark.parametrize("name,fn,f", [
    ("spectral_function", lambda P: ops.spectral_function(P, jnp.exp), jnp.exp),
    ("sqrtm", ops.sqrtm, jnp.sqrt),
    ("inv_sqrtm", ops.inv_sqrtm, lambda lam: lam**-0.5),
    ("logm_spd", ops.logm_spd, jnp.log),
    ("powm", lambda P: ops.powm(P, 0.3), lambda lam: lam**0.3),
])
def test_loewner_gradient_matches_autodiff_for_distinct_eigenvalues(name, fn, f):
  with x64():
    P = jnp.asarray(_spd(2, [0.5, 1.0, 1.7, 2.4, 3.0]))
    c = jnp.asarray(np.random.default_rng(3).normal(size=(5, 5)))
    naive = lambda P: jnp.linalg.eigh(P)[1] * f(jnp.linalg.eigh(P)[0]) @ jnp.linalg.eigh(P)[1].T
    np.testing.assert_allclose(fn(P), naive(P), atol=1e-12, err_msg=name)
    g = jax.grad(lambda P: jnp.sum(c * fn(P)))(P)
    np.testing.assert_allclose(g, jax.grad(lambda P: jnp.sum(c * naive(P)))(P), atol=1e-10,
                               err_msg=name)


@pytest.mark.parametrize("name,fn,p", [
    ("sqrtm", ops.sqrtm, 0.5),
    ("inv_sqrtm", ops.inv_sqrtm, -0.5),
    ("spectral_function", lambda P: ops.spectral_function(P, jnp.sqrt), 0.5),
])
def test_loewner_gradient_at_repeated_eigenvalues_is_finite_and_matches_finite_differences(
    name, fn, p):
  with x64():
    P = jnp.diag(jnp.array([1.0, 1.0, 2.0, 2.0, 3.0]))
    rng = np.random.default_rng(4)
    c = jnp.asarray(rng.normal(size=(5, 5)))
    e = rng.normal(size=(5, 5))
    e = jnp.asarray(e + e.T)
    loss = lambda P: jnp.sum(c * fn(P))
    g = jax.grad(loss)(P)
    assert np.isfinite(g).all()
    h = 1e-6
    fd = (loss(P + h * e) - loss(P - h * e)) / (2 * h)
    np.testing.assert_allclose(jnp.sum(g * e), fd, rtol=1e-6)
    # Regression guard: JAX's plain eigh rule is NaN here (divides by l_i - l_j = 0).
    naive = jax.grad(lambda P: jnp.sum(c * _naive_power(P, p)))(P)
    assert np.isnan(naive).any()


@pytest.mark.parametrize("method", METHODS)
def test_gradients_are_finite_at_repeated_eigenvalues_in_float32(method):
  P = jnp.diag(jnp.array([1.0, 1.0, 2.0, 2.0, 3.0], jnp.float32))
  for fn in (ops.sqrtm, ops.inv_sqrtm):
    g = jax.grad(lambda P: jnp.sum(fn(P, method=method) ** 2))(P)
    assert g.dtype == jnp.float32
    assert np.isfinite(g).all(), (method, fn.__name__)


# ------------------------------------------------------------------------------------------
# check_grads on every custom gradient (float64, well-conditioned inputs).


@pytest.mark.parametrize("method,kwargs,spectrum", [
    ("eigh", {}, [1.0, 1.6, 2.3, 3.0]),
    ("newton_schulz", dict(num_iters=25, backward_iters=12), [1.0, 1.6, 2.3, 3.0]),
    # Pade's forward is an approximation while its backward is the exact square root's:
    # the two agree to check_grads' 1e-5 only where [5/5] is accurate (spectrum within ~2x).
    ("pade", dict(backward_iters=12), [2.0, 2.5, 3.0]),
    # Taylor K is exact for separated eigenvalues once the series has converged.
    ("taylor", dict(taylor_terms=80), [0.6, 1.5, 3.5, 8.0]),
])
def test_check_grads_custom_vjps(method, kwargs, spectrum):
  with x64():
    P = jnp.asarray(_spd(5, spectrum))
    for fn in (ops.sqrtm, ops.inv_sqrtm):
      check_grads(lambda P: fn(P, method=method, **kwargs), (P,), order=1, modes=("rev",))
    if method == "eigh":
      check_grads(lambda P: ops.spectral_function(P, jnp.exp), (P,), order=1, modes=("rev",))
      check_grads(lambda P: ops.logm_spd(P), (P,), order=1, modes=("rev",))
      check_grads(lambda P: ops.powm(P, -0.7), (P,), order=1, modes=("rev",))


def test_newton_schulz_autodiff_backward_is_the_adjoint_of_the_truncated_iteration():
  with x64():
    P = jnp.asarray(_spd(6, [1.0, 1.6, 2.3, 3.0]))
    check_grads(lambda P: ops.inv_sqrtm(P, method="newton_schulz", num_iters=3,
                                        ns_backward="autodiff"), (P,), order=1, modes=("rev",))


# ------------------------------------------------------------------------------------------
# Property 3: the Taylor K.


def test_taylor_k_converges_for_separated_and_stays_bounded_for_near_equal_eigenvalues():
  with x64():
    lam = jnp.array([0.2, 0.7, 1.5, 3.0])
    exact = spectral._exact_k(lam)
    taylor_k = jax.jit(spectral._taylor_k, static_argnums=1)
    errors = [float(jnp.max(jnp.abs(taylor_k(lam, k) - exact)))
              for k in (5, 10, 20, 40, 160)]
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-12
    # Near-equal pair (spec: exact 1e4; 9 terms 3.33; 100 terms 33.6).
    near = jnp.array([3.0, 2.9999])
    for terms, expected in ((9, 3.333), (100, 33.61)):
      k = taylor_k(near, terms)
      np.testing.assert_allclose(k[0, 1], expected, rtol=1e-3)
      np.testing.assert_allclose(k, -k.T, atol=0)
      assert float(jnp.max(jnp.abs(k))) <= (terms + 1) / 3.0
    # Exact ties: bounded and antisymmetric.
    k = taylor_k(jnp.array([1.0, 1.0, 2.0]), 9)
    np.testing.assert_allclose(k, -k.T, atol=0)
    assert float(jnp.max(jnp.abs(k))) <= 10.0


def test_taylor_gradient_equals_the_exact_one_with_enough_terms():
  with x64():
    P = jnp.asarray(_spd(7, [0.6, 1.5, 3.5, 8.0]))
    c = jnp.asarray(np.random.default_rng(8).normal(size=(4, 4)))
    g = jax.grad(lambda P: jnp.sum(c * ops.inv_sqrtm(P, method="taylor", taylor_terms=80)))(P)
    np.testing.assert_allclose(g, jax.grad(lambda P: jnp.sum(c * ops.inv_sqrtm(P)))(P),
                               atol=1e-10)


# ------------------------------------------------------------------------------------------
# Property 4: Newton-Schulz and Pade forward accuracy.


def test_newton_schulz_matches_scipy_and_converges_monotonically():
  with x64():
    P = _spd(9, np.geomspace(1.0, 1e-3, 6))  # kappa = 1e3
    root = scipy.linalg.sqrtm(P).real
    inv_root = np.linalg.inv(root)
    f = jax.jit(lambda P: ops.sqrtm(P, method="newton_schulz", num_iters=20))
    np.testing.assert_allclose(f(P), root, atol=1e-10 * np.abs(root).max())
    np.testing.assert_allclose(ops.inv_sqrtm(P, method="newton_schulz", num_iters=20),
                               inv_root, atol=1e-10 * np.abs(inv_root).max())
    ns = jax.jit(lambda P: [ops.sqrtm(P, method="newton_schulz", num_iters=t)
                            for t in range(1, 21)])  # one compilation for all 20
    errors = [_rel(r, root) for r in ns(P)]
    assert all(b <= a * (1 + 1e-9) + 1e-14 for a, b in zip(errors, errors[1:])), errors
    assert errors[0] > 0.1 and errors[-1] < 1e-12


def test_pade_forward_accuracy():
  with x64():
    P = _spd(10, np.geomspace(1.0, 0.1, 4))  # kappa = 10
    np.testing.assert_array_less(_rel(ops.sqrtm(P, method="pade"),
                                      scipy.linalg.sqrtm(P).real), 1e-3)
    # [5/5] Pade of sqrt(1 - x) loses accuracy as l_min / |P|_F -> 0: ~2e-2 at kappa = 1e2.
    P = _spd(11, np.geomspace(1.0, 0.01, 4))
    np.testing.assert_array_less(_rel(ops.sqrtm(P, method="pade"),
                                      scipy.linalg.sqrtm(P).real), 5e-2)
    # The coefficients (exact rationals) reproduce mpmath.pade(taylor(sqrt(1 - x)), 5, 5).
    np.testing.assert_allclose(spectral._PADE_P,
                               [1, -11 / 4, 11 / 4, -77 / 64, 55 / 256, -11 / 1024], rtol=1e-15)
    np.testing.assert_allclose(spectral._PADE_Q,
                               [1, -9 / 4, 7 / 4, -35 / 64, 15 / 256, -1 / 1024], rtol=1e-15)


# ------------------------------------------------------------------------------------------
# jit / vmap / batching.


@pytest.mark.parametrize("method", METHODS)
def test_sqrtm_jit_vmap_and_batched_calls_agree(method):
  pb = np.stack([_spd(s, [1.0, 1.5, 2.2, 3.0]) for s in range(3)]).astype(np.float32)
  kw = dict(method=method, num_iters=12, backward_iters=10, taylor_terms=40)
  batched = jax.jit(lambda P: ops.sqrtm(P, **kw))(pb)  # leading batch axis
  mapped = jax.jit(jax.vmap(lambda P: ops.sqrtm(P, **kw)))(pb)
  np.testing.assert_allclose(mapped, batched, atol=1e-5)
  tol = 2e-3 if method == "pade" else 1e-4
  for i in range(3):
    np.testing.assert_allclose(batched[i], scipy.linalg.sqrtm(pb[i].astype(np.float64)).real,
                               atol=tol)
  grad = jax.grad(lambda P: jnp.sum(ops.inv_sqrtm(P, **kw) ** 2))
  np.testing.assert_allclose(jax.jit(jax.vmap(grad))(pb), jax.jit(grad)(pb), rtol=1e-4,
                             atol=1e-5)


# ------------------------------------------------------------------------------------------
# Property 6 (NOG): the polar factor.


def test_polar_is_the_nearest_semi_orthogonal_matrix():
  with x64():
    g = jnp.asarray(np.random.default_rng(12).normal(size=(2, 8, 3)))
    r = ops.polar(g)
    np.testing.assert_allclose(jnp.swapaxes(r, -1, -2) @ r, np.broadcast_to(np.eye(3), (2, 3, 3)),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.cond(np.asarray(r)), 1.0, atol=1e-12)
    nuclear = np.linalg.svd(np.asarray(g), compute_uv=False).sum(-1)
    np.testing.assert_allclose(jnp.sum(g * r, axis=(-2, -1)), nuclear, rtol=1e-12)
    assert (nuclear > 0).all()
    for scale in (1e-3, 3.7):
      np.testing.assert_allclose(ops.polar(scale * g), r, atol=1e-12)
    # R = G (G^T G)^(-1/2), eq. (17).
    np.testing.assert_allclose(r, g @ ops.inv_sqrtm(jnp.swapaxes(g, -1, -2) @ g), atol=1e-12)
    np.testing.assert_allclose(ops.polar(g, method="newton_schulz", num_iters=30), r,
                               atol=1e-10)
    wide = jnp.swapaxes(g, -1, -2)
    np.testing.assert_allclose(ops.polar(wide, method="newton_schulz", num_iters=30),
                               jnp.swapaxes(r, -1, -2), atol=1e-10)


@pytest.mark.parametrize("method", ops.POLAR_METHODS)
def test_polar_of_zero_matrix_is_zero(method):
  out = ops.polar(jnp.zeros((4, 3)), method=method)
  np.testing.assert_array_equal(out, np.zeros((4, 3)))


# ------------------------------------------------------------------------------------------
# Property 8 (OW) and eq. (11) (SN).


def test_expm_skew_is_orthogonal_and_differentiable():
  with x64():
    w = jnp.asarray(np.random.default_rng(13).normal(size=(3, 5, 5)))
    r = jax.jit(ops.expm_skew)(w)
    np.testing.assert_allclose(jnp.swapaxes(r, -1, -2) @ r, np.broadcast_to(np.eye(5), r.shape),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(np.asarray(r)), 1.0, atol=1e-12)
    np.testing.assert_allclose(r[0], scipy.linalg.expm(np.asarray(w[0] - w[0].T)), atol=1e-12)
    check_grads(jax.jit(ops.expm_skew), (w,), order=1, modes=("rev",))


def test_spectral_norm_power_iteration_converges_to_top_singular_value():
  w = jnp.asarray(np.random.default_rng(14).normal(size=(2, 6, 4)), jnp.float32)
  top = np.linalg.svd(np.asarray(w, np.float64), compute_uv=False)[..., 0]
  sigma, u = ops.spectral_norm(w, num_iters=100)
  assert sigma.shape == (2,) and u.shape == (2, 6)
  np.testing.assert_allclose(sigma, top, rtol=1e-5)
  # One step per call, carrying u (as across training steps), reaches the same value.
  step = jax.jit(lambda w, u: ops.spectral_norm(w, u=u))
  sigma1, u1 = ops.spectral_norm(w)
  assert (sigma1 <= top * (1 + 1e-6)).all()  # power iteration is a lower bound
  for _ in range(99):
    sigma1, u1 = step(w, u1)
  np.testing.assert_allclose(sigma1, top, rtol=1e-5)
  # Miyato: the vectors are constants, so d sigma / dW = u v^T.
  g = jax.grad(lambda w: ops.spectral_norm(w, num_iters=100)[0].sum())(w)
  v = jnp.einsum("bmn,bm->bn", w, u) / sigma[:, None]
  np.testing.assert_allclose(g, u[:, :, None] * v[:, None, :], atol=1e-5)


# ------------------------------------------------------------------------------------------
# Eqs. (1)-(2): covariance and the float64 condition-number monitor.


def test_covariance_matches_numpy():
  x = np.random.default_rng(15).normal(size=(3, 50, 4)).astype(np.float32) + 5.0
  cov = ops.covariance(x)
  assert cov.shape == (3, 4, 4) and cov.dtype == jnp.float32
  for i in range(3):
    np.testing.assert_allclose(cov[i], np.cov(x[i], rowvar=False, bias=True), rtol=1e-5,
                               atol=1e-6)


def test_condition_number_in_float64_under_jit():
  spectrum = np.geomspace(1.0, 1e-10, 6)
  with x64():
    P = jnp.asarray(_spd(16, spectrum))
    kappa = jax.jit(ops.condition_number)(P)
    assert kappa.dtype == jnp.float64 and kappa.shape == ()
    w = np.linalg.eigvalsh(np.asarray(P))
    np.testing.assert_allclose(kappa, w[-1] / w[0], rtol=1e-12)
    np.testing.assert_allclose(kappa, 1e10, rtol=1e-4)
  # Without x64 the eigenvalues are still float64 on the host: exact for the float32 matrix.
  pb = np.stack([_spd(17, np.geomspace(1.0, 1e-4, 4)), np.diag([1.0, 2.0, 0.0, 3.0])])
  pb = pb.astype(np.float32)
  kappa = jax.jit(jax.vmap(ops.condition_number))(pb)
  assert kappa.dtype == jnp.float32 and kappa.shape == (2,)
  w = np.linalg.eigvalsh(pb.astype(np.float64))
  np.testing.assert_allclose(kappa[0], w[0, -1] / w[0, 0], rtol=1e-6)
  assert kappa[1] == np.inf
  # Usable inside a differentiated loss (as a logged metric): zero gradient, no error.
  g = jax.grad(lambda P: ops.condition_number(P) * 0.0 + jnp.sum(P))(pb[0])
  np.testing.assert_array_equal(g, np.ones((4, 4)))


# ------------------------------------------------------------------------------------------
# Errors.


def test_errors_name_the_argument():
  with pytest.raises(ValueError, match=r"sqrtm: `P` must have shape \(\.\.\., n, n\).*\(3, 4\)"):
    ops.sqrtm(jnp.zeros((3, 4)))
  with pytest.raises(ValueError, match="`P`.*found shape \\(4,\\)"):
    ops.inv_sqrtm(jnp.zeros(4))
  with pytest.raises(ValueError, match="`method` must be one of .*found 'svd'"):
    ops.sqrtm(jnp.eye(3), method="svd")
  with pytest.raises(ValueError, match="`num_iters` must be an int >= 1; found 0"):
    ops.sqrtm(jnp.eye(3), method="newton_schulz", num_iters=0)
  with pytest.raises(ValueError, match="`ns_backward`"):
    ops.sqrtm(jnp.eye(3), method="newton_schulz", ns_backward="adjoint")
  with pytest.raises(ValueError, match="`eps` must be >= 0"):
    ops.inv_sqrtm(jnp.eye(3), eps=-1.0)
  with pytest.raises(TypeError, match="`P` must have a real floating dtype; found int32"):
    ops.sqrtm(jnp.eye(3, dtype=jnp.int32))
  with pytest.raises(ValueError, match="polar: `method` must be one of"):
    ops.polar(jnp.eye(3), method="eigh")
  with pytest.raises(ValueError, match="polar: `G` must have shape"):
    ops.polar(jnp.ones(3))
  with pytest.raises(ValueError, match="expm_skew: `W`.*\\(2, 3\\)"):
    ops.expm_skew(jnp.ones((2, 3)))
  with pytest.raises(ValueError, match=r"spectral_norm: `u` must have shape .*\(4,\).*\(3,\)"):
    ops.spectral_norm(jnp.ones((4, 3)), u=jnp.ones(3))
  with pytest.raises(ValueError, match="condition_number: `P`"):
    ops.condition_number(jnp.ones((2, 3)))
  with pytest.raises(TypeError, match="spectral_function: `f` must be callable"):
    ops.spectral_function(jnp.eye(3), 2.0)
  with pytest.raises(TypeError, match="powm: `p` must be a static real number"):
    jax.jit(lambda p: ops.powm(jnp.eye(3), p))(0.5)
