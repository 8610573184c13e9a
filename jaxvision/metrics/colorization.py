r"""Colorization metrics: AuC and rebalanced AuC of the ab error, PSNR, RMSE, colourfulness.

The criteria of "Towards More Vibrant Image Colorization" (Mukhopadhyay et al.; spec
``vibrant-colorization`` Sec. 3 "Metrics", paper Sec. 3.2), which takes AuC from Zhang,
Isola & Efros (ECCV 2016, "Colorful Image Colorization", Sec. 3.1 "raw accuracy"):

* **AuC** (:func:`auc_ab`): the per-pixel ab error ``d = ||Ŷ - Y||_2`` (Lab units), the
  accuracy curve ``acc(t) = mean[d <= t]`` for the thresholds ``t = 0, 1, ..., 150``
  (151 values, inclusive), and its area normalised to ``[0, 1]``:
  ``AuC = (1/151) sum_t acc(t)`` (the authors' ``metrics.AUC``; ``integration="trapezoid"``
  gives ``trapz(acc, t) / 150`` instead).
* **Rebalanced AuC as intended** (:func:`rebalanced_auc_ab`): pixels weighted by ``w(q)``,
  the inverse prior of the *target's* ab bin ``q`` (Zhang: "re-weight the pixels inversely
  by the probability of their color class"), ``acc_w(t) = sum w 1[d <= t] / sum w``;
  :func:`auc_rebalancing_weights` builds ``w(q) = 1/p(q)`` from a prior.
* **Rebalanced AuC as coded** (:func:`rebalanced_auc_ab_kolinguo`; the authors'
  ``metrics.RebalancedAUC``, which produced the paper's reported "RebalancedAuC" numbers):
  the *distance* of each pixel is multiplied by the prior rescaled to ``[1, 21]``
  (:func:`kolinguo_distance_scale`) at the *prediction's* 1-NN bin, then the plain AuC is
  taken. A different metric: common predicted colours are penalised harder, and since the
  factor is ``>= 1`` it is never above the plain AuC.
* **PSNR** (:func:`psnr_rgb`) on sRGB in ``[0, 1]`` and **RMSE** (:func:`rmse_ab`) on ab
  divided by 110: the paper defines neither (its Table 1 units are inconsistent), so these
  are the spec's defaults and the paper's numbers cannot be matched.
* **Colourfulness**: :func:`colorfulness_hasler` (Hasler & Süsstrunk 2003) and
  :func:`mean_chroma` (the LCh chroma ``C = ||(a, b)||_2`` the paper's loss pulls up).

The metric functions pool over *all* pixels they are given (every leading axis), as the
authors' metrics accumulate over a whole dataset. For a dataset that does not fit one call,
sum :func:`ab_accuracy_counts` over batches and finish with :func:`auc_from_curve`.

Bins are not defined here: the rebalanced metrics take per-pixel weights / scales, or a
function of the ab values that returns them, so any bin set (Zhang's 313, or the grid-10
cells of :func:`jaxvision.ops.color.ab_gamut_bins`) and any prior can be used, e.g. with
``centres`` ``(Q, 2)`` and ``prior`` ``(Q,)``::

  nearest = lambda ab: jnp.argmin(jnp.sum((ab[..., None, :] - centres) ** 2, -1), -1)
  w = auc_rebalancing_weights(prior)
  rebalanced_auc_ab(pred, target, weights_fn=lambda ab: w[nearest(ab)])
  s = kolinguo_distance_scale(prior)
  rebalanced_auc_ab_kolinguo(pred, target, scale_fn=lambda ab: s[nearest(ab)])

All functions are pure ``jnp``, channel-last and ``jit``-safe; results have dtype
``promote(dtype, float32)`` (float64 inputs under ``jax.enable_x64`` give float64).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxvision.metrics.spectral import psnr

__all__ = [
    "ab_accuracy_counts",
    "ab_accuracy_curve",
    "ab_distance",
    "auc_ab",
    "auc_from_curve",
    "auc_thresholds",
    "auc_rebalancing_weights",
    "colorfulness_hasler",
    "kolinguo_distance_scale",
    "mean_chroma",
    "psnr_rgb",
    "rebalanced_auc_ab",
    "rebalanced_auc_ab_kolinguo",
    "rmse_ab",
]

#: The AuC threshold sweep of Zhang et al. (2016) and the paper: 0..150 in Lab ab units.
MAX_THRESHOLD = 150.0
INTEGRATIONS = ("mean", "trapezoid")


def _float_dtype(*arrays):
  return jnp.result_type(*(a.dtype for a in arrays), jnp.float32)


def _ab_pair(pred_ab, target_ab, fn: str) -> tuple[jax.Array, jax.Array]:
  """Validated ``(..., 2)`` pair in ``promote(dtype, float32)``."""
  pred_ab, target_ab = jnp.asarray(pred_ab), jnp.asarray(target_ab)
  for name, x in (("pred_ab", pred_ab), ("target_ab", target_ab)):
    if x.ndim < 1 or x.shape[-1] != 2:
      raise ValueError(f"{fn}: `{name}` must be channel-last ab values of shape (..., 2); "
                       f"found shape {x.shape}.")
  if pred_ab.shape != target_ab.shape:
    raise ValueError(f"{fn}: `target_ab` must have the shape of `pred_ab` {pred_ab.shape}; "
                     f"found {target_ab.shape}.")
  dtype = _float_dtype(pred_ab, target_ab)
  return pred_ab.astype(dtype), target_ab.astype(dtype)


def _per_pixel(x, name: str, shape, dtype, fn: str) -> jax.Array:
  x = jnp.asarray(x)
  if x.shape != tuple(shape):
    raise ValueError(f"{fn}: `{name}` must have one value per pixel, shape {tuple(shape)} "
                     f"(pred_ab.shape[:-1]); found {x.shape}.")
  return x.astype(dtype)


def _norm2(x: jax.Array) -> jax.Array:
  """``||x||_2`` over the last axis, with a finite (zero) gradient at ``x = 0``."""
  s = jnp.sum(jnp.square(x), axis=-1)
  pos = s > 0
  return jnp.where(pos, jnp.sqrt(jnp.where(pos, s, 1.0)), 0.0)


def auc_thresholds(max_threshold: float = MAX_THRESHOLD, step: float = 1.0) -> np.ndarray:
  """The threshold sweep ``0, step, ..., max_threshold`` (inclusive), float64 numpy.

  The default is Zhang et al.'s (and the authors' ``AUC(step_size=1)``): 151 thresholds
  ``0..150`` in Lab ab units.
  """
  if not step > 0 or not max_threshold >= 0:
    raise ValueError(f"auc_thresholds: `step` must be > 0 and `max_threshold` >= 0; found "
                     f"step={step}, max_threshold={max_threshold}.")
  num = int(np.floor(max_threshold / step + 1e-9)) + 1
  return np.arange(num, dtype=np.float64) * step


def _thresholds(thresholds, dtype, fn: str) -> jax.Array:
  if thresholds is None:
    return jnp.asarray(auc_thresholds(), dtype)
  try:
    concrete = np.asarray(thresholds, dtype=np.float64)
  except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
    concrete = None  # traced: the caller guarantees a sorted 1-D array.
  if concrete is not None:
    if concrete.ndim != 1 or concrete.size == 0:
      raise ValueError(f"{fn}: `thresholds` must be a non-empty 1-D array; found shape "
                       f"{concrete.shape}.")
    if not np.all(np.isfinite(concrete)) or np.any(np.diff(concrete) < 0):
      raise ValueError(f"{fn}: `thresholds` must be finite and sorted ascending; found "
                       f"{concrete.tolist() if concrete.size <= 8 else concrete}.")
  t = jnp.asarray(thresholds).astype(dtype)
  if t.ndim != 1 or t.shape[0] == 0:
    raise ValueError(f"{fn}: `thresholds` must be a non-empty 1-D array; found shape {t.shape}.")
  return t


def ab_distance(pred_ab: jax.Array, target_ab: jax.Array) -> jax.Array:
  """The per-pixel ab error ``d_hw = ||Ŷ_hw - Y_hw||_2`` (Zhang et al. 2016 Sec. 3.1).

  Args:
    pred_ab: predicted ab ``(..., 2)`` in Lab units (roughly ``[-110, 110]``).
    target_ab: ground-truth ab, same shape.

  Returns:
    ``pred_ab.shape[:-1]``, dtype ``promote(dtype, float32)``.
  """
  pred_ab, target_ab = _ab_pair(pred_ab, target_ab, "ab_distance")
  return _norm2(pred_ab - target_ab)


def _counts(dist, weights, thresholds):
  """``(sum_i w_i 1[d_i <= t_k])_k`` and ``sum_i w_i`` via one histogram + cumsum, O(N + T)
  memory (never an ``(N, T)`` array). NaN distances are never within a threshold."""
  num_t = thresholds.shape[0]
  d = dist.reshape(-1)
  # First threshold index k with t_k >= d; the pixel counts for k and every later one.
  idx = jnp.searchsorted(thresholds, d, side="left")
  idx = jnp.where(jnp.isnan(d), num_t, idx)
  w = jnp.ones_like(d) if weights is None else weights.reshape(-1)
  hist = jnp.zeros(num_t + 1, d.dtype).at[idx].add(w)
  return jnp.cumsum(hist)[:num_t], jnp.sum(w)


def ab_accuracy_counts(pred_ab: jax.Array, target_ab: jax.Array, *,
                       thresholds: jax.Array | None = None, weights: jax.Array | None = None,
                       distance_scale: jax.Array | None = None
                       ) -> tuple[jax.Array, jax.Array]:
  """Streamable accuracy counts: ``counts_k = sum_i w_i 1[s_i d_i <= t_k]``, ``total = sum_i w_i``.

  Sum both over the batches of a dataset, then ``auc_from_curve(counts / total)`` is the
  pixel-pooled AuC of the whole set (the authors accumulate ``pos_cnt`` / ``tot_cnt`` the same
  way). ``w = 1`` and ``s = 1`` give :func:`auc_ab`; per-pixel ``w`` give
  :func:`rebalanced_auc_ab`; per-pixel ``s`` give :func:`rebalanced_auc_ab_kolinguo`.
  Counts are accumulated in the result dtype (float32 rounds past ``2^24`` pixels per call).

  Args:
    pred_ab: ``(..., 2)`` predicted ab, Lab units.
    target_ab: ``(..., 2)`` ground-truth ab, same shape.
    thresholds: ``(T,)`` sorted ascending, Lab units; ``None``: ``0, 1, ..., 150``.
    weights: optional ``pred_ab.shape[:-1]`` non-negative pixel weights ``w``.
    distance_scale: optional ``pred_ab.shape[:-1]`` factors ``s`` multiplying the distances.

  Returns:
    ``(counts (T,), total ())``, dtype ``promote(dtype, float32)``.
  """
  fn = "ab_accuracy_counts"
  pred_ab, target_ab = _ab_pair(pred_ab, target_ab, fn)
  dtype = pred_ab.dtype
  dist = _norm2(pred_ab - target_ab)
  if distance_scale is not None:
    dist = dist * _per_pixel(distance_scale, "distance_scale", dist.shape, dtype, fn)
  if weights is not None:
    weights = _per_pixel(weights, "weights", dist.shape, dtype, fn)
  return _counts(dist, weights, _thresholds(thresholds, dtype, fn))


def ab_accuracy_curve(pred_ab: jax.Array, target_ab: jax.Array, *,
                      thresholds: jax.Array | None = None,
                      weights: jax.Array | None = None) -> jax.Array:
  """The raw accuracy curve ``acc(t) = sum w 1[d <= t] / sum w`` (Zhang et al. 2016 Sec. 3.1).

  The fraction of pixels whose ab error ``d = ||Ŷ - Y||_2`` is within ``t`` (inclusive),
  pooled over every pixel given; non-decreasing in ``t``. ``weights`` (per pixel) give the
  rebalanced curve.

  Args:
    pred_ab: ``(..., 2)`` predicted ab, Lab units.
    target_ab: ``(..., 2)`` ground-truth ab, same shape.
    thresholds: ``(T,)`` sorted ascending, Lab units; ``None``: ``0, 1, ..., 150``.
    weights: optional ``pred_ab.shape[:-1]`` non-negative pixel weights.

  Returns:
    ``(T,)`` in ``[0, 1]``, dtype ``promote(dtype, float32)``.
  """
  counts, total = ab_accuracy_counts(pred_ab, target_ab, thresholds=thresholds,
                                     weights=weights)
  return counts / total


def auc_from_curve(curve: jax.Array, thresholds: jax.Array | None = None, *,
                   integration: str = "mean") -> jax.Array:
  """Normalised area under an accuracy curve.

  * ``"mean"`` (default; the authors' ``auc_compute_fn`` and the spec):
    ``AuC = (1/T) sum_k acc(t_k)`` -- ``T = 151`` for ``0..150``.
  * ``"trapezoid"``: ``trapz(acc, t) / (t_max - t_min)``, the area of the piecewise-linear
    curve (needs ``T >= 2``).

  Both are ``1`` for a perfect prediction and ``0`` when no pixel is within ``t_max``.

  Args:
    curve: ``(T,)`` accuracies (e.g. from :func:`ab_accuracy_curve` or ``counts / total``).
    thresholds: ``(T,)`` the curve's thresholds; only ``"trapezoid"`` uses them
      (``None``: ``0, 1, ..., 150``).
    integration: ``"mean"`` or ``"trapezoid"``.

  Returns:
    A scalar in ``[0, 1]``, dtype ``promote(curve.dtype, float32)``.
  """
  fn = "auc_from_curve"
  curve = jnp.asarray(curve)
  if curve.ndim != 1 or curve.shape[0] == 0:
    raise ValueError(f"{fn}: `curve` must be a non-empty 1-D array; found shape {curve.shape}.")
  curve = curve.astype(_float_dtype(curve))
  if integration == "mean":
    return jnp.mean(curve)
  if integration != "trapezoid":
    raise ValueError(f"{fn}: `integration` must be one of {INTEGRATIONS}; found "
                     f"{integration!r}.")
  t = _thresholds(thresholds, curve.dtype, fn)
  if t.shape != curve.shape or t.shape[0] < 2:
    raise ValueError(f"{fn}: 'trapezoid' needs T >= 2 thresholds matching `curve` "
                     f"{curve.shape}; found thresholds of shape {t.shape}.")
  area = jnp.sum(0.5 * (curve[1:] + curve[:-1]) * jnp.diff(t))
  return area / (t[-1] - t[0])


def auc_ab(pred_ab: jax.Array, target_ab: jax.Array, *, thresholds: jax.Array | None = None,
           weights: jax.Array | None = None, integration: str = "mean") -> jax.Array:
  """AuC of the ab accuracy curve (Zhang et al. 2016 Sec. 3.1; paper Sec. 3.2 "AuC").

  ``d_hw = ||Ŷ_hw - Y_hw||_2``; ``AuC = (1/151) sum_{t=0}^{150} mean_hw 1[d_hw <= t]``,
  pooled over all pixels given (every leading axis). A constant error ``d`` gives
  ``(150 - ceil(d) + 1) / 151``; a perfect prediction gives 1. See :func:`auc_from_curve`
  for ``integration``; ``weights`` give :func:`rebalanced_auc_ab`.

  Args:
    pred_ab: ``(..., 2)`` predicted ab, Lab units (e.g. ``(B, H, W, 2)``).
    target_ab: ``(..., 2)`` ground-truth ab, same shape.
    thresholds: ``(T,)`` sorted ascending, Lab units; ``None``: ``0, 1, ..., 150``.
    weights: optional ``pred_ab.shape[:-1]`` non-negative pixel weights.
    integration: ``"mean"`` (the authors') or ``"trapezoid"``.

  Returns:
    A scalar in ``[0, 1]``, dtype ``promote(dtype, float32)``.
  """
  pred_ab, target_ab = _ab_pair(pred_ab, target_ab, "auc_ab")
  thresholds = _thresholds(thresholds, pred_ab.dtype, "auc_ab")
  curve = ab_accuracy_curve(pred_ab, target_ab, thresholds=thresholds, weights=weights)
  return auc_from_curve(curve, thresholds, integration=integration)


def auc_rebalancing_weights(prior: jax.Array) -> jax.Array:
  """Per-bin weights of the rebalanced AuC: ``w(q) = 1 / p(q)``, normalised so that
  ``sum_q p(q) w(q) = 1`` (spec Sec. 3; Zhang et al. 2016 eq. (4) with ``lambda = 0``).

  The metric's version of :func:`jaxvision.ops.color.rebalancing_weights` (the training
  loss's, ``lambda = 1/2`` by default) at ``lam = 0``, except that bins with ``p = 0``
  (never seen in the prior's data) get weight **0** instead of ``inf``, so that a target in
  such a bin is ignored rather than turning the metric into NaN. The normalisation does not
  change the AuC (a ratio of weighted counts).

  Args:
    prior: ``(Q,)`` non-negative bin probabilities or counts, not all zero.

  Returns:
    ``(Q,)``, dtype ``promote(prior.dtype, float32)``.
  """
  prior = jnp.asarray(prior)
  if prior.ndim != 1 or prior.shape[0] == 0:
    raise ValueError(f"auc_rebalancing_weights: `prior` must be a non-empty (Q,) array; found "
                     f"shape {prior.shape}.")
  p = prior.astype(_float_dtype(prior))
  p = p / jnp.sum(p)
  seen = p > 0
  w = jnp.where(seen, 1.0 / jnp.where(seen, p, 1.0), 0.0)
  return w / jnp.sum(p * w)


def rebalanced_auc_ab(pred_ab: jax.Array, target_ab: jax.Array, *,
                      weights: jax.Array | None = None,
                      weights_fn: Callable[[jax.Array], jax.Array] | None = None,
                      thresholds: jax.Array | None = None,
                      integration: str = "mean") -> jax.Array:
  """Class-rebalanced AuC as Zhang et al. (2016) define it, spec Sec. 3 ("as intended").

  ``RebAuC = (1/151) sum_t sum_hw w_hw 1[d_hw <= t] / sum_hw w_hw`` with
  ``w_hw = w(q(Y_hw))``: the rebalancing weight (:func:`auc_rebalancing_weights`,
  ``1/p(q)``) of the ground truth's ab bin ``q``. When ``p`` is the empirical bin frequency
  of the pixels evaluated, this is exactly the mean over the occupied bins of the per-bin
  AuCs; all pixels in one bin give the plain AuC.

  Give exactly one of ``weights`` (per pixel, precomputed) or ``weights_fn``, a function of
  the *target* ab returning them, e.g.
  ``weights_fn=lambda ab: auc_rebalancing_weights(prior)[nearest_bin(ab)]``.

  Args:
    pred_ab: ``(..., 2)`` predicted ab, Lab units.
    target_ab: ``(..., 2)`` ground-truth ab, same shape.
    weights: ``pred_ab.shape[:-1]`` non-negative weights of the target pixels' bins.
    weights_fn: ``target_ab (..., 2) -> (...,)`` weights.
    thresholds: ``(T,)`` sorted ascending, Lab units; ``None``: ``0, 1, ..., 150``.
    integration: ``"mean"`` or ``"trapezoid"`` (:func:`auc_from_curve`).

  Returns:
    A scalar in ``[0, 1]``, dtype ``promote(dtype, float32)``.
  """
  fn = "rebalanced_auc_ab"
  if (weights is None) == (weights_fn is None):
    raise ValueError(f"{fn}: give exactly one of `weights` (per pixel) or `weights_fn` "
                     f"(target_ab -> per-pixel weights); found weights="
                     f"{'set' if weights is not None else None}, weights_fn={weights_fn!r}.")
  pred_ab, target_ab = _ab_pair(pred_ab, target_ab, fn)
  if weights is None:
    weights = weights_fn(target_ab)
  weights = _per_pixel(weights, "weights", pred_ab.shape[:-1], pred_ab.dtype, fn)
  return auc_ab(pred_ab, target_ab, thresholds=thresholds, weights=weights,
                integration=integration)


def kolinguo_distance_scale(prior: jax.Array) -> jax.Array:
  """Per-bin distance factors of the authors' ``RebalancedAUC``: ``(p - min p) / (max p -
  min p) * 20 + 1``, in ``[1, 21]`` (the most frequent bin gets 21).

  A constant prior (where the authors' code divides 0 by 0) gives all ones.

  Args:
    prior: ``(Q,)`` bin probabilities (the authors': 313 bins, 10-NN Gaussian-soft-assigned
      COCO frequencies, ``data/prior_probs_train2017.npy``).

  Returns:
    ``(Q,)``, dtype ``promote(prior.dtype, float32)``.
  """
  prior = jnp.asarray(prior)
  if prior.ndim != 1 or prior.shape[0] == 0:
    raise ValueError(f"kolinguo_distance_scale: `prior` must be a non-empty (Q,) array; found "
                     f"shape {prior.shape}.")
  p = prior.astype(_float_dtype(prior))
  span = jnp.max(p) - jnp.min(p)
  safe = jnp.where(span > 0, span, 1.0)
  return jnp.where(span > 0, (p - jnp.min(p)) / safe * 20.0 + 1.0, 1.0)


def rebalanced_auc_ab_kolinguo(pred_ab: jax.Array, target_ab: jax.Array, *,
                               scale: jax.Array | None = None,
                               scale_fn: Callable[[jax.Array], jax.Array] | None = None,
                               thresholds: jax.Array | None = None,
                               integration: str = "mean") -> jax.Array:
  """The "RebalancedAuC" the paper reports, as the authors' code computes it (spec Sec. 3).

  ``AuC`` of the *scaled* distances ``s_hw d_hw``: ``(1/151) sum_t mean_hw 1[s_hw d_hw <= t]``
  with ``s_hw`` = :func:`kolinguo_distance_scale` of the prior at the 1-NN bin of the
  **prediction** ``Ŷ_hw`` (``metrics.RebalancedAUC.update``: ``dist *= prior_probs[
  color_quant.encode_1hot(y_pred)]``). Unlike :func:`rebalanced_auc_ab` it re-scales errors
  instead of re-weighting pixels, keys on the predicted colour, and penalises *common*
  colours harder; with ``s >= 1`` it is ``<=`` the plain AuC, with equality for a perfect
  prediction (``d = 0``) or ``s = 1``.

  Give exactly one of ``scale`` (per pixel) or ``scale_fn``, a function of the *predicted*
  ab, e.g. ``scale_fn=lambda ab: kolinguo_distance_scale(prior)[nearest_bin(ab)]``.

  Args:
    pred_ab: ``(..., 2)`` predicted ab, Lab units.
    target_ab: ``(..., 2)`` ground-truth ab, same shape.
    scale: ``pred_ab.shape[:-1]`` distance factors of the predicted pixels' bins.
    scale_fn: ``pred_ab (..., 2) -> (...,)`` factors.
    thresholds: ``(T,)`` sorted ascending, Lab units; ``None``: ``0, 1, ..., 150``.
    integration: ``"mean"`` (the authors') or ``"trapezoid"``.

  Returns:
    A scalar in ``[0, 1]``, dtype ``promote(dtype, float32)``.
  """
  fn = "rebalanced_auc_ab_kolinguo"
  if (scale is None) == (scale_fn is None):
    raise ValueError(f"{fn}: give exactly one of `scale` (per pixel) or `scale_fn` "
                     f"(pred_ab -> per-pixel factors); found scale="
                     f"{'set' if scale is not None else None}, scale_fn={scale_fn!r}.")
  pred_ab, target_ab = _ab_pair(pred_ab, target_ab, fn)
  if scale is None:
    scale = scale_fn(pred_ab)
  thresholds = _thresholds(thresholds, pred_ab.dtype, fn)
  counts, total = ab_accuracy_counts(pred_ab, target_ab, thresholds=thresholds,
                                     distance_scale=scale)
  return auc_from_curve(counts / total, thresholds, integration=integration)


def _image_pair(pred, target, name: str, channels: int, fn: str):
  pred, target = jnp.asarray(pred), jnp.asarray(target)
  for arg, x in ((f"pred_{name}", pred), (f"target_{name}", target)):
    if x.ndim < 3 or x.shape[-1] != channels:
      raise ValueError(f"{fn}: `{arg}` must be channel-last images (..., H, W, {channels}); "
                       f"found shape {x.shape}.")
  if pred.shape != target.shape:
    raise ValueError(f"{fn}: `target_{name}` must have the shape of `pred_{name}` "
                     f"{pred.shape}; found {target.shape}.")
  dtype = _float_dtype(pred, target)
  return pred.astype(dtype), target.astype(dtype)


def psnr_rgb(pred_rgb: jax.Array, target_rgb: jax.Array, *, data_range: float = 1.0,
             reduction: str = "mean") -> jax.Array:
  """PSNR on sRGB images: ``10 log10(data_range^2 / MSE)`` per image, then averaged.

  The paper reports PSNR without defining it (spec Sec. 3: its values cannot be matched);
  the spec's default is sRGB in ``[0, 1]`` of ``lab2rgb(L_gt, ab_pred)`` against
  ``lab2rgb(L_gt, ab_gt)``. Convert first (``jaxvision.ops.color``); the MSE is over
  ``H, W`` and the 3 channels of each image. A perfect image gives ``inf``. This is
  :func:`jaxvision.metrics.spectral.psnr` with ``clamp=False`` on 3-channel images.

  Args:
    pred_rgb: ``(..., H, W, 3)`` sRGB in ``[0, data_range]``.
    target_rgb: same shape.
    data_range: the peak value (``1.0`` for ``[0, 1]`` floats, ``255`` for 8-bit).
    reduction: ``"mean"`` (the mean of the per-image PSNRs) or ``"none"`` (shape ``(...)``).

  Returns:
    A scalar (or ``(...)``) in dB, dtype ``promote(dtype, float32)``.
  """
  pred_rgb, target_rgb = _image_pair(pred_rgb, target_rgb, "rgb", 3, "psnr_rgb")
  return psnr(pred_rgb, target_rgb, data_range, clamp=False, reduction=reduction)


def rmse_ab(pred_ab: jax.Array, target_ab: jax.Array, *, ab_norm: float = 110.0) -> jax.Array:
  """RMSE of the ab channels in units of ``ab_norm``: ``sqrt(mean((Ŷ - Y)^2)) / ab_norm``.

  The mean is over every element (pixels of all leading axes *and* both channels, so the
  per-pixel Euclidean RMS error is ``sqrt(2)`` times this). The default ``ab_norm = 110``
  (Zhang's ``ab_norm``) is the spec's "normalised ab" default for the paper's undefined
  RMSE; ``ab_norm = 1`` gives Lab units.

  Args:
    pred_ab: ``(..., 2)`` predicted ab, Lab units.
    target_ab: ``(..., 2)`` ground-truth ab, same shape.
    ab_norm: the unit, ``> 0``.

  Returns:
    A scalar, dtype ``promote(dtype, float32)``.
  """
  pred_ab, target_ab = _ab_pair(pred_ab, target_ab, "rmse_ab")
  if not ab_norm > 0:
    raise ValueError(f"rmse_ab: `ab_norm` must be > 0; found {ab_norm}.")
  return jnp.sqrt(jnp.mean(jnp.square(pred_ab - target_ab))) / ab_norm


def colorfulness_hasler(rgb: jax.Array, *, input_range: float = 1.0) -> jax.Array:
  r"""Hasler & Süsstrunk (2003) colourfulness ``M = sigma_rgyb + 0.3 mu_rgyb`` per image.

  "Measuring colourfulness in natural images" (SPIE 5007), the metric ``\hat{M}^{(3)}`` on
  the (gamma-encoded) sRGB values: ``rg = R - G``, ``yb = (R + G)/2 - B``,
  ``sigma_rgyb = sqrt(sigma_rg^2 + sigma_yb^2)``, ``mu_rgyb = sqrt(mu_rg^2 + mu_yb^2)``,
  with the mean and the population standard deviation over the ``H x W`` pixels.

  Scale: ``M`` is linear in the pixel scale. The input is in ``[0, input_range]`` (``1.0``
  for float images, ``255`` for 8-bit values) and the result is always on the paper's
  **0-255 scale**, where its categories apply (not colourful 0, slightly 15, moderately 33,
  averagely 45, quite 59, highly 82, extremely 109). A grey image gives 0.

  Args:
    rgb: ``(..., H, W, 3)`` sRGB.
    input_range: the value of full intensity in ``rgb``, ``> 0``.

  Returns:
    ``(...)`` (a scalar for one image), dtype ``promote(dtype, float32)``.
  """
  rgb = jnp.asarray(rgb)
  if rgb.ndim < 3 or rgb.shape[-1] != 3:
    raise ValueError(f"colorfulness_hasler: `rgb` must be channel-last images (..., H, W, 3); "
                     f"found shape {rgb.shape}.")
  if not input_range > 0:
    raise ValueError(f"colorfulness_hasler: `input_range` must be > 0; found {input_range}.")
  rgb = rgb.astype(_float_dtype(rgb)) * (255.0 / input_range)
  r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
  opp = jnp.stack([r - g, 0.5 * (r + g) - b], axis=-1)     # (..., H, W, 2): rg, yb
  mu = jnp.mean(opp, axis=(-3, -2))                         # (..., 2)
  var = jnp.mean(jnp.square(opp - mu[..., None, None, :]), axis=(-3, -2))
  sigma = jnp.sqrt(jnp.sum(var, axis=-1))
  return sigma + 0.3 * _norm2(mu)


def mean_chroma(ab: jax.Array) -> jax.Array:
  """Mean LCh chroma ``mean_hw C_hw``, ``C = ||(a, b)||_2`` (paper eq. (2)), per image.

  The saturation the paper's chroma term targets: plain L2 regression drives it towards 0
  (grey); compare the prediction's with the ground truth's. Finite gradients at ``C = 0``.

  Args:
    ab: ``(..., H, W, 2)`` ab in Lab units.

  Returns:
    ``(...)`` (a scalar for one image), dtype ``promote(dtype, float32)``.
  """
  ab = jnp.asarray(ab)
  if ab.ndim < 3 or ab.shape[-1] != 2:
    raise ValueError(f"mean_chroma: `ab` must be channel-last ab images (..., H, W, 2); found "
                     f"shape {ab.shape}.")
  return jnp.mean(_norm2(ab.astype(_float_dtype(ab))), axis=(-2, -1))
