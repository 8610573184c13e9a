"""ResNet-18/34/50 (He et al., 2016, "Deep Residual Learning for Image Recognition") and
ResNeXt-50 32x4d / ResNeXt-101 32x8d (Xie et al., CVPR 2017, "Aggregated Residual
Transformations for Deep Neural Networks").

Linen, NHWC. Two stems:

* ``"imagenet"``: 7x7/2 conv, BN, ReLU, 3x3/2 max-pool (torchvision layout).
* ``"cifar"``: 3x3/1 conv, BN, ReLU, no pooling (the CIFAR variant used by
  most small-image papers), so a 32x32 input reaches stage 4 at 4x4.

Bottleneck blocks put the stride on the 3x3 convolution ("ResNet v1.5", as in
torchvision and the Flax ImageNet example). Convolution kernels use He-normal
initialisation with fan-out (torchvision's ``kaiming_normal_(mode="fan_out")``).

ResNeXt (torchvision semantics): a bottleneck block of ``planes`` channels has the inner
width ``int(planes * width_per_group / 64) * groups`` and a grouped 3x3 convolution
(``groups`` = the cardinality); ``groups=1, width_per_group=64`` is the plain ResNet. The
parameter tree is laid out like torchvision's, so :mod:`jaxvision.models.convert` can load
torchvision ``state_dict`` files.

Later methods need multi-level features: ``return_features=True`` also returns
a dict of the stem output, every stage's output and the pooled vector.

The SVD meta-layer variants of Song, Sebe & Wang (ECCV 2022) swap single layers:
``stem_norm="decorrelated"`` puts ZCA whitening (:class:`jaxvision.nn.DecorrelatedBatchNorm`)
after conv1; ``stem_conv="spectral_norm"`` / ``"orthogonal"`` make conv1 (their "Pre-SVD
layer") spectrally normalised or a skew-orthogonal convolution (SN / OW);
``pooling="covariance"`` replaces average pooling by a 1x1 reduction conv + BN + ReLU
(the GCP Pre-SVD layer, ``gcp_reduce_conv``) and iSQRT-COV covariance pooling.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxvision import nn as jv_nn
from jaxvision.models.registry import register_model

STEMS = ("imagenet", "cifar")
STEM_CONVS = ("conv", "spectral_norm", "orthogonal")
REDUCE_CONVS = ("conv", "spectral_norm", "orthogonal")
STEM_NORMS = ("batchnorm", "decorrelated")
POOLINGS = ("average", "covariance")

conv_kernel_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


class BasicBlock(nn.Module):
  """Two 3x3 convolutions with an identity or 1x1-projection shortcut (expansion 1).

  ``groups`` and ``width_per_group`` exist for a uniform block interface; like torchvision,
  basic blocks support only ``groups=1, width_per_group=64``.
  """
  features: int
  strides: int = 1
  conv: Any = nn.Conv
  norm: Any = nn.BatchNorm
  zero_init_residual: bool = False
  groups: int = 1
  width_per_group: int = 64
  expansion = 1

  @nn.compact
  def __call__(self, x):
    if self.groups != 1 or self.width_per_group != 64:
      raise ValueError(f"ResNet block='basic' supports only `groups`=1 and `width_per_group`=64 "
                       f"(as in torchvision); found groups={self.groups}, "
                       f"width_per_group={self.width_per_group}. Use block='bottleneck' "
                       f"for ResNeXt.")
    residual = x
    y = self.conv(self.features, (3, 3), (self.strides, self.strides), padding=((1, 1), (1, 1)),
                  name="conv1")(x)
    y = nn.relu(self.norm(name="bn1")(y))
    y = self.conv(self.features, (3, 3), padding=((1, 1), (1, 1)), name="conv2")(y)
    y = self.norm(name="bn2", scale_init=_residual_scale_init(self.zero_init_residual))(y)
    if residual.shape != y.shape:
      residual = self.conv(self.features, (1, 1), (self.strides, self.strides), name="proj_conv")(x)
      residual = self.norm(name="proj_bn")(residual)
    return nn.relu(residual + y)


class BottleneckBlock(nn.Module):
  """1x1 reduce, 3x3 (strided, grouped), 1x1 expand (expansion 4), with a projection shortcut.

  ``features`` is torchvision's ``planes``: the block outputs ``4 * features`` channels and
  its inner width is ``int(features * width_per_group / 64) * groups`` (the ResNeXt
  ``C x d`` of Xie et al., e.g. 32 x 4d); the 3x3 convolution has ``groups`` groups
  (``feature_group_count``). The defaults give the ResNet bottleneck.
  """
  features: int
  strides: int = 1
  conv: Any = nn.Conv
  norm: Any = nn.BatchNorm
  zero_init_residual: bool = False
  groups: int = 1
  width_per_group: int = 64
  expansion = 4

  @nn.compact
  def __call__(self, x):
    if self.groups < 1 or self.width_per_group < 1:
      raise ValueError(f"ResNet `groups` and `width_per_group` must be >= 1; found "
                       f"groups={self.groups}, width_per_group={self.width_per_group}.")
    inner = int(self.features * self.width_per_group / 64) * self.groups
    if inner == 0:
      raise ValueError(f"ResNet bottleneck inner width int(planes * width_per_group / 64) * "
                       f"groups is 0 for planes={self.features}, width_per_group="
                       f"{self.width_per_group}, groups={self.groups}: increase `width` or "
                       f"`width_per_group`.")
    residual = x
    y = self.conv(inner, (1, 1), name="conv1")(x)
    y = nn.relu(self.norm(name="bn1")(y))
    y = self.conv(inner, (3, 3), (self.strides, self.strides), padding=((1, 1), (1, 1)),
                  feature_group_count=self.groups, name="conv2")(y)
    y = nn.relu(self.norm(name="bn2")(y))
    y = self.conv(self.features * 4, (1, 1), name="conv3")(y)
    y = self.norm(name="bn3", scale_init=_residual_scale_init(self.zero_init_residual))(y)
    if residual.shape != y.shape:
      residual = self.conv(self.features * 4, (1, 1), (self.strides, self.strides),
                           name="proj_conv")(x)
      residual = self.norm(name="proj_bn")(residual)
    return nn.relu(residual + y)


def _residual_scale_init(zero: bool):
  return nn.initializers.zeros if zero else nn.initializers.ones


BLOCKS = {"basic": BasicBlock, "bottleneck": BottleneckBlock}


class ResNet(nn.Module):
  """A ResNet classifier / feature extractor.

  Attributes:
    stage_sizes: blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
    block: ``"basic"`` or ``"bottleneck"``.
    num_classes: size of the linear head; ``None`` or ``0`` drops the head and
      the model returns the pooled features ``(batch, width * 8 * expansion)``.
    width: channels of the first stage (64 in the paper); stage ``i`` has
      ``width * 2**i`` (times the block expansion).
    stem: ``"imagenet"`` or ``"cifar"`` (see module docstring).
    groups: ResNeXt cardinality of the bottleneck 3x3 convolutions (1: ResNet).
    width_per_group: ResNeXt channels per group at ``width=64`` (64: ResNet); a stage
      of ``planes`` channels has the inner width ``int(planes * width_per_group / 64) *
      groups`` (torchvision semantics). Basic blocks need ``groups=1, width_per_group=64``.
    dtype: computation dtype (e.g. ``jnp.bfloat16``); parameters, BatchNorm
      statistics and logits stay float32.
    bn_momentum, bn_epsilon: BatchNorm running-average momentum and epsilon
      (PyTorch's ``momentum=0.1`` is Flax's ``0.9``).
    zero_init_residual: initialise the last BN scale of each block to zero.
    stem_conv: conv1 as ``"conv"``, ``"spectral_norm"`` (eq. 11) or ``"orthogonal"``
      (SOC, eq. 13; CIFAR stem only: it needs stride 1).
    stem_norm: the BN after conv1: ``"batchnorm"`` or ``"decorrelated"`` (ZCA, eqs. 2-4)
      with ``whitening_method`` / ``whitening_eps`` / ``whitening_groups`` /
      ``whitening_num_iters``.
    pooling: ``"average"`` or ``"covariance"`` (GCP) with ``pooling_reduce_dim`` (1x1
      reduction channels, ``None`` for none), ``pooling_reduce_conv`` (``"conv"``,
      ``"spectral_norm"`` or ``"orthogonal"``: the GCP Pre-SVD layer under SN / OW; OW keeps
      the first rows of a square SOC 1x1 conv), ``pooling_method``,
      ``pooling_num_iters``, ``pooling_eps``.
  """
  stage_sizes: Sequence[int]
  block: str = "basic"
  num_classes: int | None = 1000
  width: int = 64
  stem: str = "imagenet"
  groups: int = 1
  width_per_group: int = 64
  dtype: Any = jnp.float32
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  zero_init_residual: bool = False
  stem_conv: str = "conv"
  stem_norm: str = "batchnorm"
  whitening_method: str = "eigh"
  whitening_eps: float = 1e-2
  whitening_groups: int = 1
  whitening_num_iters: int = 5
  pooling: str = "average"
  pooling_reduce_dim: int | None = 256
  pooling_reduce_conv: str = "conv"
  pooling_method: str = "newton_schulz"
  pooling_num_iters: int = 5
  pooling_eps: float = 0.0

  @nn.compact
  def __call__(self, x, *, train: bool = False, return_features: bool = False):
    """Applies the network.

    Args:
      x: images, float ``(batch, height, width, channels)``, NHWC.
      train: use batch statistics and update ``batch_stats`` (apply with
        ``mutable=["batch_stats"]``); otherwise use the running averages.
      return_features: also return ``{"stem", "stage1".."stage4", "pooled"}``.

    Returns:
      ``logits`` float32 ``(batch, num_classes)`` (or pooled features when there
      is no head), and the feature dict if ``return_features``.
    """
    if x.ndim != 4:
      raise ValueError(f"ResNet input `x` must be NHWC (batch, height, width, channels); "
                       f"found shape {x.shape}.")
    if self.stem not in STEMS:
      raise ValueError(f"ResNet `stem` must be one of {STEMS}; found {self.stem!r}.")
    if self.block not in BLOCKS:
      raise ValueError(f"ResNet `block` must be one of {tuple(BLOCKS)}; found {self.block!r}.")
    conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype,
                             kernel_init=conv_kernel_init)
    norm = functools.partial(nn.BatchNorm, use_running_average=not train,
                             momentum=self.bn_momentum, epsilon=self.bn_epsilon, dtype=self.dtype)
    for name, value, allowed in (("stem_conv", self.stem_conv, STEM_CONVS),
                                 ("stem_norm", self.stem_norm, STEM_NORMS),
                                 ("pooling", self.pooling, POOLINGS)):
      if value not in allowed:
        raise ValueError(f"ResNet `{name}` must be one of {allowed}; found {value!r}.")
    features = {}
    x = x.astype(self.dtype)
    if self.stem == "imagenet":
      x = self._stem_conv(x, 7, 2, train)
      x = nn.relu(self._stem_norm(x, norm, train))
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    else:
      x = self._stem_conv(x, 3, 1, train)
      x = nn.relu(self._stem_norm(x, norm, train))
    features["stem"] = x
    block_cls = BLOCKS[self.block]
    for i, num_blocks in enumerate(self.stage_sizes):
      for j in range(num_blocks):
        strides = 2 if i > 0 and j == 0 else 1
        x = block_cls(self.width * 2**i, strides=strides, conv=conv, norm=norm,
                      zero_init_residual=self.zero_init_residual, groups=self.groups,
                      width_per_group=self.width_per_group,
                      name=f"stage{i + 1}_block{j + 1}")(x)
      features[f"stage{i + 1}"] = x
    if self.pooling == "average":
      x = jnp.mean(x, axis=(1, 2))
    else:
      if self.pooling_reduce_dim:
        if self.pooling_reduce_conv == "conv":
          x = conv(self.pooling_reduce_dim, (1, 1), name="gcp_reduce_conv")(x)
        elif self.pooling_reduce_conv == "spectral_norm":
          x = jv_nn.SpectralNormConv(self.pooling_reduce_dim, (1, 1), use_bias=False,
                                     dtype=self.dtype, name="gcp_reduce_conv")(x, train)
        elif self.pooling_reduce_conv == "orthogonal":
          x = self._orthogonal_reduction(x, train)
        else:
          raise ValueError(f"ResNet `pooling_reduce_conv` must be one of {REDUCE_CONVS}; "
                           f"found {self.pooling_reduce_conv!r}.")
        x = nn.relu(norm(name="gcp_reduce_bn")(x))
      x = jv_nn.CovariancePooling(method=self.pooling_method, num_iters=self.pooling_num_iters,
                                  eps=self.pooling_eps, name="gcp")(x)
    features["pooled"] = x
    if self.num_classes:
      x = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)
    x = x.astype(jnp.float32)
    return (x, features) if return_features else x


  def _stem_conv(self, x, size: int, stride: int, train: bool):
    """conv1 (the "Pre-SVD layer" when the stem norm whitens): plain, SN or SOC."""
    pad = ((size // 2, size // 2),) * 2
    if self.stem_conv == "conv":
      return nn.Conv(self.width, (size, size), (stride, stride), padding=pad, use_bias=False,
                     dtype=self.dtype, kernel_init=conv_kernel_init, name="stem_conv")(x)
    if self.stem_conv == "spectral_norm":
      return jv_nn.SpectralNormConv(self.width, (size, size), stride, padding=pad,
                                    use_bias=False, dtype=self.dtype, name="stem_conv")(x, train)
    if stride != 1:
      raise ValueError(f"ResNet stem_conv='orthogonal' (SOC) needs stride 1, i.e. "
                       f"stem='cifar'; found stem={self.stem!r}.")
    return jv_nn.SOCConv(self.width, size, use_bias=False, dtype=self.dtype,
                         name="stem_conv")(x, train)

  def _orthogonal_reduction(self, x, train: bool):
    """OW for the GCP Pre-SVD layer: a row-orthonormal ``C -> pooling_reduce_dim`` 1x1 conv.

    SOC's rule for fewer output than input channels (Singla & Feizi 2021, Sec. 5): the
    square ``C x C`` skew-orthogonal 1x1 convolution ``exp(L)`` (eq. 13), of which the first
    ``pooling_reduce_dim`` output channels are kept. The kept rows of an orthogonal matrix
    are orthonormal, so the reduction is a partial isometry ``W W^T = I`` (up to the Taylor
    truncation of :class:`jaxvision.nn.SOCConv`). The paper's OW row of Table 5 does not say
    how it handled the non-square layer; this is our resolution (docs/methods.md).
    """
    channels = x.shape[-1]
    if self.pooling_reduce_dim > channels:
      raise ValueError(f"ResNet pooling_reduce_conv='orthogonal' keeps rows of a square "
                       f"{channels}x{channels} orthogonal map, so `pooling_reduce_dim` must be "
                       f"<= {channels}; found {self.pooling_reduce_dim}.")
    x = jv_nn.SOCConv(channels, 1, use_bias=False, dtype=self.dtype,
                      name="gcp_reduce_conv")(x, train)
    return x[..., :self.pooling_reduce_dim]

  def _stem_norm(self, x, norm, train: bool):
    if self.stem_norm == "batchnorm":
      return norm(name="stem_bn")(x)
    return jv_nn.DecorrelatedBatchNorm(
        groups=self.whitening_groups, eps=self.whitening_eps, method=self.whitening_method,
        num_iters=self.whitening_num_iters, momentum=self.bn_momentum, dtype=self.dtype,
        name="stem_bn")(x, use_running_average=not train)


ResNet18 = functools.partial(ResNet, stage_sizes=(2, 2, 2, 2), block="basic")
ResNet34 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block="basic")
ResNet50 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block="bottleneck")
ResNeXt50_32x4d = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block="bottleneck",
                                    groups=32, width_per_group=4)
ResNeXt101_32x8d = functools.partial(ResNet, stage_sizes=(3, 4, 23, 3), block="bottleneck",
                                     groups=32, width_per_group=8)


@register_model("resnet18")
def resnet18(**kwargs) -> ResNet:
  """ResNet-18: basic blocks (2, 2, 2, 2); 11.7M parameters with the ImageNet head."""
  return ResNet18(**kwargs)


@register_model("resnet34")
def resnet34(**kwargs) -> ResNet:
  """ResNet-34: basic blocks (3, 4, 6, 3); 21.8M parameters with the ImageNet head."""
  return ResNet34(**kwargs)


@register_model("resnet50")
def resnet50(**kwargs) -> ResNet:
  """ResNet-50: bottleneck blocks (3, 4, 6, 3); 25.6M parameters with the ImageNet head."""
  return ResNet50(**kwargs)


@register_model("resnext50_32x4d")
def resnext50_32x4d(**kwargs) -> ResNet:
  """ResNeXt-50 32x4d: bottleneck blocks (3, 4, 6, 3), cardinality 32, 4 channels per group;
  25,028,904 parameters with the ImageNet head (as torchvision)."""
  return ResNeXt50_32x4d(**kwargs)


@register_model("resnext101_32x8d")
def resnext101_32x8d(**kwargs) -> ResNet:
  """ResNeXt-101 32x8d: bottleneck blocks (3, 4, 23, 3), cardinality 32, 8 channels per
  group; 88,791,336 parameters with the ImageNet head (as torchvision)."""
  return ResNeXt101_32x8d(**kwargs)
