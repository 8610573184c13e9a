"""Spectral-reconstruction metrics: MRAE, RMSE, PSNR and SAM (RGB -> hyperspectral cube).

The criteria of the NTIRE spectral-recovery challenges as MST++ computes them (Cai et al.,
CVPRW 2022, ``caiyuanhao1998/MST-plus-plus``: ``train_code/utils.py`` and
``test_develop_code/utils.py``; spec ``spectral-transformer-ising`` Sec. 2 "Metrics"),
with ``ŷ`` the prediction and ``y`` the ground truth, both in ``[0, 1]`` units:

* :func:`mrae` = ``mean(|ŷ - y| / y)`` over every (pixel, band): ``Loss_MRAE``, or
  ``Loss_MRAE_custom`` (``y == 0`` replaced by ``1e-8``) with ``zero_guard=True``;
* :func:`rmse` = ``sqrt(mean((ŷ - y)^2))`` over every element (``Loss_RMSE``);
* :func:`psnr` = ``10 log10(R^2 / MSE)`` per image after clamping both to ``[0, R]``, the
  MSE over ``H x W x bands``, averaged over the batch (``Loss_PSNR``: clamp to [0, 1],
  times 255, ``R = 255``, which is the same number as ``R = 1`` here);
* :func:`sam`, the spectral angle in **degrees**, mean over pixels (CAVE; not in MST++).

Validation crop: MST++ feeds the *whole* validation image to the network and crops both the
output and the target to ``[128:-128, 128:-128]`` before the metrics (``train.py``,
``validate``). The crop therefore belongs to evaluation, not to the data: the model input
stays uncropped. :func:`crop_border` is that crop, and :func:`spectral_metrics` (all four
metrics in a dict, for an eval step) takes it as ``border``.

Layout: channel-last, ``(N, H, W, bands)`` (or any leading axes). All functions are pure
``jnp``, ``jit``-safe, and follow the input dtype: ``promote(dtype, float32)`` (float64
under ``jax.enable_x64(True)``). :func:`rmse` is the library's only RMSE: it also serves
the IQA criteria (:mod:`jaxvision.metrics.iqa`, score vectors ``(N,)`` / ``(N, 1)``), and
:func:`jaxvision.metrics.psnr_rgb` (colorization) is :func:`psnr` without the clamp.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp

__all__ = ["crop_border", "mrae", "psnr", "rmse", "sam", "spectral_metrics"]

MRAE_ZERO_GUARD = 1e-8  # Loss_MRAE_custom: targets equal to 0 are replaced by this
MST_VALID_BORDER = 128  # MST++'s validation crop [128:-128, 128:-128]
REDUCTIONS = ("mean", "none")


def _float_dtype(*arrays):
  return jnp.result_type(*(a.dtype for a in arrays), jnp.float32)


def _is_scores(x) -> bool:
  return x.ndim == 1 or (x.ndim == 2 and x.shape[1] == 1)


def _same_shape(pred, target, fn: str, *, min_ndim: int = 0, what: str = "arrays"
                ) -> tuple[jax.Array, jax.Array]:
  """Validated copies of equal shape in ``promote(dtype, float32)``."""
  pred, target = jnp.asarray(pred), jnp.asarray(target)
  for name, x in (("pred", pred), ("target", target)):
    if x.ndim < min_ndim:
      raise ValueError(f"{fn}: `{name}` must be {what}; found shape {x.shape}.")
  if pred.shape != target.shape:
    raise ValueError(f"{fn}: `target` must have the shape of `pred` {pred.shape}; found "
                     f"{target.shape}.")
  if pred.size == 0:
    raise ValueError(f"{fn}: `pred` must not be empty; found shape {pred.shape}.")
  dtype = _float_dtype(pred, target)
  return pred.astype(dtype), target.astype(dtype)


def rmse(pred: jax.Array, target: jax.Array) -> jax.Array:
  """Root mean squared error ``sqrt(mean((pred - target)^2))`` over every element.

  MST++'s ``Loss_RMSE`` for spectral cubes (``[0, 1]`` units, spec Sec. 2) and the IQA
  criterion in MOS units (:func:`jaxvision.metrics.iqa_performance`): one function for any
  shape. ``pred`` and ``target`` must have the same shape, except that score vectors
  ``(N,)`` and ``(N, 1)`` are interchangeable (the IQA convention). ``RMSE(ŷ + c, ŷ) = |c|``.

  Args:
    pred: any shape with ``N >= 2`` elements, e.g. a cube batch ``(B, H, W, bands)`` or
      scores ``(N,)`` / ``(N, 1)``.
    target: the same shape.

  Returns:
    A scalar of dtype ``promote(dtype, float32)``.
  """
  pred, target = jnp.asarray(pred), jnp.asarray(target)
  if (pred.shape != target.shape and _is_scores(pred) and _is_scores(target)
      and pred.shape[0] == target.shape[0]):
    pred, target = pred.reshape(-1), target.reshape(-1)
  for name, x in (("pred", pred), ("target", target)):
    if x.size < 2:
      raise ValueError(f"rmse: `{name}` must have N >= 2 entries; found N = {x.size} "
                       f"(shape {x.shape}).")
  pred, target = _same_shape(pred, target, "rmse")
  return jnp.sqrt(jnp.mean(jnp.square(pred - target)))


def mrae(pred: jax.Array, target: jax.Array, *, zero_guard: bool = True) -> jax.Array:
  """Mean relative absolute error ``mean(|ŷ - y| / y)`` over every element.

  The NTIRE ranking criterion and MST++'s training loss. ``zero_guard=True`` is
  ``Loss_MRAE_custom``: targets exactly 0 are replaced by ``1e-8`` in the denominator, so
  the result is finite (but large) where ``y = 0``; ``zero_guard=False`` is the plain
  ``Loss_MRAE`` (``inf`` / NaN there). ``MRAE(y, y) = 0`` and ``MRAE(0, y) = 1``.
  Differentiable in ``pred`` (a valid loss).

  Args:
    pred: ``(..., bands)`` predicted cube, e.g. ``(N, H, W, 31)``; any shape.
    target: the same shape, ground truth (``> 0`` except where guarded).
    zero_guard: replace ``y == 0`` by ``1e-8``.

  Returns:
    A scalar of dtype ``promote(dtype, float32)``.
  """
  pred, target = _same_shape(pred, target, "mrae")
  denom = jnp.where(target == 0, jnp.asarray(MRAE_ZERO_GUARD, target.dtype),
                    target) if zero_guard else target
  return jnp.mean(jnp.abs(pred - target) / denom)


def psnr(pred: jax.Array, target: jax.Array, data_range: float = 1.0, *, clamp: bool = True,
         reduction: str = "mean") -> jax.Array:
  """Peak signal-to-noise ratio ``10 log10(R^2 / MSE)`` per image, averaged over images.

  MST++'s ``Loss_PSNR`` with ``clamp=True`` (the default): both images are clamped to
  ``[0, R]`` first (``R = data_range``), then the MSE is taken over the ``H x W x C``
  values of each image. (MST++ clamps to ``[0, 1]`` and multiplies by ``R = 255``; the
  ratio, hence the PSNR, is the same as for ``[0, 1]`` data with ``R = 1``.)
  ``clamp=False`` gives the plain PSNR (:func:`jaxvision.metrics.psnr_rgb`). A constant
  offset ``0.1 R`` (inside the range) gives 20 dB; a perfect prediction gives ``inf``.

  Args:
    pred: ``(..., H, W, C)`` images or cubes (any ``C``: 3 for RGB, 31 bands).
    target: the same shape.
    data_range: the peak ``R > 0`` (``1.0`` for ``[0, 1]`` data, ``255`` for 8-bit).
    clamp: clamp both to ``[0, R]`` (MST++).
    reduction: ``"mean"`` (the mean of the per-image PSNRs) or ``"none"`` (shape ``(...)``).

  Returns:
    A scalar (or ``(...)``) in dB, dtype ``promote(dtype, float32)``.
  """
  fn = "psnr"
  pred, target = _same_shape(pred, target, fn, min_ndim=3,
                             what="channel-last images (..., H, W, C)")
  if reduction not in REDUCTIONS:
    raise ValueError(f"{fn}: `reduction` must be one of {REDUCTIONS}; found {reduction!r}.")
  if not data_range > 0:
    raise ValueError(f"{fn}: `data_range` must be > 0; found {data_range}.")
  peak = jnp.asarray(data_range, pred.dtype)
  if clamp:
    pred, target = jnp.clip(pred, 0, peak), jnp.clip(target, 0, peak)
  mse = jnp.mean(jnp.square(pred - target), axis=(-3, -2, -1))
  out = 10.0 * jnp.log10(peak ** 2 / mse)
  return jnp.mean(out) if reduction == "mean" else out


def sam(pred: jax.Array, target: jax.Array, *, eps: float = 1e-8,
        reduction: str = "mean") -> jax.Array:
  """Spectral angle mapper in **degrees**: the mean over pixels of the angle between spectra.

  ``SAM = mean_pixels (180/pi) arccos(clip(<ŷ, y> / (||ŷ|| ||y|| + eps), -1, 1))``
  (spec Sec. 2: the paper's CAVE SAM of 7.661 must be degrees, since the angle between
  non-negative spectra is at most 90 degrees). Invariant to a positive per-pixel scale of
  either argument (up to ``eps``); ``SAM(y, y) ~ 0`` (``arccos`` is ill-conditioned at 1:
  about ``0.02`` degrees of float32 rounding, ``sqrt(2 eps) / ||y||`` radians from
  ``eps``); a zero spectrum gives 90. A metric, not a loss: ``arccos`` has an infinite
  derivative at ``+-1``.

  Args:
    pred: ``(..., bands)``, e.g. ``(N, H, W, 31)``; every leading position is a pixel.
    target: the same shape.
    eps: added to the product of the norms, ``>= 0``.
    reduction: ``"mean"`` (over all pixels) or ``"none"`` (the per-pixel angles ``(...)``).

  Returns:
    A scalar (or ``(...)``) in degrees, dtype ``promote(dtype, float32)``.
  """
  fn = "sam"
  pred, target = _same_shape(pred, target, fn, min_ndim=1, what="spectra (..., bands)")
  if reduction not in REDUCTIONS:
    raise ValueError(f"{fn}: `reduction` must be one of {REDUCTIONS}; found {reduction!r}.")
  if not eps >= 0:
    raise ValueError(f"{fn}: `eps` must be >= 0; found {eps}.")
  dot = jnp.sum(pred * target, axis=-1)
  norms = jnp.linalg.norm(pred, axis=-1) * jnp.linalg.norm(target, axis=-1)
  cos = jnp.clip(dot / (norms + jnp.asarray(eps, dot.dtype)), -1.0, 1.0)
  angle = jnp.degrees(jnp.arccos(cos))
  return jnp.mean(angle) if reduction == "mean" else angle


def crop_border(x: jax.Array, border: int = MST_VALID_BORDER) -> jax.Array:
  """Drops ``border`` pixels on each side of the spatial axes: ``x[..., b:-b, b:-b, :]``.

  MST++'s validation crop (``[128:-128, 128:-128]``, the default) applied to the network's
  output and to the target before the metrics (module docstring). ``border=0`` returns
  ``x``. Works on numpy and jax arrays (a slice).

  Args:
    x: ``(..., H, W, C)`` channel-last, with ``H, W > 2 * border``.
    border: pixels removed on every side, ``>= 0``.

  Returns:
    ``(..., H - 2 border, W - 2 border, C)``, same type and dtype as ``x``.
  """
  if not hasattr(x, "ndim"):
    x = jnp.asarray(x)
  if isinstance(border, bool) or not isinstance(border, numbers.Integral) or border < 0:
    raise ValueError(f"crop_border: `border` must be an int >= 0; found {border!r}.")
  if x.ndim < 3:
    raise ValueError(f"crop_border: `x` must be channel-last images (..., H, W, C); found "
                     f"shape {x.shape}.")
  h, w = x.shape[-3], x.shape[-2]
  if h <= 2 * border or w <= 2 * border:
    raise ValueError(f"crop_border: a border of {border} needs H, W > {2 * border}; found "
                     f"H, W = {h}, {w}.")
  border = int(border)
  if border == 0:
    return x
  return x[..., border:h - border, border:w - border, :]


def spectral_metrics(pred: jax.Array, target: jax.Array, *, border: int = 0,
                     data_range: float = 1.0, zero_guard: bool = True,
                     sam_eps: float = 1e-8) -> dict[str, jax.Array]:
  """MRAE, RMSE, PSNR and SAM of predicted cubes, after an optional :func:`crop_border`.

  ``border=128`` reproduces MST++'s validation (metrics on ``[128:-128, 128:-128]``). Each
  value is as its function computes it on the whole batch: MRAE and RMSE pool every
  element, PSNR averages the per-image values, SAM averages over pixels. (MST++ validates
  with batch size 1 and averages per-image values; for equal-sized images that equals
  this MRAE, and this PSNR; RMSE differs slightly: the root of the mean, not the mean of
  the roots.)

  Args:
    pred: ``(N, H, W, bands)`` predicted cubes.
    target: the same shape.
    border: spatial crop on every side before the metrics (``0``: none).
    data_range: :func:`psnr`'s peak.
    zero_guard: :func:`mrae`'s guard.
    sam_eps: :func:`sam`'s ``eps``.

  Returns:
    ``{"mrae", "rmse", "psnr", "sam"}``: scalars, dtype ``promote(dtype, float32)``.
  """
  pred, target = _same_shape(pred, target, "spectral_metrics", min_ndim=3,
                             what="channel-last cubes (..., H, W, bands)")
  pred, target = crop_border(pred, border), crop_border(target, border)
  return {"mrae": mrae(pred, target, zero_guard=zero_guard), "rmse": rmse(pred, target),
          "psnr": psnr(pred, target, data_range), "sam": sam(pred, target, eps=sam_eps)}
