"""Mamba / BiMamba blocks (issue 4; spec icpr-13 Sec. 2 "Selective parameterization",
"Bidirectional SSM", eq. (5), Sec. 6.2-6.4).

The independent reference is a NumPy float64 transcription of ``mamba_simple.Mamba.forward``
(``selective_scan_ref`` loop) and of Vim's ``bimamba_type="v2"`` forward, fed the same
parameters.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxvision.nn import BiMamba, Mamba, MambaCache

x64 = functools.partial(jax.enable_x64, True)
D_REL = 3


def _inputs(seed, shape, d_rel=D_REL):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=shape).astype(np.float32)
  rel = rng.normal(size=shape[:2] + (d_rel,)).astype(np.float32)
  return x, rel


# Everything runs under jit, one compilation per (module, shapes): op-by-op dispatch of the
# same programs is many times slower on the 2-core test machine.
@functools.partial(jax.jit, static_argnums=(0, 1))
def _jit_apply(model, static, variables, args, kw):
  return model.apply(variables, *args, **dict(static), **kw)


def _apply(model, variables, *args, method=None, return_cache=False, **kw):
  static = (("method", method),) if method is not None else ()
  static += (("return_cache", True),) if return_cache else ()
  return _jit_apply(model, static, variables, args, kw)


@functools.partial(jax.jit, static_argnums=0)
def _jit_init(model, key, x, kw):
  return model.init(key, x, **kw)


def _rel_kw(model, rel, rel_reverse=None):
  if model.injection is None:
    return {}
  if isinstance(model, BiMamba):
    return dict(rel=rel, rel_reverse=rel if rel_reverse is None else rel_reverse)
  return dict(rel=rel)


def _random_leaf(path, shape, rng):
  name = jax.tree_util.keystr(path, simple=True, separator="/")
  if name.endswith("A_log"):       # S4D-real plus noise: every channel different
    return np.log(np.arange(1.0, shape[1] + 1)) + 0.3 * rng.normal(size=shape)
  if name.endswith("/D"):
    return 1.0 + 0.3 * rng.normal(size=shape)
  if name.endswith("dt_bias"):     # softplus^-1 of Delta in [0.01, 0.5]: visible dynamics
    dt = np.exp(rng.uniform(np.log(0.01), np.log(0.5), size=shape))
    return np.log(np.expm1(dt))
  if name.endswith("conv_kernel") or name.endswith("conv_bias"):
    return rng.uniform(-0.5, 0.5, size=shape)
  if name.endswith("kernel"):
    return rng.normal(size=shape) / np.sqrt(shape[0])
  return 0.1 * rng.normal(size=shape)


def _init(model, x, *, rel=None, seed=0):
  """Random parameters (float32) with the module's tree and shapes (from ``eval_shape``, so
  no init program is compiled), every entry distinct so no symmetry hides a bug (e.g.
  identical channels of ``A_log``). The init distribution is tested on its own."""
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.asarray(x),
                          **_rel_kw(model, rel))
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_map_with_path(
      lambda path, s: _random_leaf(path, s.shape, rng).astype(np.float32), shapes)


# ------------------------------------------------------------------------------------------
# NumPy float64 reference (mamba_simple.Mamba.forward without the fused kernels).


def _np(a):
  return np.asarray(a, np.float64)


def _silu(v):
  return v / (1.0 + np.exp(-v))


def _np_branch(p, x, z, rel, mask, injection, discretization):
  """conv1d -> SiLU -> x_proj -> dt_proj -> selective_scan_ref loop (+ rho), (b, L, D)."""
  p = jax.tree.map(_np, p)
  batch, length, d = x.shape
  if mask is not None:
    x = x * mask[..., None]
  w = p["conv_kernel"]                                   # (K, D): mamba's weight[d, 0, k]
  k_width = w.shape[0]
  xc = np.zeros_like(x)
  for t in range(length):
    for k in range(k_width):
      s = t - (k_width - 1) + k
      if s >= 0:
        xc[:, t] += w[k] * x[:, s]
  xc = _silu(xc + p["conv_bias"])
  n = p["A_log"].shape[1]
  x_dbl = xc @ p["x_proj"]["kernel"]
  r = x_dbl.shape[-1] - 2 * n
  dt, bm, cm = x_dbl[..., :r], x_dbl[..., r:r + n], x_dbl[..., r + n:]
  delta = np.logaddexp(0.0, dt @ p["dt_proj"]["kernel"] + p["dt_bias"])
  rho = np.zeros((batch, length, d, n))
  if injection == "outer":
    rho = (rel @ p["rel_a"]["kernel"])[..., :, None] * (rel @ p["rel_b"]["kernel"])[..., None, :]
  elif injection == "full":
    rho = (rel @ p["rel_full"]["kernel"]).reshape(batch, length, d, n)
  if mask is not None:
    delta = delta * mask[..., None]
    rho = rho * mask[..., None, None]
  A = -np.exp(p["A_log"])
  h = np.zeros((batch, d, n))
  y = np.zeros_like(xc)
  for t in range(length):
    dA = delta[:, t, :, None] * A
    if discretization == "mamba":
      bbar = delta[:, t, :, None] * bm[:, t, None, :]
    else:
      bbar = np.expm1(dA) / A * bm[:, t, None, :]
    h = np.exp(dA) * h + bbar * xc[:, t, :, None] + rho[:, t]
    y[:, t] = np.sum(h * cm[:, t, None, :], axis=-1) + p["D"] * xc[:, t]
  return y * _silu(z)


def _np_block(params, x, rel=None, mask=None, rel_reverse=None, *, injection=None,
              discretization="mamba", divide_out=False):
  """Mamba (no ``ssm_backward`` in params) or Vim v2 BiMamba, float64."""
  x = _np(x)
  rel = None if rel is None else _np(rel)
  mask = None if mask is None else _np(mask)
  lin = lambda q, v: v @ _np(q["kernel"]) + (_np(q["bias"]) if "bias" in q else 0.0)
  xz = lin(params["in_proj"], x)
  d = xz.shape[-1] // 2
  xi, z = xz[..., :d], xz[..., d:]
  y = _np_branch(params["ssm"], xi, z, rel, mask, injection, discretization)
  if "ssm_backward" in params:
    flip = lambda v: None if v is None else v[:, ::-1]
    rr = None if rel_reverse is None else _np(rel_reverse)
    y = y + flip(_np_branch(params["ssm_backward"], flip(xi), flip(z), flip(rr), flip(mask),
                            injection, discretization))
    if divide_out:
      y = y / 2
  out = lin(params["out_proj"], y)
  return out if mask is None else out * mask[..., None]


# ------------------------------------------------------------------------------------------
# Parameters and initialisation.


def _expected_count(d_model, n=16, k=4, expand=2, bias=False, directions=1):
  d = expand * d_model
  r = math.ceil(d_model / 16)
  branch = (d * k + d          # conv weight + bias
            + d * (r + 2 * n)  # x_proj
            + r * d + d        # dt_proj weight + bias
            + d * n + d)       # A_log, D
  proj = d_model * 2 * d + d * d_model + (2 * d + d_model if bias else 0)
  return proj + directions * branch


def _param_shapes(model, x, **kw):
  return jax.eval_shape(model.init, jax.random.key(0), x, **kw)["params"]


@pytest.mark.parametrize("d_model,bias", [(128, False), (40, True)])
def test_parameter_count_and_shapes_match_mamba_simple(d_model, bias):
  x = jnp.zeros((1, 3, d_model))
  d, r, n = 2 * d_model, math.ceil(d_model / 16), 16
  for cls, directions in ((Mamba, 1), (BiMamba, 2)):
    params = _param_shapes(cls(d_model=d_model, bias=bias), x)
    count = sum(p.size for p in jax.tree.leaves(params))
    assert count == _expected_count(d_model, bias=bias, directions=directions)
    assert params["in_proj"]["kernel"].shape == (d_model, 2 * d)
    assert params["out_proj"]["kernel"].shape == (d, d_model)
    assert ("bias" in params["in_proj"]) == bias and ("bias" in params["out_proj"]) == bias
    branches = ["ssm", "ssm_backward"][:directions]
    assert sorted(params) == sorted(["in_proj", "out_proj"] + branches)
    for b in branches:
      shapes = jax.tree.map(lambda p: p.shape, params[b])
      assert shapes == {"conv_kernel": (4, d), "conv_bias": (d,),
                        "x_proj": {"kernel": (d, r + 2 * n)}, "dt_proj": {"kernel": (r, d)},
                        "dt_bias": (d,), "A_log": (d, n), "D": (d,)}
  if d_model == 128:      # the numbers in the report
    assert _expected_count(128) == 116480 and _expected_count(128, directions=2) == 134656


def test_injection_parameter_shapes():
  x, rel = _inputs(0, (1, 3, 8), d_rel=5)
  outer = _param_shapes(Mamba(d_model=8, d_state=4, injection="outer"), x, rel=rel)["ssm"]
  full = _param_shapes(Mamba(d_model=8, d_state=4, injection="full"), x, rel=rel)["ssm"]
  assert jax.tree.map(lambda p: p.shape, outer["rel_a"]) == {"kernel": (5, 16)}   # no bias
  assert jax.tree.map(lambda p: p.shape, outer["rel_b"]) == {"kernel": (5, 4)}
  assert jax.tree.map(lambda p: p.shape, full["rel_full"]) == {"kernel": (5, 16 * 4)}


def test_init_properties():
  d_model, n, dt_scale = 64, 8, 1.5
  model = BiMamba(d_model=d_model, d_state=n, dt_scale=dt_scale, dt_min=1e-5, dt_max=0.1,
                  dt_init_floor=1e-3, scan_method="sequential")
  params = _jit_init(model, jax.random.key(3), jnp.zeros((1, 2, d_model)), {})["params"]
  d, r = 2 * d_model, 4
  for b in ("ssm", "ssm_backward"):
    p = params[b]
    a_log = np.log(np.broadcast_to(np.arange(1.0, n + 1), (d, n)))
    np.testing.assert_allclose(p["A_log"], a_log, rtol=1e-7, atol=1e-7)   # S4D-real
    np.testing.assert_array_equal(p["D"], np.ones(d))
    dt = np.logaddexp(0.0, np.asarray(p["dt_bias"], np.float64))      # softplus(b_Delta)
    assert np.all(dt >= 1e-3 * (1 - 1e-5)) and np.all(dt <= 0.1 * (1 + 1e-5))
    # exp(U[log 1e-5, log 0.1]) is below the 1e-3 floor half the time: those are the floor.
    assert 0.3 < np.mean(np.isclose(dt, 1e-3, rtol=1e-4)) < 0.7
    assert dt.max() > 0.03
    std = r**-0.5 * dt_scale
    w = np.asarray(p["dt_proj"]["kernel"])
    assert np.abs(w).max() <= std and np.abs(w).max() > 0.8 * std and w.std() > 0.4 * std
    assert np.abs(p["conv_kernel"]).max() <= 0.5 and np.abs(p["conv_bias"]).max() <= 0.5
    assert np.abs(p["x_proj"]["kernel"]).max() <= d**-0.5
  assert np.abs(params["in_proj"]["kernel"]).max() <= d_model**-0.5
  assert np.abs(params["out_proj"]["kernel"]).max() <= d**-0.5
  # Both branches draw their own random numbers.
  assert not np.allclose(params["ssm"]["dt_bias"], params["ssm_backward"]["dt_bias"])
  # Default dt range [1e-3, 0.1] and dt_init="constant".
  # (Initialising only dt_proj and the branch's own parameters: no scan to compile.)
  model = Mamba(d_model=16, dt_init="constant", dt_scale=dt_scale)
  p = jax.jit(functools.partial(model.init, method=lambda m, v: m.ssm.dt_proj(v)))(
      jax.random.key(4), jnp.zeros((1, 1)))["params"]["ssm"]
  np.testing.assert_allclose(p["dt_proj"]["kernel"], np.full((1, 32), dt_scale), rtol=1e-6)
  dt = np.logaddexp(0.0, np.asarray(p["dt_bias"], np.float64))
  assert np.all(dt >= 1e-3 * (1 - 1e-5)) and np.all(dt <= 0.1 * (1 + 1e-5))


# ------------------------------------------------------------------------------------------
# Forward pass against the NumPy float64 reference.

FORWARD_CASES = [
    # class, injection, discretization, scan_method, bias, masked
    (Mamba, None, "mamba", "sequential", False, False),
    (Mamba, "full", "zoh", "associative", False, True),
    (BiMamba, "outer", "mamba", "chunked", True, True),
]


@pytest.mark.parametrize("cls,injection,discretization,method,bias,masked", FORWARD_CASES)
def test_forward_matches_numpy_float64(cls, injection, discretization, method, bias, masked):
  with x64():
    x, rel = _inputs(1, (2, 9, 6))
    rev = np.random.default_rng(2).normal(size=rel.shape)
    kw = dict(d_model=6, d_state=3, injection=injection, discretization=discretization,
              scan_method=method, chunk_size=4, bias=bias)
    bi = cls is BiMamba
    model = cls(**kw, divide_out=True) if bi else cls(**kw)
    params = jax.tree.map(_np, _init(model, x, rel=rel))
    args = _rel_kw(model, _np(rel), rev)
    if masked:
      mask = np.ones((2, 9))
      mask[0, :3] = 0.0
      mask[1, 7:] = 0.0
      args["mask"] = mask
    y = _apply(model, params, _np(x), **args)
    assert y.dtype == jnp.float64 and y.shape == x.shape
    want = _np_block(params["params"], x, injection=injection, discretization=discretization,
                     divide_out=bi, **args)
    np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------------
# Decode (spec Sec. 6.2).

SMALL = dict(d_model=8, d_state=4, scan_method="sequential")


@pytest.mark.parametrize("injection", [None, "outer"])
def test_decode_steps_equal_full_scan(injection):
  x, rel = _inputs(4, (2, 7, 8))
  model = Mamba(**SMALL, injection=injection)
  variables = _init(model, x, rel=rel)
  kw = _rel_kw(model, rel)
  y_full, prefill = _apply(model, variables, x, **kw, return_cache=True)
  cache = model.init_cache(2)
  assert isinstance(cache, MambaCache)
  assert cache.conv_state.shape == (2, 16, 4) and cache.ssm_state.shape == (2, 16, 4)
  rel_t = lambda t: None if injection is None else rel[:, t]
  ys = []
  for t in range(7):
    y_t, cache = _apply(model, variables, x[:, t], cache, rel_t(t), method=Mamba.step)
    ys.append(y_t)
  np.testing.assert_allclose(np.stack(ys, 1), y_full, rtol=1e-5, atol=1e-6)
  # The cache after the steps equals the one __call__ returns after the whole sequence.
  np.testing.assert_allclose(prefill.conv_state, cache.conv_state, atol=1e-6)
  np.testing.assert_allclose(prefill.ssm_state, cache.ssm_state, rtol=1e-5, atol=1e-6)
  if injection is None:
    return
  # A 2-token prompt (shorter than d_conv), then decode the rest.
  y_p, cache = _apply(model, variables, x[:, :2], **_rel_kw(model, rel[:, :2]),
                      return_cache=True)
  np.testing.assert_allclose(y_p, y_full[:, :2], rtol=1e-5, atol=1e-6)
  for t in range(2, 7):
    y_t, cache = _apply(model, variables, x[:, t], cache, rel_t(t), method=Mamba.step)
    np.testing.assert_allclose(y_t, y_full[:, t], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------
# Causality and bidirectionality (spec Sec. 6.3-6.4).


def _perturbation_changes(model, variables, x, rel):
  """``changed[s, b, t]``: output ``(b, t)`` differs (at all) when token ``s`` of batch row 0
  is perturbed, in one batched call; rows ``1..`` must never change."""
  batch, length, _ = x.shape
  xs = np.repeat(x[None], length + 1, axis=0)               # index length: unperturbed
  rs = np.repeat(rel[None], length + 1, axis=0)
  for s in range(length):
    xs[s, 0, s] += 1.0
    rs[s, 0, s] += 1.0
  flat = lambda a: a.reshape((-1,) + a.shape[2:])
  y = np.asarray(_apply(model, variables, flat(xs), **_rel_kw(model, flat(rs))))
  y = y.reshape((length + 1, batch) + y.shape[1:])
  return np.any(y[:length] != y[length], axis=-1)           # (L, batch, L)


def test_mamba_is_causal():
  x, rel = _inputs(5, (2, 8, 4))
  model = Mamba(d_model=4, d_state=3, scan_method="chunked", chunk_size=3, injection="outer")
  changed = _perturbation_changes(model, _init(model, x, rel=rel), x, rel)
  past = np.triu(np.ones((8, 8), bool))                     # [s, t]: t >= s
  np.testing.assert_array_equal(changed[:, 0], past)        # bit-exact: no future leakage
  assert not changed[:, 1].any()                            # nor across the batch


def test_bimamba_output_depends_on_past_and_future():
  x, rel = _inputs(6, (2, 7, 4))
  model = BiMamba(d_model=4, d_state=3, injection="outer", scan_method="sequential")
  changed = _perturbation_changes(model, _init(model, x, rel=rel), x, rel)
  assert changed[:, 0].all() and not changed[:, 1].any()


def test_bimamba_equals_forward_plus_flipped_backward_mamba():
  """BiMamba(x) = Mamba_f(x) + flip(Mamba_b(flip(x))) with Mamba_b = the backward branch."""
  x, rel = _inputs(7, (2, 7, 8))
  rel_reverse = np.random.default_rng(8).normal(size=rel.shape).astype(np.float32)
  mask = np.ones((2, 7), np.float32)
  mask[0, :2] = 0.0
  mask[1, 5:] = 0.0
  bi = BiMamba(**SMALL, injection="outer")
  p = _init(bi, x, rel=rel)["params"]
  y = _apply(bi, {"params": p}, x, rel=rel, rel_reverse=rel_reverse, mask=mask)
  mamba = Mamba(**SMALL, injection="outer")
  shared = {"in_proj": p["in_proj"], "out_proj": p["out_proj"]}
  y_f = _apply(mamba, {"params": {**shared, "ssm": p["ssm"]}}, x, rel=rel, mask=mask)
  flip = lambda v: np.flip(v, axis=1)
  y_b = flip(_apply(mamba, {"params": {**shared, "ssm": p["ssm_backward"]}}, flip(x),
                    rel=flip(rel_reverse), mask=flip(mask)))
  np.testing.assert_allclose(y, y_f + y_b, rtol=1e-5, atol=1e-6)
  # The two branches really differ (else a swapped branch would go unnoticed).
  assert np.abs(np.asarray(y_f) - flip(y_b)).max() > 1e-2


# ------------------------------------------------------------------------------------------
# Padding and relative-pose injection.


@pytest.mark.parametrize("cls,injection", [(Mamba, "outer"), (BiMamba, "full")])
def test_padding_tokens_leave_state_unchanged(cls, injection):
  """[pad, real(, pad)] gives the real tokens the outputs of [real]; padding outputs are 0."""
  x, rel = _inputs(9, (2, 7, 8))
  bi = cls is BiMamba
  model = cls(**SMALL, injection=injection)
  variables = _init(model, x, rel=rel)
  before, after = 3, 2 if bi else 0
  junk, junk_rel = _inputs(10, (2, before + after, 8))      # garbage in the padded slots
  cat = lambda a, j: np.concatenate([j[:, :before], a, j[:, before:]], axis=1)
  mask = np.concatenate([np.zeros((2, before)), np.ones((2, 7)), np.zeros((2, after))], 1)
  cache = {} if bi else dict(return_cache=True)
  ref = _apply(model, variables, x, **_rel_kw(model, rel, -rel), **cache)
  pad = _apply(model, variables, cat(x, junk), **_rel_kw(model, cat(rel, junk_rel),
                                                         -cat(rel, junk_rel)),
               mask=mask, **cache)
  (y_ref, c_ref), (y_pad, c_pad) = (ref, pad) if not bi else ((ref, None), (pad, None))
  np.testing.assert_allclose(y_pad[:, before:before + 7], y_ref, rtol=1e-5, atol=1e-6)
  assert np.all(np.asarray(y_pad)[mask == 0] == 0.0)
  if not bi:   # the state after the sequence is the same too
    np.testing.assert_allclose(c_pad.ssm_state, c_ref.ssm_state, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(c_pad.conv_state, c_ref.conv_state)


@pytest.mark.parametrize("cls,injection", [(Mamba, "outer"), (BiMamba, "full")])
def test_zero_rel_equals_no_injection(cls, injection):
  x, rel = _inputs(11, (2, 7, 8))
  model = cls(**SMALL, injection=injection)
  p = _init(model, x, rel=rel)["params"]
  plain = {k: ({n: w for n, w in v.items() if not n.startswith("rel_")}
               if k.startswith("ssm") else v) for k, v in p.items()}
  assert len(jax.tree.leaves(plain)) < len(jax.tree.leaves(p))
  y0 = _apply(model, {"params": p}, x, **_rel_kw(model, np.zeros_like(rel)))
  y_plain = _apply(cls(**SMALL), {"params": plain}, x)
  np.testing.assert_allclose(y0, y_plain, rtol=1e-6, atol=1e-7)
  # ...and a non-zero rel does change the output.
  y_rel = _apply(model, {"params": p}, x, **_rel_kw(model, rel))
  assert np.abs(np.asarray(y_rel) - y_plain).max() > 1e-3


# ------------------------------------------------------------------------------------------
# Gradients, dtypes, jit, sharding, errors.


@functools.partial(jax.jit, static_argnums=0)
def _grads(model, variables, x, kw):
  loss = lambda v, x: jnp.sum(model.apply(v, x, **kw) ** 2)
  return jax.grad(loss, argnums=(0, 1))(variables, x)


def test_gradients_finite_and_zero_for_padding():
  x, rel = _inputs(12, (2, 7, 8))
  model = BiMamba(**SMALL, injection="outer")
  variables = _init(model, x, rel=rel)
  mask = np.ones((2, 7), np.float32)
  mask[:, :2] = 0.0
  g_v, g_x = _grads(model, variables, x, dict(**_rel_kw(model, rel), mask=mask))
  for g in jax.tree.leaves(g_v):
    assert np.all(np.isfinite(g)) and np.abs(g).max() > 0
  assert np.all(np.isfinite(g_x))
  np.testing.assert_array_equal(g_x[:, :2], 0.0)        # padding is ignored
  assert np.abs(g_x[:, 2:]).min() > 0


def test_float32_default_method_and_bfloat16_compute():
  """float32 with the default scan method against NumPy; bfloat16 compute close to it."""
  x, _ = _inputs(14, (2, 11, 8))
  model = Mamba(d_model=8, d_state=4)
  variables = _init(model, x)
  y32 = _apply(model, variables, x)
  assert y32.dtype == jnp.float32
  np.testing.assert_allclose(y32, _np_block(variables["params"], x), rtol=1e-4, atol=1e-5)
  y16 = _apply(model.clone(dtype=jnp.bfloat16), variables, x.astype(jnp.bfloat16))
  assert y16.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(y16, np.float32), y32,
                             atol=0.05 * float(np.abs(y32).max()))


def test_jit_and_batch_sharded_over_devices():
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  x, rel = _inputs(15, (8, 7, 8))
  model = BiMamba(**SMALL, injection="outer")
  variables = _init(model, x, rel=rel)
  shard = NamedSharding(mesh, P("data"))
  xs, rs = jax.device_put(x, shard), jax.device_put(rel, shard)
  assert len(xs.sharding.device_set) == 8
  y = _apply(model, variables, xs, rel=rs, rel_reverse=rs)
  assert len(y.sharding.device_set) == 8
  y_ref = _np_block(variables["params"], x, rel, rel_reverse=rel, injection="outer")
  np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-5)


def test_bad_inputs_raise_clear_errors():
  x, rel = _inputs(16, (2, 5, 8))
  model = Mamba(d_model=8, d_state=4)
  init = lambda m, *a, **k: jax.eval_shape(m.init, jax.random.key(0), *a, **k)
  variables = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), init(model, x))
  apply = lambda *a, **k: jax.eval_shape(functools.partial(model.apply, **k), *a)
  with pytest.raises(ValueError, match=r"`x` must have shape \(batch, L, 8\); found \(2, 5, 6\)"):
    apply(variables, x[..., :6])
  with pytest.raises(ValueError, match=r"`mask` must have shape \(2, 5\)"):
    apply(variables, x, mask=np.ones((2, 4)))
  with pytest.raises(ValueError, match="`rel` was given but `injection` is None"):
    apply(variables, x, rel=rel)
  with pytest.raises(ValueError, match="`rel` is required with injection='outer'"):
    init(Mamba(d_model=8, injection="outer"), x)
  with pytest.raises(ValueError, match="`rel_reverse` is required"):
    init(BiMamba(d_model=8, injection="full"), x, rel=rel)
  with pytest.raises(ValueError, match=r"`rel` must have shape \(2, 5, 'd_rel'\)"):
    init(Mamba(d_model=8, injection="outer"), x, rel=rel[:, :3])
  with pytest.raises(ValueError, match="`injection` must be one of"):
    init(Mamba(d_model=8, injection="sum"), x)
  with pytest.raises(ValueError, match="`dt_init` must be one of"):
    init(Mamba(d_model=8, dt_init="normal"), x)
  with pytest.raises(ValueError, match="`dt_rank` must be 'auto' or a positive int"):
    init(Mamba(d_model=8, dt_rank=0), x)
  with pytest.raises(ValueError, match=r"`cache.ssm_state` must have shape \(2, 16, 4\)"):
    bad = MambaCache(jnp.zeros((2, 16, 4)), jnp.zeros((2, 16, 3)))
    apply(variables, x[:, 0], bad, method=Mamba.step)
