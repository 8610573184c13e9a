"""Adjacent Channel Coupler kernels (issue 7; spec spectral-transformer-ising Sec. 2, 6.1-6.4).

The oracle is ``_reference``: eq. (4) with the spec's two-chain resolution as a plain Python
loop over channels in float64 NumPy (zero-padded 3x3 cross-correlations written out), plus
loops for the implicit system and the two associative variants. float64 checks run inside
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
SHAPE = (2, 7, 6, 5)                # B, H, W, C


# ------------------------------------------------------------------------------------------
# float64 NumPy references.


def _conv(a, w, b):
  """Zero-padded 3x3 cross-correlation of (B, H, W) planes."""
  hh, ww = a.shape[-2:]
  p = np.pad(a, [(0, 0), (1, 1), (1, 1)])
  return b + sum(w[u, v] * p[:, u:u + hh, v:v + ww] for u in range(3) for v in range(3))


def _np_params(params):
  return {k: np.asarray(v, np.float64) for k, v in params._asdict().items() if v is not None}


def _sigmoid(a):
  return 1 / (1 + np.exp(-a))


def _reference(x, params, directions="both", boundary="zero"):
  """Eq. (4), two chains, Python loop over channels."""
  x = np.asarray(x, np.float64)
  p = _np_params(params)
  xc = np.moveaxis(x, -1, 0)
  c_n = xc.shape[0]
  dirs = {"both": ("F", "B"), "forward": ("F",), "backward": ("B",)}[directions]
  zs = []
  for d in dirs:
    di = 0 if (d == "F" or p["f_kernel"].shape[0] == 1) else 1
    order = range(c_n) if d == "F" else range(c_n - 1, -1, -1)
    y = np.zeros_like(xc[0]) if boundary == "zero" else xc[0 if d == "F" else -1]
    z = [None] * c_n
    for c in order:
      a = _conv(xc[c], p["g_kernel"][di, c], p["g_bias"][di, c]) + \
          _conv(y, p["h_kernel"][di, c], p["h_bias"][di, c])
      z[c] = _conv(xc[c], p["f_kernel"][di, c], p["f_bias"][di, c]) * _sigmoid(a)
      y = xc[c] + z[c]
    zs.append(np.stack(z))
  return np.moveaxis(xc + sum(zs) / len(zs), 0, -1)


def _implicit_residual(x, y, params, boundary="zero"):
  """``max |Y - X - 1/2 (Z^F(Y_{c-1}) + Z^B(Y_{c+1}))|`` of eq. (4) read literally."""
  x, y = (np.moveaxis(np.asarray(v, np.float64), -1, 0) for v in (x, y))
  p = _np_params(params)
  c_n = x.shape[0]
  res = 0.0
  for c in range(c_n):
    prev = y[c - 1] if c > 0 else (np.zeros_like(x[0]) if boundary == "zero" else x[0])
    nxt = y[c + 1] if c < c_n - 1 else (np.zeros_like(x[0]) if boundary == "zero" else x[-1])
    z = 0.0
    for di, nb in ((0, prev), (1, nxt)):
      a = _conv(x[c], p["g_kernel"][di, c], p["g_bias"][di, c]) + \
          _conv(nb, p["h_kernel"][di, c], p["h_bias"][di, c])
      z = z + _conv(x[c], p["f_kernel"][di, c], p["f_bias"][di, c]) * _sigmoid(a)
    res = max(res, np.abs(y[c] - x[c] - 0.5 * z).max())
  return res


def _gated_reference(x, params, boundary="zero"):
  x = np.asarray(x, np.float64)
  p = _np_params(params)
  xc = np.moveaxis(x, -1, 0)
  total = 0
  for di, order in ((0, range(xc.shape[0])), (1, range(xc.shape[0] - 1, -1, -1))):
    y = np.zeros_like(xc[0]) if boundary == "zero" else xc[0 if di == 0 else -1]
    ys = [None] * xc.shape[0]
    for c in order:
      a = _sigmoid(_conv(xc[c], p["g_kernel"][di, c], p["g_bias"][di, c]))
      y = a * y + (1 - a) * (xc[c] + _conv(xc[c], p["f_kernel"][di, c], p["f_bias"][di, c]))
      ys[c] = y
    total = total + (np.stack(ys) - xc)
  return np.moveaxis(xc + total / 2, 0, -1)


def _circular_reference(x, params):
  x = np.asarray(x, np.float64)
  p = _np_params(params)
  xc = np.moveaxis(x, -1, 0)
  total = 0
  for di, order in ((0, range(xc.shape[0])), (1, range(xc.shape[0] - 1, -1, -1))):
    y = np.zeros_like(xc[0])
    ys = [None] * xc.shape[0]
    for c in order:
      w = p["h_kernel"][di, c]
      hy = p["h_bias"][di, c] + sum(
          w[u, v] * np.roll(y, (1 - u, 1 - v), axis=(-2, -1)) for u in range(3)
          for v in range(3))
      f = _conv(xc[c], p["f_kernel"][di, c], p["f_bias"][di, c])
      g = _conv(xc[c], p["g_kernel"][di, c], p["g_bias"][di, c])
      y = hy + xc[c] + f * _sigmoid(g)
      ys[c] = y
    total = total + (np.stack(ys) - xc)
  return np.moveaxis(xc + total / 2, 0, -1)


def _data(shape=SHAPE, seed=0, dtype=np.float64, h_scale=1.0, directions="both"):
  rng = np.random.default_rng(seed)
  x = rng.uniform(size=shape)
  params = ops.init_acc_params(jax.random.key(seed), shape[-1], directions=directions,
                               dtype=jnp.float64 if dtype == np.float64 else jnp.float32)
  params = params._replace(h_kernel=params.h_kernel * h_scale)
  return x.astype(dtype), params


def _single(params, direction):
  """The ``D = 1`` parameters of one direction."""
  i = 0 if direction == "forward" else 1
  return ops.ACCParams(*[v[i:i + 1] for v in params])


acc = jax.jit(ops.adjacent_channel_coupler,
              static_argnames=("solver", "directions", "boundary", "num_iters", "tol",
                               "implicit_sweep", "differentiation", "return_info"))
gated = jax.jit(ops.gated_linear_coupler, static_argnames=("directions", "boundary", "method"))
circular = jax.jit(ops.circular_linear_coupler,
                   static_argnames=("directions", "boundary", "method"))


# ------------------------------------------------------------------------------------------
# 6.1 scan correctness.


def test_scan_matches_python_loop_float32():
  x, params = _data(dtype=np.float32)
  got = acc(jnp.asarray(x), params)
  assert got.dtype == jnp.float32 and got.shape == SHAPE
  np.testing.assert_allclose(got, _reference(x, params), rtol=0, atol=1e-6)


@pytest.mark.parametrize("directions", ops.ACC_DIRECTIONS)
@pytest.mark.parametrize("boundary", ops.ACC_BOUNDARIES)
def test_scan_matches_python_loop_float64(directions, boundary):
  with x64():
    x, params = _data()
    want = _reference(x, params, directions, boundary)
    got = acc(jnp.asarray(x), params, directions=directions, boundary=boundary)
    assert got.dtype == jnp.float64
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-13)
    if directions != "both":   # D = 1 parameters of that direction give the same result
      got1 = acc(jnp.asarray(x), _single(params, directions), directions=directions,
                 boundary=boundary)
      np.testing.assert_allclose(got1, want, rtol=0, atol=1e-13)


@pytest.mark.parametrize("solver", ["jacobi", "quasi_deer"])
@pytest.mark.parametrize("directions", ["both", "backward"])
def test_parallel_solvers_exact_after_c_sweeps(solver, directions):
  with x64():
    x, params = _data(seed=1)
    want = acc(jnp.asarray(x), params, directions=directions, boundary="input")
    got, info = acc(jnp.asarray(x), params, solver=solver, directions=directions,
                    boundary="input", return_info=True)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert int(info.num_iters) == SHAPE[-1]


def test_jacobi_error_non_increasing_in_k():
  with x64():
    x, params = _data(shape=(1, 8, 8, 6), seed=2)
    want = np.asarray(acc(jnp.asarray(x), params))
    errs = [np.abs(np.asarray(acc(jnp.asarray(x), params, solver="jacobi", num_iters=k))
                   - want).max() for k in range(1, 7)]
  assert all(b <= a * (1 + 1e-9) for a, b in zip(errs, errs[1:])), errs
  assert errs[0] > 1e-3 and errs[-1] < 1e-13


def test_iterative_solvers_converge_with_tolerance():
  with x64():
    x, params = _data(shape=(1, 6, 6, 12), seed=3, h_scale=0.3)
    want = acc(jnp.asarray(x), params)
    for solver in ("jacobi", "quasi_deer"):
      got, info = acc(jnp.asarray(x), params, solver=solver, tol=1e-10, return_info=True)
      np.testing.assert_allclose(got, want, atol=1e-9)
      assert int(info.num_iters) < 12 and float(info.residual) <= 1e-10


# ------------------------------------------------------------------------------------------
# 6.2 structure.


def test_h_zero_makes_jacobian_block_diagonal():
  with x64():
    x, params = _data(shape=(4, 4, 5), seed=4)
    params = params._replace(h_kernel=jnp.zeros_like(params.h_kernel),
                             h_bias=jnp.zeros_like(params.h_bias))
    jac = np.asarray(jax.jit(jax.jacfwd(lambda v: ops.adjacent_channel_coupler(v, params)))(
        jnp.asarray(x)))                                  # (4, 4, 5, 4, 4, 5)
  for i in range(5):
    for j in range(5):
      block = jac[:, :, i, :, :, j]
      assert (np.abs(block).max() == 0) == (i != j), (i, j)


def test_f_zero_is_identity():
  x, params = _data(dtype=np.float32, seed=5)
  params = params._replace(f_kernel=jnp.zeros_like(params.f_kernel),
                           f_bias=jnp.zeros_like(params.f_bias))
  for solver in ("scan", "jacobi", "implicit"):
    np.testing.assert_array_equal(acc(jnp.asarray(x), params, solver=solver), x)


@pytest.mark.parametrize("directions", ["forward", "backward"])
def test_single_direction_jacobian_is_triangular(directions):
  with x64():
    x, params = _data(shape=(4, 4, 5), seed=6)
    jac = np.asarray(jax.jit(jax.jacfwd(
        lambda v: ops.adjacent_channel_coupler(v, params, directions=directions)))(
            jnp.asarray(x)))
  for i in range(5):
    for j in range(5):
      zero = np.abs(jac[:, :, i, :, :, j]).max() == 0
      if directions == "forward":
        assert zero == (j > i), (i, j)     # dY_i/dX_j = 0 exactly for j > i (Lemma 3)
      else:
        assert zero == (j < i), (i, j)


def test_elementwise_bound():
  """``|Y_c - X_c| <= 1/2 (|f^F_c(X_c)| + |f^B_c(X_c)|)`` because sigma is in (0, 1)."""
  x, params = _data(dtype=np.float32, seed=7)
  y = np.asarray(acc(jnp.asarray(x), params), np.float64)
  p = _np_params(params)
  xc = np.moveaxis(x.astype(np.float64), -1, 0)
  bound = np.stack([0.5 * (np.abs(_conv(xc[c], p["f_kernel"][0, c], p["f_bias"][0, c]))
                           + np.abs(_conv(xc[c], p["f_kernel"][1, c], p["f_bias"][1, c])))
                    for c in range(xc.shape[0])])
  assert np.all(np.abs(np.moveaxis(y, -1, 0) - xc) <= bound + 1e-6)


# ------------------------------------------------------------------------------------------
# The literal (implicit) system.


@pytest.mark.parametrize("sweep", ops.IMPLICIT_SWEEPS)
def test_implicit_solver_satisfies_eq4(sweep):
  with x64():
    x, params = _data(seed=8, h_scale=0.5)
    y, info = acc(jnp.asarray(x), params, solver="implicit", implicit_sweep=sweep,
                  num_iters=100, tol=1e-13, return_info=True)
    assert float(info.residual) <= 1e-13 and int(info.num_iters) < 100
    assert _implicit_residual(x, y, params) < 1e-12
    # It is a different model from the two chains.
    assert np.abs(np.asarray(y) - _reference(x, params)).max() > 1e-3


def test_implicit_gauss_seidel_converges_faster():
  with x64():
    x, params = _data(shape=(1, 6, 6, 10), seed=9)
    _, ij = acc(jnp.asarray(x), params, solver="implicit", num_iters=200, tol=1e-12,
                return_info=True)
    y, ig = acc(jnp.asarray(x), params, solver="implicit", implicit_sweep="gauss_seidel",
                num_iters=200, tol=1e-12, return_info=True, boundary="input")
    assert _implicit_residual(x, y, params, boundary="input") < 1e-11
  assert int(ig.num_iters) < int(ij.num_iters)


# ------------------------------------------------------------------------------------------
# 6.3 associative variants.


@pytest.mark.parametrize("method", ops.GATED_METHODS)
def test_gated_linear_matches_its_loop(method):
  with x64():
    x, params = _data(seed=10)
    got = gated(jnp.asarray(x), params._replace(h_kernel=None, h_bias=None), method=method)
    np.testing.assert_allclose(got, _gated_reference(x, params), rtol=0, atol=1e-13)
    got_in = gated(jnp.asarray(x), params, boundary="input", method=method)
    np.testing.assert_allclose(got_in, _gated_reference(x, params, "input"), atol=1e-13)


@pytest.mark.parametrize("shape", [SHAPE, (1, 2, 3, 4)])
def test_circular_fft_matches_sequential(shape):
  with x64():
    x, params = _data(shape=shape, seed=11, h_scale=0.5)
    want = _circular_reference(x, params)
    seq = circular(jnp.asarray(x), params, method="sequential")
    fft = circular(jnp.asarray(x), params, method="fft")
  np.testing.assert_allclose(seq, want, rtol=0, atol=1e-12)
  np.testing.assert_allclose(fft, want, rtol=0, atol=1e-12)
  # float32 follows to ~1e-5 (FFT round-off).
  fft32 = circular(jnp.asarray(x, jnp.float32),
                   ops.ACCParams(*[v.astype(jnp.float32) for v in params]))
  assert fft32.dtype == jnp.float32
  np.testing.assert_allclose(fft32, want, atol=1e-4)


# ------------------------------------------------------------------------------------------
# 6.4 gradients.


def test_check_grads_scan():
  with x64():
    x, params = _data(shape=(2, 8, 8, 6), seed=12)
    check_grads(jax.jit(ops.adjacent_channel_coupler), (jnp.asarray(x), params), order=1,
                modes=("rev",))
    # Forward mode too (plain autodiff of the scan).
    check_grads(jax.jit(lambda v: ops.adjacent_channel_coupler(v, params, directions="forward")),
                (jnp.asarray(x[:1, :4, :4]),), order=1, modes=("fwd",))


@pytest.mark.parametrize("solver,differentiation,kw", [
    ("jacobi", "implicit", {}), ("jacobi", "unrolled", {}),
    ("jacobi", "implicit", {"tol": 1e-13}), ("quasi_deer", "implicit", {}),
    ("implicit", "unrolled", {"num_iters": 6}),
    ("implicit", "implicit", {"num_iters": 200, "tol": 1e-14})])
def test_iterative_gradients(solver, differentiation, kw):
  with x64():
    x, params = _data(shape=(1, 5, 5, 4), seed=13, h_scale=0.5)
    f = jax.jit(lambda v, p: ops.adjacent_channel_coupler(
        v, p, solver=solver, differentiation=differentiation, **kw))
    check_grads(f, (jnp.asarray(x), params), order=1, modes=("rev",))
    if solver != "implicit":     # the gradients of the exact solution: the scan's
      cot = np.random.default_rng(0).normal(size=x.shape)
      loss = lambda s: lambda v, p: jnp.sum(  # noqa: E731
          ops.adjacent_channel_coupler(v, p, solver=s, **(
              {"differentiation": differentiation, **kw} if s != "scan" else {})) * cot)
      want = jax.jit(jax.grad(loss("scan"), argnums=(0, 1)))(jnp.asarray(x), params)
      got = jax.jit(jax.grad(loss(solver), argnums=(0, 1)))(jnp.asarray(x), params)
      for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, w, atol=1e-11)


def test_gradients_finite_for_saturated_gates():
  """Huge gate pre-activations (exp overflow in float32) give finite gradients."""
  x, params = _data(dtype=np.float32, seed=14)
  params = params._replace(g_bias=params.g_bias - 200.0)
  grad = jax.jit(jax.grad(lambda v, p: jnp.sum(ops.adjacent_channel_coupler(v, p))))
  assert np.all(np.isfinite(grad(jnp.asarray(x), params)))
  params = params._replace(g_bias=params.g_bias + 400.0)
  assert np.all(np.isfinite(grad(jnp.asarray(x), params)))


def test_associative_variants_gradients():
  with x64():
    x, params = _data(shape=(1, 4, 4, 3), seed=15, h_scale=0.5)
    check_grads(gated, (jnp.asarray(x), params), order=1, modes=("rev",))
    check_grads(circular, (jnp.asarray(x), params), order=1, modes=("rev",))


# ------------------------------------------------------------------------------------------
# API.


def test_jit_vmap_and_unbatched_input():
  x, params = _data(dtype=np.float32, seed=16)
  want = np.asarray(acc(jnp.asarray(x), params))
  got = jax.vmap(lambda v: ops.adjacent_channel_coupler(v, params))(jnp.asarray(x))
  np.testing.assert_allclose(got, want, atol=1e-6)          # vmap over (H, W, C) images
  got = jax.jit(jax.vmap(lambda v: ops.adjacent_channel_coupler(v[None], params)[0]))(
      jnp.asarray(x))
  np.testing.assert_allclose(got, want, atol=1e-6)
  assert ops.adjacent_channel_coupler(jnp.asarray(x[0]), params).shape == SHAPE[1:]
  # vmap over parameters too (e.g. an ensemble).
  stacked = jax.tree.map(lambda a: jnp.stack([a, 2 * a]), params)
  got = jax.vmap(lambda p: ops.adjacent_channel_coupler(jnp.asarray(x), p))(stacked)
  np.testing.assert_allclose(got[0], want, atol=1e-6)


def test_bad_inputs():
  x, params = _data(dtype=np.float32)
  xj = jnp.asarray(x)
  with pytest.raises(ValueError, match=r"`x` must have shape \(B, H, W, C\) or \(H, W, C\)"):
    ops.adjacent_channel_coupler(xj[0, 0], params)
  with pytest.raises(TypeError, match="`x` must have a floating dtype; found int32"):
    ops.adjacent_channel_coupler(xj.astype(jnp.int32), params)
  with pytest.raises(ValueError, match=r"`params.f_kernel` must have shape \('D', 4, 3, 3\)"):
    ops.adjacent_channel_coupler(xj[..., :4], params)
  with pytest.raises(ValueError, match="`solver` must be one of"):
    ops.adjacent_channel_coupler(xj, params, solver="newton")
  with pytest.raises(ValueError, match="`directions` must be one of"):
    ops.adjacent_channel_coupler(xj, params, directions="left")
  with pytest.raises(ValueError, match="`boundary` must be one of"):
    ops.adjacent_channel_coupler(xj, params, boundary="reflect")
  with pytest.raises(ValueError, match="directions='both' needs parameters with D = 2"):
    ops.adjacent_channel_coupler(xj, _single(params, "forward"))
  with pytest.raises(ValueError, match="solver='scan' is exact"):
    ops.adjacent_channel_coupler(xj, params, num_iters=3)
  with pytest.raises(ValueError, match="`num_iters` must be an int >= 0; found -2"):
    ops.adjacent_channel_coupler(xj, params, solver="jacobi", num_iters=-2)
  with pytest.raises(ValueError, match="not reverse-differentiable"):
    ops.adjacent_channel_coupler(xj, params, solver="implicit", tol=1e-4,
                                 differentiation="unrolled")
  with pytest.raises(ValueError, match=r"`params.h_kernel` is required"):
    ops.adjacent_channel_coupler(xj, params._replace(h_kernel=None))
  with pytest.raises(TypeError, match="`params` must be an ACCParams"):
    ops.adjacent_channel_coupler(xj, [1, 2])
  with pytest.raises(ValueError, match="`method` must be one of"):
    ops.circular_linear_coupler(xj, params, method="dft")
  with pytest.raises(ValueError, match="`channels` must be an int >= 1; found 0"):
    ops.init_acc_params(jax.random.key(0), 0)


def test_params_layout_and_flops():
  p = ops.init_acc_params(jax.random.key(0), 31)
  assert p.f_kernel.shape == (2, 31, 3, 3) and p.h_bias.shape == (2, 31)
  assert sum(v.size for v in p if v is not None) == 54 * 31 + 6 * 31
  assert all(v.dtype == jnp.float32 for v in p)
  assert float(jnp.max(jnp.abs(p.g_kernel))) <= 1 / 3
  assert ops.init_acc_params(jax.random.key(0), 4, directions="forward").f_kernel.shape == \
      (1, 4, 3, 3)
  assert ops.init_acc_params(jax.random.key(0), 4, with_h=False).h_kernel is None
  assert abs(ops.acc_flops(1, 482, 512, 31) / 1e9 - 0.95) < 0.01
