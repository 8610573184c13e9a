"""ResNet: parameter counts against the published architectures, shapes, feature
taps, BatchNorm semantics and input validation."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision import nn as jv_nn
from jaxvision.models import create_model


def _init(model, x):
  # The classic threefry stream compiles ~5x faster on CPU (see Experiment.init_state).
  with jax.threefry_partitionable(False):
    return jax.jit(model.init)(jax.random.PRNGKey(0), x)


def _num_params(model, shape):
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(shape)))
  return sum(x.size for x in jax.tree.leaves(variables["params"]))


@pytest.mark.parametrize("name,count", [
    # torchvision.models.resnet{18,34,50}(num_classes=1000) parameter counts.
    ("resnet18", 11_689_512), ("resnet34", 21_797_672), ("resnet50", 25_557_032)])
def test_imagenet_parameter_counts_match_torchvision(name, count):
  assert _num_params(create_model(name), (1, 224, 224, 3)) == count


def test_cifar_resnet18_parameter_count():
  # Standard CIFAR ResNet-18 (3x3 stem, 10 classes): 11,173,962 parameters.
  assert _num_params(create_model("resnet18", num_classes=10, stem="cifar"),
                     (1, 32, 32, 3)) == 11_173_962


@pytest.mark.parametrize("stem,size,stage4", [("cifar", 32, 4), ("imagenet", 64, 2)])
def test_feature_taps_shapes(stem, size, stage4):
  model = create_model("resnet18", num_classes=7, stem=stem, width=8)
  x = jnp.ones((2, size, size, 3))
  variables = _init(model, x)
  logits, feats = jax.jit(functools.partial(model.apply, return_features=True))(variables, x)
  assert logits.shape == (2, 7) and logits.dtype == jnp.float32
  assert feats["stage4"].shape == (2, stage4, stage4, 64)
  assert feats["stage1"].shape[-1] == 8 and feats["pooled"].shape == (2, 64)
  np.testing.assert_allclose(feats["pooled"], feats["stage4"].mean(axis=(1, 2)), rtol=1e-6)


def test_bottleneck_expansion_and_headless_model():
  model = create_model("resnet50", num_classes=None, stem="cifar", width=4)
  x = jnp.ones((1, 16, 16, 3))
  out = jax.jit(model.apply)(_init(model, x), x)
  assert out.shape == (1, 4 * 8 * 4)


def test_batchnorm_train_mode_uses_batch_stats_and_updates_running_averages():
  model = create_model("resnet18", num_classes=3, stem="cifar", width=4)
  x = jax.random.normal(jax.random.PRNGKey(1), (4, 8, 8, 3)) * 3 + 2
  variables = _init(model, x)
  _, updates = jax.jit(functools.partial(model.apply, train=True, mutable=["batch_stats"]))(
      variables, x)
  old = variables["batch_stats"]["stem_bn"]["mean"]
  new = updates["batch_stats"]["stem_bn"]["mean"]
  assert np.all(old == 0) and not np.allclose(new, 0)
  # Flax momentum 0.9: new running mean = 0.1 * batch mean of the stem conv output.
  kernel = variables["params"]["stem_conv"]["kernel"]
  conv = jax.lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(new, 0.1 * conv.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)
  # In eval mode the output does not depend on the rest of the batch.
  apply = jax.jit(model.apply)
  a = apply(variables, x[:2])
  b = apply(variables, x)[:2]
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_zero_init_residual_makes_blocks_identity_plus_relu():
  model = create_model("resnet18", num_classes=None, stem="cifar", width=4,
                       zero_init_residual=True)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 3))
  variables = _init(model, x)
  _, feats = jax.jit(functools.partial(model.apply, return_features=True))(variables, x)
  # Stage 1 has identity shortcuts and zero-scaled residual branches: output == stem output.
  np.testing.assert_allclose(feats["stage1"], feats["stem"], rtol=1e-6)


def test_bfloat16_compute_keeps_float32_params_and_logits():
  model = create_model("resnet18", num_classes=5, stem="cifar", width=4, dtype=jnp.bfloat16)
  x = jnp.ones((2, 8, 8, 3))
  variables = _init(model, x)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables["params"]))
  assert jax.jit(model.apply)(variables, x).dtype == jnp.float32


@pytest.mark.parametrize("kwargs,shape,match", [
    ({}, (8, 8, 3), "NHWC"),
    ({"stem": "tiny"}, (1, 8, 8, 3), "stem"),
])
def test_bad_inputs_raise_clear_errors(kwargs, shape, match):
  model = create_model("resnet18", num_classes=3, **kwargs)
  with pytest.raises(ValueError, match=match):
    model.init(jax.random.PRNGKey(0), jnp.zeros(shape))


@pytest.mark.parametrize("kwargs,sown", [
    (dict(stem_norm="decorrelated"), ("stem_bn", (1, 8, 8))),
    (dict(stem_norm="decorrelated", stem_conv="orthogonal"), ("stem_bn", (1, 8, 8))),
    (dict(stem_conv="spectral_norm"), None),
    (dict(pooling="covariance", pooling_reduce_dim=6, pooling_method="eigh",
          pooling_eps=1e-3), ("gcp", (4, 6, 6))),
    (dict(pooling="covariance", pooling_reduce_dim=6, pooling_reduce_conv="spectral_norm"),
     ("gcp", (4, 6, 6))),
    (dict(pooling="covariance", pooling_reduce_dim=6, pooling_reduce_conv="orthogonal"),
     ("gcp", (4, 6, 6))),
])
def test_svd_meta_layer_variants(kwargs, sown):
  model = create_model("resnet18", num_classes=5, stem="cifar", width=8, stage_sizes=(1, 1),
                       **kwargs)
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 8, 8, 3))
  variables = _init(model, x)
  assert "intermediates" not in variables or kwargs.get("stem_conv") == "spectral_norm"
  logits, updates = jax.jit(functools.partial(
      model.apply, train=True, mutable=["batch_stats", "intermediates"]))(variables, x)
  assert logits.shape == (4, 5) and np.all(np.isfinite(logits))
  if sown is not None:
    layer, shape = sown
    assert updates["intermediates"][layer]["covariance"][0].shape == shape
  if kwargs.get("pooling") == "covariance":
    pooled = jax.jit(functools.partial(model.apply, return_features=True))(variables, x)[1]
    assert pooled["pooled"].shape == (4, 6 * 7 // 2)
  grads = jax.grad(lambda p: jnp.sum(model.apply(
      {**variables, "params": p}, x, train=True, mutable=["batch_stats"])[0]))(
          variables["params"])
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))


def test_orthogonal_stem_needs_the_cifar_stem():
  model = create_model("resnet18", num_classes=3, stem="imagenet", width=8,
                       stem_conv="orthogonal")
  with pytest.raises(ValueError, match="stride 1"):
    _init(model, jnp.zeros((1, 16, 16, 3)))
  with pytest.raises(ValueError, match="stem_norm"):
    _init(create_model("resnet18", stem_norm="zca"), jnp.zeros((1, 16, 16, 3)))


def test_orthogonal_gcp_reduction_is_a_partial_isometry():
  """OW on the GCP reduction: the 1x1 map C -> d has orthonormal rows (W W^T = I)."""
  model = create_model("resnet18", num_classes=3, stem="cifar", width=8, stage_sizes=(1, 1),
                       pooling="covariance", pooling_reduce_dim=5,
                       pooling_reduce_conv="orthogonal")
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 8, 8, 3))
  variables = _init(model, x)
  kernel = variables["params"]["gcp_reduce_conv"]["kernel"]
  assert kernel.shape == (1, 1, 16, 16)  # square SOC over the 16 stage-2 channels
  soc = jv_nn.SOCConv(16, 1, use_bias=False)
  # The reduction applied to the identity basis gives the rows of W (eval: 10 Taylor terms).
  rows = soc.apply({"params": {"kernel": kernel}}, jnp.eye(16)[:, None, None, :])[:, 0, 0, :5]
  np.testing.assert_allclose(rows.T @ rows, np.eye(5), atol=1e-6)
  with pytest.raises(ValueError, match="pooling_reduce_dim"):
    _init(create_model("resnet18", num_classes=3, stem="cifar", width=8, stage_sizes=(1, 1),
                       pooling="covariance", pooling_reduce_dim=17,
                       pooling_reduce_conv="orthogonal"), x)


@pytest.mark.parametrize("name,count", [
    # torchvision.models.resnext50_32x4d() / resnext101_32x8d() parameter counts.
    ("resnext50_32x4d", 25_028_904), ("resnext101_32x8d", 88_791_336)])
def test_resnext_parameter_counts_match_torchvision(name, count):
  assert _num_params(create_model(name), (1, 224, 224, 3)) == count


def test_resnext_grouped_bottleneck_widths():
  # planes 16, width_per_group 8, groups 4: inner width int(16 * 8 / 64) * 4 = 8.
  model = create_model("resnext50_32x4d", num_classes=3, stem="cifar", width=16, groups=4,
                       width_per_group=8, stage_sizes=(1, 1))
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 3))
  variables = _init(model, x)
  block = variables["params"]["stage1_block1"]
  assert block["conv1"]["kernel"].shape == (1, 1, 16, 8)
  assert block["conv2"]["kernel"].shape == (3, 3, 8 // 4, 8)  # grouped: in / groups
  assert block["conv3"]["kernel"].shape == (1, 1, 8, 64)
  assert variables["params"]["stage2_block1"]["conv2"]["kernel"].shape == (3, 3, 4, 16)
  out = jax.jit(model.apply)(variables, x)
  assert out.shape == (2, 3) and np.all(np.isfinite(out))
  # The grouped 3x3 conv mixes no channels across groups: zeroing group 0's input channels
  # zeroes the inputs of group 0's outputs only.
  kernel = block["conv2"]["kernel"]
  y = jax.lax.conv_general_dilated(jnp.ones((1, 4, 4, 8)).at[..., :2].set(0), kernel, (1, 1),
                                   "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                   feature_group_count=4)
  assert np.all(y[..., :2] == 0) and np.all(y[..., 2:] != 0)


def test_resnet_defaults_keep_the_plain_bottleneck():
  """groups=1, width_per_group=64 is ResNet-50: same parameter paths and shapes."""
  plain = jax.eval_shape(lambda: create_model("resnet50").init(
      jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3))))
  explicit = jax.eval_shape(lambda: create_model("resnet50", groups=1, width_per_group=64).init(
      jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3))))
  assert jax.tree.structure(plain) == jax.tree.structure(explicit)
  assert [x.shape for x in jax.tree.leaves(plain)] == [x.shape for x in jax.tree.leaves(explicit)]
  assert plain["params"]["stage1_block1"]["conv2"]["kernel"].shape == (3, 3, 64, 64)


@pytest.mark.parametrize("name,kwargs,match", [
    ("resnet18", dict(groups=32, width_per_group=4), "block='basic' supports only"),
    ("resnext50_32x4d", dict(width=8), "inner width"),
])
def test_bad_resnext_configs_raise_clear_errors(name, kwargs, match):
  model = create_model(name, num_classes=3, stem="cifar", **kwargs)
  with pytest.raises(ValueError, match=match):
    jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3))))
