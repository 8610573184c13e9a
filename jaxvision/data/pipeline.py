"""The host-side input pipeline: global batches, deterministic in the step.

Training batches are a pure function of ``(seed, step)``: example ``k`` of step
``s`` sits at stream position ``p = s * global_batch_size + k``; epoch
``p // N`` has its own permutation (seeded by ``(seed, epoch)``) and the
example's augmentation seed is a hash of ``(seed, p)``. Hence

* resuming at step ``s`` reproduces the stream exactly (the data position is
  the step, and checkpoints record it);
* the stream does not depend on how many hosts or devices consume it: process
  ``i`` of ``n`` reads rows ``[i * B / n, (i + 1) * B / n)`` of each global batch
  and :func:`to_global_array` assembles the sharded ``jax.Array``.

A background thread prefetches host batches; device transfer happens on the
consumer thread.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator

import jax
import numpy as np

from jaxvision.data.sources import Batch, Source

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(x: np.ndarray) -> np.ndarray:
  """The SplitMix64 finaliser, vectorised over uint64 (a bijective hash)."""
  x = np.asarray(x, dtype=np.uint64)
  with np.errstate(over="ignore"):
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _process_rows(global_batch_size: int, process_index: int, process_count: int) -> slice:
  if global_batch_size % process_count:
    raise ValueError(f"global batch size {global_batch_size} must be divisible by the number "
                     f"of processes {process_count}.")
  local = global_batch_size // process_count
  return slice(process_index * local, (process_index + 1) * local)


class TrainIterator:
  """Infinite shuffled global batches of ``source``, deterministic in the step.

  Args:
    source: a :class:`~jaxvision.data.sources.Source`.
    global_batch_size: examples per step over all processes.
    seed: data seed (shuffling and augmentation).
    start_step: first step to produce (resume position).
    shuffle: permute every epoch; otherwise read in order.
    augment: pass per-example seeds to the source (training augmentation).
    process_index, process_count: this host's slice (default: ``jax.process_*``).
    prefetch: host batches buffered by the background thread (0: no thread).

  Iterating yields local numpy batches ``{"image": (B/n, H, W, C), "label": (B/n,)}``.
  """

  def __init__(self, source: Source, global_batch_size: int, *, seed: int, start_step: int = 0,
               shuffle: bool = True, augment: bool = True, process_index: int | None = None,
               process_count: int | None = None, prefetch: int = 2):
    if global_batch_size <= 0:
      raise ValueError(f"`global_batch_size` must be positive; found {global_batch_size}.")
    if len(source) == 0:
      raise ValueError(f"dataset {source.info.name!r} is empty.")
    self.source = source
    self.global_batch_size = global_batch_size
    self.seed = int(seed)
    self.shuffle = shuffle
    self.augment = augment
    pi = jax.process_index() if process_index is None else process_index
    pc = jax.process_count() if process_count is None else process_count
    self.rows = _process_rows(global_batch_size, pi, pc)
    self.step = int(start_step)
    self._perms: dict[int, np.ndarray] = {}
    self._prefetch = prefetch
    self._queue: queue.Queue | None = None
    self._thread: threading.Thread | None = None
    self._stop = threading.Event()

  def _permutation(self, epoch: int) -> np.ndarray:
    if epoch not in self._perms:
      if len(self._perms) > 2:
        self._perms.pop(min(self._perms))
      n = len(self.source)
      self._perms[epoch] = (np.random.default_rng([self.seed, epoch]).permutation(n)
                            if self.shuffle else np.arange(n))
    return self._perms[epoch]

  def positions(self, step: int) -> np.ndarray:
    """Stream positions (int64) of this process's rows of global batch ``step``."""
    start = step * self.global_batch_size
    return np.arange(start + self.rows.start, start + self.rows.stop, dtype=np.int64)

  def indices(self, step: int) -> np.ndarray:
    """Dataset indices of this process's rows of global batch ``step``."""
    n = len(self.source)
    pos = self.positions(step)
    epochs = pos // n
    out = np.empty_like(pos)
    for e in np.unique(epochs):
      sel = epochs == e
      out[sel] = self._permutation(int(e))[pos[sel] % n]
    return out

  def batch_at(self, step: int) -> Batch:
    """This process's rows of global batch ``step`` (pure function of seed and step)."""
    seeds = None
    if self.augment:
      seeds = splitmix64(splitmix64(np.uint64(self.seed)) ^ self.positions(step).astype(np.uint64))
    return self.source.get(self.indices(step), seeds)

  def _worker(self, first_step: int):
    step = first_step
    try:
      while not self._stop.is_set():
        item = (step, self.batch_at(step))
        while not self._stop.is_set():
          try:
            self._queue.put(item, timeout=0.1)
            break
          except queue.Full:
            continue
        step += 1
    except BaseException as e:  # surfaced in the consumer thread
      self._queue.put((step, e))

  def __iter__(self) -> Iterator[Batch]:
    return self

  def __next__(self) -> Batch:
    if self._prefetch <= 0:
      batch = self.batch_at(self.step)
    else:
      if self._thread is None:
        self._queue = queue.Queue(maxsize=self._prefetch)
        self._thread = threading.Thread(target=self._worker, args=(self.step,), daemon=True,
                                        name="jaxvision-prefetch")
        self._thread.start()
      step, batch = self._queue.get()
      if isinstance(batch, BaseException):
        raise RuntimeError(f"input pipeline failed at step {step}") from batch
      assert step == self.step, (step, self.step)
    self.step += 1
    return batch

  def close(self):
    """Stops the prefetch thread (idempotent)."""
    self._stop.set()
    if self._thread is not None:
      self._thread.join(timeout=5)
      self._thread = None


def eval_batches(source: Source, global_batch_size: int, *, process_index: int | None = None,
                 process_count: int | None = None) -> Iterator[Batch]:
  """One ordered pass over ``source`` in global batches, the last one padded.

  Each batch carries ``"mask"`` float32 ``(B/n,)``: 1 for real examples, 0 for
  padding (padding repeats example 0), so metrics are exact sums over the split.
  """
  pi = jax.process_index() if process_index is None else process_index
  pc = jax.process_count() if process_count is None else process_count
  rows = _process_rows(global_batch_size, pi, pc)
  n = len(source)
  for start in range(0, n, global_batch_size):
    pos = np.arange(start, start + global_batch_size)[rows]
    valid = pos < n
    batch = source.get(np.where(valid, pos, 0))
    batch["mask"] = valid.astype(np.float32)
    yield batch


def to_global_array(batch: Batch, sharding: jax.sharding.Sharding) -> dict[str, jax.Array]:
  """Assembles each process's local rows into global arrays sharded by ``sharding``."""
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in batch.items()}
