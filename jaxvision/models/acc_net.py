r"""The ACC spectral transformer ("Improving the Lipschitz Stability in Spectral Transformer
through Nearest Neighbour Coupling", anonymous, under review): RGB ``(B, H, W, 3)`` in [0, 1]
-> 31-band cube ``(B, H, W, 31)``.

**A reconstruction.** The paper has no code and its block diagram (Fig. 1) is missing from
the text; only the prose of Sec. 2 survives (spec ``spectral-transformer-ising``, "MS-SSF and
SSTA"). Every choice below that the prose does not state is a field, marked (R).

Whole network (Fig. 1A; Linen, NHWC):

* reflect-pad the bottom / right to a multiple of ``2^levels`` (R, as MST++), crop back;
* ``embedding``: 3x3 conv ``3 -> width`` (C = 31);
* ``num_ssf`` (S) x [``ssf_{s}``: an MS-SSF block, ``pointwise_{s}``: a 1x1 conv
  ``width -> width``] ("followed by a pointwise convolution");
* a residual ("a residual connection is used to avoid the vanishing gradient"): (R)
  ``residual="output"`` is MST++'s ``conv_out(f) + embedding(x)``; ``"features"`` is
  ``conv_out(f + embedding(x))``; ``None`` none;
* ``conv_out``: 3x3 conv ``width -> 31``.

MS-SSF-C (Fig. 1B; "U-Net like", following MST with ``levels = 2``), at widths
``C_l = C 2^l``:

* ``transform``: the "separable convolution layer for feature transformation": depthwise 3x3
  + pointwise 1x1 ``C -> C`` (R; ``separable=False``: a full 3x3 as MST's embedding);
* encoder level ``l``: ``num_blocks[l]`` transformer blocks (C_l), keep the skip,
  ``down``: 4x4 stride-2 conv ``C_l -> 2 C_l`` (padding 1, as MST);
* bottleneck: ``num_blocks[-1]`` transformer blocks (``2^levels C``);
* decoder level ``l``: ``up``: ConvTranspose 2x2 stride 2 ``2 C_l -> C_l`` (biased, as MST),
  concatenate the skip, ``fuse``: separable depthwise 3x3 + pointwise ``2 C_l -> C_l`` (R;
  MST: a 1x1), ``num_blocks[l]`` transformer blocks;
* ``mapping``: separable ``C -> C`` (R; MST: a full 3x3), plus the block input
  (``ssf_residual``, MST's ``mapping(fea) + x``, R).

Transformer block (Fig. 1C, :class:`jaxvision.nn.SpectralTransformerBlock`):
``x += SSTA(BN(x)); x += FFN(BN(x))``, FFN = MST's (1x1 ``C -> 4C``, GELU, depthwise 3x3,
GELU, 1x1). SSTA (:class:`jaxvision.nn.SSTA`) = ``proj(ACC(x) + gamma NL(x))``, ``gamma``
zero-initialised; ACC = :class:`jaxvision.nn.AdjacentChannelCoupler` (eq. 4; ``acc_*``
fields), NL = pooled non-local attention (``nl_*`` fields; or SAN's second-order channel
attention with ``nonlocal_type="second_order"``). ``coupler="msa"`` swaps the ACC for MST's
spectral-wise MSA (:class:`jaxvision.nn.SpectralWiseMSA`, ``dim_head`` = ``width`` as MST):
the "MS-MSA twin", identical otherwise.

Sizes (the paper: 1.18 M parameters; S, widths and depth unstated). ``acc_net``: C = 31,
S = 2 MS-SSF blocks of two levels with ``num_blocks=(1, 2, 1)`` (two blocks at the middle
level, R), **1,231,948** parameters (+4.4 %; ``(1, 1, 1)`` gives 1,037,140, ``(2, 1, 1)``
1,092,008). Its MS-MSA twin ``acc_net_msa`` (the same network, the coupler swapped) has
**1,457,780**: an MSA has ``4 C^2 + 19 C + heads`` parameters against the ACC's ``60 C``.
The CPU toy ``acc_net_small`` (C = 9, S = 1, ``(1, 1, 1)``, ``residual="features"``) has
**53,129**; ``acc_net_msa_small``, its MS-MSA twin of equal size, swaps the coupler and
narrows the FFN to ``ffn_mult=3`` to pay for the MSA: **52,851** (the same-architecture
twin ``create_model("acc_net_small", coupler="msa")`` has 57,873). Counts are pinned in
``tests/models/test_acc_net.py``; BatchNorm statistics excluded.

Conv biases: ``conv_bias=False`` on the embedding, pointwise, MS-SSF and FFN convs (R, MST's
choice); biased: the transposed convs, SSTA's ``proj``, the non-local 1x1 convs and the
MSA's ``proj`` (as their sources). Initialisation: PyTorch's defaults (kernels and biases
``U(+-1/sqrt(fan_in))``; the ACC's per-channel kernels ``U(-1/3, 1/3)``), the MSA's Linears
MST's ``trunc_normal(0.02)``, ``gamma`` 0, BatchNorm (1, 0) with PyTorch's momentum 0.1
(Flax 0.9, R: the paper gives none) and eps 1e-5.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxvision.models.mst_plus_plus import conv_transpose_2x2, check_rgb, reflect_pad_to
from jaxvision.models.registry import register_model
from jaxvision.nn.spectral_attention import (COUPLERS, NONLOCAL_TYPES, SSTA,
                                             SpectralTransformerBlock, conv2d)

__all__ = ["ACCNet", "MSSSF", "RESIDUALS"]

RESIDUALS = ("output", "features", None)


def _transform(x, features: int, name: str, *, separable: bool, use_bias: bool, dtype,
               kernel: int = 3):
  """Separable (depthwise ``kernel`` + pointwise 1x1) or full ``kernel`` conv to ``features``."""
  if separable:
    c = x.shape[-1]
    y = conv2d(x, c, kernel, f"{name}_depthwise", groups=c, use_bias=use_bias, dtype=dtype)
    return conv2d(y, features, 1, f"{name}_pointwise", use_bias=use_bias, dtype=dtype)
  return conv2d(x, features, kernel, name, use_bias=use_bias, dtype=dtype)


class MSSSF(nn.Module):
  """Multi-Scale Spatio-Spectral Feature block MS-SSF-C (reconstruction; module docstring).

  Attributes:
    block: the transformer-block constructor, called ``block(name=...)(x, train=...)``
      (a ``functools.partial`` of :class:`jaxvision.nn.SpectralTransformerBlock`).
    levels: U-Net levels (MST: 2); H and W must be multiples of ``2^levels``.
    num_blocks: transformer blocks per encoder level and the bottleneck (``levels + 1``
      entries); decoder level ``l`` repeats encoder level ``l``'s count.
    separable: separable (depthwise 3x3 + pointwise) ``transform``, ``fuse`` and ``mapping``.
    residual: add the block input to the output (MST's ``mapping(fea) + x``).
    conv_bias: biases on the (non-transposed) convs.
    dtype: computation dtype.
  """
  block: Any = SpectralTransformerBlock
  levels: int = 2
  num_blocks: Sequence[int] = (1, 1, 1)
  separable: bool = True
  residual: bool = True
  conv_bias: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    """``(B, H, W, C) -> (B, H, W, C)``."""
    name = type(self).__name__
    if len(self.num_blocks) != self.levels + 1:
      raise ValueError(f"{name}: `num_blocks` needs levels + 1 = {self.levels + 1} entries "
                       f"(encoder levels, bottleneck); found {tuple(self.num_blocks)}.")
    m = 2 ** self.levels
    if x.ndim != 4 or x.shape[1] % m or x.shape[2] % m:
      raise ValueError(f"{name}: input must be (B, H, W, C) with H, W multiples of 2^levels = "
                       f"{m}; found shape {tuple(x.shape)}.")
    tf = functools.partial(_transform, separable=self.separable, use_bias=self.conv_bias,
                           dtype=self.dtype)
    c = x.shape[-1]

    def blocks(fea, count, prefix):
      for j in range(count):
        fea = self.block(name=f"{prefix}_{j}")(fea, train=train)
      return fea

    fea = tf(x, c, "transform")
    skips, width = [], c
    for i in range(self.levels):
      fea = blocks(fea, self.num_blocks[i], f"encoder_{i}_block")
      skips.append(fea)
      fea = conv2d(fea, 2 * width, 4, f"encoder_{i}_down", strides=2, padding=1,
                   use_bias=self.conv_bias, dtype=self.dtype)
      width *= 2
    fea = blocks(fea, self.num_blocks[-1], "bottleneck_block")
    for i in range(self.levels):
      width //= 2
      fea = conv_transpose_2x2(fea, width, f"decoder_{i}_up", self.dtype)
      fea = jnp.concatenate([fea, skips[self.levels - 1 - i]], axis=-1)
      fea = tf(fea, width, f"decoder_{i}_fuse", kernel=3 if self.separable else 1)
      fea = blocks(fea, self.num_blocks[self.levels - 1 - i], f"decoder_{i}_block")
    out = tf(fea, c, "mapping")
    return out + x if self.residual else out


class ACCNet(nn.Module):
  """The ACC spectral-reconstruction transformer (reconstruction; module docstring).

  Attributes:
    in_channels: input channels (3, RGB in [0, 1]).
    out_channels: output bands (31).
    width: the base width ``C`` (the paper: 31).
    num_ssf: the number ``S`` of MS-SSF blocks (R: 2).
    levels: U-Net levels per MS-SSF (R: 2, as MST).
    num_blocks: transformer blocks per encoder level and the bottleneck (``levels + 1``
      entries; the decoder mirrors the encoder; R: ``acc_net`` uses ``(1, 2, 1)``).
    separable: separable convs for the MS-SSF feature transformations (R).
    ssf_residual: MS-SSF's inner residual (R).
    residual: ``"output"``, ``"features"`` or ``None`` (module docstring, R);
      ``"output"`` needs ``width == out_channels``.
    conv_bias: biases on the non-transposed convs (R: none, as MST).
    ffn_mult: the FFN expansion (R: 4, MST's).
    coupler: ``"acc"`` or ``"msa"`` (the MS-MSA twin).
    acc_variant, acc_solver, acc_directions, acc_boundary, acc_num_iters, acc_tol: the
      ACC's ``variant``, ``solver`` (``"scan"``), ``directions``, ``boundary``,
      ``num_iters``, ``tol``.
    dim_head: the MSA twin's channels per head; ``None``: ``width`` (MST's convention).
    nonlocal_type: ``"pooled"``, ``"second_order"`` or ``None`` (SSTA's NL branch, R).
    nl_reduction, nl_pool_stride, nl_pool, nl_scaled, nl_query_chunk: the NL branch (R:
      ``C / 2`` inner channels, keys / values max-pooled 4x4, unscaled logits).
    pad_multiple: reflect-pad H, W to multiples of this; ``None``: ``2^levels``.
    bn_momentum, bn_epsilon: BatchNorm (Flax convention; R: PyTorch's 0.1 -> 0.9, 1e-5).
    dtype: computation dtype; parameters, BatchNorm statistics and the output stay float32.
  """
  in_channels: int = 3
  out_channels: int = 31
  width: int = 31
  num_ssf: int = 2
  levels: int = 2
  num_blocks: Sequence[int] = (1, 1, 1)
  separable: bool = True
  ssf_residual: bool = True
  residual: str | None = "output"
  conv_bias: bool = False
  ffn_mult: int = 4
  coupler: str = "acc"
  acc_variant: str = "acc"
  acc_solver: str = "scan"
  acc_directions: str = "both"
  acc_boundary: str = "zero"
  acc_num_iters: int | None = None
  acc_tol: float | None = None
  dim_head: int | None = None
  nonlocal_type: str | None = "pooled"
  nl_reduction: int = 2
  nl_pool_stride: int = 4
  nl_pool: str = "max"
  nl_scaled: bool = False
  nl_query_chunk: int | None = None
  pad_multiple: int | None = None
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  dtype: Any = jnp.float32

  def _check(self, x):
    name = type(self).__name__
    check_rgb(name, x, self.in_channels)
    for field, value in (("width", self.width), ("num_ssf", self.num_ssf),
                         ("levels", self.levels), ("ffn_mult", self.ffn_mult)):
      if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: `{field}` must be a positive int; found {value!r}.")
    if self.residual not in RESIDUALS:
      raise ValueError(f"{name}: `residual` must be one of {RESIDUALS}; found {self.residual!r}.")
    if self.residual == "output" and self.width != self.out_channels:
      raise ValueError(f"{name}: residual='output' adds the embedding to the output, so `width` "
                       f"must equal `out_channels`; found width={self.width}, "
                       f"out_channels={self.out_channels} (use residual='features').")
    if self.coupler not in COUPLERS:
      raise ValueError(f"{name}: `coupler` must be one of {COUPLERS}; found {self.coupler!r}.")
    if self.nonlocal_type not in NONLOCAL_TYPES:
      raise ValueError(f"{name}: `nonlocal_type` must be one of {NONLOCAL_TYPES}; found "
                       f"{self.nonlocal_type!r}.")
    m = 2 ** self.levels
    if self.pad_multiple is not None and (self.pad_multiple < 1 or self.pad_multiple % m):
      raise ValueError(f"{name}: `pad_multiple` must be a positive multiple of 2^levels = {m}; "
                       f"found {self.pad_multiple}.")

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    """Reconstructs the spectral cube.

    Args:
      x: float ``(B, H, W, in_channels)`` RGB in [0, 1]; any ``H, W >= 1``.
      train: BatchNorm uses batch statistics and updates ``batch_stats`` (apply with
        ``mutable=["batch_stats"]``); otherwise the running averages.

    Returns:
      float32 ``(B, H, W, out_channels)``.
    """
    self._check(x)
    h, w = x.shape[1], x.shape[2]
    attention = functools.partial(
        SSTA, coupler=self.coupler, acc_variant=self.acc_variant, acc_solver=self.acc_solver,
        acc_directions=self.acc_directions, acc_boundary=self.acc_boundary,
        acc_num_iters=self.acc_num_iters, acc_tol=self.acc_tol,
        dim_head=self.width if self.dim_head is None else self.dim_head,
        nonlocal_type=self.nonlocal_type, nl_reduction=self.nl_reduction,
        nl_pool_stride=self.nl_pool_stride, nl_pool=self.nl_pool, nl_scaled=self.nl_scaled,
        nl_query_chunk=self.nl_query_chunk, dtype=self.dtype)
    block = functools.partial(SpectralTransformerBlock, attention=attention,
                              ffn_mult=self.ffn_mult, bn_momentum=self.bn_momentum,
                              bn_epsilon=self.bn_epsilon, dtype=self.dtype)
    x = reflect_pad_to(x.astype(self.dtype), self.pad_multiple or 2 ** self.levels)
    emb = conv2d(x, self.width, 3, "embedding", use_bias=self.conv_bias, dtype=self.dtype)
    f = emb
    for s in range(self.num_ssf):
      f = MSSSF(block=block, levels=self.levels, num_blocks=tuple(self.num_blocks),
                separable=self.separable, residual=self.ssf_residual, conv_bias=self.conv_bias,
                dtype=self.dtype, name=f"ssf_{s}")(f, train=train)
      f = conv2d(f, self.width, 1, f"pointwise_{s}", use_bias=self.conv_bias, dtype=self.dtype)
    if self.residual == "features":
      f = f + emb
    out = conv2d(f, self.out_channels, 3, "conv_out", use_bias=self.conv_bias, dtype=self.dtype)
    if self.residual == "output":
      out = out + emb
    return out[:, :h, :w].astype(jnp.float32)


@register_model("acc_net")
def acc_net(**kwargs) -> ACCNet:
  """The paper-size ACC network (reconstruction): C = 31, S = 2 MS-SSF blocks of two levels,
  ``num_blocks=(1, 2, 1)``; 1,231,948 parameters (the paper: 1.18 M)."""
  kwargs.setdefault("num_blocks", (1, 2, 1))
  return ACCNet(**kwargs)


@register_model("acc_net_msa")
def acc_net_msa(**kwargs) -> ACCNet:
  """``acc_net`` with SSTA's ACC replaced by MST's spectral-wise MSA (the MS-MSA twin);
  1,457,780 parameters."""
  kwargs.setdefault("coupler", "msa")
  return acc_net(**kwargs)


@register_model("acc_net_small")
def acc_net_small(**kwargs) -> ACCNet:
  """A CPU-toy ACC network: C = 9, one two-level MS-SSF block, ``residual="features"``;
  53,129 parameters."""
  kwargs.setdefault("width", 9)
  kwargs.setdefault("num_ssf", 1)
  kwargs.setdefault("residual", "features")
  return ACCNet(**kwargs)


@register_model("acc_net_msa_small")
def acc_net_msa_small(**kwargs) -> ACCNet:
  """The MS-MSA twin of ``acc_net_small`` of equal size: the coupler swapped for MST's MSA
  (one head of 9 channels per 9) and ``ffn_mult=3``; 52,851 parameters."""
  kwargs.setdefault("coupler", "msa")
  kwargs.setdefault("ffn_mult", 3)
  return acc_net_small(**kwargs)
