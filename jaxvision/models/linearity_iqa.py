r"""LinearityIQA (Li, Jiang & Jiang, ACM MM 2020, "Norm-in-Norm Loss with Faster Convergence
and Better Performance for Image Quality Assessment"): the multi-level no-reference IQA model.

Spec ``norm-in-norm-iqa`` Sec. 3, following the authors' ``IQAModel`` (lidq92/LinearityIQA,
``IQAmodel.py``, ``pool="avg"``, ``P6 = P7 = 1``):

1. an ImageNet ResNet / ResNeXt backbone (default ResNeXt-101 32x8d) without its classifier;
2. features tapped after stage 3 (``"conv4"``: 1024 channels for bottleneck blocks, 256 for
   basic blocks) and stage 4 (``"conv5"``: 2048 / 512), each globally average-pooled;
3. per level an encoder ``Dense(1024), BN, Dense(256), BN, Dense(64), BN, ReLU`` -- the
   authors' code. The paper's text says every FC is followed by BN *and ReLU*; that is
   ``relu_after_each=True`` here (off by default, as in the code);
4. per level an auxiliary head ``Dense(64 -> 1)`` and a main head ``Dense(128 -> 1)`` on the
   concatenated level codes ``[f6, f7]``.

Output convention: ``model.apply(variables, images)`` returns float32 ``(batch, 1 + L)``
for ``L = len(levels)`` levels: column 0 is the main score ``s``, columns ``1..L`` the
auxiliary level heads in ``levels`` order (``conv4``, ``conv5``). (The authors' ``forward``
returns the list ``[regr6, regr7, regression]``, i.e. the main score last.) The paper's
loss is ``1 * l(col 0) + 0.1 * l(col 1) + 0.1 * l(col 2)``; at test time only column 0 is
used (after the least-squares mapping fitted on the training set).

The backbone is the submodule ``"backbone"``, so its parameters and BatchNorm statistics
live under the ``backbone/`` path prefix (the paper fine-tunes it at 0.1x the learning rate
of the new layers); :func:`jaxvision.models.convert.convert_torchvision_backbone` fills it
from a torchvision ImageNet checkpoint, and
:func:`jaxvision.models.convert.convert_linearity_iqa_checkpoint` loads a whole checkpoint
saved by the authors' code.

New layers use PyTorch's ``nn.Linear`` default initialisation (weight and bias
``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``), as in the authors' code. BatchNorm uses PyTorch's
defaults (``momentum=0.1``, i.e. Flax ``0.9``; ``eps=1e-5``). Unlike PyTorch's
``BatchNorm1d``, a training batch of one sample is not an error: it normalises to the BN
bias.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxvision.models.registry import MODELS, register_model
from jaxvision.models.resnet import ResNet

#: Level name -> the ResNet stage whose output it taps (torchvision's layer1..layer4).
LEVELS = {"conv2": "stage1", "conv3": "stage2", "conv4": "stage3", "conv5": "stage4"}


def torch_linear_init(fan_in: int):
  """PyTorch ``nn.Linear`` default init for a layer with ``fan_in`` inputs.

  Returns ``(kernel_init, bias_init)``: both ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``
  (``kaiming_uniform_(a=sqrt(5))`` for the weight).
  """
  bound = 1.0 / math.sqrt(fan_in)

  def bias_init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"), bias_init


class LevelEncoder(nn.Module):
  """One level's feature encoder: ``[Dense(w), BN] for w in widths``, then ReLU.

  Attributes:
    widths: output widths of the Dense layers (the authors': ``(1024, 256, 64)``).
    relu_after_each: a ReLU after every BN (the paper's text) instead of only after the last
      (the authors' code, the default).
    dtype: computation dtype; parameters and statistics stay float32.
    bn_momentum, bn_epsilon: BatchNorm running-average momentum (Flax convention) and eps.

  Submodules ``dense1, bn1, dense2, bn2, ...`` (the authors' ``dr6.0, dr6.1, dr6.2, ...``).
  """
  widths: Sequence[int] = (1024, 256, 64)
  relu_after_each: bool = False
  dtype: Any = jnp.float32
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    """Encodes pooled features ``x`` ``(batch, channels)`` to ``(batch, widths[-1])``."""
    for i, width in enumerate(self.widths):
      kernel_init, bias_init = torch_linear_init(x.shape[-1])
      x = nn.Dense(width, dtype=self.dtype, kernel_init=kernel_init, bias_init=bias_init,
                   name=f"dense{i + 1}")(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                       epsilon=self.bn_epsilon, dtype=self.dtype, name=f"bn{i + 1}")(x)
      if self.relu_after_each or i == len(self.widths) - 1:
        x = nn.relu(x)
    return x


class LinearityIQA(nn.Module):
  """The LinearityIQA multi-level quality regressor (module docstring: output convention).

  Attributes:
    backbone: a registered ResNet-family model name (``"resnet18"``, ``"resnet34"``,
      ``"resnet50"``, ``"resnext50_32x4d"``, ``"resnext101_32x8d"``); built headless.
    backbone_width: the backbone's first-stage width (``None``: the registered default, 64);
      small values make tiny test models.
    stem: the backbone stem, ``"imagenet"`` (the paper) or ``"cifar"``.
    backbone_kwargs: further :class:`~jaxvision.models.resnet.ResNet` fields for the
      backbone, e.g. ``{"stage_sizes": (1, 1, 1, 1), "groups": 4}``; ``None`` for none. They
      take precedence over ``backbone_width``, ``stem`` and the BN settings; ``num_classes``
      and ``dtype`` are set by LinearityIQA and may not be given.
    levels: the tapped levels, in output-column order, from ``"conv2"``..``"conv5"``
      (stage 1..4 outputs); the paper's ``("conv4", "conv5")``.
    encoder_widths: each level encoder's Dense widths; the last is the level code size
      (the main head sees ``len(levels) * encoder_widths[-1]`` features).
    relu_after_each: see :class:`LevelEncoder` (``False``: the authors' code).
    use_bn_end: the authors' ``--use_bn_end`` option: a BatchNorm(1) after each head
      (off by default, as in the paper).
    dtype: computation dtype (e.g. ``jnp.bfloat16``) of the backbone and the new layers;
      parameters, BatchNorm statistics and the output stay float32.
    bn_momentum, bn_epsilon: BatchNorm momentum (Flax convention: PyTorch's 0.1 is 0.9)
      and epsilon, for the backbone and the encoders.
  """
  backbone: str = "resnext101_32x8d"
  backbone_width: int | None = None
  stem: str = "imagenet"
  backbone_kwargs: Mapping[str, Any] | None = None
  levels: Sequence[str] = ("conv4", "conv5")
  encoder_widths: Sequence[int] = (1024, 256, 64)
  relu_after_each: bool = False
  use_bn_end: bool = False
  dtype: Any = jnp.float32
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5

  @nn.compact
  def __call__(self, images, *, train: bool = False):
    """Predicts quality scores.

    Args:
      images: ImageNet-normalised float images ``(batch, height, width, 3)``, NHWC (the
        paper: 498x664 KonIQ-10k images).
      train: batch statistics in every BatchNorm and ``batch_stats`` updates (apply with
        ``mutable=["batch_stats"]``); otherwise the running averages.

    Returns:
      float32 ``(batch, 1 + len(levels))``: column 0 the main score, then one auxiliary
      score per level in ``levels`` order.
    """
    if images.ndim != 4:
      raise ValueError(f"LinearityIQA `images` must be NHWC (batch, height, width, channels); "
                       f"found shape {images.shape}.")
    if not jnp.issubdtype(images.dtype, jnp.floating):
      raise ValueError(f"LinearityIQA `images` must be ImageNet-normalised floats; found dtype "
                       f"{images.dtype}.")
    levels = tuple(self.levels)
    if not levels or any(level not in LEVELS for level in levels):
      raise ValueError(f"LinearityIQA `levels` must be a non-empty sequence of {tuple(LEVELS)}; "
                       f"found {self.levels!r}.")
    if len(set(levels)) != len(levels):
      raise ValueError(f"LinearityIQA `levels` must not repeat a level; found {self.levels!r}.")
    widths = tuple(self.encoder_widths)
    if not widths or any(int(w) != w or w < 1 for w in widths):
      raise ValueError(f"LinearityIQA `encoder_widths` must be a non-empty sequence of positive "
                       f"ints; found {self.encoder_widths!r}.")

    kwargs = dict(self.backbone_kwargs or {})
    for field in ("num_classes", "dtype", "name"):
      if field in kwargs:
        raise ValueError(f"LinearityIQA `backbone_kwargs` must not set {field!r} (it is set by "
                         f"LinearityIQA); found backbone_kwargs={dict(kwargs)!r}.")
    kwargs.setdefault("stem", self.stem)
    kwargs.setdefault("bn_momentum", self.bn_momentum)
    kwargs.setdefault("bn_epsilon", self.bn_epsilon)
    if self.backbone_width is not None:
      kwargs.setdefault("width", self.backbone_width)
    factory = MODELS.get(self.backbone)
    try:
      backbone = factory(num_classes=None, dtype=self.dtype, name="backbone", **kwargs)
    except TypeError as e:
      raise TypeError(f"LinearityIQA backbone {self.backbone!r}: bad `backbone_kwargs` / field: "
                      f"{e}") from None
    if not isinstance(backbone, ResNet):
      raise ValueError(f"LinearityIQA `backbone` must name a ResNet-family model (ResNet / "
                       f"ResNeXt); found {self.backbone!r} -> {type(backbone).__name__}.")
    num_stages = len(backbone.stage_sizes)
    for level in levels:
      if int(LEVELS[level][-1]) > num_stages:
        raise ValueError(f"LinearityIQA level {level!r} taps {LEVELS[level]}, but the backbone "
                         f"has {num_stages} stages (stage_sizes={tuple(backbone.stage_sizes)}).")

    _, features = backbone(images, train=train, return_features=True)
    codes, aux = [], []
    for level in levels:
      # Global average pooling (SPSP with P=1, "avg"), accumulated in float32.
      pooled = jnp.mean(features[LEVELS[level]].astype(jnp.float32), axis=(1, 2))
      code = LevelEncoder(widths, relu_after_each=self.relu_after_each, dtype=self.dtype,
                          bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon,
                          name=f"encoder_{level}")(pooled.astype(self.dtype), train=train)
      codes.append(code)
      aux.append(self._head(code, f"aux_head_{level}", train))
    main = self._head(jnp.concatenate(codes, axis=-1), "head", train)
    return jnp.concatenate([main] + aux, axis=-1).astype(jnp.float32)

  def _head(self, x, name: str, train: bool):
    """``Dense(1)`` (plus ``BatchNorm`` named ``name + "_bn"`` with ``use_bn_end``)."""
    kernel_init, bias_init = torch_linear_init(x.shape[-1])
    y = nn.Dense(1, dtype=self.dtype, kernel_init=kernel_init, bias_init=bias_init,
                 name=name)(x)
    if self.use_bn_end:
      y = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                       epsilon=self.bn_epsilon, dtype=self.dtype, name=f"{name}_bn")(y)
    return y


@register_model("linearity_iqa")
def linearity_iqa(**kwargs) -> LinearityIQA:
  """LinearityIQA (Norm-in-Norm, ACM MM 2020): ResNeXt-101 32x8d backbone by default,
  conv4 + conv5 levels; 90,453,443 parameters (86,742,336 backbone + 3,711,107 new)."""
  return LinearityIQA(**kwargs)
