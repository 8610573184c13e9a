r"""MST++ (Cai et al., CVPRW 2022, "MST++: Multi-stage Spectral-wise Transformer for Efficient
Spectral Reconstruction"): RGB ``(B, H, W, 3)`` -> 31-band cube ``(B, H, W, 31)``.

As released (``caiyuanhao1998/MST-plus-plus``, ``architecture/MST_Plus_Plus.py``; the
baseline of spec ``spectral-transformer-ising``). Linen, NHWC:

* reflect-pad the bottom / right of the input to a multiple of ``pad_multiple`` (8), crop
  the output back;
* ``conv_in``: 3x3 ``3 -> n_feat`` (31), no bias;
* ``body``: ``stage`` (3) :class:`MST` stages in sequence, each a U-Net with ``mst_stage``
  (2) levels and ``num_blocks`` (1, 1, 1) MSABs (encoder levels, bottleneck; the decoder
  mirrors the encoder) of width ``C_l = n_feat 2^l``:

  - ``embedding``: 3x3 ``C -> C``, no bias;
  - encoder level ``l``: MSAB(``C_l``), keep the skip, ``down``: 4x4 stride-2 conv
    (padding 1, no bias) ``C_l -> 2 C_l``;
  - ``bottleneck``: MSAB(``4 C``);
  - decoder: ``up``: ConvTranspose 2x2 stride 2 ``2 C_l -> C_l`` **with** bias (PyTorch's
    default), concatenate ``[up, skip]``, ``fusion``: 1x1 ``2 C_l -> C_l`` no bias,
    MSAB(``C_l``);
  - ``mapping``: 3x3 ``C -> C`` no bias, plus the stage input (``out = mapping(fea) + x``);

* ``conv_out``: 3x3 ``n_feat -> 31``, no bias, plus the ``conv_in`` output.

An MSAB block is ``x = MS_MSA(x) + x; x = FFN(LayerNorm(x)) + x``: the attention has **no**
pre-norm in the release (only the FFN is wrapped in ``PreNorm``); ``LayerNorm`` eps 1e-5.
MS_MSA and FFN are :class:`jaxvision.nn.SpectralWiseMSA` (``dim_head = n_feat``,
``heads = C_l / n_feat``: 1, 2, 4) and :class:`jaxvision.nn.FeedForward` (mult 4, bias-free).

Parameters: **1,619,625** at the defaults (the paper's 1.62 M): ``conv_in`` 837, ``conv_out``
8,649 and 536,713 per MST stage (embedding and mapping 8,649 each; MSABs 13,300 / 49,664 /
191,584 at widths 31 / 62 / 124, i.e. ``12 C^2 + 57 C + heads``; downsampling 30,752 and
123,008; upsampling 30,814 and 7,719; fusion 7,688 and 1,922). No BatchNorm, no dropout.

Initialisation as the release: the MS_MSA Linears ``trunc_normal_(std=0.02)`` with zero bias,
LayerNorm (1, 0), ``rescale`` 1, every conv PyTorch's default ``U(+-1/sqrt(fan_in))``
(the transposed conv's ``fan_in`` is ``out_channels * 2 * 2``).

Weight conversion: :func:`convert_torch_mst_plus_plus` maps the release's ``state_dict``
(``module.`` prefixes of its DataParallel checkpoints are stripped) onto this parameter tree
(checked against a PyTorch transcription of the release in
``tests/models/test_mst_plus_plus.py``).

Generalisations (defaults are the release): ``n_feat`` also sets MST's ``dim`` (the release
hard-codes ``MST(dim=31)``, which only works for ``n_feat = 31``; ``out_channels`` must equal
``n_feat`` for the outer residual), ``in_channels``, ``stage``, ``mst_stage``,
``num_blocks``, ``pad_multiple`` (the release pads to 8 although two levels need only 4).
"""

from __future__ import annotations

import functools
import re
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxvision.models.registry import register_model
from jaxvision.nn.spectral_attention import (FeedForward, SpectralWiseMSA, conv2d,
                                             torch_uniform)

__all__ = ["MST", "MSAB", "MSTPlusPlus", "convert_torch_mst_plus_plus", "reflect_pad_to",
           "check_rgb", "conv_transpose_2x2"]

_LN_EPS = 1e-5  # PyTorch's nn.LayerNorm default.


def check_rgb(owner: str, x, channels: int) -> None:
  """Validates a ``(B, H, W, channels)`` float image batch."""
  if x.ndim != 4 or x.shape[-1] != channels:
    raise ValueError(f"{owner}: input must be NHWC (batch, height, width, {channels}); found "
                     f"shape {tuple(x.shape)}.")
  if x.shape[1] == 0 or x.shape[2] == 0:
    raise ValueError(f"{owner}: input height and width must be positive; found shape "
                     f"{tuple(x.shape)}.")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(f"{owner}: input must be floating (RGB in [0, 1]); found dtype {x.dtype}.")


def reflect_pad_to(x, multiple: int):
  """Reflect-pads the bottom / right of ``(B, H, W, C)`` up to multiples of ``multiple``.

  ``F.pad(x, [0, pad_w, 0, pad_h], mode="reflect")`` with ``pad = (m - n % m) % m``. (PyTorch
  requires ``pad < n``; ``jnp.pad`` reflects repeatedly, so tiny inputs work too.)
  """
  h, w = x.shape[1], x.shape[2]
  ph, pw = (multiple - h % multiple) % multiple, (multiple - w % multiple) % multiple
  if ph == 0 and pw == 0:
    return x
  return jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="reflect")


def conv_transpose_2x2(x, features: int, name: str, dtype):
  """PyTorch ``ConvTranspose2d(k=2, stride=2, padding=0)`` with bias and its default init.

  Flax's ``ConvTranspose`` (``transpose_kernel=False``) correlates the stride-dilated input,
  so a PyTorch weight ``(in, out, 2, 2)`` converts to ``(2, 2, in, out)`` *flipped spatially*.
  """
  fan_in = features * 2 * 2   # PyTorch's fan_in of a (in, out, k, k) transposed-conv weight
  return nn.ConvTranspose(features, (2, 2), (2, 2), padding="VALID", dtype=dtype,
                          kernel_init=torch_uniform(fan_in), bias_init=torch_uniform(fan_in),
                          name=name)(x)


class MSAB(nn.Module):
  """MST's multi-head spectral-wise attention block: ``num_blocks`` x [MS_MSA + x,
  FFN(LayerNorm(x)) + x] (no norm before MS_MSA, as the release).

  Attributes:
    num_blocks: the number of (attention, feed-forward) pairs.
    dim_head: MS_MSA's channels per head.
    dtype: computation dtype.

  Parameters per pair ``blocks_{j}_attn``, ``blocks_{j}_norm``, ``blocks_{j}_ff``:
  ``12 C^2 + 57 C + heads``.
  """
  num_blocks: int = 1
  dim_head: int = 31
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    """``(B, H, W, C) -> (B, H, W, C)``."""
    for j in range(self.num_blocks):
      x = SpectralWiseMSA(dim_head=self.dim_head, dtype=self.dtype, name=f"blocks_{j}_attn")(x) + x
      y = nn.LayerNorm(epsilon=_LN_EPS, dtype=self.dtype, name=f"blocks_{j}_norm")(x)
      x = FeedForward(dtype=self.dtype, name=f"blocks_{j}_ff")(y) + x
    return x


class MST(nn.Module):
  """One MST stage: the U-shaped spectral-wise transformer (module docstring).

  Attributes:
    dim: the base width ``C`` (also MS_MSA's ``dim_head``); the input must have ``C``
      channels (the release's ``in_dim = out_dim = dim = 31``).
    stage: the number of U-Net levels (2); heights and widths must be multiples of
      ``2^stage``.
    num_blocks: MSAB pairs per encoder level and the bottleneck (``stage + 1`` entries; MST++:
      ``(1, 1, 1)``); decoder level ``l`` repeats encoder level ``l``'s count.
    dtype: computation dtype.
  """
  dim: int = 31
  stage: int = 2
  num_blocks: Sequence[int] = (1, 1, 1)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    """``(B, H, W, dim) -> (B, H, W, dim)``: ``mapping(U-Net(embedding(x))) + x``."""
    name = type(self).__name__
    if len(self.num_blocks) != self.stage + 1:
      raise ValueError(f"{name}: `num_blocks` needs stage + 1 = {self.stage + 1} entries "
                       f"(encoder levels, bottleneck); found {tuple(self.num_blocks)}.")
    if x.shape[-1] != self.dim:
      raise ValueError(f"{name}: input channels must equal `dim` = {self.dim}; found shape "
                       f"{tuple(x.shape)}.")
    m = 2 ** self.stage
    if x.shape[1] % m or x.shape[2] % m:
      raise ValueError(f"{name}: height and width must be multiples of 2^stage = {m}; found "
                       f"shape {tuple(x.shape)}.")
    msab = functools.partial(MSAB, dim_head=self.dim, dtype=self.dtype)
    fea = conv2d(x, self.dim, 3, "embedding", dtype=self.dtype)
    skips = []
    width = self.dim
    for i in range(self.stage):
      fea = msab(num_blocks=self.num_blocks[i], name=f"encoder_{i}_msab")(fea)
      skips.append(fea)
      fea = conv2d(fea, 2 * width, 4, f"encoder_{i}_down", strides=2, padding=1,
                   dtype=self.dtype)
      width *= 2
    fea = msab(num_blocks=self.num_blocks[-1], name="bottleneck")(fea)
    for i in range(self.stage):
      width //= 2
      fea = conv_transpose_2x2(fea, width, f"decoder_{i}_up", self.dtype)
      fea = jnp.concatenate([fea, skips[self.stage - 1 - i]], axis=-1)
      fea = conv2d(fea, width, 1, f"decoder_{i}_fusion", dtype=self.dtype)
      fea = msab(num_blocks=self.num_blocks[self.stage - 1 - i], name=f"decoder_{i}_msab")(fea)
    return conv2d(fea, self.dim, 3, "mapping", dtype=self.dtype) + x


class MSTPlusPlus(nn.Module):
  """MST++ spectral reconstruction (module docstring: layers, counts, conversion).

  Attributes:
    in_channels: input channels (3, RGB in [0, 1]).
    out_channels: output bands (31: 400-700 nm, 10 nm steps); must equal ``n_feat`` (the
      outer residual).
    n_feat: the width ``C`` of every MST stage (31).
    stage: the number of MST stages (3).
    mst_stage: U-Net levels per MST (2).
    num_blocks: MSAB pairs per level of each MST (``(1, 1, 1)``).
    pad_multiple: reflect-pad H, W up to multiples of this (8; must be a multiple of
      ``2^mst_stage``).
    dtype: computation dtype (e.g. ``jnp.bfloat16``); parameters and the output stay float32.
  """
  in_channels: int = 3
  out_channels: int = 31
  n_feat: int = 31
  stage: int = 3
  mst_stage: int = 2
  num_blocks: Sequence[int] = (1, 1, 1)
  pad_multiple: int = 8
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    """Reconstructs the spectral cube.

    Args:
      x: float ``(B, H, W, in_channels)`` RGB in [0, 1]; any ``H, W >= 1``.
      train: unused (MST++ has no BatchNorm or dropout); accepted for the engine's interface.

    Returns:
      float32 ``(B, H, W, out_channels)``.
    """
    del train
    name = type(self).__name__
    check_rgb(name, x, self.in_channels)
    if self.out_channels != self.n_feat:
      raise ValueError(f"{name}: `out_channels` must equal `n_feat` (the outer residual adds the "
                       f"conv_in features to the output); found out_channels="
                       f"{self.out_channels}, n_feat={self.n_feat}.")
    if self.pad_multiple < 1 or self.pad_multiple % (2 ** self.mst_stage):
      raise ValueError(f"{name}: `pad_multiple` must be a positive multiple of 2^mst_stage = "
                       f"{2 ** self.mst_stage}; found {self.pad_multiple}.")
    h, w = x.shape[1], x.shape[2]
    x = reflect_pad_to(x.astype(self.dtype), self.pad_multiple)
    x = conv2d(x, self.n_feat, 3, "conv_in", dtype=self.dtype)
    fea = x
    for s in range(self.stage):
      fea = MST(dim=self.n_feat, stage=self.mst_stage, num_blocks=tuple(self.num_blocks),
                dtype=self.dtype, name=f"body_{s}")(fea)
    out = conv2d(fea, self.out_channels, 3, "conv_out", dtype=self.dtype) + x
    return out[:, :h, :w].astype(jnp.float32)


# ------------------------------------------------------------------------------------------
# PyTorch -> Flax conversion.

_TORCH_BLOCK = re.compile(r"blocks\.(\d+)\.(0|1)\.(.*)$")


def _msab_path(rest: str) -> tuple[list[str], str]:
  """``blocks.{j}.{0|1}.<...>`` of an MSAB -> (module path, leaf kind)."""
  m = _TORCH_BLOCK.fullmatch(rest)
  if m is None:
    raise KeyError(rest)
  j, part, tail = m.groups()
  if part == "0":  # MS_MSA
    if tail in ("to_q.weight", "to_k.weight", "to_v.weight", "proj.weight"):
      return [f"blocks_{j}_attn", tail.split(".")[0], "kernel"], "linear"
    if tail == "proj.bias":
      return [f"blocks_{j}_attn", "proj", "bias"], "same"
    if tail == "rescale":
      return [f"blocks_{j}_attn", "rescale"], "rescale"
    if tail in ("pos_emb.0.weight", "pos_emb.2.weight"):
      return [f"blocks_{j}_attn", "pos_emb_" + tail.split(".")[1], "kernel"], "conv"
  else:  # PreNorm(FeedForward)
    if tail in ("norm.weight", "norm.bias"):
      return [f"blocks_{j}_norm", "scale" if tail.endswith("weight") else "bias"], "same"
    fm = re.fullmatch(r"fn\.net\.(0|2|4)\.weight", tail)
    if fm:
      return [f"blocks_{j}_ff", f"net_{fm.group(1)}", "kernel"], "conv"
  raise KeyError(rest)


def _mst_path(rest: str) -> tuple[list[str], str]:
  """A key inside one ``MST`` -> (module path, leaf kind)."""
  if rest in ("embedding.weight", "mapping.weight"):
    return [rest.split(".")[0], "kernel"], "conv"
  m = re.fullmatch(r"encoder_layers\.(\d+)\.(0|1)\.(.*)", rest)
  if m:
    i, part, tail = m.groups()
    if part == "1" and tail == "weight":
      return [f"encoder_{i}_down", "kernel"], "conv"
    path, kind = _msab_path(tail)
    return [f"encoder_{i}_msab"] + path, kind
  if rest.startswith("bottleneck."):
    path, kind = _msab_path(rest[len("bottleneck."):])
    return ["bottleneck"] + path, kind
  m = re.fullmatch(r"decoder_layers\.(\d+)\.(0|1|2)\.(.*)", rest)
  if m:
    i, part, tail = m.groups()
    if part == "0" and tail in ("weight", "bias"):
      return [f"decoder_{i}_up", "kernel" if tail == "weight" else "bias"], (
          "conv_transpose" if tail == "weight" else "same")
    if part == "1" and tail == "weight":
      return [f"decoder_{i}_fusion", "kernel"], "conv"
    if part == "2":
      path, kind = _msab_path(tail)
      return [f"decoder_{i}_msab"] + path, kind
  raise KeyError(rest)


_CONVERT = {
    "same": lambda a: a,
    "linear": lambda a: a.T,                                       # (out, in) -> (in, out)
    "conv": lambda a: a.transpose(2, 3, 1, 0),                     # OIHW -> HWIO
    "conv_transpose": lambda a: a.transpose(2, 3, 0, 1)[::-1, ::-1],  # IOHW -> HWIO, flipped
    "rescale": lambda a: a.reshape(-1),                            # (heads, 1, 1) -> (heads,)
}


def convert_torch_mst_plus_plus(state_dict: Mapping[str, Any]) -> dict:
  """Maps the release's ``MST_Plus_Plus`` ``state_dict`` onto :class:`MSTPlusPlus` params.

  Args:
    state_dict: ``{name: array}`` (numpy arrays or CPU torch tensors), e.g.
      ``torch.load("mst_plus_plus.pth")["state_dict"]``; ``module.`` prefixes are stripped.

  Returns:
    ``{"params": ...}`` nested dict of float32 numpy arrays for ``MSTPlusPlus.apply``.

  Raises:
    KeyError: a name that is not part of the release's MST++ (the message names it).
  """
  params: dict = {}
  for key, value in state_dict.items():
    k = key[len("module."):] if key.startswith("module.") else key
    a = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value,
                   dtype=np.float32)
    try:
      if k in ("conv_in.weight", "conv_out.weight"):
        path, kind = [k.split(".")[0], "kernel"], "conv"
      else:
        m = re.fullmatch(r"body\.(\d+)\.(.*)", k)
        if m is None:
          raise KeyError(k)
        path, kind = _mst_path(m.group(2))
        path = [f"body_{m.group(1)}"] + path
    except KeyError:
      raise KeyError(f"convert_torch_mst_plus_plus: unexpected state_dict entry {key!r} "
                     f"(expected the MST_Plus_Plus names of caiyuanhao1998/MST-plus-plus)."
                     ) from None
    node = params
    for p in path[:-1]:
      node = node.setdefault(p, {})
    node[path[-1]] = np.ascontiguousarray(_CONVERT[kind](a))
  return {"params": params}


@register_model("mst_plus_plus")
def mst_plus_plus(**kwargs) -> MSTPlusPlus:
  """MST++ as released: 3 MST stages of width 31, (1, 1, 1) MSABs; 1,619,625 parameters."""
  return MSTPlusPlus(**kwargs)


@register_model("mst_plus_plus_tiny")
def mst_plus_plus_tiny(**kwargs) -> MSTPlusPlus:
  """A CPU-test MST++: one MST stage (``stage=1``) of width 31; 546,199 parameters."""
  kwargs.setdefault("stage", 1)
  return MSTPlusPlus(**kwargs)
