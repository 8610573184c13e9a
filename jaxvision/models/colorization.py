r"""The colorization CNN of Zhang, Isola & Efros (ECCV 2016, "Colorful Image Colorization").

As released (``richzhang/colorization``, Caffe ``colorization_deploy_v2`` and its PyTorch
port ``eccv16``) and as used at half width by "Towards More Vibrant Image Colorization"
(Mukhopadhyay et al.; spec ``vibrant-colorization`` Sec. 3, paper Fig. 1; the authors'
``KolinGuo/Colorization`` ``eccv16_half``). Linen, NHWC, no pooling:

* conv1: conv1_1, conv1_2 (stride 2) -- 64 channels, H/2;
* conv2: conv2_1, conv2_2 (stride 2) -- 128, H/4;
* conv3: conv3_1..conv3_3 (conv3_3 stride 2) -- 256, H/8;
* conv4: conv4_1..conv4_3 -- 512, H/8;
* conv5, conv6: conv5_1..conv6_3, dilation 2, padding 2 -- 512, H/8;
* conv7: conv7_1..conv7_3 -- 512, H/8;
* conv8: conv8_1 (4x4 stride-2 transposed conv, PyTorch padding 1), conv8_2, conv8_3 --
  256, H/4.

Every layer is 3x3 (padding 1, or 2 when dilated) and followed by a ReLU, unless noted.
``bn1..bn7``: a BatchNorm after the last ReLU of blocks 1-7 (none after block 8), as the
release. Channels scale by ``width_multiplier`` (``0.5``: the paper's 32/64/128/256 net).
Every convolution has a bias. Then ``conv8_313``: a 1x1 convolution to ``num_bins`` (313)
ab-bin logits at ``H/4 x W/4``, and one of two heads:

* ``head="classification"``: the logits (Zhang's multinomial classification, trained with
  a rebalanced cross-entropy against soft-encoded targets at 1/4 resolution).
* ``head="regression"`` (default): ab in Lab units. ``regression_output``:

  - ``"softmax"`` (the release's and the paper's): ``softmax`` over the bins, then
    ``class8_ab`` (the release's ``model_out``), a 1x1 convolution ``num_bins -> 2``
    **without bias**, times ``ab_norm = 110``. In Zhang's released model its kernel holds
    the bin centres (an expectation over bins); trained from scratch (the paper, with the
    L2 + chroma loss) it is an ordinary learnable layer.
  - ``"linear"``: a biased 1x1 convolution ``conv8_ab`` to 2 channels on the conv8
    features (no 313-bin layer), times ``ab_norm``.
  - ``"tanh"``: the same, squashed by ``tanh`` then times ``ab_norm`` (the ``siggraph17``
    convention), so ``|a|, |b| < 110``.

Resolution: the output is at ``H/4 x W/4`` (Zhang's), or, with ``upsample=True``, bilinearly
upsampled x4 to ``H x W`` (PyTorch's ``nn.Upsample(scale_factor=4, mode="bilinear")``,
``align_corners=False``; the release's ``eccv16`` and the paper, whose loss is computed at
128x128 on it). ``H`` and ``W`` must be multiples of 8.

Input: the Lab lightness ``L`` in ``[0, 100]``, ``(batch, H, W, 1)``, normalised inside as
``(L - l_cent) / l_norm = (L - 50) / 100`` (the release's ``normalize_l``); pass
``normalize_input=False`` to feed an already normalised channel.

Parameters (BatchNorm scale and bias included; BN statistics excluded), for
``num_bins=313``: **8,083,147** at ``width_multiplier=0.5`` (the paper's eccv16_half) and
**32,236,011** at full width with the softmax regression head; the classification head has
no ``class8_ab`` (626 fewer). They come from the release's choices: biased convs
everywhere, BN after blocks 1-7 only, the 313-bin layer biased and ``class8_ab`` unbiased.

Initialisation: PyTorch's defaults (the paper trains from scratch in PyTorch): kernels and
biases ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, with PyTorch's ``fan_in`` of a transposed
conv (``out_channels * 4 * 4``). BatchNorm as PyTorch (``momentum=0.1``, Flax ``0.9``;
``eps=1e-5``). Weight conversion from PyTorch: ``modelN.{0,2,4}`` are ``convN_{1,2,3}``,
the block's BN is ``bnN``, ``model8.6`` is ``conv8_313``, ``model_out`` is ``class8_ab``;
conv weights go OIHW -> HWIO; the ``conv8_1`` weight (IOHW in PyTorch) goes IOHW -> HWIO
*and is flipped spatially* (``[::-1, ::-1]``), because Flax's
``ConvTranspose(transpose_kernel=False)`` correlates the stride-dilated input while PyTorch
scatters (a test checks this against a numpy transcription of PyTorch's formula).

(The authors' ``eccv16.py`` derives the widths from the image size, ``hw_resize / 4 .. x2``,
so their 128x128 run is the half-width net; here width and resolution are independent. The
``"linear"`` / ``"tanh"`` regression outputs have 32,155,458 parameters at full width.)
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxvision.models.registry import register_model

HEADS = ("regression", "classification")
REGRESSION_OUTPUTS = ("softmax", "linear", "tanh")

#: Full-width channels of blocks conv1..conv8 (Zhang et al. 2016, Fig. 2).
CHANNELS = (64, 128, 256, 512, 512, 512, 512, 256)
#: Per block: (number of 3x3 convs, stride of the last conv, dilation).
_BLOCKS = ((2, 2, 1), (2, 2, 1), (3, 2, 1), (3, 1, 1), (3, 1, 2), (3, 1, 2), (3, 1, 1))


def _torch_uniform(fan_in: int):
  """PyTorch's conv default: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for kernel and bias."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


class ZhangColorization(nn.Module):
  """Zhang et al. (2016) colorization network (module docstring: layers, heads, counts).

  Attributes:
    width_multiplier: channel scale, ``> 0`` (``1.0``: 64..512; ``0.5``: the paper's
      half-width net); each block has ``max(1, round(c * width_multiplier))`` channels.
    head: ``"regression"`` (ab, Lab units) or ``"classification"`` (``num_bins`` logits).
    regression_output: ``"softmax"`` (softmax -> unbiased 1x1 -> x ``ab_norm``; the release
      and the paper), ``"linear"`` or ``"tanh"`` (a biased 1x1 conv to 2, then x ``ab_norm``,
      ``tanh`` first for ``"tanh"``).
    num_bins: the number of quantised ab bins (313 in Zhang's release).
    upsample: bilinear x4 upsampling of the output to the input resolution.
    normalize_input: apply ``(L - l_cent) / l_norm`` to the input.
    l_cent, l_norm, ab_norm: the release's ``base_color`` constants (50, 100, 110).
    dtype: computation dtype (e.g. ``jnp.bfloat16``); parameters, BatchNorm statistics,
      the softmax / 313 -> 2 head and the output stay float32.
    bn_momentum, bn_epsilon: BatchNorm momentum (Flax convention: PyTorch's 0.1 is 0.9)
      and epsilon.
  """
  width_multiplier: float = 1.0
  head: str = "regression"
  regression_output: str = "softmax"
  num_bins: int = 313
  upsample: bool = False
  normalize_input: bool = True
  l_cent: float = 50.0
  l_norm: float = 100.0
  ab_norm: float = 110.0
  dtype: Any = jnp.float32
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5

  def channels(self) -> tuple[int, ...]:
    """The channels of blocks conv1..conv8 at this ``width_multiplier``."""
    return tuple(max(1, int(round(c * self.width_multiplier))) for c in CHANNELS)

  def _check(self, l):
    name = type(self).__name__
    if self.head not in HEADS:
      raise ValueError(f"{name} `head` must be one of {HEADS}; found {self.head!r}.")
    if self.regression_output not in REGRESSION_OUTPUTS:
      raise ValueError(f"{name} `regression_output` must be one of {REGRESSION_OUTPUTS}; found "
                       f"{self.regression_output!r}.")
    if not self.width_multiplier > 0:
      raise ValueError(f"{name} `width_multiplier` must be > 0; found {self.width_multiplier}.")
    if int(self.num_bins) != self.num_bins or self.num_bins < 1:
      raise ValueError(f"{name} `num_bins` must be a positive int; found {self.num_bins!r}.")
    if l.ndim != 4 or l.shape[-1] != 1:
      raise ValueError(f"{name} input must be the L channel, NHWC (batch, height, width, 1); "
                       f"found shape {l.shape}.")
    if l.shape[1] % 8 or l.shape[2] % 8 or l.shape[1] == 0 or l.shape[2] == 0:
      raise ValueError(f"{name} input height and width must be positive multiples of 8 (three "
                       f"stride-2 convs, one x2 transposed conv); found {l.shape[1]}x"
                       f"{l.shape[2]} (shape {l.shape}).")
    if not jnp.issubdtype(l.dtype, jnp.floating):
      raise ValueError(f"{name} input must be float L values in [0, 100]; found dtype "
                       f"{l.dtype}.")

  def _conv(self, x, features: int, name: str, *, kernel: int = 3, strides: int = 1,
            dilation: int = 1, dtype=None):
    fan_in = x.shape[-1] * kernel * kernel
    pad = dilation * (kernel - 1) // 2
    return nn.Conv(features, (kernel, kernel), (strides, strides),
                   padding=((pad, pad), (pad, pad)), kernel_dilation=(dilation, dilation),
                   dtype=self.dtype if dtype is None else dtype,
                   kernel_init=_torch_uniform(fan_in), bias_init=_torch_uniform(fan_in),
                   name=name)(x)

  @nn.compact
  def __call__(self, l, *, train: bool = False):
    """Colorizes the lightness ``l``.

    Args:
      l: ``(batch, H, W, 1)`` float Lab lightness in ``[0, 100]`` (or normalised, with
        ``normalize_input=False``); ``H``, ``W`` multiples of 8 (the paper: 128x128).
      train: batch statistics in every BatchNorm and ``batch_stats`` updates (apply with
        ``mutable=["batch_stats"]``); otherwise the running averages.

    Returns:
      float32 ``(batch, H/4, W/4, C)``, or ``(batch, H, W, C)`` with ``upsample``: ``C = 2``
      ab values in Lab units (``head="regression"``) or ``C = num_bins`` logits
      (``head="classification"``).
    """
    self._check(l)
    batch, height, width, _ = l.shape
    ch = self.channels()
    x = l.astype(jnp.float32)
    if self.normalize_input:
      x = (x - self.l_cent) / self.l_norm
    x = x.astype(self.dtype)

    for b, (num_convs, last_stride, dilation) in enumerate(_BLOCKS):
      for i in range(num_convs):
        strides = last_stride if i == num_convs - 1 else 1
        x = nn.relu(self._conv(x, ch[b], f"conv{b + 1}_{i + 1}", strides=strides,
                               dilation=dilation))
      x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                       epsilon=self.bn_epsilon, dtype=self.dtype, name=f"bn{b + 1}")(x)

    # conv8_1: PyTorch ConvTranspose2d(k=4, s=2, p=1) == Flax padding k - 1 - p = 2 (x2).
    fan_in = ch[7] * 4 * 4  # PyTorch's fan_in of a transposed conv weight (in, out, k, k).
    x = nn.ConvTranspose(ch[7], (4, 4), (2, 2), padding=((2, 2), (2, 2)), dtype=self.dtype,
                         kernel_init=_torch_uniform(fan_in), bias_init=_torch_uniform(fan_in),
                         name="conv8_1")(x)
    x = nn.relu(x)
    for i in (2, 3):
      x = nn.relu(self._conv(x, ch[7], f"conv8_{i}"))

    if self.head == "classification" or self.regression_output == "softmax":
      logits = self._conv(x, self.num_bins, "conv8_313", kernel=1).astype(jnp.float32)
      if self.head == "classification":
        out = logits
      else:
        probs = jax.nn.softmax(logits, axis=-1)
        out = nn.Conv(2, (1, 1), use_bias=False, dtype=jnp.float32,
                      kernel_init=_torch_uniform(self.num_bins), name="class8_ab")(probs)
        out = out * self.ab_norm
    else:
      out = self._conv(x, 2, "conv8_ab", kernel=1).astype(jnp.float32)
      if self.regression_output == "tanh":
        out = jnp.tanh(out)
      out = out * self.ab_norm

    if self.upsample:
      # Half-pixel bilinear upsampling == PyTorch align_corners=False (edges clamp).
      out = jax.image.resize(out, (batch, height, width, out.shape[-1]), method="bilinear",
                             antialias=False)
    return out.astype(jnp.float32)


@register_model("zhang_colorization")
def zhang_colorization(**kwargs) -> ZhangColorization:
  """Zhang et al. (ECCV 2016) colorization net, full width, softmax regression head at 1/4
  resolution; 32,236,011 parameters (32,235,385 with ``head="classification"``)."""
  return ZhangColorization(**kwargs)


@register_model("eccv16")
def eccv16(**kwargs) -> ZhangColorization:
  """The release's PyTorch ``eccv16`` forward: full width, softmax regression head, x4
  bilinear upsampling to the input size; 32,236,011 parameters."""
  kwargs.setdefault("upsample", True)
  return ZhangColorization(**kwargs)


@register_model("eccv16_half")
def eccv16_half(**kwargs) -> ZhangColorization:
  """The paper's network (KolinGuo/Colorization ``eccv16_half``): half width (32/64/128/256),
  softmax regression head, upsampled to the input size; 8,083,147 parameters."""
  kwargs.setdefault("width_multiplier", 0.5)
  kwargs.setdefault("upsample", True)
  return ZhangColorization(**kwargs)
