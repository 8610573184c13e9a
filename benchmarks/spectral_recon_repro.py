r"""CPU-scale reproduction of the spectral-transformer paper: ACC vs spectral-wise MSA vs ridge.

  python benchmarks/spectral_recon_repro.py            # ~30 min on 2 shared cores
  python benchmarks/spectral_recon_repro.py --quick    # ~10 min: 1 seed, short runs
  python benchmarks/spectral_recon_repro.py --render   # re-write .md/.png from the .json

The paper's claims (spec spectral-transformer-ising Secs. 2 and 6.6): (i) replacing MST's
spectral-wise self-attention (MS-MSA) by the Adjacent Channel Coupler (ACC, eq. 4) gives a
better RGB -> spectrum network at a smaller size; (ii) the reason is Lipschitz stability: the
Jacobian of spectral-wise attention grows with the input's dynamic range (Lemma 1), the
ACC's much less (Lemma 2). Both are tested here at laptop scale, where the outcome is
qualitative and need not match the paper's.

Setup (i): ``synthetic_hsi`` 32 x 32 scenes (measured reflectances, illuminant and camera
response; ``jaxvision.data.spectral``), the ``spectral_reconstruction`` task (MRAE loss),
Adam 1e-3 with a cosine schedule (``configs/spectral_recon/synthetic.py``), batch 8, 300 steps
(the spec's toy budget; one step of these networks costs about a second on two cores). Models: the
CPU toy ``acc_net_small`` and its MS-MSA twin of equal size ``acc_net_msa_small`` (the same
reconstructed MS-SSF network with SSTA's coupler swapped), 3 seeds each, and the
closed-form ridge regression RGB -> 31 bands fitted on every training pixel (linear and
root-polynomial degree 2), the linear floor of the problem. All are scored on the held-out
``test`` scenes with MST++'s per-image MRAE / RMSE / PSNR and SAM (degrees).

Setup (ii): the local Lipschitz constant ``||J||_2`` (power iteration with jvp / vjp,
``jaxvision.analysis.jacobian_spectral_norm``) of one ACC layer, one MST MS-MSA layer (q and
k L2-normalised) and the same attention without that normalisation (the form Lemma 1
analyses), 31 channels, random initialisation, around a test cube scaled by ``s`` -- the dynamic range ``M - m`` grows linearly with ``s`` -- and of the
two trained networks around a test RGB image scaled likewise, plus their secant
sensitivities under input gains 0.8 and 1.2 (spec Sec. 6.6).

Writes ``benchmarks/results/spectral_recon_repro.{json,md,png}``.
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
NETWORKS = {"acc": "ACC network (acc_net_small)", "msa": "MS-MSA twin (acc_net_msa_small)"}
LAYERS = {"acc": "ACC (eq. 4)", "msa": "MST's MS-MSA (q, k L2-normalised)",
          "msa_plain": "spectral-wise attention without the normalisation (Lemma 1's)"}
METRICS = ("mrae", "rmse", "psnr", "sam")


def experiment_config(model: str, *, steps: int, batch: int, lr: float, image_size: int,
                      seed: int):
  """``spectral_recon/synthetic:<model>,small`` for one run, one device."""
  from jaxvision.train import config as config_lib
  c = config_lib.load_config(f"spectral_recon/synthetic:{model},small,steps={steps},"
                             f"batch={batch},lr={lr},image_size={image_size},seed={seed}")
  c.mesh.num_devices = 1
  c.data.eval_split = "test"
  c.data.eval_batch_size = 16
  c.data.kwargs = dict(c.data.kwargs.to_dict(), num_examples=None)
  return c


def test_source(image_size: int, num_examples: int):
  from jaxvision import data as data_lib
  return data_lib.create_dataset("synthetic_hsi", "test", image_size=image_size,
                                 num_examples=num_examples)


def run_network(model: str, seeds: list[int], args, test) -> list[dict]:
  """Trains ``model`` once per seed (one compilation); test metrics and the final state."""
  import jax

  from jaxvision import data as data_lib
  from jaxvision.train import trainer

  config = experiment_config(model, steps=args.steps, batch=args.batch, lr=args.lr,
                             image_size=args.image_size, seed=seeds[0])
  exp = trainer.build_experiment(config)
  exp.eval_source = test
  train_step, eval_step = trainer.jit_steps(exp)
  init = jax.jit(exp.init_fn, out_shardings=exp.state_sharding)
  runs = []
  for seed in seeds:
    t0 = time.perf_counter()
    state = init(jax.random.PRNGKey(seed))
    iterator = data_lib.TrainIterator(exp.train_source, config.data.global_batch_size,
                                      seed=seed, shuffle=True, augment=True, prefetch=2)
    curve = []
    try:
      for step in range(1, args.steps + 1):
        state, m = train_step(state, data_lib.to_global_array(next(iterator),
                                                              exp.batch_sharding))
        if step % args.eval_every == 0 or step == args.steps:
          loss = float(m["train/loss"])
          if not np.isfinite(loss):
            raise FloatingPointError(f"{model} seed={seed}: non-finite loss at step {step}")
          ev = trainer.evaluate(exp, state, eval_step)
          curve.append({"step": step, "train_loss": loss,
                        **{k.removeprefix("eval/"): v for k, v in ev.items()}})
    finally:
      iterator.close()
    run = {"model": model, "seed": seed, "curve": curve, "final": curve[-1],
           "seconds": time.perf_counter() - t0}
    if seed == seeds[0]:
      run["state"] = state
      run["exp"] = exp
    runs.append(run)
    f = curve[-1]
    print(f"{model} seed={seed}: MRAE {f['mrae']:.4f} RMSE {f['rmse']:.4f} PSNR "
          f"{f['psnr']:.2f} SAM {f['sam']:.2f} ({run['seconds']:.0f} s)", flush=True)
  return runs


def ridge_baselines(args, test) -> dict:
  """Ridge RGB -> 31 fitted on the training pixels, scored like the networks."""
  import jax.numpy as jnp

  from jaxvision import data as data_lib
  from jaxvision.models import spectral_ridge
  from jaxvision.train import tasks

  train = data_lib.create_dataset("synthetic_hsi", "train", image_size=args.image_size)
  task = tasks.spectral_reconstruction()
  batch = test.get(np.arange(len(test)))
  out = {}
  for name, kwargs in (("ridge (linear)", dict(degree=1)),
                       ("ridge (root-polynomial, degree 2)", dict(degree=2, root=True))):
    ridge = spectral_ridge.fit_spectral_ridge(train, **kwargs)
    pred = ridge.predict(batch["rgb"])
    m = task.eval_metrics(pred, {k: jnp.asarray(v) for k, v in batch.items()})
    out[name] = {k: float(np.mean(np.asarray(m[k]))) for k in METRICS}
    out[name]["num_pixels"] = int(ridge.num_pixels)
    print(name, out[name], flush=True)
  return out


def layer_lipschitz(args, test) -> dict:
  """||J||_2 of one ACC and one spectral-wise MSA layer around a test cube scaled by s."""
  import jax
  import jax.numpy as jnp

  from jaxvision import analysis, nn as jnn

  cube = jnp.asarray(test.get(np.arange(1))["cube"][:, :args.lipschitz_size,
                                                       :args.lipschitz_size])
  layers = {"acc": jnn.AdjacentChannelCoupler(), "msa": jnn.SpectralWiseMSA(dim_head=31),
            "msa_plain": jnn.SpectralWiseMSA(dim_head=31, normalize_qk=False)}
  out = {}
  for name, layer in layers.items():
    curves = []
    for seed in range(args.lipschitz_inits):
      variables = layer.init(jax.random.PRNGKey(seed), cube)
      f = lambda x, v=variables, l=layer: l.apply(v, x)
      curves.append(analysis.lipschitz_vs_dynamic_range(f, cube, args.scales,
                                                        num_iters=args.power_iters))
    out[name] = {"scale": list(map(float, args.scales)),
                 "dynamic_range": curves[0]["dynamic_range"].tolist(),
                 "lipschitz": np.median([c["lipschitz"] for c in curves], 0).tolist(),
                 "lipschitz_per_init": [c["lipschitz"].tolist() for c in curves]}
  return out


def network_lipschitz(runs: list[dict], args, test) -> dict:
  """||J||_2 of the trained networks (seed 0) around a test RGB scaled by s, and their
  gain sensitivities at 0.8 / 1.2."""
  import jax
  import jax.numpy as jnp

  from jaxvision import analysis

  rgb = jnp.asarray(test.get(np.arange(1))["rgb"][:, :args.lipschitz_size,
                                                     :args.lipschitz_size])
  out = {}
  for run in runs:
    if "state" not in run:
      continue
    exp, state = run.pop("exp"), run.pop("state")
    variables = jax.device_get(state.variables())
    f = lambda x, v=variables, m=exp.model: m.apply(v, x, train=False)
    curve = analysis.lipschitz_vs_dynamic_range(f, rgb, args.scales, num_iters=args.power_iters)
    gains = analysis.gain_sensitivity(f, rgb, (0.8, 1.2))
    out[run["model"]] = {"scale": list(map(float, args.scales)),
                         "dynamic_range": curve["dynamic_range"].tolist(),
                         "lipschitz": curve["lipschitz"].tolist(),
                         "gain_sensitivity": {"0.8": float(gains[0]), "1.2": float(gains[1])}}
  return out


def summarise(runs: list[dict]) -> dict:
  out = {}
  for model in dict.fromkeys(r["model"] for r in runs):
    rs = [r for r in runs if r["model"] == model]
    out[model] = {k: {"median": statistics.median(r["final"][k] for r in rs),
                      "min": min(r["final"][k] for r in rs),
                      "max": max(r["final"][k] for r in rs),
                      "per_seed": [r["final"][k] for r in rs]} for k in METRICS}
    out[model]["seconds_per_run"] = statistics.median(r["seconds"] for r in rs)
  return out


def growth(curve: dict) -> float:
  """``||J||`` at the largest scale over ``||J||`` at the smallest."""
  return curve["lipschitz"][-1] / curve["lipschitz"][0]


def write_markdown(result: dict, path: Path) -> None:
  meta, s = result["meta"], result["summary"]
  lines = ["# Spectral reconstruction: ACC vs spectral-wise MSA vs ridge (synthetic, CPU)", "",
           meta["description"], "",
           f"{meta['machine']}; {meta['date']}; {meta['minutes']:.1f} min. "
           f"{meta['image_size']}x{meta['image_size']} scenes, batch {meta['batch']}, Adam "
           f"{meta['lr']:g} cosine, {meta['steps']} steps, seeds {meta['seeds']}; "
           f"parameters: " + ", ".join(f"{NETWORKS[k]} {v:,}" for k, v in
                                        meta["params"].items()) + ".", "",
           f"Held-out test scenes ({meta['test_examples']}), median over seeds (min-max):", "",
           "| model | MRAE | RMSE | PSNR (dB) | SAM (deg) |", "|---|---|---|---|---|"]
  for model, v in s.items():
    lines.append(f"| {NETWORKS[model]} | " + " | ".join(
        f"{v[k]['median']:.4f} ({v[k]['min']:.4f}-{v[k]['max']:.4f})" for k in METRICS) + " |")
  for name, v in result["ridge"].items():
    lines.append(f"| {name} | " + " | ".join(f"{v[k]:.4f}" for k in METRICS) + " |")
  lines += ["", "Local Lipschitz constant ||J||_2 against the input's scale s (dynamic range "
            "grows linearly with s):", "",
            "| | " + " | ".join(f"s = {x:g}" for x in meta["scales"]) + " | growth |",
            "|---|" + "---|" * (len(meta["scales"]) + 1)]
  for name, c in result["layer_lipschitz"].items():
    lines.append(f"| one {LAYERS[name]} layer (31 ch., "
                 f"median of {meta['lipschitz_inits']} inits) | "
                 + " | ".join(f"{x:.3g}" for x in c["lipschitz"]) + f" | {growth(c):.2f}x |")
  for name, c in result["network_lipschitz"].items():
    lines.append(f"| trained {NETWORKS[name]} | " + " | ".join(f"{x:.3g}" for x in
                                                               c["lipschitz"])
                 + f" | {growth(c):.2f}x |")
  lines += ["", "Secant sensitivity ||f(g x) - f(x)|| / ||g x - x|| of the trained networks: "
            + "; ".join(f"{NETWORKS[n]}: gain 0.8 {c['gain_sensitivity']['0.8']:.3f}, gain "
                        f"1.2 {c['gain_sensitivity']['1.2']:.3f}"
                        for n, c in result["network_lipschitz"].items()) + ".", ""]
  path.write_text("\n".join(lines))


def plot(result: dict, path: Path) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 4, figsize=(18, 3.8))
  ax = axes[0]
  for model in result["summary"]:
    rs = [r for r in result["runs"] if r["model"] == model]
    steps = [c["step"] for c in rs[0]["curve"]]
    ax.plot(steps, np.median([[c["mrae"] for c in r["curve"]] for r in rs], 0),
            label=NETWORKS[model])
  for name, v in result["ridge"].items():
    ax.axhline(v["mrae"], ls="--", lw=0.8, color="k" if "linear" in name else "grey",
               label=name)
  ax.set(xlabel="step", ylabel="test MRAE", title="held-out MRAE (median of seeds)")
  ax.set_yscale("log")
  ax.legend(fontsize=7)
  ax = axes[1]
  names = list(result["summary"]) + list(result["ridge"])
  vals = [result["summary"][m]["sam"]["median"] for m in result["summary"]] + [
      v["sam"] for v in result["ridge"].values()]
  ax.bar(range(len(names)), vals)
  ax.set_xticks(range(len(names)), [NETWORKS.get(n, n).split(" (")[0] if n in NETWORKS else
                                    n.replace("ridge ", "ridge\n") for n in names], fontsize=7)
  ax.set(ylabel="SAM (degrees)", title="held-out spectral angle")
  for ax, key, title in ((axes[2], "layer_lipschitz", "one layer (random init)"),
                         (axes[3], "network_lipschitz", "trained networks")):
    for name, c in result[key].items():
      ax.loglog(c["dynamic_range"], c["lipschitz"], "o-",
                label=LAYERS[name] if key == "layer_lipschitz" else NETWORKS[name])
    ax.set(xlabel="input dynamic range (max - min)", ylabel="||J||_2 (power iteration)",
           title=title)
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def description() -> str:
  """The claim and setup paragraphs of the module docstring, for the report."""
  return common.docstring_paragraphs(__doc__, 2, 5)


def render(out: Path) -> None:
  """Re-writes the markdown and the plot from a saved JSON result."""
  common.render_report(out, description(), write_markdown, plot)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--models", default="acc,msa")
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--eval-every", type=int, default=100)
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--lr", type=float, default=1e-3)
  parser.add_argument("--image-size", type=int, default=32)
  parser.add_argument("--test-examples", type=int, default=32)
  parser.add_argument("--scales", default="0.25,0.5,1,2,4,8")
  parser.add_argument("--lipschitz-size", type=int, default=32)
  parser.add_argument("--lipschitz-inits", type=int, default=3)
  parser.add_argument("--power-iters", type=int, default=50)
  parser.add_argument("--quick", action="store_true",
                      help="1 seed, 60 steps, small Lipschitz inputs (results not written)")
  parser.add_argument("--out", default=str(RESULTS / "spectral_recon_repro"))
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

  models = args.models.split(",")
  seeds = [int(v) for v in args.seeds.split(",")]
  args.scales = [float(v) for v in args.scales.split(",")]
  if args.quick:
    seeds, args.steps, args.eval_every, args.test_examples = seeds[:1], 60, 30, 16
    args.lipschitz_size, args.lipschitz_inits, args.power_iters = 16, 1, 10
  t_start = time.perf_counter()
  test = test_source(args.image_size, args.test_examples)
  runs = []
  for model in models:
    runs += run_network(model, seeds, args, test)
  params = {}
  for run in runs:
    if "state" in run:
      params[run["model"]] = int(sum(x.size for x in jax.tree.leaves(run["state"].params)))
  result = {"ridge": ridge_baselines(args, test),
            "layer_lipschitz": layer_lipschitz(args, test),
            "network_lipschitz": network_lipschitz(runs, args, test)}
  result["summary"] = summarise(runs)
  result["runs"] = runs
  result["meta"] = {"description": description(), "machine": f"{cpu_name()}, "
                    f"{os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"),
                    "minutes": (time.perf_counter() - t_start) / 60, "params": params,
                    "image_size": args.image_size, "batch": args.batch, "lr": args.lr,
                    "steps": args.steps, "seeds": seeds, "test_examples": args.test_examples,
                    "scales": args.scales, "lipschitz_size": args.lipschitz_size,
                    "lipschitz_inits": args.lipschitz_inits, "power_iters": args.power_iters,
                    "jax": jax.__version__}
  if args.quick:
    print(json.dumps({k: result[k] for k in ("summary", "ridge")}, indent=1)[:3000])
    for k in ("layer_lipschitz", "network_lipschitz"):
      print(k, {n: [round(x, 3) for x in c["lipschitz"]] for n, c in result[k].items()})
    return result
  common.write_report(result, out, write_markdown, plot)
  print(out.with_suffix(".md").read_text())
  return result


if __name__ == "__main__":
  main()
