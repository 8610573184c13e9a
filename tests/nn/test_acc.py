"""The Adjacent Channel Coupler layer (issue 7; spec spectral-transformer-ising Sec. 2)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision import ops
from jaxvision.nn import AdjacentChannelCoupler

B, H, W, C = 2, 6, 5, 7


def _x(seed=0, dtype=np.float32):
  return jnp.asarray(np.random.default_rng(seed).uniform(size=(B, H, W, C)).astype(dtype))


def _params(variables):
  p = variables["params"]
  return ops.ACCParams(p["f_kernel"], p["g_kernel"], p.get("h_kernel"), p["f_bias"],
                       p["g_bias"], p.get("h_bias"))


@pytest.mark.parametrize("variant,directions,weights,biases", [
    ("acc", "both", 54, 6), ("acc", "forward", 27, 3), ("gated_linear", "both", 36, 4),
    ("circular_linear", "backward", 27, 3)])
def test_shapes_and_parameter_count(variant, directions, weights, biases):
  layer = AdjacentChannelCoupler(variant=variant, directions=directions)
  x = _x()
  variables = layer.init(jax.random.key(0), x)
  p = variables["params"]
  d = 2 if directions == "both" else 1
  assert p["f_kernel"].shape == (d, C, 3, 3) and p["f_bias"].shape == (d, C)
  assert p["f_kernel"].dtype == jnp.float32
  n_w = sum(v.size for k, v in p.items() if k.endswith("kernel"))
  n_b = sum(v.size for k, v in p.items() if k.endswith("bias"))
  assert (n_w, n_b) == (weights * C, biases * C)
  y = layer.apply(variables, x)
  assert y.shape == x.shape and y.dtype == jnp.float32
  # PyTorch Conv2d default bound 1/sqrt(9); the circular variant's h is 9x smaller.
  assert float(jnp.max(jnp.abs(p["f_kernel"]))) <= 1 / 3
  if variant == "circular_linear":
    assert float(jnp.max(jnp.abs(p["h_kernel"]))) <= 1 / 27


@pytest.mark.parametrize("solver,kw", [("scan", {}), ("jacobi", {"num_iters": 3}),
                                       ("quasi_deer", {}), ("implicit", {"num_iters": 4})])
def test_equals_ops(solver, kw):
  layer = AdjacentChannelCoupler(solver=solver, boundary="input", **kw)
  x = _x(1)
  variables = layer.init(jax.random.key(1), x)
  got = jax.jit(layer.apply)(variables, x)
  want = ops.adjacent_channel_coupler(x, _params(variables), solver=solver, boundary="input",
                                      **kw)
  np.testing.assert_allclose(got, want, atol=1e-6)


def test_associative_variants_equal_ops():
  x = _x(2)
  for variant, fn in (("gated_linear", ops.gated_linear_coupler),
                      ("circular_linear", ops.circular_linear_coupler)):
    layer = AdjacentChannelCoupler(variant=variant)
    variables = layer.init(jax.random.key(2), x)
    np.testing.assert_allclose(layer.apply(variables, x), fn(x, _params(variables)), atol=1e-6)
    seq = AdjacentChannelCoupler(variant=variant, method="sequential")
    np.testing.assert_allclose(seq.apply(variables, x), layer.apply(variables, x), atol=1e-4)


def test_interface_used_by_ssta():
  """``AdjacentChannelCoupler(solver=...)(x)`` with ``num_iters``/``tol`` None and a dtype."""
  x = _x(3)
  layer = AdjacentChannelCoupler(solver="scan", num_iters=None, tol=None, dtype=jnp.float32)
  variables = layer.init(jax.random.key(3), x)
  assert layer.apply(variables, x).shape == x.shape
  # bf16 activations: computed in float32, returned in bf16.
  y16 = AdjacentChannelCoupler(dtype=jnp.bfloat16).apply(variables, x)
  assert y16.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(y16, np.float32), layer.apply(variables, x), atol=3e-2)


def test_float64_and_grad():
  with jax.enable_x64(True):
    x = _x(4, np.float64)
    layer = AdjacentChannelCoupler(param_dtype=jnp.float64)
    variables = layer.init(jax.random.key(4), x)
    y = layer.apply(variables, x)
    assert y.dtype == jnp.float64
    g = jax.grad(lambda v: jnp.sum(layer.apply(v, x) ** 2))(variables)
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(g))


def test_bad_configuration():
  x = _x()
  with pytest.raises(ValueError, match="`variant` must be one of"):
    AdjacentChannelCoupler(variant="ising").init(jax.random.key(0), x)
  with pytest.raises(ValueError, match="`solver` applies to variant='acc' only"):
    AdjacentChannelCoupler(variant="gated_linear", solver="jacobi").init(jax.random.key(0), x)
  with pytest.raises(ValueError, match="`solver` must be one of"):
    AdjacentChannelCoupler(solver="newton").init(jax.random.key(0), x)
  with pytest.raises(ValueError, match=r"`x` must have shape \(B, H, W, C\)"):
    AdjacentChannelCoupler().init(jax.random.key(0), x[0, 0])
