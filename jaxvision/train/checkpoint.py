"""Orbax checkpoints: atomic saves, keep-last-N, resume onto any mesh, corrupt fallback.

A checkpoint of step ``s`` holds two items: ``state`` (the train state pytree:
step, params, other collections, optimizer state, RNG) and ``meta`` (JSON: step,
data position, global batch size, jaxvision version). Saves are atomic (orbax
writes to a temporary directory and commits by rename), so a crash mid-save
leaves the previous checkpoints intact.

Restoring passes an abstract target whose leaves carry the *current* mesh's
shardings, so a checkpoint written on 8 devices restores onto 1 (or any other
layout). If the newest checkpoint cannot be read (truncated, corrupted), it is
moved aside to ``<workdir>/checkpoints_corrupt/`` (never deleted), a warning
names it and the reason, and the next older one is tried.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
  """No checkpoint in a directory could be restored."""


class Checkpointer:
  """Saves and restores train-state checkpoints under ``directory``.

  Args:
    directory: checkpoint root (``<workdir>/checkpoints``), created if missing.
    keep: newest checkpoints kept (older ones are deleted after a successful save).
    async_save: write in a background thread (arrays are copied to host first,
      so the caller may keep training and donate its buffers).
  """

  def __init__(self, directory: str | os.PathLike, *, keep: int = 3, async_save: bool = True):
    self.directory = Path(directory).absolute()
    self._options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                                 enable_async_checkpointing=async_save)
    self._manager = self._open()

  def _open(self) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(self.directory, options=self._options,
                                 item_names=("state", "meta"))

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state_items: Any, meta: dict) -> None:
    """Saves ``state_items`` (pytree of arrays) and ``meta`` (JSON-able) as step ``step``."""
    self._manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state_items),
                                                     meta=ocp.args.JsonSave(meta)), force=True)

  def restore(self, step: int, abstract_items: Any) -> tuple[Any, dict]:
    """Restores step ``step`` into ``abstract_items`` (``ShapeDtypeStruct`` leaves with
    target shardings). Returns ``(state_items, meta)``."""
    restored = self._manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_items),
                                      meta=ocp.args.JsonRestore()))
    return restored["state"], dict(restored["meta"])

  def restore_latest(self, abstract_items: Any) -> tuple[Any, dict] | None:
    """Restores the newest readable checkpoint, or returns ``None`` if there is none.

    Unreadable checkpoints are moved aside (see module docstring).

    Raises:
      CheckpointError: checkpoints exist but none could be restored.
    """
    failures = []
    for step in reversed(self.all_steps()):
      try:
        return self.restore(step, abstract_items)
      except Exception as e:  # orbax/tensorstore raise many types for bad files
        reason = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
        failures.append((step, reason))
        moved = self._quarantine(step)
        log.warning("checkpoint step %d in %s is unreadable (%s); moved it to %s and trying "
                    "the previous one.", step, self.directory, reason, moved)
    if failures:
      raise CheckpointError(
          f"no readable checkpoint in {self.directory}: "
          + "; ".join(f"step {s}: {r}" for s, r in failures)
          + ". The unreadable ones were moved to " + str(self._corrupt_dir()))
    return None

  def _corrupt_dir(self) -> Path:
    return self.directory.parent / (self.directory.name + "_corrupt")

  def _quarantine(self, step: int) -> Path:
    self._manager.wait_until_finished()
    src = self.directory / str(step)
    dst = self._corrupt_dir() / f"{step}.{time.strftime('%Y%m%d-%H%M%S')}"
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.exists():
      shutil.move(str(src), str(dst))
    self._manager.close()
    self._manager = self._open()
    return dst

  def wait(self) -> None:
    """Blocks until pending asynchronous saves are committed."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
