"""Multi-modal trajectory losses: Laplace NLL, winner-take-all and soft-target confidence.

MambaTraj's ``L = L_reg + L_conf`` (paper eqs. 7-8, spec Sec. 2 "Losses"), with the
HiVT/QCNet conventions the paper leaves unstated:

* ``laplace_nll`` -- eq. (7), ``sum_{x,y} log(2b) + |y - mu| / b`` per future step.
* ``winner_take_all_laplace`` -- ``L_reg``: the NLL of the best of K modes, best being
  ``argmin_k sum_t ||mu_k^t - y^t||`` over the valid steps (HiVT/QCNet; "best" is undefined
  in the paper).
* ``soft_target_confidence`` -- eq. (8), ``L_conf``: cross-entropy between the mode logits
  and ``softmax_k(-err_k)``, ``err_k`` the mean L2 error of mode k, with stop-gradient.
* ``scale_from_raw`` -- the positive Laplace scale ``b = ELU(x) + 1 + eps``.

Shapes follow the decoder: ``A`` agents, ``K`` modes, ``F`` future steps, 2 coordinates.
Every loss is per agent, so the caller weights agents (``agent_predict``) and reduces.
Steps with ``valid == 0`` contribute nothing; their targets may hold any finite or
non-finite padding. An agent without a valid future step has loss 0 and zero gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxvision.ops.geometry import safe_norm

__all__ = [
    "laplace_nll",
    "scale_from_raw",
    "soft_target_confidence",
    "winner_take_all_laplace",
]


def scale_from_raw(x: jax.Array, eps: float = 1e-3) -> jax.Array:
  """A positive Laplace scale from an unconstrained output: ``ELU(x) + 1 + eps``.

  The HiVT/QCNet parameterisation (spec Sec. 2; HiVT's ``min_scale`` is 1e-3): smooth,
  ``b -> eps`` as ``x -> -inf``, ``b = x + 1 + eps`` for ``x > 0``.

  Args:
    x: float, any shape.
    eps: ``>= 0``, the lower bound of the scale.

  Returns:
    ``x``'s shape and dtype; every value is ``>= eps``.
  """
  if not float(eps) >= 0.0:
    raise ValueError(f"scale_from_raw: `eps` must be >= 0; found {eps}.")
  return jax.nn.elu(x) + 1.0 + eps


def _valid_steps(valid, shape: tuple[int, ...], name: str, fn: str) -> jax.Array:
  """``valid`` as float32 broadcast to ``shape`` (``None``: all ones)."""
  if valid is None:
    return jnp.ones(shape, jnp.float32)
  valid = jnp.asarray(valid)
  try:
    return jnp.broadcast_to(valid, shape).astype(jnp.float32)
  except ValueError:
    raise ValueError(f"{fn}: `{name}` must broadcast to {shape}; found {valid.shape}.") from None


def laplace_nll(loc: jax.Array, scale: jax.Array, target: jax.Array,
                valid: jax.Array | None = None) -> jax.Array:
  """Per-step negative log-likelihood of a factorised 2-D Laplace, paper eq. (7).

  ``nll_t = sum_{c in {x, y}} log(2 b_c^t) + |y_c^t - mu_c^t| / b_c^t``, set to 0 where
  ``valid`` is 0 (the target there is replaced before use, so padding cannot leak NaN).

  Args:
    loc: float ``(..., F, 2)``, the means ``mu``.
    scale: float ``(..., F, 2)``, ``b > 0`` (e.g. from ``scale_from_raw``).
    target: float ``(..., F, 2)``, broadcast-compatible with ``loc``.
    valid: optional ``(..., F)`` 0/1 (or bool) step mask; ``None`` = all valid.

  Returns:
    float32 ``(..., F)`` (the broadcast batch shape).
  """
  fn = "laplace_nll"
  loc, scale, target = (jnp.asarray(a, jnp.float32) for a in (loc, scale, target))
  for name, a in (("loc", loc), ("scale", scale), ("target", target)):
    if a.ndim < 2 or a.shape[-1] != 2:
      raise ValueError(f"{fn}: `{name}` must have shape (..., F, 2); found {a.shape}.")
  try:
    shape = jnp.broadcast_shapes(loc.shape, scale.shape, target.shape)
  except ValueError:
    raise ValueError(f"{fn}: `loc` {loc.shape}, `scale` {scale.shape} and `target` "
                     f"{target.shape} must broadcast together.") from None
  mask = _valid_steps(valid, shape[:-1], "valid", fn)
  target = jnp.where(mask[..., None] > 0, target, 0.0)
  nll = jnp.sum(jnp.log(2.0 * scale) + jnp.abs(target - loc) / scale, axis=-1)
  return jnp.where(mask > 0, nll, 0.0)


def _check_modes(loc, target, valid, fn: str):
  """Validates ``loc (A, K, F, 2)``, ``target (A, F, 2)``, ``valid (A, F)``; float32 copies."""
  loc, target = jnp.asarray(loc, jnp.float32), jnp.asarray(target, jnp.float32)
  if loc.ndim != 4 or loc.shape[-1] != 2:
    raise ValueError(f"{fn}: `loc` must have shape (A, K, F, 2); found {loc.shape}.")
  a, _, f, _ = loc.shape
  if target.shape != (a, f, 2):
    raise ValueError(f"{fn}: `target` must have shape {(a, f, 2)} like `loc` {loc.shape}; "
                     f"found {target.shape}.")
  valid = _valid_steps(valid, (a, f), "valid", fn)
  target = jnp.where(valid[..., None] > 0, target, 0.0)
  return loc, target, valid


def _mode_errors(loc: jax.Array, target: jax.Array, valid: jax.Array) -> jax.Array:
  """``(A, K, F)`` L2 displacement per mode and step, 0 on invalid steps."""
  return safe_norm(loc - target[:, None], axis=-1) * valid[:, None, :]


def winner_take_all_laplace(loc: jax.Array, scale: jax.Array, target: jax.Array,
                            valid: jax.Array | None) -> tuple[jax.Array, jax.Array]:
  """``L_reg`` of paper eq. (7): the Laplace NLL of each agent's best mode.

  ``best = argmin_k sum_t valid_t ||mu_k^t - y^t||`` (HiVT/QCNet; the lower index wins a
  tie) and ``loss = sum_t valid_t nll_t(best) / max(sum_t valid_t, 1)``: the mean NLL over
  the agent's valid steps. Only the best mode receives gradient. The spec's "averaged over
  A*F" is ``sum(loss * n_valid) / sum(n_valid)`` with ``n_valid = valid.sum(-1)``.

  Args:
    loc: float ``(A, K, F, 2)`` mode means.
    scale: float ``(A, K, F, 2)`` Laplace scales ``b > 0``.
    target: float ``(A, F, 2)`` ground truth (same frame as ``loc``).
    valid: ``(A, F)`` 0/1 step mask, or ``None`` for all valid.

  Returns:
    ``(loss, best_mode)``: float32 ``(A,)`` and int32 ``(A,)``. Agents without a valid step
    get loss 0 (and best mode 0).
  """
  fn = "winner_take_all_laplace"
  loc, target, valid = _check_modes(loc, target, valid, fn)
  scale = jnp.asarray(scale, jnp.float32)
  if scale.shape != loc.shape:
    raise ValueError(f"{fn}: `scale` must have shape {loc.shape} like `loc`; found "
                     f"{scale.shape}.")
  total = jnp.sum(_mode_errors(jax.lax.stop_gradient(loc), target, valid), axis=-1)
  best = jnp.argmin(total, axis=-1).astype(jnp.int32)
  pick = lambda x: jnp.take_along_axis(x, best[:, None, None, None], axis=1)[:, 0]
  nll = laplace_nll(pick(loc), pick(scale), target, valid)
  loss = jnp.sum(nll, axis=-1) / jnp.maximum(jnp.sum(valid, axis=-1), 1.0)
  return loss, best


def soft_target_confidence(logits: jax.Array, loc: jax.Array, target: jax.Array,
                           valid: jax.Array | None) -> jax.Array:
  """``L_conf`` of paper eq. (8): cross-entropy of the logits to a soft target.

  ``err_k = sum_t valid_t ||mu_k^t - y^t|| / sum_t valid_t`` (the per-mode mean L2 error),
  ``q = stop_gradient(softmax_k(-err_k))`` and ``loss = -sum_k q_k log_softmax(logits)_k``
  (HiVT's soft-target cross-entropy). No gradient reaches ``loc``. Agents without a valid
  step get loss 0.

  Args:
    logits: float ``(A, K)`` mode confidence logits.
    loc: float ``(A, K, F, 2)`` mode means.
    target: float ``(A, F, 2)``.
    valid: ``(A, F)`` 0/1 step mask, or ``None`` for all valid.

  Returns:
    float32 ``(A,)``.
  """
  fn = "soft_target_confidence"
  loc, target, valid = _check_modes(loc, target, valid, fn)
  logits = jnp.asarray(logits, jnp.float32)
  if logits.shape != loc.shape[:2]:
    raise ValueError(f"{fn}: `logits` must have shape {loc.shape[:2]} (A, K) like `loc` "
                     f"{loc.shape}; found {logits.shape}.")
  count = jnp.sum(valid, axis=-1)
  err = jnp.sum(_mode_errors(jax.lax.stop_gradient(loc), target, valid), axis=-1)
  err = err / jnp.maximum(count, 1.0)[:, None]
  soft = jax.nn.softmax(-err, axis=-1)
  loss = -jnp.sum(soft * jax.nn.log_softmax(logits, axis=-1), axis=-1)
  return jnp.where(count > 0, loss, 0.0)
