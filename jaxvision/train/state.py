"""The train state: everything a step reads and writes, as one pytree."""

from __future__ import annotations

from typing import Any, Callable

import flax.struct
import jax
import optax


class TrainState(flax.struct.PyTreeNode):
  """Parameters, other Flax collections, optimizer state, step and RNG.

  Attributes:
    step: int32 scalar, optimizer steps taken.
    params: the ``"params"`` collection.
    model_state: the other mutable collections (e.g. ``{"batch_stats": ...}``).
    opt_state: the optax state.
    rng: uint32 ``(2,)`` base key; step ``t`` uses ``fold_in(rng, t)``, so no key
      is ever carried forward and resuming at any step reproduces the stream.
    apply_fn, tx: static (not part of the pytree, not checkpointed).
  """
  step: jax.Array
  params: Any
  model_state: Any
  opt_state: Any
  rng: jax.Array
  apply_fn: Callable = flax.struct.field(pytree_node=False)
  tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)

  def step_rng(self) -> jax.Array:
    """This step's key: ``fold_in(rng, step)``."""
    return jax.random.fold_in(self.rng, self.step)

  def variables(self) -> dict:
    """``{"params": ..., **model_state}`` for ``apply_fn``."""
    return {"params": self.params, **self.model_state}

  def checkpoint_items(self) -> dict:
    """The pytree that is checkpointed (the static fields are rebuilt from the config)."""
    return {"step": self.step, "params": self.params, "model_state": self.model_state,
            "opt_state": self.opt_state, "rng": self.rng}

  def replace_from_checkpoint(self, items: dict) -> "TrainState":
    return self.replace(**items)
