"""Tasks: how a model's outputs and a batch become a loss and metrics.

A task keeps the train step generic: it names the model input, the per-example
training loss and the per-example evaluation metrics. Methods with other
objectives register their own task; configs pick one by ``config.task``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax.numpy as jnp

from jaxvision import losses, metrics
from jaxvision.registry import Registry

TASKS: Registry = Registry("task")


@dataclasses.dataclass(frozen=True)
class Task:
  """Attributes:
    input_key: batch key fed to the model.
    loss: ``(outputs, batch) -> per-example loss (B,)``.
    train_metrics: ``(outputs, batch) -> {name: scalar}`` logged during training.
    eval_metrics: ``(outputs, batch) -> {name: per-example (B,)}``; the evaluator
      averages them over the real (unpadded) examples of the split.
  """
  input_key: str
  loss: Callable
  train_metrics: Callable
  eval_metrics: Callable


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
