"""``benchmarks/iqa_convergence.py``: its summaries and writers, and (slow) the claim itself."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks import iqa_convergence as repro


def _run(loss, seed, sroccs, step=10, grid=False, lr=1e-4, batch=8):
  curve = [{"step": i * step, "srocc": s, "plcc": s} for i, s in enumerate(sroccs)]
  final = {"srocc": sroccs[-1], "krocc": sroccs[-1] / 2, "plcc": sroccs[-1], "rmse": 1.0}
  return {"loss": loss, "seed": seed, "lr": lr, "batch": batch, "curve": curve,
          "final_validation": final, "diverged": not math.isfinite(sroccs[-1]),
          "seconds": 1.0, "grid": grid}


def test_steps_to_threshold_and_ratios():
  runs = [_run("norm_in_norm", s, [0.0, 0.55, 0.65, 0.7]) for s in range(3)]
  runs += [_run("mae", 0, [0.0, 0.1, 0.2, 0.3]), _run("mae", 1, [0.0, 0.1, 0.2, 0.65]),
           _run("mae", 2, [0.0, 0.1, 0.6, 0.65])]
  runs += [_run("mae", 0, [0.0, float("nan")], grid=True, lr=1e-3)]
  out = repro.summarise_regime(runs, (0.5, 0.6), {"lr": 1e-4})
  nin, mae = out["convergence"]["norm_in_norm"], out["convergence"]["mae"]
  assert nin["steps_to_srocc"] == {"0.50": 10, "0.60": 20}
  assert mae["per_seed_steps_to_srocc"]["0.60"] == [float("inf"), 30, 20]
  assert mae["steps_to_srocc"]["0.60"] == 30
  assert out["steps_ratio_vs_norm_in_norm"]["mae"]["0.60"] == pytest.approx(1.5)
  assert out["grid"]["mae"]["diverged"] == 1
  assert repro.steps_to(runs[3]["curve"], 0.5) == float("inf")


def test_markdown_names_every_loss(tmp_path):
  runs = [_run(loss, 0, [0.0, 0.7]) for loss in repro.LOSSES]
  regime = repro.summarise_regime(runs, (0.5,), dict(lr=1e-4, ft_rate=0.1, batch=8, steps=10,
                                                     eval_every=10, description="d"))
  result = {"regimes": {"finetune": regime},
            "meta": {"description": "x", "machine": "m", "date": "d", "minutes": 1.0,
                     "model": {}, "image_size": 32, "seeds": [0], "thresholds":
                     {"finetune": (0.5,)}, "grid_steps": 10}}
  repro.write_markdown(result, tmp_path / "r.md")
  text = (tmp_path / "r.md").read_text()
  assert all(repro.LABELS[loss] in text for loss in repro.LOSSES)


@pytest.mark.slow
def test_norm_in_norm_fine_tunes_faster_than_mae():
  """The fine-tuning regime at reduced scale: Norm-in-Norm reaches SROCC 0.5 before MAE."""
  model = repro.config_model()
  source = repro.load_data(32, seed=1, affine=False)
  target = repro.load_data(32, seed=0, affine=True)
  pre = repro.run_one(repro.build("mse_standardized", model), source, loss="mse_standardized",
                      lr=1e-3, batch=16, seed=100, steps=1500, eval_every=1500,
                      keep_params=True)
  params, stats = pre.pop("variables")
  steps = {}
  for loss in ("norm_in_norm", "mae"):
    fns = repro.build(loss, model)
    steps[loss] = np.median([repro.steps_to(repro.run_one(
        fns, target, loss=loss, lr=1e-4, batch=8, seed=s, steps=200, eval_every=10,
        ft_rate=0.1, backbone=(params["backbone"], stats["backbone"]))["curve"], 0.5)
        for s in range(3)])
  assert steps["norm_in_norm"] < steps["mae"], steps
