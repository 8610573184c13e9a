"""Tasks: how a model's outputs and a batch become a loss and metrics.

A task keeps the train step generic: it names the model input, the per-example
training loss and the per-example evaluation metrics. Methods with other
objectives register their own task; configs pick one by ``config.task``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxvision import losses, metrics, ops
from jaxvision.data import colorization as colorization_data
from jaxvision.registry import Registry

TASKS: Registry = Registry("task")


@dataclasses.dataclass(frozen=True)
class Task:
  """Attributes:
    input_key: the batch key fed to the model (its array is the model's input), or a
      tuple of keys (the model receives the dict of those arrays).
    loss: ``(outputs, batch) -> per-example loss (B,)``, or a scalar for a batch-level
      loss (Norm-in-Norm: a function of the whole global batch, which is what ``jit``
      over the sharded batch computes).
    train_metrics: ``(outputs, batch) -> {name: scalar}`` logged during training.
    eval_metrics: ``(outputs, batch) -> {name: per-example (B,)}``; the evaluator
      averages them over the real (unpadded) examples of the split.
    collect: optional ``(outputs, batch) -> {name: per-example (B,)}`` values gathered
      over the whole split for split-level metrics.
    summarize: optional ``(values, fit_values) -> {name: float}``, called on the host
      with the collected values of the evaluated split (numpy, padding removed) and,
      when ``fit_split == "train"``, those of the training split (else ``None``).
    fit_split: ``"train"`` if ``summarize`` needs the training split (e.g. to fit the
      prediction -> label mapping there, as IQA protocols do), else ``None``.
  """
  input_key: str | tuple[str, ...]
  loss: Callable
  train_metrics: Callable
  eval_metrics: Callable
  collect: Callable | None = None
  summarize: Callable | None = None
  fit_split: str | None = None

  def model_input(self, batch: dict):
    """The model's input taken from ``batch`` (an array, or a dict for a key tuple)."""
    keys = (self.input_key,) if isinstance(self.input_key, str) else self.input_key
    missing = [k for k in keys if k not in batch]
    if missing:
      raise KeyError(f"the batch lacks the model input key(s) {missing}; it has "
                     f"{sorted(batch)}.")
    if isinstance(self.input_key, str):
      return batch[self.input_key]
    return {k: batch[k] for k in keys}


@TASKS.register("classification")
def classification(loss_name: str = "softmax_cross_entropy", **loss_kwargs) -> Task:
  """Image classification: ``batch = {"image", "label"}``; metrics: accuracy (top-1),
  top-5 accuracy when there are more than 5 classes, and the loss."""
  loss_fn = losses.get_loss(loss_name)

  def loss(logits, batch):
    return loss_fn(logits, batch["label"], **loss_kwargs)

  def train_metrics(logits, batch):
    return {"accuracy": jnp.mean(metrics.topk_correct(logits, batch["label"], 1))}

  def eval_metrics(logits, batch):
    out = {"loss": loss(logits, batch),
           "accuracy": metrics.topk_correct(logits, batch["label"], 1)}
    if logits.shape[-1] > 5:
      out["top5_accuracy"] = metrics.topk_correct(logits, batch["label"], 5)
    return out

  return Task("image", loss, train_metrics, eval_metrics)


def create_task(config) -> Task:
  """The task of ``config.task`` with the loss of ``config.loss``."""
  factory = TASKS.get(config.task)
  try:
    return factory(config.loss.name, **dict(config.loss.kwargs))
  except TypeError as e:
    raise TypeError(f"task {config.task!r}: bad option in loss.kwargs: {e}") from None


SCENE_KEYS = ("agent_position", "agent_heading", "agent_velocity", "agent_valid", "agent_type",
              "agent_mask", "agent_predict", "map_start", "map_end", "map_type", "map_mask")
FOCAL = 0  # scene sources put the focal agent first (jaxvision.data.scenes / av2)


def forecasting_targets(outputs: dict, batch: dict):
  """Each agent's future in its own frame at the current step, and the step mask.

  The model predicts in the frame of each agent's pose at the last history step ``H - 1``
  (``H = T - F`` with ``F`` the predicted horizon), so the targets are rotated into it.

  Returns:
    ``(target (B, A, F, 2), valid (B, A, F))``; ``valid`` is the future's observed mask
    times ``agent_predict``.
  """
  horizon = outputs["loc"].shape[-2]
  pos, heading = batch["agent_position"], batch["agent_heading"]
  history = pos.shape[-2] - horizon
  if history < 1:
    raise ValueError(f"the model predicts {horizon} steps but the scenes have only "
                     f"{pos.shape[-2]} frames; expected history + future frames.")
  target = ops.to_local_frame(pos[:, :, history:], pos[:, :, history - 1:history],
                              heading[:, :, history - 1:history])
  valid = batch["agent_valid"][:, :, history:] * batch["agent_predict"][..., None]
  return target, valid


@TASKS.register("motion_forecasting")
def motion_forecasting(loss_name: str = "laplace_wta", confidence_weight: float = 1.0,
                       miss_threshold: float = 2.0, num_modes_scored: tuple = (1, 6)) -> Task:
  """Multi-agent motion forecasting (MambaTraj, spec icpr-13 Secs. 2-3).

  ``batch``: the scene fields (:data:`SCENE_KEYS`); the model receives them as a dict and
  returns ``{"loc", "scale": (B, A, K, F, 2), "logits": (B, A, K)}`` in each agent's frame.
  Loss per scene (eqs. 7-8): ``L_reg + confidence_weight * L_conf`` averaged over the agents
  with ``agent_predict = 1``. Evaluation follows the AV2 single-agent protocol on the focal
  agent (index 0): minADE_k, minFDE_k, MR_k for each ``k`` in ``num_modes_scored`` and
  brier-minFDE for the largest ``k``.
  """
  if loss_name != "laplace_wta":
    raise ValueError(f"task 'motion_forecasting': loss.name must be 'laplace_wta'; found "
                     f"{loss_name!r}.")
  per_scene = jax.vmap(lambda out, tgt, val: (
      losses.winner_take_all_laplace(out["loc"], out["scale"], tgt, val)[0],
      losses.soft_target_confidence(out["logits"], out["loc"], tgt, val)))

  def agent_losses(outputs, batch):
    target, valid = forecasting_targets(outputs, batch)
    reg, conf = per_scene(outputs, target, valid)
    weight = batch["agent_predict"] * (jnp.sum(valid, -1) > 0)
    norm = jnp.maximum(jnp.sum(weight, -1), 1.0)
    return jnp.sum(reg * weight, -1) / norm, jnp.sum(conf * weight, -1) / norm

  def loss(outputs, batch):
    reg, conf = agent_losses(outputs, batch)
    return reg + confidence_weight * conf

  def focal_metrics(outputs, batch):
    target, valid = forecasting_targets(outputs, batch)
    probs = jax.nn.softmax(outputs["logits"][:, FOCAL], axis=-1)
    out = {}
    for k in num_modes_scored:
      m = jax.vmap(lambda l, p, t, v: metrics.forecasting_metrics(
          l[None], p[None], t[None], v[None], k=k, miss_threshold=miss_threshold))(
              outputs["loc"][:, FOCAL], probs, target[:, FOCAL], valid[:, FOCAL])
      out.update({f"min_ade_{k}": m["min_ade"][:, 0], f"min_fde_{k}": m["min_fde"][:, 0],
                  f"miss_rate_{k}": m["miss"][:, 0]})
      if k == max(num_modes_scored):
        out[f"brier_min_fde_{k}"] = m["brier_min_fde"][:, 0]
    return out

  def train_metrics(outputs, batch):
    reg, conf = agent_losses(outputs, batch)
    k = max(num_modes_scored)
    m = focal_metrics(outputs, batch)
    return {"loss_reg": jnp.mean(reg), "loss_conf": jnp.mean(conf),
            f"min_fde_{k}": jnp.mean(m[f"min_fde_{k}"])}

  def eval_metrics(outputs, batch):
    return {"loss": loss(outputs, batch), **focal_metrics(outputs, batch)}

  return Task(SCENE_KEYS, loss, train_metrics, eval_metrics)


QUALITY_MAPPINGS = ("train", "self", "none")


@TASKS.register("quality_regression")
def quality_regression(loss_name: str = "norm_in_norm", head_weights: tuple | None = None,
                       monotonicity_weight: float = 0.0, mapping: str = "train",
                       **loss_kwargs) -> Task:
  """No-reference image quality assessment (Li, Jiang & Jiang, ACM MM 2020; spec Secs. 2-3).

  ``batch = {"image", "score"}`` (``score``: the MOS). The model returns ``(B,)`` or
  ``(B, K)`` float32 scores: column 0 the main prediction, columns ``1..`` auxiliary heads
  (LinearityIQA's per-level heads, in backbone order).

  Loss: ``sum_k head_weights[k] * loss(outputs[:, k], score)`` -- a weighted *sum* as the
  authors' code (``head_weights`` default ``(1, 0.1, ..., 0.1)``, i.e. (1, 0.1, 0.1) for two
  levels) -- plus ``monotonicity_regularizer(main, score, gamma=monotonicity_weight)`` (the
  code's pairwise ranking term; off by default, as the paper). ``loss_name`` is a batch-level loss of
  :mod:`jaxvision.losses.iqa` (``"norm_in_norm"``, ``"plcc"``, ``"mae"``, ``"mse"``) with
  ``loss_kwargs`` (``p``, ``q``, ``alpha``, ``eps``, ``num_groups``, ``detach`` for
  Norm-in-Norm). Under ``jit`` over a sharded batch it is the *global*-batch loss;
  ``num_groups=G`` computes it per group of ``B / G`` rows and averages, as the authors'
  PyTorch code does on ``G`` GPUs.

  Evaluation (host, float64, over the whole split): SROCC, KROCC, PLCC and RMSE of the main
  prediction after a least-squares linear mapping prediction -> MOS fitted on the training
  split (``mapping="train"``, the paper's ``IQAPerformance``; its RMSE is in MOS units),
  on the evaluated split itself (``"self"``), or none (``"none"``).
  """
  if mapping not in QUALITY_MAPPINGS:
    raise ValueError(f"task 'quality_regression': loss.kwargs.mapping must be one of "
                     f"{QUALITY_MAPPINGS}; found {mapping!r}.")
  loss_fn = losses.get_loss(loss_name)
  if monotonicity_weight < 0:
    raise ValueError(f"task 'quality_regression': loss.kwargs.monotonicity_weight must be "
                     f">= 0; found {monotonicity_weight}.")

  def head_scores(outputs):
    scores = outputs[:, None] if outputs.ndim == 1 else outputs
    if scores.ndim != 2:
      raise ValueError(f"quality_regression: the model must return scores (B,) or (B, K); "
                       f"found shape {outputs.shape}.")
    weights = head_weights
    if weights is None:
      weights = (1.0,) + (0.1,) * (scores.shape[1] - 1)
    if len(weights) != scores.shape[1]:
      raise ValueError(f"quality_regression: loss.kwargs.head_weights has {len(weights)} "
                       f"entries but the model returns {scores.shape[1]} score columns.")
    return scores, weights

  def loss(outputs, batch):
    scores, weights = head_scores(outputs)
    target = batch["score"]
    total = sum(w * loss_fn(scores[:, k], target, **loss_kwargs)
                for k, w in enumerate(weights) if w)
    if monotonicity_weight:
      total = total + losses.monotonicity_regularizer(scores[:, 0], target,
                                                      gamma=monotonicity_weight)
    return total

  def train_metrics(outputs, batch):
    scores, _ = head_scores(outputs)
    # The batch PLCC of the main head, from the eps-guarded PLCC loss (finite for constant
    # batches, which the NaN guard would otherwise stop on).
    return {"plcc": 1.0 - 2.0 * losses.plcc_loss(scores[:, 0], batch["score"])}

  def eval_metrics(outputs, batch):
    del outputs, batch
    return {}

  def collect(outputs, batch):
    scores, _ = head_scores(outputs)
    return {"prediction": scores[:, 0].astype(jnp.float32),
            "score": batch["score"].astype(jnp.float32)}

  def summarize(values, fit_values):
    with jax.enable_x64(True):
      pred = jnp.asarray(values["prediction"], jnp.float64)
      score = jnp.asarray(values["score"], jnp.float64)
      coeffs = None
      if mapping == "train":
        coeffs = metrics.fit_linear_mapping(jnp.asarray(fit_values["prediction"], jnp.float64),
                                            jnp.asarray(fit_values["score"], jnp.float64))
      elif mapping == "self":
        coeffs = metrics.fit_linear_mapping(pred, score)
      return {k: float(v) for k, v in metrics.iqa_performance(pred, score, coeffs).items()}

  return Task("image", loss, train_metrics, eval_metrics, collect=collect, summarize=summarize,
              fit_split="train" if mapping == "train" else None)


# ------------------------------------------------------------------------------------------
# Colorization: Mukhopadhyay et al., "Towards More Vibrant Image Colorization" (spec
# vibrant-colorization), and Zhang, Isola & Efros, "Colorful Image Colorization" (ECCV 2016).

COLORIZATION_LOSSES = ("chroma_l2", "rebalanced_cross_entropy")
COLORIZATION_PRIORS = ("uniform", "embedded", "file")
COLORIZATION_REDUCTIONS = ("sum", "mean")


@functools.lru_cache(maxsize=8)
def _embedded_prior(bin_grid: float, method: str, sigma: float) -> np.ndarray:
  bins = ops.ab_gamut_bins(bin_grid)
  samples = colorization_data.embedded_ab_samples("train")
  prior = np.asarray(ops.ab_prior(samples, bins, sigma=sigma, method=method), np.float64)
  prior.setflags(write=False)
  return prior


def colorization_prior(prior: str, bins: np.ndarray, *, prior_file: str = "",
                       method: str = "smooth", sigma: float = 5.0,
                       bin_grid: float = 10.0) -> np.ndarray | None:
  """The ab prior ``p~`` ``(Q,)`` over ``bins`` named by the task option ``prior``.

  * ``"uniform"``: ``None`` (no prior: the cross-entropy is unweighted, ``w = 1``).
  * ``"embedded"``: ``ops.ab_prior`` (``method``, ``sigma``) of the ab pixels of the
    ``embedded_colorization`` training photographs at native resolution (every 2nd pixel
    per axis, ~0.55M samples; a few seconds, computed once per process): the honest prior
    of the embedded data, and a rough stand-in for COCO's.
  * ``"file"``: a ``(Q,)`` ``.npy`` at ``prior_file``, e.g. the accumulated
    ``ops.ab_histogram`` of a COCO training pass normalised by ``ops.prior_from_histogram``
    (the authors ship ``prior_probs_train2017.npy`` over Zhang's 313 bins, which do not
    match these bins).
  """
  if prior not in COLORIZATION_PRIORS:
    raise ValueError(f"task 'colorization': loss.kwargs.prior must be one of "
                     f"{COLORIZATION_PRIORS}; found {prior!r}.")
  if prior == "uniform":
    return None
  if prior == "embedded":
    return _embedded_prior(float(bin_grid), method, float(sigma))
  path = os.path.expanduser(prior_file) if prior_file else ""
  if not path or not os.path.isfile(path):
    raise FileNotFoundError(f"task 'colorization': loss.kwargs.prior='file' needs "
                            f"loss.kwargs.prior_file, a .npy of shape ({len(bins)},); found "
                            f"{prior_file!r}.")
  p = np.asarray(np.load(path), np.float64)
  if p.shape != (len(bins),) or not np.all(p >= 0) or not p.sum() > 0:
    raise ValueError(f"task 'colorization': loss.kwargs.prior_file {prior_file!r} must hold "
                     f"({len(bins)},) non-negative probabilities (one per ab bin of grid "
                     f"{bin_grid}), not all zero; found shape {p.shape}.")
  return p / p.sum()


@TASKS.register("colorization")
def colorization(loss_name: str = "chroma_l2", gamma: float = 0.0, convention: str = "paper",
                 reduction: str = "sum", prior: str = "uniform", prior_file: str = "",
                 prior_method: str = "smooth", lam: float = 0.5, sigma: float = 5.0,
                 k: int = 5, temperature: float = 0.38, bin_grid: float = 10.0,
                 max_psnr: float = 100.0) -> Task:
  """Automatic colorization: predict the Lab ab channels from the lightness L.

  ``batch = {"L": (B, H, W, 1), "ab": (B, H, W, 2), "rgb": (B, H, W, 3)}``
  (:mod:`jaxvision.data.colorization`); the model receives ``batch["L"]``.

  Losses (``loss.name``), per example:

  * ``"chroma_l2"`` (the paper, eq. 2 without ``nu ||Theta||^2``, which is the optimiser's
    coupled weight decay): ``1/2 sum_hw ||Y - Y^||^2 + g sum_hw (C - C^)^2``
    (:func:`jaxvision.losses.chroma_l2`), ``g = gamma`` (``convention="paper"``) or
    ``2 gamma`` (``"code"``, the authors' ``--color-vivid-gamma``, in which Table 1's values
    presumably are). The model returns ab ``(B, H, W, 2)`` at the target resolution (the
    regression head with ``upsample=True``: ``eccv16_half``, ``eccv16``).
  * ``"rebalanced_cross_entropy"`` (Zhang et al. eqs. 2-4): the model returns logits
    ``(B, H/f, W/f, Q)`` over the ``Q`` in-gamut bins of ``ops.ab_gamut_bins(bin_grid)``
    (229 for grid 10: set ``model.num_bins = 229``, ``model.head = "classification"``);
    the target ab is subsampled to the logits' resolution (every ``f``-th pixel, Zhang's
    stride-4 ``data_ab_ss``), soft-encoded (``k`` neighbours, ``sigma``; the paper's 5 and
    5) and weighted by ``ops.rebalancing_weights(prior, lam)`` at its nearest bin, where
    the prior is :func:`colorization_prior` of ``prior`` (``"uniform"``: ``w = 1``).

  Scaling (``reduction``): ``"sum"`` (default) sums over pixels, as the paper's
  ``sum_hw`` and the authors' ``MSELoss_Vibrant`` (``/ batch_size`` is the engine's batch
  mean); ``"mean"`` divides by the number of pixels. This is not cosmetic: with Adam the
  update barely depends on the scale, but the paper's *coupled* weight decay (PyTorch
  ``Adam(weight_decay=1e-3)``, ``optax.add_decayed_weights``) is added to the gradient, so
  its relative strength is ``H W`` times larger under ``"mean"`` (16,384 at 128 x 128):
  keep ``"sum"`` to reproduce the recipe.

  Training metrics: the batch's mean predicted and target chroma (``chroma_pred``,
  ``chroma_target``; :func:`jaxvision.metrics.mean_chroma`).

  Evaluation (per image, averaged over the split; the prediction is the regression ab,
  or Zhang's annealed mean at ``temperature`` bilinearly upsampled for the classifier):
  ``loss``; ``auc`` (raw AuC, thresholds 0..150; with equal-sized images the mean of the
  per-image AuCs *is* the pixel-pooled AuC); ``chroma_pred`` / ``chroma_target``;
  ``colorfulness_pred`` / ``colorfulness_target`` (Hasler-Suesstrunk on the 0..255 scale of
  ``lab_to_rgb(L, ab^)`` and of ``rgb``); ``psnr`` (dB, ``lab_to_rgb(L, ab^)`` against
  ``rgb`` = ``lab_to_rgb(L, ab)`` to float rounding; capped at ``max_psnr``, so a perfect
  prediction gives a finite number); ``rmse_ab`` (per image, ab / 110); with a prior,
  ``rebalanced_auc_kolinguo`` (the authors' ``RebalancedAUC``, distances scaled at the
  prediction's bin). Split level (``collect``/``summarize``): ``rebalanced_auc``, Zhang's
  class-rebalanced AuC ``sum_q w_q S_q / sum_q w_q C_q`` over the target pixels' nearest
  bins (``S_q`` the summed per-pixel AuC, ``C_q`` the pixel count), with
  ``w = metrics.auc_rebalancing_weights(p)`` for ``p`` the task's prior, or, without one
  (``prior="uniform"``), the evaluated split's own bin frequency, which makes it the mean
  of the per-bin AuCs.
  """
  fn = "task 'colorization'"
  if loss_name not in COLORIZATION_LOSSES:
    raise ValueError(f"{fn}: loss.name must be one of {COLORIZATION_LOSSES}; found "
                     f"{loss_name!r}.")
  if reduction not in COLORIZATION_REDUCTIONS:
    raise ValueError(f"{fn}: loss.kwargs.reduction must be one of {COLORIZATION_REDUCTIONS}; "
                     f"found {reduction!r}.")
  if convention not in losses.colorization.CHROMA_CONVENTIONS:
    raise ValueError(f"{fn}: loss.kwargs.convention must be one of "
                     f"{losses.colorization.CHROMA_CONVENTIONS}; found {convention!r}.")
  if not isinstance(gamma, (int, float)) or not 0 <= gamma < float("inf"):
    raise ValueError(f"{fn}: loss.kwargs.gamma must be a finite number >= 0; found {gamma!r}.")
  if loss_name != "chroma_l2" and gamma:
    raise ValueError(f"{fn}: loss.kwargs.gamma applies to loss.name 'chroma_l2' only; found "
                     f"gamma={gamma!r} with {loss_name!r}.")
  if prior_method not in ops.color.PRIOR_METHODS:
    raise ValueError(f"{fn}: loss.kwargs.prior_method must be one of "
                     f"{ops.color.PRIOR_METHODS}; found {prior_method!r}.")
  classify = loss_name == "rebalanced_cross_entropy"
  bins_np = ops.ab_gamut_bins(bin_grid)
  num_bins = len(bins_np)
  bins = jnp.asarray(bins_np, jnp.float32)
  prior_np = colorization_prior(prior, bins_np, prior_file=prior_file, method=prior_method,
                                sigma=sigma, bin_grid=bin_grid)
  ce_weights = kolinguo_scale = None
  if prior_np is not None:
    kolinguo_scale = jnp.asarray(metrics.kolinguo_distance_scale(prior_np), jnp.float32)
    if classify:
      ce_weights = jnp.asarray(ops.rebalancing_weights(prior_np, lam=lam), jnp.float32)
  thresholds = jnp.asarray(metrics.auc_thresholds(), jnp.float32)

  def check(outputs, batch):
    target = batch["ab"]
    if classify:
      ok = (outputs.ndim == 4 and outputs.shape[-1] == num_bins
            and outputs.shape[0] == target.shape[0] and outputs.shape[1] > 0
            and outputs.shape[2] > 0 and target.shape[1] % outputs.shape[1] == 0
            and target.shape[2] % outputs.shape[2] == 0)
      if not ok:
        raise ValueError(f"colorization: with loss.name 'rebalanced_cross_entropy' the model "
                         f"must return logits (B, H/f, W/f, Q) with Q = {num_bins} ab bins "
                         f"(model.head='classification', model.num_bins={num_bins}) for "
                         f"targets {target.shape}; found {outputs.shape}.")
    elif outputs.shape != target.shape:
      raise ValueError(f"colorization: the model must return ab of the target's shape "
                       f"{target.shape} (a regression head at full resolution: "
                       f"model.upsample=True, e.g. eccv16_half); found {outputs.shape}.")

  def predicted_ab(outputs, batch):
    check(outputs, batch)
    if not classify:
      return outputs
    ab = ops.decode_ab_annealed_mean(outputs, bins, temperature=temperature, from_logits=True)
    return jax.image.resize(ab, batch["ab"].shape, method="bilinear", antialias=False)

  def loss(outputs, batch):
    check(outputs, batch)
    target = batch["ab"]
    if classify:
      fh, fw = target.shape[1] // outputs.shape[1], target.shape[2] // outputs.shape[2]
      per_example = losses.rebalanced_soft_cross_entropy(
          outputs, target[:, ::fh, ::fw], bins, ce_weights, sigma=sigma, k=k)
    else:
      per_example = losses.chroma_l2(outputs, target, gamma=gamma, convention=convention)
    if reduction == "mean":
      per_example = per_example / (outputs.shape[1] * outputs.shape[2])
    return per_example

  def nearest_bin(ab):
    d = ab[..., None, :] - bins
    return jnp.argmin(d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1], axis=-1)

  def train_metrics(outputs, batch):
    pred = predicted_ab(outputs, batch)
    return {"chroma_pred": jnp.mean(metrics.mean_chroma(pred)),
            "chroma_target": jnp.mean(metrics.mean_chroma(batch["ab"]))}

  def eval_metrics(outputs, batch):
    pred, target = predicted_ab(outputs, batch), batch["ab"]
    pred_rgb = ops.lab_to_rgb(jnp.concatenate([batch["L"], pred], axis=-1))
    psnr = metrics.psnr_rgb(pred_rgb, batch["rgb"], reduction="none")
    out = {"loss": loss(outputs, batch),
           "auc": jax.vmap(metrics.auc_ab)(pred, target),
           "chroma_pred": metrics.mean_chroma(pred),
           "chroma_target": metrics.mean_chroma(target),
           "colorfulness_pred": metrics.colorfulness_hasler(pred_rgb),
           "colorfulness_target": metrics.colorfulness_hasler(batch["rgb"]),
           "psnr": jnp.minimum(psnr, max_psnr),
           "rmse_ab": jax.vmap(metrics.rmse_ab)(pred, target)}
    if kolinguo_scale is not None:
      scale = kolinguo_scale[nearest_bin(pred)]
      out["rebalanced_auc_kolinguo"] = jax.vmap(
          lambda p, t, s: metrics.rebalanced_auc_ab_kolinguo(p, t, scale=s))(pred, target, scale)
    return out

  def collect(outputs, batch):
    pred, target = predicted_ab(outputs, batch), batch["ab"]
    dist = metrics.ab_distance(pred, target).reshape(target.shape[0], -1)
    # Per pixel (1/T) sum_t 1[d <= t]: T minus the number of thresholds below d, over T.
    t = thresholds.shape[0]
    pixel_auc = (t - jnp.searchsorted(thresholds, dist, side="left")) / t
    q = nearest_bin(target).reshape(target.shape[0], -1)
    per_bin = jax.vmap(lambda v, i: jax.ops.segment_sum(v, i, num_segments=num_bins))
    return {"bin_auc": per_bin(pixel_auc.astype(jnp.float32), q),
            "bin_count": per_bin(jnp.ones_like(dist), q)}

  def summarize(values, fit_values):
    del fit_values
    s = np.asarray(values["bin_auc"], np.float64).sum(0)
    c = np.asarray(values["bin_count"], np.float64).sum(0)
    with jax.enable_x64(True):
      w = np.asarray(metrics.auc_rebalancing_weights(
          jnp.asarray(c if prior_np is None else prior_np, jnp.float64)), np.float64)
    den = float(np.sum(w * c))
    return {"rebalanced_auc": float(np.sum(w * s)) / den if den > 0 else float("nan")}

  return Task("L", loss, train_metrics, eval_metrics, collect=collect, summarize=summarize)


SPECTRAL_LOSSES = ("mrae", "l1", "mse")


@TASKS.register("spectral_reconstruction")
def spectral_reconstruction(loss_name: str = "mrae", zero_guard: bool = True, border: int = 0,
                            data_range: float = 1.0, sam_eps: float = 1e-8) -> Task:
  """Spectral reconstruction: RGB ``(B, H, W, 3)`` in ``[0, 1]`` -> a cube ``(B, H, W, bands)``.

  ``batch = {"rgb", "cube"}`` (:mod:`jaxvision.data.spectral`); the model receives
  ``batch["rgb"]`` and returns the cube at the input's size.

  Loss per example (``loss.name``): ``"mrae"`` (the paper's and MST++'s training loss,
  ``mean |ŷ - y| / y`` with ``Loss_MRAE_custom``'s guard of ``y == 0`` when
  ``zero_guard``; :func:`jaxvision.metrics.mrae`), ``"l1"`` or ``"mse"``; the engine
  averages it over the batch, which for equal-sized crops is MST++'s pooled mean.

  Evaluation, per image and averaged over the split, as MST++'s ``validate`` (batch size 1,
  ``AverageMeter`` of per-image values): ``mrae``, ``rmse`` (``[0, 1]`` units), ``psnr``
  (both clamped to ``[0, data_range]``), ``sam`` (degrees), on the centre
  ``[border:-border, border:-border]`` (``border=128`` is MST++'s validation crop of the
  482 x 512 NTIRE images; 0 for small crops). Training metric: the batch's ``rmse``.
  """
  fn = "task 'spectral_reconstruction'"
  if loss_name not in SPECTRAL_LOSSES:
    raise ValueError(f"{fn}: loss.name must be one of {SPECTRAL_LOSSES}; found {loss_name!r}.")
  if isinstance(border, bool) or not isinstance(border, int) or border < 0:
    raise ValueError(f"{fn}: loss.kwargs.border must be an int >= 0; found {border!r}.")

  def check(outputs, batch):
    if outputs.shape != batch["cube"].shape:
      raise ValueError(f"spectral_reconstruction: the model must return the cube's shape "
                       f"{batch['cube'].shape} (B, H, W, bands); found {outputs.shape}.")

  def per_image(metric):
    return jax.vmap(lambda p, t: metric(p[None], t[None]))

  def loss(outputs, batch):
    check(outputs, batch)
    target = batch["cube"]
    if loss_name == "mrae":
      return per_image(functools.partial(metrics.mrae, zero_guard=zero_guard))(outputs, target)
    err = outputs.astype(jnp.float32) - target.astype(jnp.float32)
    err = jnp.abs(err) if loss_name == "l1" else jnp.square(err)
    return jnp.mean(err, axis=tuple(range(1, err.ndim)))

  def train_metrics(outputs, batch):
    check(outputs, batch)
    return {"rmse": metrics.rmse(outputs, batch["cube"])}

  def eval_metrics(outputs, batch):
    check(outputs, batch)
    pred = metrics.crop_border(outputs, border)
    target = metrics.crop_border(batch["cube"], border)
    return {"loss": loss(outputs, batch),
            "mrae": per_image(functools.partial(metrics.mrae, zero_guard=zero_guard))(
                pred, target),
            "rmse": per_image(metrics.rmse)(pred, target),
            "psnr": metrics.psnr(pred, target, data_range, reduction="none"),
            "sam": per_image(functools.partial(metrics.sam, eps=sam_eps))(pred, target)}

  return Task("rgb", loss, train_metrics, eval_metrics)
