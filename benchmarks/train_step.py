r"""Train-step throughput: jaxvision's ResNet-18 (CIFAR stem) vs PyTorch eager, same CPU.

  python benchmarks/train_step.py            # writes benchmarks/results/train_step.{json,md}
  python benchmarks/train_step.py --name train_step_cpu_defaults --reps 7 \
      --variants xla_eigen_conv_dot,xla_eigen_conv_dot_avx512,cpu_defaults

One training step = forward with batch statistics, softmax cross-entropy,
backward, SGD (momentum 0.9, weight decay 5e-4) update; batch 128 of 32x32x3,
float32. The jaxvision step is the engine's own ``make_train_step`` jitted with
the state donated (what ``jaxvision train`` runs); the PyTorch step is the same
network in eager mode (``benchmarks/torch_resnet.py``) with ``torch.optim.SGD``.

XLA flags must be set before JAX starts, so every XLA configuration runs in its
own worker process, which times JAX and PyTorch *interleaved* (j, t, j, t, ...)
so machine noise hits both alike, and reports medians. Each worker also
measures the machine's float32 matmul peak (4096^2 GEMM, the faster of
jnp.dot and torch.mm) to express both steps as a fraction of it. FLOPs are
counted analytically (convolutions + head, forward x 3 for fwd + 2 backward
GEMM-equivalents), the same count for both frameworks.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import cpu_name  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

# The XLA:CPU configurations compared. "-individual_convolution" keeps XLA from routing
# convolutions through YNNPACK (its default on this jaxlib), so they use XLA's Eigen
# convolution kernels; "-individual_dot" does the same for matrix products. `jaxvision train`
# sets both by default on CPU (jaxvision/train/cli.py).
# "cpu_defaults" is what `jaxvision train` runs (jaxvision/train/cpu.py): both flags below
# plus AVX-512 vector width, and glibc malloc retaining freed buffers (the "+malloc" marker:
# the worker calls retain_freed_memory before JAX starts).
VARIANTS = {
    "xla_default": "",
    "xla_eigen_conv": "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution",
    "xla_eigen_conv_dot":
        "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution,-individual_dot",
    "xla_eigen_conv_dot_avx512":
        "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution,-individual_dot "
        "--xla_cpu_prefer_vector_width=512",
    "cpu_defaults":
        "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution,-individual_dot "
        "--xla_cpu_prefer_vector_width=512 +malloc",
}
MALLOC_MARKER = "+malloc"
STAGE_WIDTHS = (64, 128, 256, 512)


def analytic_train_flops(batch: int, size: int = 32, num_classes: int = 10) -> float:
  """3 x forward FLOPs (2 per MAC) of the CIFAR ResNet-18 convolutions and head."""
  macs, h, cin = size * size * 64 * 3 * 9, size, 64
  for i, cout in enumerate(STAGE_WIDTHS):
    for j in range(2):
      stride = 2 if i > 0 and j == 0 else 1
      h //= stride
      macs += h * h * cout * cin * 9 + h * h * cout * cout * 9
      if stride != 1 or cin != cout:
        macs += h * h * cout * cin
      cin = cout
  macs += 512 * num_classes
  return 3 * 2 * macs * batch


def _median_time(fn, reps: int) -> list[float]:
  times = []
  for _ in range(reps):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return times


def worker(batch: int, reps: int, warmup: int) -> dict:
  """Runs inside a process whose XLA_FLAGS are already set."""
  import jax
  import jax.numpy as jnp
  import ml_collections
  import numpy as np
  import torch

  from benchmarks.torch_resnet import CifarResNet18
  from jaxvision import models, optim
  from jaxvision.train import tasks, trainer

  torch.set_num_threads(os.cpu_count())
  rng = np.random.default_rng(0)
  images = rng.normal(size=(batch, 32, 32, 3)).astype(np.float32)
  labels = rng.integers(0, 10, size=batch).astype(np.int32)

  # --- jaxvision: the engine's train step.
  opt_cfg = ml_collections.ConfigDict(dict(
      name="sgd", learning_rate=0.1, schedule="constant", warmup_steps=0, end_lr_factor=0.0,
      weight_decay=5e-4, decay_all_params=True, grad_clip_norm=0.0,
      kwargs=dict(momentum=0.9, nesterov=False)))
  tx, schedule = optim.create_optimizer(opt_cfg, 1000)
  model = models.create_model("resnet18", num_classes=10, stem="cifar")
  task = tasks.classification()
  init_fn = trainer.create_train_state_fn(model, tx, (32, 32, 3))
  with jax.threefry_partitionable(False):
    state = jax.jit(init_fn)(jax.random.PRNGKey(0))
  step = jax.jit(trainer.make_train_step(task, schedule), donate_argnums=(0,))
  jbatch = {"image": jnp.asarray(images), "label": jnp.asarray(labels)}
  t0 = time.perf_counter()
  compiled = step.lower(state, jbatch).compile()
  compile_s = time.perf_counter() - t0
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  xla_flops = float(cost.get("flops", float("nan"))) if cost else float("nan")
  holder = {"state": state}

  def jax_step():
    holder["state"], metrics = step(holder["state"], jbatch)
    jax.block_until_ready(metrics["train/loss"])

  # --- PyTorch eager.
  tmodel = CifarResNet18()
  topt = torch.optim.SGD(tmodel.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
  tx_images = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
  tx_labels = torch.from_numpy(labels.astype(np.int64))
  tmodel.train()

  def torch_step():
    topt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(tmodel(tx_images), tx_labels)
    loss.backward()
    topt.step()

  # --- Matmul peak (float32), the faster of XLA and torch.
  n = 4096
  a = jnp.asarray(rng.normal(size=(n, n)).astype(np.float32))
  mm = jax.jit(lambda x: x @ x)
  mm(a).block_until_ready()
  ta = torch.from_numpy(np.asarray(a))
  torch.mm(ta, ta)
  jax_mm = statistics.median(_median_time(lambda: mm(a).block_until_ready(), 5))
  torch_mm = statistics.median(_median_time(lambda: torch.mm(ta, ta), 5))
  peak = 2 * n**3 / min(jax_mm, torch_mm)

  for _ in range(warmup):
    jax_step()
    torch_step()
  jax_times, torch_times = [], []
  for _ in range(reps):
    jax_times += _median_time(jax_step, 1)
    torch_times += _median_time(torch_step, 1)
  flops = analytic_train_flops(batch)
  jax_s, torch_s = statistics.median(jax_times), statistics.median(torch_times)
  return {
      "jax_step_s": jax_times, "torch_step_s": torch_times,
      "jax_images_per_s": batch / jax_s, "torch_images_per_s": batch / torch_s,
      "ratio_jax_over_torch": torch_s / jax_s,
      "train_gflop_analytic": flops / 1e9, "train_gflop_xla_cost_analysis": xla_flops / 1e9,
      "jax_gflop_per_s": flops / jax_s / 1e9, "torch_gflop_per_s": flops / torch_s / 1e9,
      "matmul_peak_gflop_per_s": peak / 1e9,
      "jax_fraction_of_peak": flops / jax_s / peak, "torch_fraction_of_peak": flops / torch_s / peak,
      "jax_compile_s": compile_s, "jax": jax.__version__, "torch": torch.__version__,
  }


def _run_variant(flags: str, args) -> dict:
  retain = MALLOC_MARKER in flags.split()
  xla_flags = " ".join(f for f in flags.split() if f != MALLOC_MARKER)
  env = dict(os.environ, XLA_FLAGS=xla_flags, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
  out = subprocess.run([sys.executable, __file__, "--worker", "--batch", str(args.batch),
                        "--reps", str(args.reps), "--warmup", str(args.warmup)]
                       + (["--retain-malloc"] if retain else []),
                       env=env, capture_output=True, text=True, check=True, cwd=ROOT)
  line = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")][-1]
  return json.loads(line[len("RESULT "):])


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--reps", type=int, default=9)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--retain-malloc", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--variants", default=",".join(VARIANTS),
                      help="comma-separated subset of " + ", ".join(VARIANTS))
  parser.add_argument("--out", default=str(RESULTS))
  parser.add_argument("--name", default="train_step",
                      help="output file stem (e.g. train_step_cpu_defaults for a subset)")
  args = parser.parse_args()
  if args.worker:
    if args.retain_malloc:
      from jaxvision.train.cpu import retain_freed_memory
      retain_freed_memory()
    print("RESULT " + json.dumps(worker(args.batch, args.reps, args.warmup)), flush=True)
    return
  results = {name: {"xla_flags": flags, **_run_variant(flags, args)}
             for name, flags in VARIANTS.items() if name in args.variants.split(",")}
  report = {
      "benchmark": "ResNet-18 (CIFAR stem) train step, batch %d, 32x32x3, float32" % args.batch,
      "date": datetime.date.today().isoformat(), "cpu": cpu_name(), "cores": os.cpu_count(),
      "reps": args.reps, "variants": results,
      "best_ratio_jax_over_torch": max(r["ratio_jax_over_torch"] for r in results.values()),
  }
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  (out / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
  rows = ["| XLA configuration | jaxvision img/s | PyTorch img/s | ratio | jaxvision % of peak | "
          "PyTorch % of peak | compile s |", "|---|---|---|---|---|---|---|"]
  for name, r in results.items():
    rows.append(f"| {name} (`{r['xla_flags'] or 'none'}`) | {r['jax_images_per_s']:.1f} | "
                f"{r['torch_images_per_s']:.1f} | {r['ratio_jax_over_torch']:.2f}x | "
                f"{100 * r['jax_fraction_of_peak']:.0f}% | "
                f"{100 * r['torch_fraction_of_peak']:.0f}% | {r['jax_compile_s']:.1f} |")
  any_r = next(iter(results.values()))
  md = (f"# Train-step benchmark\n\n{report['benchmark']}; {report['cpu']}, {report['cores']} "
        f"cores; {args.reps} interleaved repetitions, medians; {report['date']}.\n"
        f"Matmul peak (float32 GEMM 4096^2): {any_r['matmul_peak_gflop_per_s']:.0f} GFLOP/s; "
        f"analytic train-step cost {any_r['train_gflop_analytic']:.0f} GFLOP.\n\n"
        + "\n".join(rows) + "\n")
  (out / f"{args.name}.md").write_text(md)
  print(md)


if __name__ == "__main__":
  main()
