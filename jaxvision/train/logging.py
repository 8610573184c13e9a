"""Metric writers: ``metrics.jsonl`` always, TensorBoard when available, curves PNG at the end.

Only process 0 writes. ``metrics.jsonl`` has one JSON object per logged step,
``{"step": 100, "train/loss": 0.31, "train/lr": 0.09, ...}``, flushed on every
write, so a crash loses nothing already logged.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Mapping

import jax

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"


def _tensorboard_writer(logdir: Path):
  """A tensorboardX SummaryWriter, or None when tensorboardX is not installed."""
  try:
    from tensorboardX import SummaryWriter
  except ImportError:
    return None
  return SummaryWriter(str(logdir))


class MetricWriter:
  """Writes scalar dicts to ``workdir/metrics.jsonl`` (+ TensorBoard events).

  Args:
    workdir: run directory.
    tensorboard: also write TensorBoard event files to ``workdir/tensorboard``
      if ``tensorboardX`` is installed.
  """

  def __init__(self, workdir: str | os.PathLike, *, tensorboard: bool = True):
    self.workdir = Path(workdir)
    self.active = jax.process_index() == 0
    self._file = None
    self._tb = None
    if self.active:
      self.workdir.mkdir(parents=True, exist_ok=True)
      self._file = open(self.workdir / METRICS_FILE, "a", encoding="utf-8")
      if tensorboard:
        self._tb = _tensorboard_writer(self.workdir / "tensorboard")

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    if not self.active:
      return
    record = {"step": int(step)}
    record.update({k: float(v) for k, v in scalars.items()})
    self._file.write(json.dumps(record, allow_nan=True) + "\n")
    self._file.flush()
    if self._tb is not None:
      for k, v in scalars.items():
        self._tb.add_scalar(k, float(v), int(step))
      self._tb.flush()

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
      self._file = None
    if self._tb is not None:
      self._tb.close()
      self._tb = None


def read_metrics(workdir: str | os.PathLike) -> list[dict]:
  """The records of ``workdir/metrics.jsonl`` in file order."""
  path = Path(workdir) / METRICS_FILE
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_curves(workdir: str | os.PathLike) -> Path | None:
  """Plots every logged metric against the step into ``workdir/curves.png``.

  Returns the path, or ``None`` if matplotlib is not installed or nothing was logged.
  """
  try:  # The object-oriented API: no pyplot, so a notebook's backend is left alone.
    from matplotlib.figure import Figure
  except ImportError:
    return None
  records = read_metrics(workdir)
  keys = sorted({k for r in records for k in r if k != "step"})
  if not keys:
    return None
  cols = min(3, len(keys))
  rows = math.ceil(len(keys) / cols)
  fig = Figure(figsize=(4.5 * cols, 3 * rows))
  axes = fig.subplots(rows, cols, squeeze=False)
  for ax, key in zip(axes.flat, keys):
    pts = [(r["step"], r[key]) for r in records if key in r]
    ax.plot(*zip(*pts), marker="." if len(pts) < 30 else None)
    ax.set_title(key)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
  for ax in list(axes.flat)[len(keys):]:
    ax.axis("off")
  fig.tight_layout()
  out = Path(workdir) / CURVES_FILE
  tmp = out.with_name(out.stem + ".tmp.png")
  fig.savefig(tmp, dpi=90)
  os.replace(tmp, out)
  return out
