r"""Depthwise 2-D convolution as shifted multiply-adds (pure ``jnp``/``lax``, no Flax).

``depthwise_conv2d`` is the ``groups = C`` (depth multiplier 1) convolution of an NHWC
image, a cross-correlation as in PyTorch and Flax::

    y[n, i, j, c] = b[c] + sum_{u < kH, v < kW} w[u, v, c] * p[n, s_h i + u, s_w j + v, c]

with ``p`` the zero-padded input. Two implementations, same result:

* ``"shifted"``: the sum above written out, ``kH * kW`` strided slices of ``p`` times a
  per-channel weight vector, which XLA fuses into one elementwise loop (and whose gradients
  are pads and reductions). On XLA:CPU this is ~12x faster than the grouped convolution:
  a 3x3 on ``(1, 482, 512, 124)`` float32 takes ~85 ms against ~1060 ms.
* ``"conv"``: ``lax.conv_general_dilated(..., feature_group_count=C)``, what ``nn.Conv``
  does; the better choice on accelerators, whose convolution libraries have depthwise
  kernels.
* ``"auto"`` (default): ``"shifted"`` when ``jax.default_backend() == "cpu"``, else
  ``"conv"``.
"""

from __future__ import annotations

from typing import Sequence, Union

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["DEPTHWISE_METHODS", "depthwise_conv2d"]

DEPTHWISE_METHODS = ("auto", "shifted", "conv")

Padding = Union[None, str, int, Sequence[int], Sequence[Sequence[int]]]

_NAME = "depthwise_conv2d"


def _is_int(v) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


def _pair(name: str, value, minimum: int) -> tuple[int, int]:
  """An int or a pair of ints (each ``>= minimum``) as a pair."""
  pair = (value, value) if _is_int(value) else tuple(value) if isinstance(
      value, (tuple, list)) else None
  if pair is None or len(pair) != 2 or not all(_is_int(v) and v >= minimum for v in pair):
    raise ValueError(f"{_NAME}: `{name}` must be an int >= {minimum} or a pair of them; "
                     f"found {value!r}.")
  return pair


def _pads(padding: Padding, kernel_hw, strides, in_hw) -> tuple[tuple[int, int], ...]:
  """``((top, bottom), (left, right))`` from the accepted ``padding`` forms."""
  expected = ("None (k // 2 on each side), 'SAME', 'VALID', an int, (pad_h, pad_w) or "
              "((top, bottom), (left, right)) of non-negative ints")
  if padding is None:
    return tuple((k // 2, k // 2) for k in kernel_hw)
  if isinstance(padding, str):
    if padding.upper() not in ("SAME", "VALID"):
      raise ValueError(f"{_NAME}: `padding` must be {expected}; found {padding!r}.")
    return tuple(tuple(p) for p in lax.padtype_to_pads(in_hw, kernel_hw, strides,
                                                       padding.upper()))
  if _is_int(padding) or (isinstance(padding, (tuple, list)) and len(padding) == 2
                          and all(_is_int(p) for p in padding)):
    try:
      ph, pw = _pair("padding", padding, 0)
    except ValueError:
      raise ValueError(f"{_NAME}: `padding` must be {expected}; found {padding!r}.") from None
    return ((ph, ph), (pw, pw))
  ok = (isinstance(padding, (tuple, list)) and len(padding) == 2
        and all(isinstance(p, (tuple, list)) and len(p) == 2
                and all(_is_int(q) and q >= 0 for q in p) for p in padding))
  if not ok:
    raise ValueError(f"{_NAME}: `padding` must be {expected}; found {padding!r}.")
  return tuple(tuple(p) for p in padding)


def _check_float(name: str, a) -> None:
  if not jnp.issubdtype(jnp.result_type(a), jnp.floating):
    raise TypeError(f"{_NAME}: `{name}` must be floating; found dtype {jnp.result_type(a)}.")


def _shifted(xp, kernel, strides, out_hw):
  """``sum_{u, v} p[:, u::s_h, v::s_w, :][:, :H_out, :W_out] * w[u, v]`` (one fused loop)."""
  n, _, _, c = xp.shape
  (sh, sw), (ho, wo) = strides, out_hw
  out = None
  for u in range(kernel.shape[0]):
    for v in range(kernel.shape[1]):
      window = lax.slice(xp, (0, u, v, 0), (n, u + (ho - 1) * sh + 1, v + (wo - 1) * sw + 1, c),
                         (1, sh, sw, 1))
      term = window * kernel[u, v]
      out = term if out is None else out + term
  return out


def depthwise_conv2d(x: jax.Array, kernel: jax.Array, bias: jax.Array | None = None, *,
                     strides: int | Sequence[int] = 1, padding: Padding = None,
                     method: str = "auto") -> jax.Array:
  r"""Depthwise (``groups = C``) 2-D cross-correlation of an NHWC image.

  ``y[n, i, j, c] = bias[c] + sum_{u, v} kernel[u, v, c] p[n, s_h i + u, s_w j + v, c]``,
  ``p`` the zero-padded ``x``: exactly ``lax.conv_general_dilated(x, kernel, strides,
  padding, dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=C)`` (+ bias),
  i.e. Flax's ``nn.Conv(C, (kH, kW), feature_group_count=C)`` and PyTorch's
  ``nn.Conv2d(C, C, k, groups=C)``.

  Args:
    x: float ``(N, H, W, C)``, channel-last.
    kernel: float ``(kH, kW, 1, C)`` (Flax's HWIO layout of a depthwise kernel) or
      ``(kH, kW, C)``.
    bias: optional float ``(C,)``.
    strides: an int or ``(s_h, s_w)``, each ``>= 1``.
    padding: zero padding: ``None`` (default; ``kH // 2`` and ``kW // 2`` on each side, the
      PyTorch ``padding=k // 2`` convention), an int or ``(pad_h, pad_w)`` (symmetric,
      PyTorch's ``padding``), ``((top, bottom), (left, right))`` (Flax / lax), or
      ``"SAME"`` / ``"VALID"`` (lax's rules).
    method: ``"shifted"`` (the ``kH kW`` shifted multiply-adds), ``"conv"`` (the grouped
      ``lax.conv_general_dilated``) or ``"auto"`` (``"shifted"`` on CPU, else ``"conv"``);
      see the module docstring.

  Returns:
    ``(N, H_out, W_out, C)`` with ``H_out = (H + top + bottom - kH) // s_h + 1`` (likewise
    ``W_out``), in the result dtype of ``x``, ``kernel`` and ``bias`` (float32 for float32
    inputs). The ``"shifted"`` sum of a 16-bit float computation is accumulated in float32
    and rounded once at the end.

  Raises:
    ValueError: a bad shape, ``strides``, ``padding`` or ``method``, or an empty output.
    TypeError: a non-floating ``x``, ``kernel`` or ``bias``.
  """
  if method not in DEPTHWISE_METHODS:
    raise ValueError(f"{_NAME}: `method` must be one of {DEPTHWISE_METHODS}; found {method!r}.")
  x, kernel = jnp.asarray(x), jnp.asarray(kernel)
  if x.ndim != 4:
    raise ValueError(f"{_NAME}: `x` must be (N, H, W, C) (channel-last); found shape "
                     f"{tuple(x.shape)}.")
  n, h, w, c = x.shape
  if kernel.ndim == 4 and kernel.shape[2] == 1 and kernel.shape[3] == c:
    kernel = kernel[:, :, 0, :]
  if kernel.ndim != 3 or kernel.shape[2] != c or 0 in kernel.shape:
    raise ValueError(f"{_NAME}: `kernel` must be (kH, kW, 1, C) or (kH, kW, C) with C = {c} "
                     f"(the channels of `x`), kH, kW >= 1; found shape {tuple(kernel.shape)}.")
  operands = [("x", x), ("kernel", kernel)]
  if bias is not None:
    bias = jnp.asarray(bias)
    if bias.shape != (c,):
      raise ValueError(f"{_NAME}: `bias` must be (C,) = ({c},); found shape "
                       f"{tuple(bias.shape)}.")
    operands.append(("bias", bias))
  for name, a in operands:
    _check_float(name, a)
  dtype = jnp.result_type(*(a for _, a in operands))
  kernel_hw = kernel.shape[:2]
  strides = _pair("strides", strides, 1)
  pads = _pads(padding, kernel_hw, strides, (h, w))
  out_hw = tuple((size + lo + hi - k) // s + 1
                 for size, (lo, hi), k, s in zip((h, w), pads, kernel_hw, strides))
  if min(out_hw) < 1:
    raise ValueError(f"{_NAME}: the output would be empty: input (H, W) = {(h, w)}, kernel "
                     f"{tuple(kernel_hw)}, padding {pads}, strides {strides} give "
                     f"{out_hw}.")
  if method == "auto":
    method = "shifted" if jax.default_backend() == "cpu" else "conv"

  if method == "conv":
    y = lax.conv_general_dilated(x.astype(dtype), kernel[:, :, None, :].astype(dtype),
                                 strides, pads, dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                 feature_group_count=c)
    return y if bias is None else y + bias.astype(dtype)

  acc = jnp.promote_types(dtype, jnp.float32)
  xp = jnp.pad(x.astype(acc), ((0, 0), pads[0], pads[1], (0, 0)))
  y = _shifted(xp, kernel.astype(acc), strides, out_hw)
  if bias is not None:
    y = y + bias.astype(acc)
  return y.astype(dtype)
