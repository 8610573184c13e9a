"""Nonlinear recurrence and fixed-point solvers (issue 7; spec spectral-transformer-ising
Sec. 2 "Can the ACC be parallelised?", options 2-3).

Oracle: a plain Python loop over positions in float64 NumPy. float64 checks run inside
``jax.enable_x64(True)``.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxvision import ops

x64 = functools.partial(jax.enable_x64, True)
L, N = 11, 4


def _problem(rng, scale=0.6):
  xs = rng.normal(size=(L, N))
  w = rng.normal(size=(N, N)) * scale / np.sqrt(N)
  init = rng.normal(size=N)
  return xs, w, init


def _loop(xs, w, init, reverse=False):
  """``y_c = tanh(W y_{c-1} + x_c)`` as a Python loop (float64)."""
  y, out = init, [None] * len(xs)
  order = range(len(xs) - 1, -1, -1) if reverse else range(len(xs))
  for c in order:
    y = np.tanh(w @ y + xs[c])
    out[c] = y
  return np.stack(out)


def _solve(xs, w, init, **kw):
  return ops.solve_recurrence(lambda y, x: jnp.tanh(w @ y + x), xs, init, **kw)


@pytest.mark.parametrize("method", ops.RECURRENCE_METHODS)
@pytest.mark.parametrize("reverse", [False, True])
def test_methods_match_loop(method, reverse):
  rng = np.random.default_rng(0)
  xs, w, init = _problem(rng)
  want = _loop(xs, w, init, reverse)
  with x64():
    got, info = _solve(jnp.asarray(xs), jnp.asarray(w), jnp.asarray(init), method=method,
                       reverse=reverse, return_info=True)
    assert got.dtype == jnp.float64
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-13)
  assert int(info.num_iters) == L       # exact after L sweeps (the default)


def test_float32_and_axis():
  rng = np.random.default_rng(1)
  xs, w, init = _problem(rng)
  want = _loop(xs, w, init)
  for method in ops.RECURRENCE_METHODS:
    got = _solve(jnp.asarray(xs.T, jnp.float32), jnp.asarray(w, jnp.float32),
                 jnp.asarray(init, jnp.float32), axis=-1, method=method)
    assert got.shape == (N, L) and got.dtype == jnp.float32
    np.testing.assert_allclose(got.T, want, atol=2e-6)


def test_jacobi_exact_after_k_positions_and_error_decreases():
  """After k sweeps the first k positions are exact; the error is non-increasing in k."""
  rng = np.random.default_rng(2)
  xs, w, init = _problem(rng, scale=0.5)
  want = _loop(xs, w, init)
  errs = []
  with x64():
    for k in range(1, L + 1):
      got = np.asarray(_solve(jnp.asarray(xs), jnp.asarray(w), jnp.asarray(init),
                              method="jacobi", num_iters=k))
      np.testing.assert_allclose(got[:k], want[:k], atol=1e-14)
      errs.append(np.abs(got - want).max())
  assert all(b <= a + 1e-15 for a, b in zip(errs, errs[1:])), errs
  assert errs[-1] < 1e-14 and errs[0] > 1e-3


def test_tolerance_stops_early_and_reports():
  rng = np.random.default_rng(3)
  n = 60
  xs, w = rng.normal(size=(n, N)), rng.normal(size=(N, N)) * 0.1
  init = rng.normal(size=N)
  want = _loop(xs, w, init)
  with x64():
    for method in ("jacobi", "quasi_deer"):
      got, info = _solve(jnp.asarray(xs), jnp.asarray(w), jnp.asarray(init), method=method,
                         tol=1e-10, return_info=True)
      assert 1 <= int(info.num_iters) < n // 2 and float(info.residual) <= 1e-10
      np.testing.assert_allclose(got, want, atol=1e-9)
    # num_iters caps the sweeps under a tolerance.
    _, info = _solve(jnp.asarray(xs), jnp.asarray(w), jnp.asarray(init), method="jacobi",
                     tol=1e-30, num_iters=3, return_info=True)
    assert int(info.num_iters) == 3


def test_quasi_deer_exact_diagonal_converges_faster():
  """An element-wise step: quasi-DEER with the exact diagonal is Newton (one sweep per
  position at worst, far fewer in practice); Jacobi needs more sweeps."""
  rng = np.random.default_rng(4)
  xs = rng.normal(size=(40, 3))
  a = rng.uniform(0.6, 0.95, size=3)

  def step(y, x):
    return jnp.tanh(a * y + x)

  with x64():
    ref = ops.solve_recurrence(step, jnp.asarray(xs), jnp.zeros(3))
    _, info_j = ops.solve_recurrence(step, jnp.asarray(xs), jnp.zeros(3), method="jacobi",
                                     tol=1e-12, return_info=True)
    got, info_q = ops.solve_recurrence(step, jnp.asarray(xs), jnp.zeros(3),
                                       method="quasi_deer", tol=1e-12, return_info=True)
  np.testing.assert_allclose(got, ref, atol=1e-11)
  assert int(info_q.num_iters) < int(info_j.num_iters)


@pytest.mark.parametrize("method,differentiation,tol", [
    ("jacobi", "implicit", None), ("jacobi", "unrolled", None), ("jacobi", "implicit", 1e-13),
    ("quasi_deer", "implicit", None), ("quasi_deer", "unrolled", None)])
def test_gradients_match_sequential(method, differentiation, tol):
  rng = np.random.default_rng(5)
  xs, w, init = _problem(rng)
  cot = rng.normal(size=(L, N))

  def loss(m, d, t):
    return lambda xs_, w_, h0: jnp.sum(_solve(xs_, w_, h0, method=m, differentiation=d,
                                              tol=t) * cot)

  with x64():
    args = (jnp.asarray(xs), jnp.asarray(w), jnp.asarray(init))
    want = jax.grad(loss("sequential", "implicit", None), argnums=(0, 1, 2))(*args)
    got = jax.grad(loss(method, differentiation, tol), argnums=(0, 1, 2))(*args)
    for g, r in zip(got, want):
      np.testing.assert_allclose(g, r, atol=1e-11)
    check_grads(lambda xs_, w_: _solve(xs_, w_, args[2], method=method,
                                       differentiation=differentiation, tol=tol),
                args[:2], order=1, modes=("rev",))


def test_unrolled_supports_forward_mode():
  rng = np.random.default_rng(6)
  xs, w, init = _problem(rng)
  with x64():
    f = lambda xs_: _solve(xs_, jnp.asarray(w), jnp.asarray(init), method="jacobi",  # noqa
                           differentiation="unrolled")
    jf = jax.jacfwd(f)(jnp.asarray(xs))
    jr = jax.jacrev(f)(jnp.asarray(xs))
  np.testing.assert_allclose(jf, jr, atol=1e-12)
  # Causality: position i does not depend on positions j > i.
  jf = np.asarray(jf)
  for i in range(L):
    assert np.all(jf[i, :, i + 1:] == 0)


def test_fixed_point_implicit_gradient():
  """``y = a cos(y) + x`` (|a| < 1): dy/dx = 1 / (1 + a sin(y)) by the implicit function
  theorem; ``da``: cos(y) / (1 + a sin(y))."""
  x = np.linspace(-2, 2, 7)
  with x64():
    def solve(x_, a):
      return ops.fixed_point(lambda y, args: args[1] * jnp.cos(y) + args[0], (x_, a),
                             jnp.zeros_like(x_), num_iters=200, tol=1e-14)
    a = jnp.float64(0.6)
    y = solve(jnp.asarray(x), a)
    np.testing.assert_allclose(y, 0.6 * np.cos(y) + x, atol=1e-13)
    gx, ga = jax.grad(lambda x_, a_: jnp.sum(solve(x_, a_)), argnums=(0, 1))(jnp.asarray(x), a)
    d = 1 + 0.6 * np.sin(np.asarray(y))
    np.testing.assert_allclose(gx, 1 / d, atol=1e-12)
    np.testing.assert_allclose(ga, np.sum(np.cos(np.asarray(y)) / d), atol=1e-12)
    # A different sweep (damped) with the same fixed point gives the same values.
    yd, info = ops.fixed_point(lambda y, args: args * jnp.cos(y) + jnp.asarray(x), a,
                               jnp.zeros(7), num_iters=500, tol=1e-14,
                               sweep=lambda y, args: 0.5 * y + 0.5 * (args * jnp.cos(y) + x),
                               return_info=True)
    np.testing.assert_allclose(yd, y, atol=1e-12)
    assert int(info.num_iters) < 500


def test_closure_over_traced_values_gets_gradients():
  rng = np.random.default_rng(7)
  xs, w, init = _problem(rng)
  with x64():
    def f(w_):
      step = lambda y, x: jnp.tanh(w_ @ y + x)  # noqa: E731  (closes over a tracer)
      return jnp.sum(ops.solve_recurrence(step, jnp.asarray(xs), jnp.asarray(init),
                                          method="jacobi") ** 2)
    g = jax.grad(f)(jnp.asarray(w))
    g_ref = jax.grad(lambda w_: jnp.sum(_solve(jnp.asarray(xs), w_, jnp.asarray(init)) ** 2))(
        jnp.asarray(w))
  np.testing.assert_allclose(g, g_ref, atol=1e-12)


def test_jit_and_vmap():
  rng = np.random.default_rng(8)
  xs, w, init = _problem(rng)
  xs_b = np.stack([xs, 2 * xs, -xs])
  f = jax.jit(lambda xs_: _solve(xs_, jnp.asarray(w, jnp.float32),
                                 jnp.asarray(init, jnp.float32), method="quasi_deer"))
  got = jax.vmap(f)(jnp.asarray(xs_b, jnp.float32))
  for i in range(3):
    np.testing.assert_allclose(got[i], _loop(xs_b[i], w, init), atol=2e-6)


def test_bad_arguments():
  xs, w, init = jnp.ones((L, N)), jnp.eye(N), jnp.zeros(N)
  step = lambda y, x: jnp.tanh(w @ y + x)  # noqa: E731
  with pytest.raises(ValueError, match="`method` must be one of"):
    ops.solve_recurrence(step, xs, init, method="newton")
  with pytest.raises(ValueError, match="`num_iters` must be an int >= 0; found -1"):
    ops.solve_recurrence(step, xs, init, method="jacobi", num_iters=-1)
  with pytest.raises(ValueError, match="`tol` must be None or a float > 0"):
    ops.solve_recurrence(step, xs, init, method="jacobi", tol=0.0)
  with pytest.raises(ValueError, match="not reverse-differentiable"):
    ops.solve_recurrence(step, xs, init, method="jacobi", tol=1e-3,
                         differentiation="unrolled")
  with pytest.raises(ValueError, match="`differentiation` must be one of"):
    ops.solve_recurrence(step, xs, init, method="jacobi", differentiation="adjoint")
  with pytest.raises(ValueError, match="share one length"):
    ops.solve_recurrence(lambda y, x: y + x[0] + x[1][:N], (xs, jnp.ones((L + 1, N))), init)
  with pytest.raises(ValueError, match=r"must return an array of the shape of `init` \(4,\)"):
    ops.solve_recurrence(lambda y, x: jnp.concatenate([y, x]), xs, init)
  with pytest.raises(ValueError, match=r"`y0` must have shape \(11, 4\)"):
    ops.solve_recurrence(step, xs, init, method="jacobi", y0=jnp.zeros((N, L)))
  with pytest.raises(ValueError, match="only used by method='quasi_deer'"):
    ops.solve_recurrence(step, xs, init, method="jacobi", jacobian_diag=lambda y, x: y)
  with pytest.raises(ValueError, match="length >= 1"):
    ops.solve_recurrence(step, jnp.ones((0, N)), init)
  with pytest.raises(ValueError, match="`num_iters` .* is required"):
    ops.fixed_point(lambda y, x: y, (), jnp.zeros(3), num_iters=None)
  with pytest.raises(ValueError, match="must return an array of the shape and dtype of `y0`"):
    ops.fixed_point(lambda y, x: y[:2], (), jnp.zeros(3), num_iters=2)
