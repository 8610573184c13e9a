"""The ACC spectral transformer (issue 7; spec spectral-transformer-ising "MS-SSF and SSTA"),
a reconstruction: pinned parameter counts, the MS-MSA twin, shapes, BatchNorm modes.

Counts by ``jax.eval_shape`` (no compile); numerics on ``acc_net_small`` (C = 9) at 8x8 and
7x9 with NumPy-drawn parameters (jit-compiling ``init``'s RNG is the slow part on CPU).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision.models import create_model, list_models
from jaxvision.models.acc_net import ACCNet
from jaxvision.models.mst_plus_plus import reflect_pad_to
from jaxvision.nn import AdjacentChannelCoupler, SpectralWiseMSA


def _count(tree):
  return sum(x.size for x in jax.tree.leaves(tree))


def _abstract(model, shape=(1, 16, 16, 3)):
  return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(shape)))


def _numpy_variables(model, shape=(1, 8, 8, 3), seed=0):
  """``model.init``'s variables drawn with NumPy (no compile): kernels ``N(0, 1/fan_in)``
  (ACC kernels ``N(0, 0.2^2)``), biases ``N(0, 0.1^2)``, scales / ``rescale``
  ``1 + U(-.5, .5)``, ``gamma`` 0.5; BatchNorm statistics at their init (0, 1)."""
  shapes = _abstract(model, shape)
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = path[-1].key
    if name == "kernel":
      return (rng.normal(size=leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1]))).astype(np.float32)
    if name.endswith("_kernel"):                       # ACC per-channel 3x3 kernels
      return (0.2 * rng.normal(size=leaf.shape)).astype(np.float32)
    if name in ("scale", "rescale"):
      return (1 + rng.uniform(-0.5, 0.5, size=leaf.shape)).astype(np.float32)
    if name == "gamma":
      return np.asarray(0.5, np.float32)
    return (0.1 * rng.normal(size=leaf.shape)).astype(np.float32)

  stats = jax.tree_util.tree_map_with_path(
      lambda path, s: jnp.zeros(s.shape) if path[-1].key == "mean" else jnp.ones(s.shape),
      shapes["batch_stats"])
  return {"params": jax.tree_util.tree_map_with_path(draw, shapes["params"]),
          "batch_stats": stats}


def _block_widths(model):
  """Widths of every transformer block of ``model`` (encoder, bottleneck, decoder)."""
  w = [model.width * 2 ** l for l in range(model.levels)]
  per_ssf = sum(([c] * n for c, n in zip(w, model.num_blocks)), [])
  per_ssf += [model.width * 2 ** model.levels] * model.num_blocks[-1]
  per_ssf += sum(([c] * n for c, n in zip(w, model.num_blocks)), [])
  return per_ssf * model.num_ssf


@pytest.mark.parametrize("name,kwargs,count", [
    ("acc_net", {}, 1_231_948),                           # the paper: 1.18 M
    ("acc_net_msa", {}, 1_457_780),                       # the MS-MSA twin
    ("acc_net_small", {}, 53_129),                        # CPU toy
    ("acc_net_msa_small", {}, 52_851),                    # its twin of equal size
    ("acc_net_small", dict(coupler="msa"), 57_873),       # same-architecture twin
    ("acc_net", dict(num_blocks=(1, 1, 1)), 1_037_140),
    ("acc_net", dict(num_blocks=(2, 1, 1)), 1_092_008),
])
def test_parameter_counts(name, kwargs, count):
  model = create_model(name, **kwargs)
  variables = _abstract(model)
  assert _count(variables["params"]) == count
  # Two BatchNorms (mean, var) per transformer block.
  assert _count(variables["batch_stats"]) == 4 * sum(_block_widths(model))


def test_registered_names_and_fields():
  assert {"acc_net", "acc_net_msa", "acc_net_small", "acc_net_msa_small"} <= set(list_models())
  net, twin = create_model("acc_net"), create_model("acc_net_msa")
  assert (net.width, net.num_ssf, net.levels, tuple(net.num_blocks)) == (31, 2, 2, (1, 2, 1))
  assert net.coupler == "acc" and twin.coupler == "msa" and net.acc_solver == "scan"
  small, small_twin = create_model("acc_net_small"), create_model("acc_net_msa_small")
  assert (small.width, small.num_ssf, small.residual) == (9, 1, "features")
  assert (small_twin.coupler, small_twin.ffn_mult, small_twin.width) == ("msa", 3, 9)
  assert create_model("acc_net_small", acc_solver="jacobi").acc_solver == "jacobi"


def _paths(tree):
  return {"/".join(str(k.key) for k in path): leaf.shape
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def test_msa_twin_differs_only_in_the_coupler():
  net, twin = create_model("acc_net"), create_model("acc_net_msa")
  a, b = _abstract(net), _abstract(twin)
  pa, pb = _paths(a["params"]), _paths(b["params"])
  rest = lambda p, key: {k: v for k, v in p.items() if f"/attn/{key}/" not in k}
  assert rest(pa, "acc") == rest(pb, "msa")
  assert _paths(a["batch_stats"]) == _paths(b["batch_stats"])
  widths = _block_widths(net)
  assert sum(k.endswith("/attn/gamma") for k in pa) == len(widths) == 14
  # The difference is exactly (MSA - ACC) per block.
  coupler = lambda layer, c: _count(jax.eval_shape(
      layer.init, jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, c)))["params"])
  assert coupler(AdjacentChannelCoupler(), 31) == 60 * 31            # 54 C weights + 6 C biases
  assert coupler(SpectralWiseMSA(dim_head=31), 62) == 4 * 62 ** 2 + 19 * 62 + 2
  diff = sum(coupler(SpectralWiseMSA(dim_head=31), c) - coupler(AdjacentChannelCoupler(), c)
             for c in widths)
  assert _count(b["params"]) - _count(a["params"]) == diff == 1_457_780 - 1_231_948


@pytest.mark.parametrize("name,hw", [("acc_net", (13, 11)), ("acc_net", (3, 5)),
                                     ("acc_net_msa", (13, 11)), ("acc_net_small", (7, 9))])
def test_output_shapes_any_size(name, hw):
  model = create_model(name)
  x = jax.ShapeDtypeStruct((2,) + hw + (3,), jnp.float32)
  out = jax.eval_shape(functools.partial(model.apply, train=False), _abstract(model), x)
  assert out.shape == (2,) + hw + (31,) and out.dtype == jnp.float32


@pytest.fixture(scope="module")
def small():
  model = create_model("acc_net_small")
  variables = _numpy_variables(model)
  return model, variables, jax.jit(functools.partial(model.apply, train=False))


def test_eval_padding_crop_back_and_jit(small):
  model, variables, apply = small
  x = jax.random.uniform(jax.random.PRNGKey(1), (2, 7, 9, 3))
  out = apply(variables, x)
  assert out.shape == (2, 7, 9, 31) and bool(jnp.all(jnp.isfinite(out)))
  padded = reflect_pad_to(x, 4)                   # 2^levels
  assert padded.shape == (2, 8, 12, 3)
  # Eval-mode BatchNorm is per-sample: the padded run, cropped, is the same function.
  np.testing.assert_allclose(apply(variables, padded)[:, :7, :9], out, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(apply(variables, x[:1]), out[:1], rtol=1e-5, atol=1e-5)


def test_train_vs_eval_batchnorm(small):
  model, variables, apply = small
  x = jax.random.uniform(jax.random.PRNGKey(2), (2, 8, 8, 3))
  train = jax.jit(functools.partial(model.apply, train=True, mutable=["batch_stats"]))
  out_train, state = train(variables, x)
  out_eval = apply(variables, x)
  assert out_train.shape == out_eval.shape == (2, 8, 8, 31)
  assert float(jnp.max(jnp.abs(out_train - out_eval))) > 1e-3
  # Training updates every running average (momentum 0.9 from mean 0 / var 1) ...
  old, new = jax.tree.leaves(variables["batch_stats"]), jax.tree.leaves(state["batch_stats"])
  assert len(old) == len(new) == 4 * 5
  assert all(float(jnp.max(jnp.abs(a - b))) > 0 for a, b in zip(old, new))
  # ... couples the samples of a batch through the batch statistics ...
  alone, _ = train(variables, jnp.concatenate([x[:1], x[:1]]))
  assert float(jnp.max(jnp.abs(alone[0] - out_train[0]))) > 1e-4
  # ... and eval with the updated statistics is a different function.
  updated = {"params": variables["params"], "batch_stats": state["batch_stats"]}
  assert float(jnp.max(jnp.abs(apply(updated, x) - out_eval))) > 1e-4


def test_gradients_finite():
  # acc_net_small at one U-Net level (a shorter CPU compile; the same layers).
  model = create_model("acc_net_small", levels=1, num_blocks=(1, 1))
  variables = _numpy_variables(model, seed=3)
  x = jax.random.uniform(jax.random.PRNGKey(3), (2, 8, 8, 3))
  y = jax.random.uniform(jax.random.PRNGKey(4), (2, 8, 8, 31), minval=0.1)

  def loss(params):
    out, _ = model.apply({"params": params, "batch_stats": variables["batch_stats"]}, x,
                         train=True, mutable=["batch_stats"])
    return jnp.mean(jnp.abs(out - y) / y)                    # MRAE

  g = jax.jit(jax.grad(loss))(variables["params"])
  assert all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree.leaves(g))
  attn = g["ssf_0"]["bottleneck_block_0"]["attn"]
  assert float(jnp.abs(attn["gamma"])) > 0
  assert all(float(jnp.max(jnp.abs(a))) > 0 for a in jax.tree.leaves(attn["acc"]))


def test_errors_name_the_argument():
  init = lambda m, shape=(1, 8, 8, 3): jax.eval_shape(m.init, jax.random.PRNGKey(0),
                                                      jnp.zeros(shape))
  with pytest.raises(ValueError, match="residual='output'.*width=9, out_channels=31"):
    init(ACCNet(width=9))
  with pytest.raises(ValueError, match="`coupler` must be one of.*found 'gru'"):
    init(ACCNet(coupler="gru"))
  with pytest.raises(ValueError, match="num_blocks.*3 entries.*\\(1, 1\\)"):
    init(ACCNet(num_blocks=(1, 1)))
  with pytest.raises(ValueError, match="pad_multiple.*2\\^levels = 4; found 6"):
    init(ACCNet(pad_multiple=6))
  with pytest.raises(ValueError, match="NHWC \\(batch, height, width, 3\\)"):
    init(ACCNet(), (1, 8, 8, 1))
  with pytest.raises(ValueError, match="solver"):             # acc_solver reaches the ACC
    init(create_model("acc_net_small", acc_solver="newton"))
