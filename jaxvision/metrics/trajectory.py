"""Argoverse 2 motion-forecasting metrics over the k most probable modes (spec Sec. 3).

Per-agent values, so padded or unscored agents are weighted out by the caller (e.g. with
``agent_predict``) and sums stay exact across batches and devices.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from jaxvision.ops.geometry import safe_norm

__all__ = ["forecasting_metrics"]


@functools.partial(jax.jit, static_argnames=("k", "miss_threshold"))
def forecasting_metrics(loc: jax.Array, probs: jax.Array, target: jax.Array,
                        valid: jax.Array | None, *, k: int = 6,
                        miss_threshold: float = 2.0) -> dict[str, jax.Array]:
  """minADE_k, minFDE_k, MR_k and brier-minFDE_k of each agent (AV2 / QCNet semantics).

  1. Keep the ``k`` most probable modes (``lax.top_k``; the lower index wins a probability
     tie) and renormalise their probabilities to sum to 1 (QCNet ``metrics.utils.topk``;
     av2 ``compute_brier_fde(..., normalize=True)``). ``k`` larger than K is clipped to K.
  2. ``FDE_m = ||mu_m^T - y^T||`` at the final step ``T`` (av2 ``compute_fde``);
     ``min_fde = min_m FDE_m``, attained by mode ``m*`` (the more probable mode on a tie).
  3. ``min_ade`` is the ADE of ``m*`` -- the min-FDE mode, not the ``argmin`` of ADE -- the
     AV2 convention (av2 ``compute_ade``: the mean displacement over the steps).
  4. ``miss = [min_fde > miss_threshold]`` (av2 ``compute_is_missed_prediction``, 2 m).
  5. ``brier_min_fde = min_fde + (1 - p_{m*})^2`` (av2 ``compute_brier_fde``).

  **Erratum (spec Sec. 3).** The paper writes brier-minFDE as ``(1 - p)^2 x minFDE``; the
  AV2 API *adds* the Brier term, ``minFDE + (1 - p)^2``, and so does this function.

  **Invalid steps.** AV2 scores only agents with a complete future, so there every step is
  valid and the above is exactly the AV2 definition. For a partly observed future this
  follows QCNet's ``keep_invalid_final_step=True``: ``T`` is the agent's *last valid* step
  and ADE averages over its valid steps only. Agents with no valid step get 0 for every
  metric and ``evaluated = 0``.

  Args:
    loc: float ``(A, K, F, 2)`` predicted positions.
    probs: float ``(A, K)`` mode probabilities (e.g. ``softmax(logits)``); any non-negative
      weights, they are renormalised over the kept modes.
    target: float ``(A, F, 2)`` ground truth, in the frame of ``loc``.
    valid: ``(A, F)`` 0/1 step mask, or ``None`` for all valid.
    k: the number of modes scored, ``>= 1`` (6 for the AV2 leaderboard, 1 for minFDE_1);
      static under the function's ``jax.jit``.
    miss_threshold: metres; static.

  Returns:
    A dict of float32 ``(A,)`` arrays: ``min_ade``, ``min_fde``, ``miss`` (0/1),
    ``brier_min_fde`` and ``evaluated`` (1 where the agent has a valid future step).
  """
  fn = "forecasting_metrics"
  loc, probs, target = (jnp.asarray(a, jnp.float32) for a in (loc, probs, target))
  if loc.ndim != 4 or loc.shape[-1] != 2:
    raise ValueError(f"{fn}: `loc` must have shape (A, K, F, 2); found {loc.shape}.")
  a, num_modes, f, _ = loc.shape
  if probs.shape != (a, num_modes):
    raise ValueError(f"{fn}: `probs` must have shape {(a, num_modes)} (A, K) like `loc` "
                     f"{loc.shape}; found {probs.shape}.")
  if target.shape != (a, f, 2):
    raise ValueError(f"{fn}: `target` must have shape {(a, f, 2)} like `loc` {loc.shape}; "
                     f"found {target.shape}.")
  if isinstance(k, bool) or not isinstance(k, int) or k < 1:
    raise ValueError(f"{fn}: `k` must be an int >= 1; found {k!r}.")
  if valid is None:
    valid = jnp.ones((a, f), jnp.float32)
  valid = jnp.asarray(valid)
  if valid.shape != (a, f):
    raise ValueError(f"{fn}: `valid` must have shape {(a, f)} (A, F); found {valid.shape}.")
  valid = valid.astype(bool)

  k = min(k, num_modes)
  top_p, top_idx = lax.top_k(probs, k)                              # (A, k), descending
  top_p = top_p / jnp.maximum(jnp.sum(top_p, axis=-1, keepdims=True), 1e-12)
  top_loc = jnp.take_along_axis(loc, top_idx[:, :, None, None], axis=1)   # (A, k, F, 2)
  target = jnp.where(valid[..., None], target, 0.0)
  dist = safe_norm(top_loc - target[:, None], axis=-1)               # (A, k, F)

  steps = jnp.arange(f)
  last = jnp.argmax(jnp.where(valid, steps, -1), axis=-1)            # last valid step
  fde = jnp.take_along_axis(dist, last[:, None, None], axis=-1)[..., 0]   # (A, k)
  best = jnp.argmin(fde, axis=-1)
  min_fde = jnp.take_along_axis(fde, best[:, None], axis=-1)[:, 0]
  count = jnp.sum(valid, axis=-1).astype(jnp.float32)
  ade = jnp.sum(jnp.where(valid[:, None], dist, 0.0), axis=-1) / jnp.maximum(count, 1.0)[:, None]
  min_ade = jnp.take_along_axis(ade, best[:, None], axis=-1)[:, 0]
  p_best = jnp.take_along_axis(top_p, best[:, None], axis=-1)[:, 0]

  evaluated = count > 0
  out = {
      "min_ade": min_ade,
      "min_fde": min_fde,
      "miss": (min_fde > miss_threshold).astype(jnp.float32),
      "brier_min_fde": min_fde + jnp.square(1.0 - p_best),
  }
  out = {name: jnp.where(evaluated, value, 0.0) for name, value in out.items()}
  out["evaluated"] = evaluated.astype(jnp.float32)
  return out
