"""Metric writer: JSONL records, TensorBoard events, the curves PNG."""

import json

import numpy as np

from jaxvision.train import logging as logging_lib


def test_jsonl_records_round_trip_and_flush_each_write(tmp_path):
  writer = logging_lib.MetricWriter(tmp_path)
  writer.write(1, {"train/loss": 2.5, "train/lr": np.float32(0.1)})
  # Flushed immediately: readable before close.
  assert logging_lib.read_metrics(tmp_path) == [{"step": 1, "train/loss": 2.5,
                                                 "train/lr": float(np.float32(0.1))}]
  writer.write(2, {"eval/accuracy": 0.75})
  writer.close()
  lines = (tmp_path / logging_lib.METRICS_FILE).read_text().splitlines()
  assert [json.loads(l)["step"] for l in lines] == [1, 2]
  assert any(p.name.startswith("events") for p in (tmp_path / "tensorboard").iterdir())


def test_plot_curves_writes_png(tmp_path):
  writer = logging_lib.MetricWriter(tmp_path, tensorboard=False)
  for step in range(1, 6):
    writer.write(step, {"train/loss": 1.0 / step})
  writer.write(5, {"eval/accuracy": 0.9})
  writer.close()
  out = logging_lib.plot_curves(tmp_path)
  assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert logging_lib.plot_curves(tmp_path / "empty") is None
