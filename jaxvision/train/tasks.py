"""Tasks: how a model's outputs and a batch become a loss and metrics.

A task keeps the train step generic: it names the model input, the per-example
training loss and the per-example evaluation metrics. Methods with other
objectives register their own task; configs pick one by ``config.task``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from jaxvision import losses, metrics, ops
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
