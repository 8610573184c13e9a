"""Optimizers and learning-rate schedules chosen by name from a config.

``create_optimizer(config.optimizer, total_steps)`` returns the optax
transformation and its learning-rate schedule (which the trainer logs). The
config section is::

  optimizer.name            registered optimizer ("sgd", "adamw", "adam")
  optimizer.learning_rate   peak learning rate
  optimizer.schedule        "constant" | "cosine" | "linear" (decay after warmup)
  optimizer.warmup_steps    linear warmup from 0 to the peak
  optimizer.end_lr_factor   final rate as a fraction of the peak (cosine, linear)
  optimizer.schedule_kwargs schedule-specific options ("step": every_steps, factor)
  optimizer.weight_decay    decay coefficient (coupled L2 for sgd/adam, decoupled for adamw)
  optimizer.decay_all_params  also decay 1-D parameters (BatchNorm scales, biases)
  optimizer.grad_clip_norm  clip by global norm first; 0 disables
  optimizer.kwargs          optimizer-specific options (momentum, nesterov, b1, b2, eps)
  optimizer.lr_multipliers  {regex on parameter paths: factor}: those parameters train at
                            factor x the rate (PyTorch parameter groups; e.g.
                            {"^backbone/": 0.1}, LinearityIQA's fine-tuned rate)
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import optax

from jaxvision.optim.paths import scale_by_path
from jaxvision.registry import Registry

OPTIMIZERS: Registry = Registry("optimizer")
SCHEDULES: Registry = Registry("schedule")
register_optimizer = OPTIMIZERS.register


def matrix_params_mask(params: Any) -> Any:
  """True for parameters with ``ndim > 1`` (kernels), False for scales and biases."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


@SCHEDULES.register("constant")
def _constant(peak: float, decay_steps: int, end_lr_factor: float) -> optax.Schedule:
  del decay_steps, end_lr_factor
  return optax.constant_schedule(peak)


@SCHEDULES.register("cosine")
def _cosine(peak: float, decay_steps: int, end_lr_factor: float) -> optax.Schedule:
  return optax.cosine_decay_schedule(peak, max(decay_steps, 1), alpha=end_lr_factor)


@SCHEDULES.register("linear")
def _linear(peak: float, decay_steps: int, end_lr_factor: float) -> optax.Schedule:
  return optax.linear_schedule(peak, peak * end_lr_factor, max(decay_steps, 1))


@SCHEDULES.register("step")
def _step(peak: float, decay_steps: int, end_lr_factor: float, *, every_steps: int,
          factor: float = 0.1) -> optax.Schedule:
  """PyTorch ``StepLR``: ``peak * factor ** (t // every_steps)``."""
  del decay_steps, end_lr_factor
  if every_steps <= 0:
    raise ValueError(f"optimizer.schedule_kwargs.every_steps must be positive; found "
                     f"{every_steps}.")
  return optax.exponential_decay(peak, every_steps, factor, staircase=True)


def create_schedule(name: str, *, learning_rate: float, total_steps: int, warmup_steps: int = 0,
                    end_lr_factor: float = 0.0, **schedule_kwargs) -> optax.Schedule:
  """Linear warmup from 0 over ``warmup_steps``, then schedule ``name`` until ``total_steps``.

  ``schedule_kwargs`` are the schedule's own options (``every_steps``/``factor`` for
  ``"step"``)."""
  if learning_rate < 0:
    raise ValueError(f"optimizer.learning_rate must be >= 0; found {learning_rate}.")
  if not 0 <= warmup_steps <= total_steps:
    raise ValueError(f"optimizer.warmup_steps must be in [0, total_steps={total_steps}]; "
                     f"found {warmup_steps}.")
  try:
    decay = SCHEDULES.get(name)(learning_rate, total_steps - warmup_steps, end_lr_factor,
                                **schedule_kwargs)
  except TypeError as e:
    raise TypeError(f"schedule {name!r}: bad option in optimizer.schedule_kwargs: {e}") from None
  if not warmup_steps:
    return decay
  warmup = optax.linear_schedule(0.0, learning_rate, warmup_steps)
  return optax.join_schedules([warmup, decay], [warmup_steps])


@register_optimizer("sgd")
def _sgd(schedule, weight_decay, decay_mask, momentum: float = 0.9,
         nesterov: bool = False) -> optax.GradientTransformation:
  """PyTorch ``SGD`` semantics: ``g + wd * w`` (coupled L2), then (Nesterov) momentum."""
  return optax.chain(optax.add_decayed_weights(weight_decay, decay_mask),
                     optax.sgd(schedule, momentum=momentum or None, nesterov=nesterov))


@register_optimizer("adam")
def _adam(schedule, weight_decay, decay_mask, b1: float = 0.9, b2: float = 0.999,
          eps: float = 1e-8) -> optax.GradientTransformation:
  """Adam with coupled L2 weight decay (PyTorch ``Adam(weight_decay=...)``)."""
  return optax.chain(optax.add_decayed_weights(weight_decay, decay_mask),
                     optax.adam(schedule, b1=b1, b2=b2, eps=eps))


@register_optimizer("adamw")
def _adamw(schedule, weight_decay, decay_mask, b1: float = 0.9, b2: float = 0.999,
           eps: float = 1e-8) -> optax.GradientTransformation:
  """AdamW (Loshchilov & Hutter, 2019): decoupled decay scaled by the learning rate."""
  return optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay,
                     mask=decay_mask)


def create_optimizer(opt_config, total_steps: int
                     ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """Builds ``(tx, schedule)`` from the ``config.optimizer`` section (module docstring)."""
  schedule = create_schedule(opt_config.schedule, learning_rate=opt_config.learning_rate,
                             total_steps=total_steps, warmup_steps=opt_config.warmup_steps,
                             end_lr_factor=opt_config.end_lr_factor,
                             **dict(opt_config.get("schedule_kwargs", {})))
  if opt_config.weight_decay < 0:
    raise ValueError(f"optimizer.weight_decay must be >= 0; found {opt_config.weight_decay}.")
  decay_mask: Callable | None = None if opt_config.decay_all_params else matrix_params_mask
  kwargs = dict(opt_config.kwargs)
  try:
    tx = OPTIMIZERS.get(opt_config.name)(schedule, opt_config.weight_decay, decay_mask, **kwargs)
  except TypeError as e:
    raise TypeError(f"optimizer {opt_config.name!r}: bad option in optimizer.kwargs "
                    f"{sorted(kwargs)}: {e}") from None
  multipliers = dict(opt_config.get("lr_multipliers", {}))
  if multipliers:
    tx = optax.chain(tx, scale_by_path(multipliers))
  if opt_config.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(opt_config.grad_clip_norm), tx)
  return tx, schedule


def list_optimizers(pattern: str = "*") -> list[str]:
  return OPTIMIZERS.list(pattern)
