"""Classification metrics: pure functions of arrays, per-example outputs.

Per-example values (rather than means) let callers weight padded evaluation
examples with a mask and sum exactly across batches and devices.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def topk_correct(logits: jax.Array, labels: jax.Array, k: int = 1) -> jax.Array:
  """1.0 where ``labels`` is among the ``k`` largest ``logits``, else 0.0.

  Ties are broken towards the lower class index (as ``argmax`` does).

  Args:
    logits: float ``(..., num_classes)``.
    labels: int ``(...)``.
    k: ``1 <= k <= num_classes``.

  Returns:
    float32 ``(...)``.
  """
  num_classes = logits.shape[-1]
  if not 1 <= k <= num_classes:
    raise ValueError(f"topk_correct: `k` must be in [1, {num_classes}]; found {k}.")
  if logits.shape[:-1] != labels.shape:
    raise ValueError(f"topk_correct: `labels` shape must be {logits.shape[:-1]}; "
                     f"found {labels.shape}.")
  if k == 1:
    return (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
  label_logit = jnp.take_along_axis(logits, labels[..., None], axis=-1)
  class_ids = jnp.arange(num_classes)
  # Classes ranked strictly ahead of the label: larger logit, or equal logit and lower index.
  ahead = (logits > label_logit) | ((logits == label_logit) & (class_ids < labels[..., None]))
  return (jnp.sum(ahead, axis=-1) < k).astype(jnp.float32)


def accuracy(logits: jax.Array, labels: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """Top-1 accuracy, a float32 scalar; ``mask`` (``(...)``, 0/1) excludes padding."""
  correct = topk_correct(logits, labels, 1)
  if mask is None:
    return jnp.mean(correct)
  return jnp.sum(correct * mask) / jnp.maximum(jnp.sum(mask), 1.0)
