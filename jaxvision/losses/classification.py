"""Classification losses: pure functions of arrays, per-example outputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxvision.losses.registry import register_loss


@register_loss("softmax_cross_entropy")
def softmax_cross_entropy(logits: jax.Array, labels: jax.Array, *,
                          label_smoothing: float = 0.0) -> jax.Array:
  """Per-example cross-entropy ``-sum_c q_c log softmax(logits)_c``.

  Args:
    logits: float ``(..., num_classes)``.
    labels: int ``(...)`` class indices in ``[0, num_classes)``.
    label_smoothing: ``eps``; the target is ``q = (1 - eps) onehot + eps / num_classes``
      (Szegedy et al., 2016, Sec. 7).

  Returns:
    float32 ``(...)``.
  """
  if logits.shape[:-1] != labels.shape:
    raise ValueError(f"softmax_cross_entropy: `labels` shape must equal `logits` shape without "
                     f"its class axis, {logits.shape[:-1]}; found {labels.shape}.")
  if not 0.0 <= label_smoothing < 1.0:
    raise ValueError(f"`label_smoothing` must be in [0, 1); found {label_smoothing}.")
  num_classes = logits.shape[-1]
  targets = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
  if label_smoothing:
    targets = optax.smooth_labels(targets, label_smoothing)
  return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)
