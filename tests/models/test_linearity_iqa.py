"""LinearityIQA (Norm-in-Norm, spec Sec. 3): output convention, parameter counts from the
spec, the level wiring, BatchNorm train/eval semantics, the backbone prefix, bf16 and input
validation. Tiny backbones (width 4, 16x16 images, one block per stage) keep it fast."""

import functools
import re

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision.models import LevelEncoder, create_model

TINY = dict(backbone="resnet50", backbone_width=4, stem="cifar",
            backbone_kwargs={"stage_sizes": (1, 1, 1, 1)})


def _init(model, x):
  # The classic threefry stream compiles ~5x faster on CPU (see Experiment.init_state).
  with jax.threefry_partitionable(False):
    return jax.jit(model.init)(jax.random.PRNGKey(0), x)


def _abstract(model, shape):
  return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(shape)))


def _count(tree):
  return sum(x.size for x in jax.tree.leaves(tree))


def _encoder_count(channels, widths=(1024, 256, 64)):
  """Dense (kernel + bias) and BatchNorm (scale + bias) parameters of one level encoder."""
  total = 0
  for width in widths:
    total += channels * width + width + 2 * width
    channels = width
  return total


def _head_count(level_channels, code=64):
  # Per-level encoders, per-level auxiliary heads Dense(64 -> 1), main head Dense(128 -> 1).
  levels = len(level_channels)
  return (sum(_encoder_count(c) for c in level_channels) + levels * (code + 1)
          + (levels * code + 1))


@pytest.fixture(scope="module")
def tiny():
  model = create_model("linearity_iqa", **TINY)
  x = jax.random.normal(jax.random.PRNGKey(1), (4, 16, 16, 3))
  return model, x, _init(model, x)


@pytest.mark.parametrize("backbone,channels", [
    ("resnet18", (256, 512)), ("resnet50", (1024, 2048)), ("resnext101_32x8d", (1024, 2048))])
def test_parameter_counts_match_the_spec(backbone, channels):
  model = create_model("linearity_iqa", backbone=backbone)
  params = _abstract(model, (1, 224, 224, 3))["params"]
  headless = _count(_abstract(create_model(backbone, num_classes=None), (1, 224, 224, 3))["params"])
  head = _head_count(channels)
  # resnet50: 2 x (C*1024 + 1024 + 2048 + 1024*256 + 256 + 512 + 256*64 + 64 + 128) + 2*65 + 129.
  assert head == {"resnet18": 1_351_811}.get(backbone, 3_711_107)
  assert _count(params["backbone"]) == headless
  assert _count(params) == headless + head
  if backbone == "resnext101_32x8d":
    assert _count(params) == 90_453_443  # the paper's default model


def test_output_shape_dtype_and_column_convention(tiny):
  model, x, variables = tiny
  out, state = jax.jit(functools.partial(model.apply, capture_intermediates=True,
                                         mutable=["intermediates"]))(variables, x)
  assert out.shape == (4, 3) and out.dtype == jnp.float32
  inter = state["intermediates"]
  code4 = inter["encoder_conv4"]["__call__"][0]
  code5 = inter["encoder_conv5"]["__call__"][0]
  assert code4.shape == (4, 64) and np.all(code4 >= 0)  # the encoder ends with a ReLU
  p = variables["params"]
  dense = lambda name, f: f @ p[name]["kernel"] + p[name]["bias"]
  # Column 0: the main head on [conv4 code, conv5 code]; then the level heads in order.
  assert p["head"]["kernel"].shape == (128, 1)
  np.testing.assert_allclose(out[:, 0], dense("head", jnp.concatenate([code4, code5], -1))[:, 0],
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(out[:, 1], dense("aux_head_conv4", code4)[:, 0], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(out[:, 2], dense("aux_head_conv5", code5)[:, 0], rtol=1e-5, atol=1e-5)
  # The taps: conv4 = stage 3 (4 * 4 * 4 = 64 channels), conv5 = stage 4 (128).
  assert p["encoder_conv4"]["dense1"]["kernel"].shape == (64, 1024)
  assert p["encoder_conv5"]["dense1"]["kernel"].shape == (128, 1024)


def test_main_score_depends_on_both_levels_and_aux_heads_on_their_own(tiny):
  model, x, variables = tiny
  names = ("encoder_conv4", "encoder_conv5")

  def columns(encoders):
    params = {**variables["params"], **encoders}
    return jnp.sum(model.apply({**variables, "params": params}, x), axis=0)  # (3,)

  jac = jax.jit(jax.jacrev(columns))({n: variables["params"][n] for n in names})
  for level in names:
    norms = sum(jnp.abs(g).reshape(3, -1).sum(-1) for g in jax.tree.leaves(jac[level]))
    # Column 0 (main) depends on both levels; column 1 only on conv4, column 2 only on conv5.
    assert norms[0] > 0
    assert (norms[1] > 0) == (level == "encoder_conv4")
    assert (norms[2] > 0) == (level == "encoder_conv5")


def test_batchnorm_batch_stats_in_training_running_averages_in_eval(tiny):
  model, x, variables = tiny
  train = jax.jit(functools.partial(model.apply, train=True, capture_intermediates=True,
                                    mutable=["batch_stats", "intermediates"]))
  out, state = train(variables, x)
  assert out.shape == (4, 3) and out.dtype == jnp.float32
  old = variables["batch_stats"]["encoder_conv5"]["bn1"]["mean"]
  new = state["batch_stats"]["encoder_conv5"]["bn1"]["mean"]
  dense1 = state["intermediates"]["encoder_conv5"]["dense1"]["__call__"][0]
  # Flax momentum 0.9 (PyTorch 0.1): running mean = 0.1 * batch mean of the Dense output.
  assert np.all(old == 0)
  np.testing.assert_allclose(new, 0.1 * dense1.mean(axis=0), rtol=1e-4, atol=1e-6)
  # Batch statistics normalise: bn1's train output has (almost) zero batch mean (BN bias 0).
  bn1 = state["intermediates"]["encoder_conv5"]["bn1"]["__call__"][0]
  np.testing.assert_allclose(bn1.mean(axis=0), 0, atol=1e-4)
  assert "backbone" in state["batch_stats"]
  # Training output of a sample depends on the batch; evaluation output does not.
  train_plain = jax.jit(functools.partial(model.apply, train=True, mutable=["batch_stats"]))
  assert not np.allclose(train_plain(variables, x[:2])[0], out[:2], atol=1e-4)
  apply = jax.jit(model.apply)
  np.testing.assert_allclose(apply(variables, x[:2]), apply(variables, x)[:2],
                             rtol=1e-5, atol=1e-5)


def test_parameter_tree_has_the_backbone_prefix(tiny):
  model, x, variables = tiny
  assert set(variables["params"]) == {"backbone", "encoder_conv4", "encoder_conv5",
                                      "aux_head_conv4", "aux_head_conv5", "head"}
  paths = ["/".join(str(getattr(k, "key", k)) for k in path)
           for path, _ in jax.tree_util.tree_leaves_with_path(variables["params"])]
  fine_tuned = [p for p in paths if re.match(r"^backbone/", p)]
  assert fine_tuned and len(fine_tuned) < len(paths)
  flat = flax.traverse_util.flatten_dict(variables["params"], sep="/")
  headless = create_model("resnet50", num_classes=None, width=4, stem="cifar",
                          stage_sizes=(1, 1, 1, 1))
  expected = _count(_abstract(headless, x.shape)["params"])
  assert sum(flat[p].size for p in fine_tuned) == expected
  # The backbone subtree is exactly a headless ResNet's variables.
  ref = _abstract(headless, x.shape)
  for collection in ("params", "batch_stats"):
    assert (jax.tree.structure(variables[collection]["backbone"])
            == jax.tree.structure(ref[collection]))


def test_bfloat16_runs_and_returns_float32(tiny):
  _, x, variables = tiny  # float32 parameters: the same tree whatever the compute dtype
  model = create_model("linearity_iqa", dtype=jnp.bfloat16, **TINY)
  out, state = jax.jit(functools.partial(model.apply, train=True, mutable=["batch_stats"]))(
      variables, x)
  assert out.shape == (4, 3) and out.dtype == jnp.float32 and np.all(np.isfinite(out))
  assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(state["batch_stats"]))
  ref = jax.jit(functools.partial(tiny[0].apply, train=True, mutable=["batch_stats"]))(
      variables, x)[0]
  np.testing.assert_allclose(out, ref, rtol=0.1, atol=0.1 * float(jnp.abs(ref).max()))


def test_options_levels_and_bn_end():
  x = jnp.ones((2, 16, 16, 3))
  model = create_model("linearity_iqa", levels=("conv3", "conv4", "conv5"),
                       encoder_widths=(16, 8), use_bn_end=True, **TINY)
  abstract = _abstract(model, x.shape)
  p = abstract["params"]
  assert p["head"]["kernel"].shape == (24, 1)
  assert p["encoder_conv3"]["dense1"]["kernel"].shape == (32, 16)  # stage 2: 2 * 4 * 4
  assert {"head_bn", "aux_head_conv3_bn", "aux_head_conv5_bn"} <= set(p)
  assert jax.eval_shape(model.apply, abstract, x).shape == (2, 4)


@pytest.mark.parametrize("relu_after_each", [False, True])
def test_level_encoder_matches_the_authors_stack(relu_after_each):
  """Dense, BN, Dense, BN, ..., ReLU (code); the paper's text adds a ReLU after every BN."""
  encoder = LevelEncoder((6, 5, 4), relu_after_each=relu_after_each)
  x = jax.random.normal(jax.random.PRNGKey(4), (3, 7))
  fresh = _init(encoder, x)
  # Non-trivial running statistics and BN affine parameters.
  leaves, treedef = jax.tree.flatten(fresh)
  keys = jax.random.split(jax.random.PRNGKey(6), len(leaves))
  variables = jax.tree.unflatten(treedef, [
      jnp.abs(v) + 0.5 + jax.random.uniform(k, v.shape) for k, v in zip(keys, leaves)])
  p, s = variables["params"], variables["batch_stats"]
  y = np.asarray(x, np.float64)
  for i in range(1, 4):
    y = y @ np.asarray(p[f"dense{i}"]["kernel"], np.float64) + np.asarray(p[f"dense{i}"]["bias"])
    bn, stats = p[f"bn{i}"], s[f"bn{i}"]
    y = (y - stats["mean"]) / np.sqrt(np.asarray(stats["var"], np.float64) + 1e-5)
    y = y * bn["scale"] + bn["bias"]
    if relu_after_each or i == 3:
      y = np.maximum(y, 0)
  out = jax.jit(encoder.apply)(variables, x)
  assert out.shape == (3, 4)
  np.testing.assert_allclose(out, y, rtol=1e-5, atol=1e-5)
  # Torch nn.Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
  fresh = fresh["params"]
  assert float(jnp.abs(fresh["dense1"]["kernel"]).max()) <= 1 / np.sqrt(7)
  assert float(jnp.abs(fresh["dense2"]["bias"]).max()) <= 1 / np.sqrt(6)
  assert float(jnp.abs(fresh["dense2"]["bias"]).max()) > 0


@pytest.mark.parametrize("kwargs,shape,dtype,match", [
    ({}, (16, 16, 3), jnp.float32, "NHWC"),
    ({}, (1, 16, 16, 3), jnp.uint8, "ImageNet-normalised floats"),
    ({"levels": ("conv6",)}, (1, 16, 16, 3), jnp.float32, "levels"),
    ({"levels": ("conv4", "conv4")}, (1, 16, 16, 3), jnp.float32, "repeat"),
    ({"encoder_widths": ()}, (1, 16, 16, 3), jnp.float32, "encoder_widths"),
    ({"backbone_kwargs": {"stage_sizes": (1, 1)}}, (1, 16, 16, 3), jnp.float32, "stages"),
    ({"backbone_kwargs": {"num_classes": 10}}, (1, 16, 16, 3), jnp.float32, "num_classes"),
])
def test_bad_inputs_raise_clear_errors(kwargs, shape, dtype, match):
  model = create_model("linearity_iqa", **{**TINY, **kwargs})
  with pytest.raises(ValueError, match=match):
    _abstract_with_dtype(model, shape, dtype)


def test_bad_backbone_names_raise():
  with pytest.raises(KeyError, match="resnet9"):
    _abstract(create_model("linearity_iqa", backbone="resnet9"), (1, 16, 16, 3))


def _abstract_with_dtype(model, shape, dtype):
  return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(shape, dtype)))
