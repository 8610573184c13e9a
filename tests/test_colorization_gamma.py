"""``benchmarks/colorization_gamma.py``: its summary, writers and the committed result."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import colorization_gamma as repro

GAMMAS = [0.0, 1.0, 2.0]


def _run(gamma, seed, chroma):
  final = {"chroma_pred": chroma, "chroma_target": 30.0, "colorfulness_pred": chroma * 1.5,
           "colorfulness_target": 50.0, "rmse_ab": 0.2 - 0.001 * chroma, "auc": 0.8,
           "rebalanced_auc": 0.7, "rebalanced_auc_kolinguo": 0.4, "psnr": 20.0, "loss": 1.0}
  return {"gamma": gamma, "seed": seed, "final": final, "seconds": 1.0,
          "curve": [dict(final, step=10)]}


def test_summary_medians_trend_and_fractions():
  runs = [_run(g, s, 10.0 + 5 * g + s) for g in GAMMAS for s in range(3)]
  s = repro.summarise(runs, GAMMAS)
  assert s["per_gamma"]["1"]["chroma_pred"]["median"] == 16.0
  assert s["per_gamma"]["2"]["chroma_pred"]["per_seed"] == [20.0, 21.0, 22.0]
  assert s["chroma_increasing"] and s["colorfulness_increasing"]
  assert s["fraction_of_truth"]["chroma_pred"]["0"] == pytest.approx(11 / 30)
  assert s["relative_to_gamma0"]["chroma_pred"]["2"] == pytest.approx(10 / 11)
  assert s["spearman_with_gamma"]["chroma_pred"] > 0.9
  assert s["spearman_with_gamma"]["rmse_ab"] < -0.9
  # A dip in one gamma's median breaks the strict monotonicity flag.
  runs = [_run(g, s, {0.0: 12.0, 1.0: 11.0, 2.0: 20.0}[g]) for g in GAMMAS for s in range(3)]
  assert not repro.summarise(runs, GAMMAS)["chroma_increasing"]


def test_writers(tmp_path):
  runs = [_run(g, s, 10.0 + g) for g in GAMMAS for s in range(2)]
  result = {"meta": {"description": repro.description(), "machine": "cpu", "date": "d",
                     "minutes": 1.0, "model": "eccv16_half", "params": 10, "image_size": 16,
                     "batch": 4, "lr": 1e-3, "steps": 10, "seeds": [0, 1]},
            "summary": repro.summarise(runs, GAMMAS), "runs": runs}
  repro.write_markdown(result, tmp_path / "r.md")
  text = (tmp_path / "r.md").read_text()
  assert "| 2 |" in text and "Spearman" in text
  pytest.importorskip("matplotlib")
  repro.plot(result, tmp_path / "r.png")
  batch = {"L": np.full((2, 8, 8, 1), 50.0), "rgb": np.zeros((2, 8, 8, 3))}
  repro.plot_grid(batch, {"0": np.zeros((2, 8, 8, 3)), "1": np.ones((2, 8, 8, 3))},
                  tmp_path / "g.png")
  assert (tmp_path / "r.png").stat().st_size > 0 and (tmp_path / "g.png").stat().st_size > 0


def test_committed_result_is_complete():
  path = Path(repro.RESULTS) / "colorization_gamma.json"
  result = json.loads(path.read_text())
  assert result["meta"]["gammas"] == [0.0, 0.25, 0.5, 1.0, 2.0]
  assert len(result["meta"]["seeds"]) == 3 and len(result["runs"]) == 15
  assert (Path(repro.RESULTS) / "colorization_gamma_grid.png").exists()
  per_gamma = result["summary"]["per_gamma"]
  # The recorded outcome (docs/methods.md): gamma = 2 predicts more chroma than gamma = 0.
  assert per_gamma["2"]["chroma_pred"]["median"] > per_gamma["0"]["chroma_pred"]["median"]
