r"""CPU-scale reproduction of Li, Jiang & Jiang (ACM MM 2020): Norm-in-Norm vs MAE / MSE.

  python benchmarks/iqa_convergence.py                  # ~45 min on 2 shared cores
  python benchmarks/iqa_convergence.py --quick          # ~3 min: 1 seed, short, no grid
  python benchmarks/iqa_convergence.py --render         # re-write .md/.png from the .json

The paper's headline claims (spec Sec. 6.9; paper Figs. 1 and 5): with the same model and
optimiser, the Norm-in-Norm loss (p = 1, q = 2) reaches a given validation SROCC in several
times fewer steps than MAE and MSE on the raw MOS (Fig. 1), and it trains well over the
learning-rate x batch-size grid where MAE / MSE do not (Fig. 5).

Setup: the LinearityIQA architecture of ``configs/iqa/synthetic.py`` (a two-stage ResNet at
width 16 with the authors' encoders and (1, 0.1, 0.1)-weighted heads on its last two stages),
``synthetic_iqa`` 32 x 32 (2000 train / 512 validation, content-disjoint), the training loss of
:func:`jaxvision.train.tasks.quality_regression`, Adam with a constant rate, no weight decay.
Two regimes, 3 seeds each: *fine-tuning* (the paper's: a backbone pretrained -- by MSE on
z-scored MOS of another synthetic dataset -- with random new layers, Adam 1e-4, the backbone
at 0.1x, on data with its own monotone MOS scale) with the Fig. 5 grid, and *from scratch*
(Adam 1e-3). Every few steps the validation SROCC and PLCC of the main head are recorded
(both invariant to the linear mapping); at the end SROCC/KROCC/PLCC/RMSE after the
training-set linear mapping. ``mse_standardized`` (MSE on z-scored MOS) is a control that
separates the raw 0-100 scale, which Norm-in-Norm removes by construction, from the loss.

The steps of one loss compile once: the learning rate and the backbone factor are optimiser
hyper-parameters (``optax.inject_hyperparams``). Writes
``benchmarks/results/iqa_convergence.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import functools
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
LOSSES = ("norm_in_norm", "mae", "mse", "mse_standardized")
LABELS = {"norm_in_norm": "Norm-in-Norm (p=1, q=2)", "mae": "MAE (raw MOS)",
          "mse": "MSE (raw MOS)", "mse_standardized": "MSE (z-scored MOS, control)"}


def build(loss: str, model_kwargs: dict):
  """The model, the library task, and the jitted train / predict functions for ``loss``."""
  import jax
  import jax.numpy as jnp
  import optax

  from jaxvision import models
  from jaxvision.train import tasks

  from jaxvision import optim

  model = models.create_model("linearity_iqa", **model_kwargs)
  task = tasks.quality_regression("mse" if loss == "mse_standardized" else loss)
  # Adam, then the fine-tuned rate: the backbone's updates scaled by ft_rate (what
  # optimizer.lr_multipliers = {"^backbone/": ft_rate} does), both as traced
  # hyper-parameters so that one compilation serves every rate.
  tx = optax.chain(
      optax.inject_hyperparams(optax.adam)(learning_rate=1e-3),
      optax.masked(optax.inject_hyperparams(optax.scale)(step_size=1.0),
                   lambda params: optim.path_mask(params, "^backbone/")))

  @jax.jit
  def train_step(params, batch_stats, opt_state, images, scores):
    def loss_fn(p):
      out, upd = model.apply({"params": p, "batch_stats": batch_stats}, images, train=True,
                             mutable=["batch_stats"])
      return jnp.mean(task.loss(out, {"score": scores})), upd["batch_stats"]

    (value, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), batch_stats, opt_state, value

  @jax.jit
  def predict(params, batch_stats, images):
    return model.apply({"params": params, "batch_stats": batch_stats}, images)[:, 0]

  return model, tx, train_step, predict


def predict_all(predict, params, batch_stats, images, batch: int = 128) -> np.ndarray:
  n = len(images)
  pad = (-n) % batch
  x = np.concatenate([images, images[:pad]]) if pad else images
  out = [np.asarray(predict(params, batch_stats, x[i:i + batch])) for i in range(0, len(x), batch)]
  return np.concatenate(out)[:n].astype(np.float64)


def rank_metrics(pred: np.ndarray, score: np.ndarray) -> dict:
  import jax

  from jaxvision import metrics
  with jax.enable_x64(True):
    if not np.all(np.isfinite(pred)) or np.ptp(pred) == 0:
      return {"srocc": float("nan"), "plcc": float("nan")}
    return {"srocc": float(metrics.srocc(pred, score)), "plcc": float(metrics.plcc(pred, score))}


def set_rates(opt_state, lr: float, ft_rate: float):
  """Writes the learning rate and the backbone's rate factor into the optimiser state."""
  import jax.numpy as jnp
  adam_state, masked_state = opt_state
  adam_state.hyperparams["learning_rate"] = jnp.asarray(lr, jnp.float32)
  masked_state.inner_state.hyperparams["step_size"] = jnp.asarray(ft_rate, jnp.float32)
  return opt_state


def init_variables(model, image_shape, seed: int, backbone=None) -> tuple:
  """Random variables for ``seed``; with ``backbone`` ``(params, batch_stats)``, the backbone
  subtrees are replaced by it (the new layers stay random, as when fine-tuning)."""
  import jax
  import jax.numpy as jnp
  variables = jax.jit(model.init)(jax.random.PRNGKey(seed), jnp.zeros((1, *image_shape)))
  params, batch_stats = dict(variables["params"]), dict(variables["batch_stats"])
  if backbone is not None:
    params["backbone"], batch_stats["backbone"] = backbone
  return params, batch_stats


def run_one(fns, data: dict, *, loss: str, lr: float, batch: int, seed: int, steps: int,
            eval_every: int, ft_rate: float = 1.0, backbone=None, keep_params: bool = False
            ) -> dict:
  """Trains one model; returns its validation SROCC/PLCC curve and final test-protocol
  metrics (SROCC/KROCC/PLCC/RMSE after the training-set linear mapping)."""
  import jax

  from jaxvision import data as data_lib
  from jaxvision import metrics

  model, tx, train_step, predict = fns
  train_src, val = data["train"], data["validation"]
  params, batch_stats = init_variables(model, train_src.info.image_shape, seed, backbone)
  opt_state = set_rates(tx.init(params), lr, ft_rate)
  mean, std = float(np.mean(train_src.scores)), float(np.std(train_src.scores))
  iterator = data_lib.TrainIterator(train_src, batch, seed=seed, shuffle=True, augment=False,
                                    prefetch=0)
  curve, losses, diverged = [], [], False
  t0 = time.perf_counter()
  try:
    for step in range(0, steps + 1):
      if step:
        b = next(iterator)
        scores = b["score"]
        if loss == "mse_standardized":
          scores = (scores - mean) / std
        params, batch_stats, opt_state, value = train_step(params, batch_stats, opt_state,
                                                           b["image"], scores)
      if step % eval_every == 0 or step == steps:
        if step:
          value = float(value)
          losses.append((step, value))
          if not np.isfinite(value):
            diverged = True
            curve.append({"step": step, "srocc": float("nan"), "plcc": float("nan")})
            break
        pred = predict_all(predict, params, batch_stats, val.images_normalised)
        curve.append({"step": step, **rank_metrics(pred, val.scores.astype(np.float64))})
  finally:
    iterator.close()
  seconds = time.perf_counter() - t0
  final = {"srocc": float("nan"), "krocc": float("nan"), "plcc": float("nan"),
           "rmse": float("nan")}
  if not diverged:
    with jax.enable_x64(True):
      fit = predict_all(predict, params, batch_stats, train_src.images_normalised)
      pred = predict_all(predict, params, batch_stats, val.images_normalised)
      if np.all(np.isfinite(pred)) and np.ptp(pred) > 0:
        coeffs = metrics.fit_linear_mapping(fit, train_src.scores.astype(np.float64))
        final = {k: float(v) for k, v in metrics.iqa_performance(
            pred, val.scores.astype(np.float64), coeffs).items()}
  out = {"loss": loss, "lr": lr, "batch": batch, "seed": seed, "ft_rate": ft_rate,
         "curve": curve, "train_loss": losses, "final_validation": final,
         "diverged": diverged, "seconds": seconds}
  if keep_params:
    out["variables"] = (params, batch_stats)
  return out


def steps_to(curve: list[dict], threshold: float) -> float:
  """First evaluated step with validation SROCC >= threshold (inf if never)."""
  return next((c["step"] for c in curve if c["srocc"] >= threshold), float("inf"))


def load_data(image_size: int, seed: int, affine: bool) -> dict:
  """``synthetic_iqa`` train / validation of dataset ``seed`` (its own crops, grades and, with
  ``affine``, its own monotone MOS scale), images pre-normalised for fast evaluation."""
  from jaxvision import data as data_lib
  out = {}
  for split in ("train", "validation"):
    src = data_lib.create_dataset("synthetic_iqa", split, image_size=image_size, seed=seed,
                                  affine=affine)
    src.images_normalised = src.get(np.arange(len(src)))["image"]
    out[split] = src
  return out


def summarise_regime(runs: list[dict], thresholds, main: dict) -> dict:
  """Steps-to-threshold, curves and final metrics per loss at the main setting; the grid."""
  out = {"main_setting": main, "convergence": {}, "grid": {}}
  for loss in dict.fromkeys(r["loss"] for r in runs):
    rs = [r for r in runs if r["loss"] == loss and not r.get("grid")]
    if rs:
      steps = [c["step"] for c in rs[0]["curve"]]
      sroccs = np.array([[c["srocc"] for c in r["curve"]] for r in rs])
      out["convergence"][loss] = {
          "steps_to_srocc": {f"{t:.2f}": statistics.median(steps_to(r["curve"], t) for r in rs)
                             for t in thresholds},
          "per_seed_steps_to_srocc": {f"{t:.2f}": [steps_to(r["curve"], t) for r in rs]
                                      for t in thresholds},
          "median_curve": {"step": steps, "srocc": np.nanmedian(sroccs, 0).tolist(),
                           "srocc_min": np.nanmin(sroccs, 0).tolist(),
                           "srocc_max": np.nanmax(sroccs, 0).tolist()},
          "final_validation": {k: statistics.median(r["final_validation"][k] for r in rs)
                               for k in rs[0]["final_validation"]},
          "seconds_per_run": statistics.median(r["seconds"] for r in rs)}
    grid = {f"lr={r['lr']:g},batch={r['batch']}": {
        "final_srocc": r["final_validation"]["srocc"],
        "best_srocc": max((c["srocc"] for c in r["curve"] if np.isfinite(c["srocc"])),
                          default=float("nan")),
        "diverged": r["diverged"]} for r in runs if r["loss"] == loss and r.get("grid")}
    if grid:
      finals = np.array([g["final_srocc"] for g in grid.values()], np.float64)
      finite = np.isfinite(finals)
      out["grid"][loss] = {
          "cells": grid,
          "min_final_srocc": float(np.min(np.where(finite, finals, -1.0))),
          "median_final_srocc": float(np.median(np.where(finite, finals, -1.0))),
          "diverged": int(sum(g["diverged"] for g in grid.values()))}
  base = out["convergence"].get("norm_in_norm", {}).get("steps_to_srocc", {})
  out["steps_ratio_vs_norm_in_norm"] = {
      loss: {t: (v["steps_to_srocc"][t] / base[t] if base.get(t) not in (None, float("inf"))
                 else None) for t in v["steps_to_srocc"]}
      for loss, v in out["convergence"].items() if loss != "norm_in_norm"}
  return out


def fmt_steps(v) -> str:
  return "never" if v == float("inf") else f"{v:g}"


def regime_markdown(name: str, title: str, r: dict, meta: dict) -> list[str]:
  thresholds, m = meta["thresholds"][name], r["main_setting"]
  lines = [f"## {title}", "", m["description"], "",
           f"Adam lr {m['lr']:g}, backbone rate x{m['ft_rate']:g}, batch {m['batch']}, "
           f"{m['steps']} steps, seeds {meta['seeds']}, validation SROCC every "
           f"{m['eval_every']} steps. Median over seeds:", "",
           "| loss | " + " | ".join(f"steps to SROCC {t:.2f}" for t in thresholds)
           + " | final SROCC | final PLCC | final RMSE (MOS) |",
           "|---|" + "---|" * (len(thresholds) + 3)]
  for loss, v in r["convergence"].items():
    fv = v["final_validation"]
    lines.append(f"| {LABELS[loss]} | " + " | ".join(
        fmt_steps(v["steps_to_srocc"][f"{t:.2f}"]) for t in thresholds)
        + f" | {fv['srocc']:.3f} | {fv['plcc']:.3f} | {fv['rmse']:.2f} |")
  lines += ["", "Steps of each loss / steps of Norm-in-Norm (> 1: Norm-in-Norm is faster):", ""]
  for loss, ratios in r["steps_ratio_vs_norm_in_norm"].items():
    parts = []
    for t, q in ratios.items():
      parts.append(f"SROCC {t}: " + ("n/a (Norm-in-Norm never reached it)" if q is None else
                                     "never reached" if q == float("inf") else f"{q:.1f}x"))
    lines.append(f"- {LABELS[loss]}: " + "; ".join(parts))
  if r["grid"]:
    cells = list(next(iter(r["grid"].values()))["cells"])
    lines += ["", f"Grid (the paper's Fig. 5: lr x batch), final validation SROCC after "
              f"{meta['grid_steps']} steps, seed 0 (div. = diverged):", "",
              "| loss | " + " | ".join(cells) + " | min | diverged |",
              "|---|" + "---|" * (len(cells) + 2)]
    for loss, g in r["grid"].items():
      row = [("div." if g["cells"][c]["diverged"] else f"{g['cells'][c]['final_srocc']:.3f}")
             for c in cells]
      lines.append(f"| {LABELS[loss]} | " + " | ".join(row)
                   + f" | {g['min_final_srocc']:.3f} | {g['diverged']} |")
  return lines + [""]


TITLES = {"finetune": "Fine-tuning a pretrained backbone on a new MOS scale (the paper's regime)",
          "scratch": "Training from random initialisation"}


def write_markdown(result: dict, path: Path) -> None:
  meta = result["meta"]
  lines = ["# Norm-in-Norm vs MAE / MSE: convergence and stability (synthetic IQA, CPU)", "",
           meta["description"], "", f"{meta['machine']}; {meta['date']}; "
           f"{meta['minutes']:.1f} min. Model: `linearity_iqa` {meta['model']} on "
           f"{meta['image_size']}x{meta['image_size']} crops.", ""]
  if "pretrain" in result:
    pt = result["pretrain"]
    lines += [f"Pretraining (shared by every fine-tuning run): {pt['steps']} steps of MSE on "
              f"z-scored MOS, lr {pt['lr']:g}, batch {pt['batch']}, on synthetic_iqa seed "
              f"{pt['data_seed']} (other crops and grades than the fine-tuning data); its "
              f"validation SROCC there: {pt['final_validation']['srocc']:.3f}.", ""]
  for name, r in result["regimes"].items():
    lines += regime_markdown(name, TITLES[name], r, meta)
  path.write_text("\n".join(lines))


def plot(result: dict, path: Path) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  regimes = result["regimes"]
  grids = [n for n, r in regimes.items() if r["grid"]]
  ncols = len(regimes) + len(grids)
  fig, axes = plt.subplots(1, ncols, figsize=(5.2 * ncols, 4))
  axes = np.atleast_1d(axes)
  for ax, (name, r) in zip(axes, regimes.items()):
    for loss, v in r["convergence"].items():
      c = v["median_curve"]
      ax.plot(c["step"], c["srocc"], label=LABELS[loss])
      ax.fill_between(c["step"], c["srocc_min"], c["srocc_max"], alpha=0.2)
    for t in result["meta"]["thresholds"][name]:
      ax.axhline(t, color="grey", lw=0.6, ls="--")
    m = r["main_setting"]
    ax.set(xlabel="training step", ylabel="validation SROCC", ylim=(-0.2, 1.0),
           title=f"{name}: lr {m['lr']:g}, batch {m['batch']} "
                 f"(median, min-max of {len(result['meta']['seeds'])} seeds)")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7)
  for ax, name in zip(axes[len(regimes):], grids):
    g = regimes[name]["grid"]
    losses = list(g)
    cells = list(g[losses[0]]["cells"])
    vals = np.array([[g[l]["cells"][c]["final_srocc"] for c in cells] for l in losses])
    im = ax.imshow(np.nan_to_num(vals, nan=-1.0), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(cells)), [c.replace(",", "\n") for c in cells], fontsize=6)
    ax.set_yticks(range(len(losses)), [LABELS[l].split(" (")[0] for l in losses], fontsize=8)
    for i in range(len(losses)):
      for j in range(len(cells)):
        ax.text(j, i, "div." if not np.isfinite(vals[i, j]) else f"{vals[i, j]:.2f}",
                ha="center", va="center", color="w", fontsize=7)
    ax.set_title(f"{name}: final validation SROCC over lr x batch", fontsize=9)
    fig.colorbar(im, ax=ax)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def config_model() -> dict:
  """The model of ``configs/iqa/synthetic.py`` (one definition for the config and here)."""
  from jaxvision.train import config as config_lib
  return config_lib.load_config("iqa/synthetic").model.to_dict()


def description() -> str:
  """The claim and setup paragraphs of the module docstring, for the report."""
  return common.docstring_paragraphs(__doc__, 2, 4)


def render(out: Path) -> None:
  """Re-writes the markdown and the plot from a saved JSON result."""
  common.render_report(out, description(), write_markdown, plot)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--losses", default=",".join(LOSSES))
  parser.add_argument("--image-size", type=int, default=32)
  parser.add_argument("--regimes", default="finetune,scratch")
  parser.add_argument("--pretrain-steps", type=int, default=2000)
  parser.add_argument("--finetune-steps", type=int, default=300)
  parser.add_argument("--scratch-steps", type=int, default=600)
  parser.add_argument("--grid-lrs", default="1e-3,1e-4,1e-5")
  parser.add_argument("--grid-batches", default="4,8,16")
  parser.add_argument("--grid-steps", type=int, default=300)
  parser.add_argument("--grid-losses", default="norm_in_norm,mae,mse")
  parser.add_argument("--quick", action="store_true",
                      help="1 seed, short runs, no grid (a smoke run; results not written)")
  parser.add_argument("--out", default=str(RESULTS / "iqa_convergence"))
  parser.add_argument("--render", action="store_true", help="only re-write .md/.png from .json")
  args = parser.parse_args(argv)
  if args.render:
    render(Path(args.out))
    return {}
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  from jaxvision.train.cpu import set_cpu_defaults
  set_cpu_defaults()  # the CLI's CPU defaults (README "CPU performance"), before JAX starts
  import jax

  from benchmarks.common import cpu_name  # pylint: disable=import-outside-toplevel

  seeds = [int(v) for v in args.seeds.split(",")]
  grid_lrs = [float(v) for v in args.grid_lrs.split(",") if v]
  grid_batches = [int(v) for v in args.grid_batches.split(",") if v]
  pre_steps, ft_steps, sc_steps, grid_steps = (args.pretrain_steps, args.finetune_steps,
                                               args.scratch_steps, args.grid_steps)
  if args.quick:
    seeds, grid_lrs, grid_batches = seeds[:1], [], []
    pre_steps, ft_steps, sc_steps = 300, 100, 100
  losses = tuple(args.losses.split(","))
  regimes = tuple(args.regimes.split(","))
  thresholds = {"finetune": (0.5, 0.6, 0.7), "scratch": (0.3, 0.4, 0.5)}
  t_start = time.perf_counter()
  model_kwargs = config_model()
  fns_cache: dict = {}

  def fns(loss):
    if loss not in fns_cache:
      fns_cache[loss] = build(loss, model_kwargs)
    return fns_cache[loss]

  result = {"regimes": {}}
  target = load_data(args.image_size, seed=0, affine=True)
  settings = {
      "finetune": dict(lr=1e-4, ft_rate=0.1, batch=8, steps=ft_steps, eval_every=10,
                       description=(
                           "The backbone comes from the pretraining below; the new layers "
                           "(encoders and heads) are random. The target data has its own "
                           "monotone MOS scale (synthetic_iqa seed 0 with the random affine "
                           "map). The paper's recipe: Adam 1e-4, fine-tuned rate 0.1.")),
      "scratch": dict(lr=1e-3, ft_rate=1.0, batch=8, steps=sc_steps, eval_every=25,
                      description=("Everything random; Adam 1e-3 (spec Sec. 6.9's toy "
                                   "setting); the same target data."))}
  backbone = None
  if "finetune" in regimes:
    source = load_data(args.image_size, seed=1, affine=False)
    pre = run_one(fns("mse_standardized"), source, loss="mse_standardized", lr=1e-3,
                  batch=16, seed=100, steps=pre_steps, eval_every=max(pre_steps // 10, 1),
                  keep_params=True)
    params, batch_stats = pre.pop("variables")
    backbone = (params["backbone"], batch_stats["backbone"])
    result["pretrain"] = {**pre, "steps": pre_steps, "lr": 1e-3, "batch": 16, "data_seed": 1}
    print(f"pretrained backbone: validation SROCC {pre['final_validation']['srocc']:.3f} "
          f"({pre['seconds']:.0f} s)", flush=True)
  for name in regimes:
    st = settings[name]
    bb = backbone if name == "finetune" else None
    runs = []
    for loss in losses:
      for seed in seeds:
        r = run_one(fns(loss), target, loss=loss, lr=st["lr"], batch=st["batch"], seed=seed,
                    steps=st["steps"], eval_every=st["eval_every"], ft_rate=st["ft_rate"],
                    backbone=bb)
        print(f"{name:8s} {loss:18s} seed {seed}: final SROCC "
              f"{r['final_validation']['srocc']:.3f}, steps to {thresholds[name][1]}: "
              f"{steps_to(r['curve'], thresholds[name][1])} ({r['seconds']:.0f} s)", flush=True)
        runs.append(r)
    if name == "finetune":
      for loss in args.grid_losses.split(","):
        for lr in grid_lrs:
          for batch in grid_batches:
            r = run_one(fns(loss), target, loss=loss, lr=lr, batch=batch, seed=0,
                        steps=grid_steps, eval_every=max(grid_steps // 6, 1),
                        ft_rate=st["ft_rate"], backbone=bb)
            r["grid"] = True
            print(f"grid {loss:18s} lr {lr:g} batch {batch}: final SROCC "
                  f"{r['final_validation']['srocc']:.3f}"
                  f"{' (diverged)' if r['diverged'] else ''}", flush=True)
            runs.append(r)
    main_setting = {k: v for k, v in st.items()}
    result["regimes"][name] = summarise_regime(runs, thresholds[name], main_setting)
    result["regimes"][name]["runs"] = runs
  result["meta"] = {
      "description": description(),
      "seeds": seeds, "losses": losses, "grid_steps": grid_steps,
      "thresholds": thresholds, "model": model_kwargs, "image_size": args.image_size,
      "machine": f"{cpu_name()}, {os.cpu_count()} cores, jax {jax.__version__}",
      "date": time.strftime("%Y-%m-%d"), "minutes": (time.perf_counter() - t_start) / 60}
  if args.quick:
    for name, r in result["regimes"].items():
      print(name, json.dumps({k: v["steps_to_srocc"] for k, v in r["convergence"].items()}))
    return result
  out = Path(args.out)
  common.write_report(result, out, write_markdown, plot)
  print(out.with_suffix(".md").read_text())
  return result


if __name__ == "__main__":
  main()
