"""Selective scan kernels (issue 4; spec icpr-13-ssm-motion-forecasting Sec. 6.1-6.6, 6.10).

The oracle is ``_reference``: a float64 NumPy transcription of mamba_ssm's
``selective_scan_ref`` as a plain Python loop over time (plus the spec's options: initial
state, reverse, the eq. (5) state injection, ZOH). float64 checks run inside
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
# (method, chunk_size); chunk 7 does not divide L = 37. Chunk sizes 1 and 5 (not dividing
# L = 13) are compared with the oracle in float64 by the gradient test.
CONFIGS = [("sequential", 64), ("associative", 64), ("chunked", 7)]
BATCH, DIM, LENGTH, STATE = 2, 6, 37, 4


def _softplus(x):
  return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0.0)


def _silu(x):
  return x / (1.0 + np.exp(-x))


def _per_channel(x, dim, t):
  """B or C at step ``t`` as ``(batch or 1, D, N)``, repeating groups like the reference."""
  if x.ndim == 2:                                          # (D, N) constant
    return x[None]
  if x.ndim == 3:                                          # (batch, N, L)
    return np.repeat(x[:, None, :, t], dim, axis=1)
  return np.repeat(x[..., t], dim // x.shape[1], axis=1)  # (batch, G, N, L)


def _reference(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
               initial_state=None, reverse=False, state_injection=None,
               discretization="mamba"):
  """``selective_scan_ref`` in float64 NumPy: returns ``(out, last_state)``."""
  u, delta, A, B, C = (np.asarray(x, np.float64) for x in (u, delta, A, B, C))
  batch, dim, length = u.shape
  if delta_bias is not None:
    delta = delta + np.asarray(delta_bias, np.float64)[:, None]
  if delta_softplus:
    delta = _softplus(delta)
  h = np.zeros((batch, dim, A.shape[1]))
  if initial_state is not None:
    h = np.array(initial_state, np.float64)
  y = np.zeros((batch, dim, length))
  steps = range(length - 1, -1, -1) if reverse else range(length)
  for t in steps:
    dA = delta[:, :, t, None] * A
    Bt, Ct = _per_channel(B, dim, t), _per_channel(C, dim, t)
    if discretization == "mamba":
      bu = delta[:, :, t, None] * Bt * u[:, :, t, None]
    else:
      bu = np.expm1(dA) / A * Bt * u[:, :, t, None]
    h = np.exp(dA) * h + bu
    if state_injection is not None:
      h = h + np.asarray(state_injection, np.float64)[..., t]
    y[:, :, t] = np.sum(h * Ct, axis=-1)
  out = y if D is None else y + np.asarray(D, np.float64)[:, None] * u
  if z is not None:
    out = out * _silu(np.asarray(z, np.float64))
  return out, h


def _inputs(seed=0, batch=BATCH, dim=DIM, length=LENGTH, state=STATE, b_layout="grouped",
            c_layout="variable", dtype=np.float32):
  """Random inputs in mamba_ssm's layouts (numpy); B/C layout: constant/variable/grouped."""
  rng = np.random.default_rng(seed)

  def bc(layout):
    if layout == "constant":
      return rng.normal(size=(dim, state))
    if layout == "variable":
      return rng.normal(size=(batch, state, length))
    return rng.normal(size=(batch, 3 if layout == "grouped3" else 2, state, length))

  x = dict(
      u=rng.normal(size=(batch, dim, length)),
      delta=rng.normal(size=(batch, dim, length)) - 1.0,
      A=-np.exp(rng.normal(size=(dim, state))),
      B=bc(b_layout), C=bc(c_layout),
      D=rng.normal(size=(dim,)),
      z=rng.normal(size=(batch, dim, length)),
      delta_bias=0.5 * rng.normal(size=(dim,)),
      initial_state=rng.normal(size=(batch, dim, state)),
      state_injection=0.3 * rng.normal(size=(batch, dim, state, length)),
  )
  return {k: v.astype(dtype) for k, v in x.items()}


def _scan(x, method, chunk_size, **kw):
  """``selective_scan`` on the dict of ``_inputs`` (jitted), returning ``(out, last_state)``."""
  x = dict(x)
  names = ("u", "delta", "A", "B", "C")

  @functools.partial(jax.jit, static_argnames=("method", "chunk_size"))
  def run(arrays, method, chunk_size):
    pos = [arrays.pop(k) for k in names]
    return ops.selective_scan(*pos, **arrays, return_last_state=True, method=method,
                              chunk_size=chunk_size, **kw)

  return run(x, method=method, chunk_size=chunk_size)


# ------------------------------------------------------------------------------------------
# 6.1 Scan modes agree with selective_scan_ref (and with each other).


@pytest.mark.parametrize("method,chunk_size,layouts", [
    *[(m, c, ("grouped", "variable")) for m, c in CONFIGS + [("chunked", LENGTH)]],
    *[(m, c, ("constant", "grouped3")) for m, c in CONFIGS],
])
def test_methods_match_reference_float32(method, chunk_size, layouts):
  x = _inputs(b_layout=layouts[0], c_layout=layouts[1])
  opts = dict(delta_softplus=True)
  if layouts[0] == "constant":       # second case: no D, no z, no bias, reverse, ZOH
    for k in ("D", "z", "delta_bias", "state_injection"):
      x.pop(k)
    opts.update(reverse=True, discretization="zoh")
  out, last = _scan(x, method, chunk_size, **opts)
  want, want_last = _reference(**x, **opts)
  assert out.dtype == jnp.float32 and last.dtype == jnp.float32
  assert out.shape == (BATCH, DIM, LENGTH) and last.shape == (BATCH, DIM, STATE)
  np.testing.assert_allclose(out, want, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(last, want_last, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method,chunk_size", [("associative", 64)])
def test_methods_match_reference_float64(method, chunk_size):
  # "sequential" and "chunked" in float64: test_gradients_agree_across_methods.
  with x64():
    x = _inputs(dtype=np.float64)
    out, last = _scan(x, method, chunk_size, delta_softplus=True)
    want, want_last = _reference(**x, delta_softplus=True)
    assert out.dtype == jnp.float64 and last.dtype == jnp.float64
    np.testing.assert_allclose(out, want, atol=1e-12, rtol=0)
    np.testing.assert_allclose(last, want_last, atol=1e-12, rtol=0)


def test_low_precision_input_computes_in_float32():
  x = _inputs()
  x = {k: (v.astype(jnp.bfloat16) if k in ("u", "delta", "z") else v) for k, v in x.items()}
  out, last = _scan(x, "chunked", 7, delta_softplus=True)
  want, _ = _reference(**{k: np.asarray(v, np.float64) for k, v in x.items()},
                       delta_softplus=True)
  assert out.dtype == jnp.bfloat16 and last.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(out, np.float64), want, atol=0.05, rtol=0.02)


# ------------------------------------------------------------------------------------------
# Gradients: all methods agree; the custom VJP passes check_grads.

GRAD_ARGS = ("u", "delta", "A", "B", "C", "D", "delta_bias", "initial_state",
             "state_injection")


def _grads(x, method, chunk_size, **kw):
  """Gradients of a random linear functional of ``(out, last_state)``, and those outputs."""
  cot = np.random.default_rng(9).normal(size=x["u"].shape)
  cot_last = np.random.default_rng(10).normal(size=x["initial_state"].shape)

  def loss(diff):
    out, last = ops.selective_scan(**{**x, **diff}, return_last_state=True, method=method,
                                   chunk_size=chunk_size, **kw)
    return jnp.sum(out * cot) + jnp.sum(last * cot_last), (out, last)

  return jax.jit(jax.grad(loss, has_aux=True))({k: x[k] for k in GRAD_ARGS})


@pytest.mark.parametrize("kw,others", [
    (dict(delta_softplus=True), [("chunked", 1)]),
    (dict(delta_softplus=True, reverse=True, discretization="zoh"), [("chunked", 5)]),
])
def test_gradients_agree_across_methods(kw, others):
  with x64():
    x = _inputs(length=13, dtype=np.float64)
    want, _ = _grads(x, "sequential", 64, **kw)
    ref_out, ref_last = _reference(**x, **kw)
    for method, chunk_size in [("sequential", 64)] + others:
      got, (out, last) = _grads(x, method, chunk_size, **kw)
      np.testing.assert_allclose(out, ref_out, atol=1e-12, rtol=0)
      np.testing.assert_allclose(last, ref_last, atol=1e-12, rtol=0)
      for k in GRAD_ARGS:
        np.testing.assert_allclose(got[k], want[k], atol=1e-11, rtol=1e-11,
                                   err_msg=f"{method} {chunk_size}: d/d{k}")


@pytest.mark.parametrize("method,chunk_size", [("chunked", 2), ("associative", 64)])
def test_check_grads(method, chunk_size):
  with x64():
    x = _inputs(batch=1, dim=4, length=5, state=3, b_layout="grouped", c_layout="variable",
                dtype=np.float64)
    fixed = dict(z=x["z"], delta_bias=x["delta_bias"], initial_state=x["initial_state"])

    @jax.jit
    def f(u, delta, A, B, C, D, rho):
      return ops.selective_scan(u, delta, A, B, C, D, **fixed, delta_softplus=True,
                                method=method, chunk_size=chunk_size, state_injection=rho,
                                return_last_state=True)

    args = [x[k] for k in ("u", "delta", "A", "B", "C", "D", "state_injection")]
    check_grads(f, args, order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


# ------------------------------------------------------------------------------------------
# 6.3 Causality and batch independence; 6.4 reverse.


@pytest.mark.parametrize("method,chunk_size", [("chunked", 5), ("sequential", 64)])
def test_causality_and_no_batch_leakage(method, chunk_size):
  x = _inputs(length=12)

  def f(u):
    return ops.selective_scan(u, x["delta"], x["A"], x["B"], x["C"], x["D"], x["z"],
                              delta_softplus=True, method=method, chunk_size=chunk_size)

  jac = np.asarray(jax.jit(jax.jacrev(f))(jnp.asarray(x["u"])))  # (b, d, t, b', d', s)
  by_time = np.moveaxis(jac, (2, 5), (0, 1))                       # (t, s, b, d, b', d')
  t, s = np.meshgrid(np.arange(12), np.arange(12), indexing="ij")
  assert np.all(by_time[s > t] == 0.0)                              # exactly zero
  for b in range(BATCH):
    for b2 in range(BATCH):
      if b != b2:
        assert np.all(jac[b, :, :, b2] == 0.0)
  # The past does reach the present (the test could fail): dy_t/du_0 != 0 for all t.
  assert np.all(np.abs(np.einsum("bdtbes->bdts", jac)[..., 0]) > 0)


# "sequential" and "associative" implement reverse literally as flip -> scan -> flip;
# "chunked" runs its chunks from the end (and masks the first chunk's overlap).
@pytest.mark.parametrize("method,chunk_size", [("chunked", 7)])
def test_reverse_equals_flip_scan_flip_exactly(method, chunk_size):
  x = _inputs(b_layout="grouped", c_layout="constant")
  flip = {k: (np.flip(v, -1).copy() if k in ("u", "delta", "z", "B", "state_injection")
              else v) for k, v in x.items()}
  out_r, last_r = _scan(x, method, chunk_size, delta_softplus=True, reverse=True)
  out_f, last_f = _scan(flip, method, chunk_size, delta_softplus=True)
  np.testing.assert_array_equal(out_r, np.flip(np.asarray(out_f), -1))
  np.testing.assert_array_equal(last_r, last_f)
  want, want_last = _reference(**x, delta_softplus=True, reverse=True)
  np.testing.assert_allclose(out_r, want, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(last_r, want_last, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------------------
# 6.5 ZOH limits; 6.6 LTI = convolution (eqs. (3) and (6)).


def test_zoh_tends_to_mamba_as_delta_tends_to_zero():
  with x64():
    x = _inputs(dtype=np.float64, b_layout="constant", c_layout="constant")
    A = -np.tile(np.linspace(0.5, 2.0, STATE), (DIM, 1))
    u = np.abs(x["u"]) + 0.1

    @functools.partial(jax.jit, static_argnames=("disc", "method"))
    def scan(d, disc, method):
      return ops.selective_scan(u, d, A, x["B"], x["C"], return_last_state=True,
                                method=method, chunk_size=8, discretization=disc)


    for delta in (0.05, 6.7e-3, 1e-3):
      d = np.full_like(u, delta)
      last = {disc: scan(d, disc, "chunked")[1] for disc in ("zoh", "mamba")}
      # With constant delta the states differ by the per-(d, n) gain ratio of Bbar:
      # expm1(delta A) / (delta A) = 1 + delta A / 2 + O(delta^2).
      ratio = np.asarray(last["zoh"]) / np.asarray(last["mamba"])
      gain = np.broadcast_to(np.expm1(delta * A) / (delta * A), ratio.shape)
      np.testing.assert_allclose(ratio, gain, rtol=1e-10)
      rel = np.abs(ratio - 1)
      np.testing.assert_allclose(rel, np.broadcast_to(delta * np.abs(A) / 2, rel.shape),
                                 rtol=delta * 2.0)
      if delta == 6.7e-3:
        assert rel.max() < 1e-2
      out = {disc: np.asarray(scan(d, disc, "chunked")[0]) for disc in ("zoh", "mamba")}
      assert np.abs(out["zoh"] - out["mamba"]).max() <= (
          delta * np.abs(A).max() / 2 * np.abs(
              _reference(u, d, A, np.abs(x["B"]), np.abs(x["C"]))[0]).max() * 1.01)


def test_zoh_bbar_tends_to_delta_b_as_a_tends_to_zero():
  with x64():
    x = _inputs(dtype=np.float64, b_layout="variable", c_layout="variable", length=5)
    delta = _softplus(x["delta"])
    state = np.zeros_like(x["initial_state"])
    for a in (-1e-3, -1e-6, 0.0):
      A = np.full_like(x["A"], a)
      out = {}
      for disc in ("zoh", "mamba"):
        _, out[disc] = ops.selective_state_update(state, x["u"][..., 0], delta[..., 0], A,
                                                  x["B"][..., 0], x["C"][..., 0],
                                                  discretization=disc)
      # Bbar u = expm1(delta a) / a * B u  ->  delta B u, relative error ~ delta |a| / 2.
      assert np.all(np.isfinite(out["zoh"]))
      rel = np.abs(out["zoh"] - out["mamba"]).max() / np.abs(out["mamba"]).max()
      assert rel <= delta.max() * abs(a) / 2 * 1.01 + 1e-15


def test_lti_scan_equals_convolution_form_with_rho():
  with x64():
    rng = np.random.default_rng(3)
    b, d, n, length = 2, 3, 4, 40
    u = rng.normal(size=(b, d, length))
    rho = rng.normal(size=(b, d, n, length))
    A = -np.exp(rng.normal(size=(d, n)))
    B, C = rng.normal(size=(d, n)), rng.normal(size=(d, n))
    delta = np.broadcast_to(np.exp(rng.normal(size=(1, d, 1))) * 0.3, u.shape)
    out = ops.selective_scan(u, delta, A, B, C, state_injection=rho, method="chunked",
                             chunk_size=16)
    # Eq. (3): K_k = C Abar^k Bbar;  eq. (6): M_k = C Abar^k;  y = u * K + rho * M.
    dt = delta[0, :, :1]
    abar, bbar = np.exp(dt * A), dt * B
    k = np.arange(length)[:, None, None]
    K = np.sum(C * abar**k * bbar, axis=-1)          # (length, d)
    M = C * abar**k                                  # (length, d, n)
    want = np.zeros((b, d, length))
    for i in range(b):
      for j in range(d):
        want[i, j] = np.convolve(u[i, j], K[:, j])[:length]
        for m in range(n):
          want[i, j] += np.convolve(rho[i, j, m], M[:, j, m])[:length]
    np.testing.assert_allclose(out, want, atol=1e-12, rtol=0)


# ------------------------------------------------------------------------------------------
# Decode step, state injection, linear_recurrence.


@pytest.mark.parametrize("discretization", ["zoh"])
def test_state_update_step_by_step_equals_full_scan(discretization):
  x = _inputs(b_layout="grouped", c_layout="variable")
  kw = dict(delta_softplus=True, discretization=discretization)
  out, last = _scan(x, "chunked", 16, **kw)
  step = jax.jit(functools.partial(ops.selective_state_update, dt_softplus=True,
                                   discretization=discretization))
  state = x["initial_state"]
  for t in range(LENGTH):
    y, state = step(state, x["u"][..., t], x["delta"][..., t], x["A"], x["B"][..., t],
                    x["C"][..., t], x["D"], x["z"][..., t], x["delta_bias"],
                    state_injection=x["state_injection"][..., t])
    np.testing.assert_allclose(y, out[..., t], atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(state, last, atol=1e-5, rtol=1e-5)


def test_state_injection_against_loop():
  x = _inputs(b_layout="constant", c_layout="constant")
  out, last = _scan(x, "chunked", 7, delta_softplus=True)
  want, want_last = _reference(**x, delta_softplus=True)
  np.testing.assert_allclose(out, want, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(last, want_last, atol=1e-5, rtol=1e-5)
  # rho really enters: without it the result differs.
  x.pop("state_injection")
  assert np.abs(_reference(**x, delta_softplus=True)[0] - want).max() > 1e-2


@pytest.mark.parametrize("method", ["associative", "sequential"])
@pytest.mark.parametrize("axis,reverse", [(1, True), (-1, False)])
def test_linear_recurrence_against_loop(method, axis, reverse):
  rng = np.random.default_rng(4)
  shape = (5, 6, 7)
  a = rng.uniform(-1, 1, size=shape)
  b = rng.normal(size=shape)
  h0 = rng.normal(size=tuple(s for i, s in enumerate(shape) if i != axis % 3))
  got = jax.jit(functools.partial(ops.linear_recurrence, axis=axis, reverse=reverse,
                                  method=method))(a, b, initial_state=h0)
  am, bm = np.moveaxis(a, axis, 0), np.moveaxis(b, axis, 0)
  want = np.zeros_like(bm)
  h = h0
  for t in (range(bm.shape[0] - 1, -1, -1) if reverse else range(bm.shape[0])):
    h = am[t] * h + bm[t]
    want[t] = h
  np.testing.assert_allclose(got, np.moveaxis(want, 0, axis), atol=1e-5, rtol=1e-5)


def test_linear_recurrence_broadcasts_a():
  b = np.arange(12.0).reshape(4, 3)
  got = ops.linear_recurrence(0.5, b, axis=0)
  np.testing.assert_allclose(got[1], 0.5 * b[0] + b[1])
  np.testing.assert_allclose(got[3], 0.5 * got[2] + b[3])


# ------------------------------------------------------------------------------------------
# 6.10 Memory; jit/vmap; errors.


def test_chunked_uses_less_temp_memory_than_associative():
  x = _inputs(batch=2, dim=8, length=8, state=8, b_layout="variable")

  def temp(method):
    def loss(u, delta):
      return jnp.sum(ops.selective_scan(u, delta, x["A"], x["B"], x["C"], method=method,
                                        chunk_size=2))
    grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
    return grad.lower(x["u"], x["delta"]).compile().memory_analysis().temp_size_in_bytes

  assert temp("chunked") < temp("associative") / 4


def test_vmap_matches_loop():
  xs = [_inputs(seed=s) for s in range(3)]
  stacked = {k: np.stack([x[k] for x in xs]) for k in ("u", "delta", "B", "C")}
  x0 = xs[0]
  f = lambda u, delta, B, C: ops.selective_scan(u, delta, x0["A"], B, C, x0["D"],
                                                delta_softplus=True, method="chunked",
                                                chunk_size=8)
  got = jax.jit(jax.vmap(f))(*(stacked[k] for k in ("u", "delta", "B", "C")))
  for i, x in enumerate(xs):
    want, _ = _reference(x["u"], x["delta"], x0["A"], x["B"], x["C"], x0["D"],
                         delta_softplus=True)
    np.testing.assert_allclose(got[i], want, atol=1e-5, rtol=1e-5)


def test_default_method_is_documented_choice():
  x = _inputs()
  default = ops.selective_scan(x["u"], x["delta"], x["A"], x["B"], x["C"], delta_softplus=True)
  want, _ = _reference(x["u"], x["delta"], x["A"], x["B"], x["C"], delta_softplus=True)
  np.testing.assert_allclose(default, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("change,name", [
    (dict(delta=np.zeros((2, 6, 36))), "`delta`"),
    (dict(z=np.zeros((2, 6))), "`z`"),
    (dict(A=np.zeros((5, 4))), "`A`"),
    (dict(B=np.zeros((2, 4, 36))), "`B`"),
    (dict(C=np.zeros((2, 4, 4, 37))), "`C`"),      # 4 groups do not divide D = 6
    (dict(C=np.zeros((6, 3))), "`C`"),
    (dict(D=np.zeros((5,))), "`D`"),
    (dict(delta_bias=np.zeros((6, 1))), "`delta_bias`"),
    (dict(initial_state=np.zeros((2, 6, 5))), "`initial_state`"),
    (dict(state_injection=np.zeros((2, 6, 4))), "`state_injection`"),
    (dict(u=np.zeros((6, 37))), "`u`"),
    (dict(method="fast"), "`method`"),
    (dict(discretization="bilinear"), "`discretization`"),
    (dict(chunk_size=0), "`chunk_size`"),
])
def test_bad_inputs_raise_naming_the_argument(change, name):
  x = _inputs()
  with pytest.raises(ValueError, match=name):
    ops.selective_scan(**{**x, **change})


def test_bad_inputs_message_states_expected_and_found_shapes():
  x = _inputs()
  with pytest.raises(ValueError, match=r"`delta` must have shape \(2, 6, 37\).*found \(2, 37\)"):
    ops.selective_scan(**{**x, "delta": np.zeros((2, 37))})
  with pytest.raises(TypeError, match="`chunk_size`"):
    ops.selective_scan(**x, chunk_size=2.5)
  with pytest.raises(TypeError, match="`A`"):
    ops.selective_scan(**{**x, "A": x["A"] + 0j})
  with pytest.raises(ValueError, match="`dt`"):
    ops.selective_state_update(x["initial_state"], x["u"][..., 0], x["delta"][..., 1:, 0],
                               x["A"], x["B"][..., 0], x["C"][..., 0])
  with pytest.raises(ValueError, match="`initial_state`"):
    ops.linear_recurrence(np.ones((3, 4)), np.ones((3, 4)), initial_state=np.ones(3))
  with pytest.raises(ValueError, match="`method`"):
    ops.linear_recurrence(np.ones(3), np.ones(3), method="chunked")
