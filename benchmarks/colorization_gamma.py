r"""CPU-scale reproduction of "Towards More Vibrant Image Colorization": the gamma sweep.

  python benchmarks/colorization_gamma.py               # ~30 min on 2 shared cores
  python benchmarks/colorization_gamma.py --quick       # ~2 min: 1 seed, 2 gammas, short
  python benchmarks/colorization_gamma.py --render      # re-write .md/.png from the .json

The paper's qualitative claim (spec vibrant-colorization Sec. 5; the report's Table 1 and
figures): adding the chroma term ``gamma sum_hw (C - C^)^2`` to the L2 loss (eq. 2) makes the
predictions more vibrant -- their chroma and colourfulness rise toward the ground truth's as
gamma grows -- while the accuracy measures (ab RMSE, AuC, rebalanced AuC) stay close to the
plain L2 network's (gamma = 0), which is known to regress toward desaturated means.

Setup: the library's ``colorization/embedded`` experiment (``configs/colorization/embedded.py``):
the paper's network (``eccv16_half``; ``--width-multiplier`` scales it further for CPU time),
the ``colorization`` task with ``chroma_l2`` in the authors' code units (``convention="code"``,
``gamma_paper = 2 gamma_code``) summed over pixels, Adam (0.9, 0.99) with coupled weight decay
1e-3, on ``embedded_colorization`` crops (content-disjoint photographs: fresh random crops and
flips every epoch for training, fixed crops of other photographs for validation). Each gamma x
seed trains from its own initialisation and data order; every run is evaluated on the whole
validation split every ``--eval-every`` steps with the task's metrics (chroma and
Hasler-Suesstrunk colourfulness of the prediction and of the truth, ab RMSE / 110, AuC over
thresholds 0..150, Zhang's rebalanced AuC with the embedded prior and the authors' variant,
PSNR). The image grid shows held-out test crops (larger than the training crops: the network
is fully convolutional): the grey input, gamma = 0, gamma = 1 and the truth.

The steps of one gamma compile once and serve every seed (the library's jitted train/eval
steps). Writes ``benchmarks/results/colorization_gamma.{json,md,png}`` and
``colorization_gamma_grid.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"

from benchmarks import common  # noqa: E402  (after the sys.path insert)
# The task's evaluation metrics reported, with their direction and label.
METRICS = {"chroma_pred": "mean chroma (ab units)",
           "colorfulness_pred": "colourfulness (Hasler-Suesstrunk)",
           "rmse_ab": "ab RMSE (/110)", "auc": "AuC (0..150)",
           "rebalanced_auc": "rebalanced AuC (Zhang)",
           "rebalanced_auc_kolinguo": "rebalanced AuC (authors' code)", "psnr": "PSNR (dB)"}
TARGETS = {"chroma_pred": "chroma_target", "colorfulness_pred": "colorfulness_target"}


def experiment_config(gamma: float, *, image_size: int, batch: int, lr: float, steps: int,
                      width_multiplier: float | None, seed: int):
  """The ``colorization/embedded`` config for one gamma (code units), one device."""
  from jaxvision.train import config as config_lib
  c = config_lib.load_config(f"colorization/embedded:gamma={gamma},image_size={image_size},"
                             f"batch={batch},lr={lr},seed={seed}")
  if width_multiplier is not None:
    c.model = dict(c.model.to_dict(), width_multiplier=width_multiplier)
  c.total_steps = steps
  c.mesh.num_devices = 1
  return c


def run_gamma(gamma: float, seeds: list[int], args, grid_source=None) -> list[dict]:
  """Trains one model per seed at ``gamma`` (one compilation); returns the runs."""
  import jax

  from jaxvision import data as data_lib
  from jaxvision.train import trainer

  config = experiment_config(gamma, image_size=args.image_size, batch=args.batch, lr=args.lr,
                             steps=args.steps, width_multiplier=args.width_multiplier,
                             seed=seeds[0])
  exp = trainer.build_experiment(config)
  train_step, eval_step = trainer.jit_steps(exp)
  init = jax.jit(exp.init_fn, out_shardings=exp.state_sharding)
  runs = []
  for seed in seeds:
    t0 = time.perf_counter()
    state = init(jax.random.PRNGKey(seed))
    iterator = data_lib.TrainIterator(exp.train_source, config.data.global_batch_size,
                                      seed=seed, shuffle=True, augment=True, prefetch=2)
    curve, train_loss = [], []
    try:
      for step in range(1, args.steps + 1):
        state, m = train_step(state, data_lib.to_global_array(next(iterator),
                                                              exp.batch_sharding))
        if step % args.eval_every == 0 or step == args.steps:
          loss = float(m["train/loss"])
          if not np.isfinite(loss):
            raise FloatingPointError(f"gamma={gamma} seed={seed}: non-finite loss at {step}")
          train_loss.append((step, loss))
          ev = trainer.evaluate(exp, state, eval_step)
          curve.append({"step": step, **{k.removeprefix("eval/"): v for k, v in ev.items()}})
    finally:
      iterator.close()
    run = {"gamma": gamma, "seed": seed, "curve": curve, "train_loss": train_loss,
           "final": curve[-1], "seconds": time.perf_counter() - t0}
    if grid_source is not None and seed == seeds[0]:
      run["grid_rgb"] = predict_rgb(exp, state, grid_source)
    runs.append(run)
    print(f"gamma={gamma:g} seed={seed}: chroma {curve[-1]['chroma_pred']:.2f} "
          f"(truth {curve[-1]['chroma_target']:.2f}), rmse_ab {curve[-1]['rmse_ab']:.4f}, "
          f"auc {curve[-1]['auc']:.4f}, rebalanced {curve[-1]['rebalanced_auc']:.4f}, "
          f"{run['seconds']:.0f} s", flush=True)
  return runs


def predict_rgb(exp, state, batch: dict) -> np.ndarray:
  """sRGB ``(N, H, W, 3)`` of ``lab_to_rgb(L, ab^)`` for the grid crops."""
  import jax
  import jax.numpy as jnp

  from jaxvision import ops
  variables = jax.device_get(state.variables())
  ab = exp.model.apply(variables, jnp.asarray(batch["L"]), train=False)
  return np.asarray(ops.lab_to_rgb(jnp.concatenate([jnp.asarray(batch["L"]), ab], -1)))


def grid_batch(args) -> dict:
  """Held-out test crops (``--grid-size`` square) for the image grid."""
  from jaxvision import data as data_lib
  src = data_lib.create_dataset("embedded_colorization", "test", image_size=args.grid_size,
                                num_per_image=max(1, args.grid_images // 2), seed=0,
                                augment=False)
  idx = np.linspace(0, len(src) - 1, args.grid_images).round().astype(np.int64)
  return src.get(idx)


def _spearman(x, y) -> float:
  """Spearman's rho with average ranks for ties (gamma repeats over seeds)."""
  from scipy import stats
  return float(stats.spearmanr(x, y).statistic)


def summarise(runs: list[dict], gammas: list[float]) -> dict:
  """Per gamma: median (min, max over seeds) of each final metric; monotonicity checks."""
  per_gamma = {}
  for g in gammas:
    rs = [r for r in runs if r["gamma"] == g]
    entry = {}
    for k in list(METRICS) + list(TARGETS.values()) + ["loss"]:
      vals = [r["final"][k] for r in rs if k in r["final"]]
      if vals:
        entry[k] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
                    "per_seed": vals}
    entry["seconds_per_run"] = statistics.median(r["seconds"] for r in rs)
    per_gamma[f"{g:g}"] = entry
  base = per_gamma[f"{gammas[0]:g}"]
  relative = {k: {gk: (v[k]["median"] - base[k]["median"]) / abs(base[k]["median"])
                  for gk, v in per_gamma.items()} for k in METRICS if k in base}
  chroma = [per_gamma[f"{g:g}"]["chroma_pred"]["median"] for g in gammas]
  colourful = [per_gamma[f"{g:g}"]["colorfulness_pred"]["median"] for g in gammas]
  gap = {k: {gk: v[k]["median"] / v[t]["median"] for gk, v in per_gamma.items()}
         for k, t in TARGETS.items()}
  # Rank correlation of gamma with each metric over every run (seeds pooled): the trend,
  # less sensitive to one noisy seed than the medians' monotonicity.
  ranks = {}
  for k in METRICS:
    pairs = [(r["gamma"], r["final"][k]) for r in runs if k in r["final"]]
    if len(pairs) > 2:
      ranks[k] = _spearman([p[0] for p in pairs], [p[1] for p in pairs])
  return {"per_gamma": per_gamma, "relative_to_gamma0": relative,
          "fraction_of_truth": gap, "spearman_with_gamma": ranks,
          "chroma_increasing": bool(np.all(np.diff(chroma) > 0)),
          "colorfulness_increasing": bool(np.all(np.diff(colourful) > 0))}


def write_markdown(result: dict, path: Path) -> None:
  meta, s = result["meta"], result["summary"]
  gammas = list(s["per_gamma"])
  lines = ["# Vibrant colorization: the gamma sweep (embedded photographs, CPU)", "",
           meta["description"], "",
           f"{meta['machine']}; {meta['date']}; {meta['minutes']:.1f} min. Model "
           f"`{meta['model']}` ({meta['params']:,} parameters), {meta['image_size']}x"
           f"{meta['image_size']} crops, batch {meta['batch']}, Adam {meta['lr']:g} + coupled "
           f"weight decay 1e-3, {meta['steps']} steps, seeds {meta['seeds']}; gamma in the "
           f"authors' code units (eq. 2's weight is 2 gamma).", "",
           "Final validation metrics, median over seeds (min-max):", "",
           "| gamma | " + " | ".join(METRICS.values()) + " |",
           "|---|" + "---|" * len(METRICS)]
  for g in gammas:
    v = s["per_gamma"][g]
    lines.append(f"| {g} | " + " | ".join(
        f"{v[k]['median']:.3f} ({v[k]['min']:.3f}-{v[k]['max']:.3f})" if k in v else "n/a"
        for k in METRICS) + " |")
    truth = v
  lines += ["", f"Ground truth: mean chroma {truth['chroma_target']['median']:.2f}, "
            f"colourfulness {truth['colorfulness_target']['median']:.2f}.", "",
            "Prediction / truth (median): " + "; ".join(
                f"gamma {g}: chroma {s['fraction_of_truth']['chroma_pred'][g]:.2f}, "
                f"colourfulness {s['fraction_of_truth']['colorfulness_pred'][g]:.2f}"
                for g in gammas) + ".", "",
            "Change relative to gamma = 0 (median): " + "; ".join(
                f"{METRICS[k]}: " + ", ".join(f"{g} {100 * r:+.1f}%" for g, r in rel.items()
                                              if g != gammas[0])
                for k, rel in s["relative_to_gamma0"].items()) + ".", "",
            f"Medians increasing in gamma: chroma {s['chroma_increasing']}, colourfulness "
            f"{s['colorfulness_increasing']}. Spearman rank correlation with gamma over all "
            f"runs: " + ", ".join(f"{METRICS[k]} {v:+.2f}" for k, v in
                                  s.get("spearman_with_gamma", {}).items()) + ".", ""]
  path.write_text("\n".join(lines))


def plot(result: dict, path: Path) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  s, runs = result["summary"], result["runs"]
  gammas = [float(g) for g in s["per_gamma"]]
  keys = ["chroma_pred", "colorfulness_pred", "rmse_ab", "auc", "rebalanced_auc"]
  fig, axes = plt.subplots(1, len(keys) + 1, figsize=(3.6 * (len(keys) + 1), 3.4))
  for ax, k in zip(axes, keys):
    med = [s["per_gamma"][f"{g:g}"][k]["median"] for g in gammas]
    lo = [s["per_gamma"][f"{g:g}"][k]["min"] for g in gammas]
    hi = [s["per_gamma"][f"{g:g}"][k]["max"] for g in gammas]
    ax.errorbar(gammas, med, yerr=[np.subtract(med, lo), np.subtract(hi, med)], marker="o",
                capsize=3, label="prediction")
    if k in TARGETS:
      ax.axhline(s["per_gamma"][f"{gammas[0]:g}"][TARGETS[k]]["median"], color="k", ls="--",
                 lw=0.8, label="ground truth")
      ax.legend(fontsize=7)
    ax.set(xlabel="gamma (code units)", title=METRICS[k])
    ax.title.set_fontsize(9)
  ax = axes[-1]
  for g in gammas:
    rs = [r for r in runs if r["gamma"] == g]
    steps = [c["step"] for c in rs[0]["curve"]]
    ax.plot(steps, np.median([[c["chroma_pred"] for c in r["curve"]] for r in rs], 0),
            label=f"gamma {g:g}")
  ax.axhline(runs[0]["final"]["chroma_target"], color="k", ls="--", lw=0.8)
  ax.set(xlabel="step", ylabel="validation mean chroma", title="chroma during training")
  ax.title.set_fontsize(9)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_grid(batch: dict, predictions: dict, path: Path) -> None:
  """Rows: test crops; columns: grey input, each gamma's prediction, truth."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  n = len(batch["L"])
  cols = [("input (L)", np.repeat(batch["L"] / 100.0, 3, -1))]
  cols += [(f"gamma = {g}", rgb) for g, rgb in predictions.items()]
  cols.append(("ground truth", batch["rgb"]))
  fig, axes = plt.subplots(n, len(cols), figsize=(2.2 * len(cols), 2.2 * n), squeeze=False)
  for j, (title, images) in enumerate(cols):
    for i in range(n):
      axes[i, j].imshow(np.clip(images[i], 0, 1))
      axes[i, j].set_xticks([])
      axes[i, j].set_yticks([])
    axes[0, j].set_title(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def description() -> str:
  """The claim and setup paragraphs of the module docstring, for the report."""
  return common.docstring_paragraphs(__doc__, 2, 4)


def render(out: Path) -> None:
  """Re-writes the markdown and the plot from a saved JSON result."""
  common.render_report(out, description(), write_markdown, plot)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--gammas", default="0,0.25,0.5,1,2")
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--image-size", type=int, default=32)
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--lr", type=float, default=1e-3)
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--eval-every", type=int, default=50)
  parser.add_argument("--width-multiplier", type=float, default=None,
                      help="override eccv16_half's 0.5 (e.g. 0.25 for a faster CPU run)")
  parser.add_argument("--grid-gammas", default="0,1")
  parser.add_argument("--grid-size", type=int, default=96)
  parser.add_argument("--grid-images", type=int, default=4)
  parser.add_argument("--quick", action="store_true",
                      help="1 seed, gammas 0 and 2, 40 steps (a smoke run; results not written)")
  parser.add_argument("--out", default=str(RESULTS / "colorization_gamma"))
  parser.add_argument("--render", action="store_true", help="only re-write .md/.png from .json")
  args = parser.parse_args(argv)
  out = Path(args.out)
  if args.render:
    render(out)
    return {}
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  from jaxvision.train.cpu import set_cpu_defaults
  set_cpu_defaults()  # the CLI's CPU defaults (README "CPU performance"), before JAX starts
  import jax

  from benchmarks.common import cpu_name  # pylint: disable=import-outside-toplevel

  gammas = [float(v) for v in args.gammas.split(",")]
  seeds = [int(v) for v in args.seeds.split(",")]
  grid_gammas = [float(v) for v in args.grid_gammas.split(",") if v]
  if args.quick:
    gammas, seeds, args.steps, args.eval_every = [gammas[0], gammas[-1]], seeds[:1], 40, 20
    grid_gammas = [g for g in grid_gammas if g in gammas] or gammas
  t_start = time.perf_counter()
  grid = grid_batch(args)
  runs = []
  for g in gammas:
    runs += run_gamma(g, seeds, args, grid if g in grid_gammas else None)
  predictions = {f"{r['gamma']:g}": r.pop("grid_rgb") for r in runs if "grid_rgb" in r}
  config = experiment_config(gammas[0], image_size=args.image_size, batch=args.batch,
                             lr=args.lr, steps=args.steps,
                             width_multiplier=args.width_multiplier, seed=0)
  from jaxvision import models
  model = models.create_model(config.model_name, **dict(config.model))
  import jax.numpy as jnp
  params = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0),
                                             jnp.zeros((1, 32, 32, 1))))["params"]
  result = {"meta": {"description": description(), "machine": f"{cpu_name()}, "
                     f"{os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"),
                     "minutes": (time.perf_counter() - t_start) / 60,
                     "model": config.model_name + (f" x{args.width_multiplier:g} width"
                                                   if args.width_multiplier else ""),
                     "params": int(sum(np.prod(p.shape) for p in jax.tree.leaves(params))),
                     "image_size": args.image_size, "batch": args.batch, "lr": args.lr,
                     "steps": args.steps, "eval_every": args.eval_every, "seeds": seeds,
                     "gammas": gammas, "convention": "code", "jax": jax.__version__},
            "summary": summarise(runs, gammas), "runs": runs}
  if args.quick:
    print(json.dumps(result["summary"]["per_gamma"], indent=1)[:3000])
    return result
  common.write_report(result, out, write_markdown, plot)
  plot_grid(grid, predictions, out.parent / f"{out.name}_grid.png")
  print(out.with_suffix(".md").read_text())
  return result


if __name__ == "__main__":
  main()
