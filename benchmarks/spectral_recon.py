r"""One Adjacent Channel Coupler layer (eq. 4), inference on one 482x512 image with C = 31.

  python benchmarks/spectral_recon.py              # ~4 min: benchmarks/results/spectral_recon.*
  python benchmarks/spectral_recon.py --quick      # seconds: 64x64, into /tmp/spectral_recon_quick
  python benchmarks/spectral_recon.py --network    # also time the whole acc_net / mst_plus_plus

What is measured (issue 7; spec spectral-transformer-ising Sec. 2, "What 1.58 s per image
implies"): the wall time of one ACC layer -- ``jaxvision.ops.adjacent_channel_coupler`` with
PyTorch-default ``U(-1/3, 1/3)`` parameters (``init_acc_params``; 54 C weights + 6 C biases),
both directions, zero boundary -- on a ``(1, 482, 512, 31)`` float32 input in [0, 1], jitted,
for every solver and variant:

* ``scan`` -- the default: on CPU for float32, the native kernel of
  ``jaxvision/ops/acc_native.py`` (one pass per step over the input and state planes, rows
  split over threads; built with the local C++ compiler on first use), between XLA's layout
  transposes to and from channel-last (exact);
* ``scan, XLA`` -- the default where the native kernel is unavailable (other platforms, no
  compiler, ``JAXVISION_NATIVE_KERNELS=0``): one ``lax.scan`` of depth C over both chains,
  the f/g/h convs as 9 shifted multiply-adds fused into one loop per step (exact);
* ``scan, f/g precomputed`` -- an ablation (not a library option): ``f(X)``, ``g(X)`` of every
  channel and direction first, as one depthwise ``lax.conv_general_dilated``
  (``feature_group_count=C``), then the scan over ``h`` only; the spec's suggested layout;
* ``jacobi K`` -- K Picard sweeps over all channels (exact at K = C = 31, approximate
  below: the table gives the error);
* ``quasi-DEER K`` -- K linearised sweeps, each an associative scan;
* ``implicit`` (Jacobi K / Gauss-Seidel K) -- eq. (4) read literally: a different model;
* ``gated linear`` / ``circular linear (FFT)`` -- the associative variants: different models
  (log-depth ``associative_scan`` over channels; the FFT one over ``rfft2`` coefficients);

against the same layer written the way the paper's 1.58 s/image suggests:

* ``PyTorch loop`` -- a Python loop over channels (forward then backward) of
  ``torch.nn.functional.conv2d`` calls on ``(1, 1, H, W)`` planes, sigmoid, products (eager,
  ``torch.no_grad``), with PyTorch's default threads and with 1 thread (its OpenMP threads
  suffer most from the other jobs on this machine); the goal's ratio uses the faster one;
* ``eager JAX loop`` -- the same loop with ``lax.conv_general_dilated`` and ``jnp``, eager.

Both loops use the same parameters; every row's maximum absolute difference from ``scan`` is
reported (~1e-6 for the exact ones). Throughput: the layer's model FLOPs
(``jaxvision.ops.acc_flops``: 124 per pixel and channel, 0.95 GFLOP) over the median time,
against the machine's float32 matmul rate measured in the same run (a jitted
``jnp.dot`` of two 2048 x 2048 matrices, interleaved with the other rows).

Method: the CPU defaults the CLI sets (``jaxvision.train.cpu.set_cpu_defaults``, README "CPU
performance": XLA flags, and glibc malloc retaining freed buffers, without which every call
page-faults its > 32 MiB buffers in anew; the ``scan, glibc 128 KiB malloc thresholds``
ablation row restores glibc's initial thresholds for its own calls, in a block after the
rounds). Every JAX row is compiled and run once untimed; then the repetitions go round-robin
over all rows, the first row rotating each round, so the load of this shared machine (2
cores, other jobs running) hits every row alike; slow rows (the loops, ``jacobi 31``) get
fewer repetitions. Tables report medians (all times are in the JSON). Each repetition of a
row is the second of two back-to-back calls (the steady state of a loop; the first call's
time is kept in the JSON: on this VM the kernel's memory reclaim pages out buffers left idle
while other rows run, and the first call faults them back in). ``--network`` additionally
times ``jaxvision.models.create_model("acc_net")`` and ``("mst_plus_plus")`` (when
registered) on one RGB image (``--network-size``, default 482x512; at that size ``acc_net``
took ~4.6 min per image here, dominated by its depthwise ``lax.conv`` calls, not by the
ACC), jitted, inference mode.

Goals (the issue's): (1) the ACC layer >= 5x faster than the PyTorch loop; (2) >= 15% of the
measured matmul rate.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import cpu_name  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
HEIGHT, WIDTH, CHANNELS = 482, 512, 31
MATMUL_N = 2048
GOAL_VS_TORCH, GOAL_PEAK_FRACTION = 5.0, 0.15


def _load() -> list[float] | None:
  try:
    return [round(v, 2) for v in os.getloadavg()]
  except OSError:
    return None


def _timed(fn) -> float:
  t = time.perf_counter()
  fn()
  return time.perf_counter() - t


# ------------------------------------------------------------------------------------------
# The rows.


def jax_rows(c: int, quick: bool):
  """``[(key, label, kind, fn(x, p))]``; kind: exact / approximate / different model."""
  import jax
  import jax.numpy as jnp
  from jax import lax

  from jaxvision import ops
  from jaxvision.ops import acc as acc_mod

  def solver(**kw):
    return jax.jit(lambda x, p: ops.adjacent_channel_coupler(x, p, **kw))

  def precomputed_fg(x, p):
    """Ablation: f(X), g(X) of all channels and directions as one depthwise conv, then a
    scan over h only (both chains in one scan, as the library's)."""
    xt = jnp.moveaxis(x, -1, 0)                                    # (C, B, H, W)
    b = x.shape[0]
    # Filters per input channel: (f^F, g^F, f^B, g^B): HWIO (3, 3, 1, 4C).
    k = jnp.stack([p.f_kernel[0], p.g_kernel[0], p.f_kernel[1], p.g_kernel[1]], 1)
    k = jnp.transpose(k.reshape(4 * c, 3, 3), (1, 2, 0))[:, :, None]
    bias = jnp.stack([p.f_bias[0], p.g_bias[0], p.f_bias[1], p.g_bias[1]], 1).reshape(-1)
    fg = lax.conv_general_dilated(x, k, (1, 1), "SAME",
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                  feature_group_count=c) + bias
    fg = jnp.moveaxis(fg.reshape(b, *x.shape[1:3], c, 4), (3, 4), (0, 1))   # (C, 4, B, H, W)
    f = jnp.stack([fg[:, 0], fg[::-1, 2]], 1)                       # step order (C, 2, ...)
    g = jnp.stack([fg[:, 1], fg[::-1, 3]], 1)
    xs2 = jnp.stack([xt, xt[::-1]], 1)
    wh = jnp.stack([p.h_kernel[0], p.h_kernel[1, ::-1]], 1)[:, :, None]
    bh = jnp.stack([p.h_bias[0], p.h_bias[1, ::-1]], 1)[:, :, None]

    def step(carry, inp):
      y, acc = carry
      t, xs, f_, g_, w, bb = inp
      z = acc_mod._gate(f_, g_ + acc_mod._conv3x3(y, w, bb))
      acc = acc.at[t].add(0.5 * z[0])
      acc = acc.at[c - 1 - t].add(0.5 * z[1])
      return (xs + z, acc), None

    (_, acc), _ = lax.scan(step, (jnp.zeros((2,) + xt.shape[1:], x.dtype), xt),
                           (jnp.arange(c), xs2, f, g, wh, bh))
    return jnp.moveaxis(acc, 0, -1)

  ks = (2, 4, 8) if not quick else (2,)
  def xla_scan(x, p):
    xt, pp, _ = acc_mod._prepare(x, p, "both", "benchmark")
    return jnp.moveaxis(acc_mod._acc_scan(xt, pp, (1, -1), "zero"), 0, -1)

  from jaxvision.ops import acc_native
  native = acc_native.native_available()
  rows = [("scan", "scan (default: native CPU kernel)" if native else
           f"scan (default; native kernel unavailable: {acc_native.native_status()})",
           "exact", solver()),
          ("scan_xla", "scan, XLA (the default without the native kernel)", "exact",
           jax.jit(xla_scan)),
          ("scan_fg_precomputed", "scan, f/g precomputed (ablation)", "exact",
           jax.jit(precomputed_fg))]
  rows += [(f"jacobi_{k}", f"Jacobi, K = {k}", "approximate", solver(solver="jacobi",
                                                                      num_iters=k))
           for k in ks]
  rows += [(f"jacobi_{c}", f"Jacobi, K = {c} (= C)", "exact",
            solver(solver="jacobi", num_iters=c)),
           ("quasi_deer_4", "quasi-DEER, K = 4", "approximate",
            solver(solver="quasi_deer", num_iters=4)),
           ("implicit_jacobi_4", "implicit eq. 4, Jacobi K = 4", "different model",
            solver(solver="implicit", num_iters=4)),
           ("implicit_gs_2", "implicit eq. 4, Gauss-Seidel K = 2", "different model",
            solver(solver="implicit", num_iters=2, implicit_sweep="gauss_seidel")),
           ("gated_linear", "gated linear (associative)", "different model",
            jax.jit(ops.gated_linear_coupler)),
           ("circular_linear", "circular linear (FFT, associative)", "different model",
            jax.jit(lambda x, p: ops.circular_linear_coupler(
                x, p._replace(h_kernel=p.h_kernel / 9))))]
  return rows


def eager_jax_loop(x, p):
  """The per-channel loop, eager (one dispatch per op): ``lax.conv`` on (1, 1, H, W) planes."""
  import jax.numpy as jnp
  from jax import lax

  xc = jnp.moveaxis(x, -1, 0)[:, :, None]                           # (C, B, 1, H, W)
  c = xc.shape[0]

  def conv(a, w, b):
    return lax.conv_general_dilated(a, w[None, None], (1, 1), "SAME") + b

  zs = []
  for d, order in ((0, range(c)), (1, range(c - 1, -1, -1))):
    y = jnp.zeros_like(xc[0])
    z = [None] * c
    for i in order:
      g = conv(xc[i], p.g_kernel[d, i], p.g_bias[d, i]) + conv(y, p.h_kernel[d, i],
                                                               p.h_bias[d, i])
      z[i] = conv(xc[i], p.f_kernel[d, i], p.f_bias[d, i]) * (1 / (1 + jnp.exp(-g)))
      y = xc[i] + z[i]
    zs.append(jnp.concatenate(z, axis=1))
  out = jnp.moveaxis(xc[:, :, 0], 0, 1) + 0.5 * (zs[0] + zs[1])      # (B, C, H, W)
  return jnp.moveaxis(out, 1, -1)


def torch_loop_fn(x, p):
  """The per-channel PyTorch loop: ``conv2d`` per channel and direction, eager, no grad."""
  import numpy as np
  import torch
  import torch.nn.functional as F

  xt = torch.from_numpy(np.moveaxis(np.asarray(x), -1, 1).copy())    # (B, C, H, W)
  t = {k: torch.from_numpy(np.asarray(v).copy()) for k, v in p._asdict().items()}
  c = xt.shape[1]

  def run():
    with torch.no_grad():
      zs = []
      for d, order in ((0, range(c)), (1, range(c - 1, -1, -1))):
        y = torch.zeros_like(xt[:, :1])
        z = [None] * c
        for i in order:
          xi = xt[:, i:i + 1]
          gate = torch.sigmoid(
              F.conv2d(xi, t["g_kernel"][d, i][None, None], t["g_bias"][d, i:i + 1], padding=1)
              + F.conv2d(y, t["h_kernel"][d, i][None, None], t["h_bias"][d, i:i + 1],
                         padding=1))
          z[i] = F.conv2d(xi, t["f_kernel"][d, i][None, None], t["f_bias"][d, i:i + 1],
                          padding=1) * gate
          y = xi + z[i]
        zs.append(torch.cat(z, 1))
      return xt + 0.5 * (zs[0] + zs[1])

  return run


# ------------------------------------------------------------------------------------------
# Measurement.


def _malloc_ablation(run_scan, reps, scan_row) -> dict:
  """The default scan under glibc's initial (static) 128 KiB mmap/trim thresholds: each call
  mmaps its buffers afresh and page-faults them in (``jaxvision/train/cpu.py``).

  Measured in its own block after the interleaved rounds, not among them: lowering the trim
  threshold hands the retained heap back to the OS, so the next call of every other row would
  fault it in again. Each repetition pairs one call without retention with one retained call
  (after an untimed call that re-grows the heap), side by side.
  """
  from jaxvision.train import cpu

  unretained, retained = [], []
  for _ in range(reps):
    cpu.retain_freed_memory(cpu.GLIBC_INITIAL_THRESHOLD)
    try:
      unretained.append(_timed(run_scan))
    finally:
      cpu.retain_freed_memory()
    run_scan()
    retained.append(_timed(run_scan))
  return dict(scan_row, label="scan, glibc 128 KiB malloc thresholds (ablation: buffers not "
              "retained; own block)", times_s=unretained,
              median_s=statistics.median(unretained), min_s=min(unretained),
              paired_retained_times_s=retained,
              paired_retained_median_s=statistics.median(retained))


def measure(height, width, c, reps, quick, log=print, malloc_ablation=False):
  import jax
  import jax.numpy as jnp
  import numpy as np

  from jaxvision import ops

  rng = np.random.default_rng(0)
  x_np = rng.uniform(size=(1, height, width, c)).astype(np.float32)
  x = jnp.asarray(x_np)
  p = ops.init_acc_params(jax.random.key(0), c)
  flops = ops.acc_flops(1, height, width, c)
  calls, rows = {}, {}
  ref = None
  for key, label, kind, fn in jax_rows(c, quick):
    t0 = time.perf_counter()
    compiled = fn.lower(x, p).compile()
    row = {"label": label, "kind": kind, "compile_s": time.perf_counter() - t0,
           "temp_bytes": int(compiled.memory_analysis().temp_size_in_bytes)}
    t0 = time.perf_counter()
    out = np.asarray(jax.block_until_ready(compiled(x, p)))
    row["first_call_s"] = time.perf_counter() - t0
    if ref is None:
      ref = out
    row["max_abs_diff_vs_scan"] = float(np.abs(out - ref).max())
    rows[key] = row
    calls[key] = (lambda cf: lambda: jax.block_until_ready(cf(x, p)))(compiled)
    log(f"  compiled {label}: {row['compile_s']:.1f} s, first call "
        f"{row['first_call_s'] * 1e3:.0f} ms, max |diff| {row['max_abs_diff_vs_scan']:.1e}")

  out = eager_jax_loop(x, p)
  jax.block_until_ready(out)              # compiles its per-op executables
  rows["eager_jax_loop"] = {"label": "eager JAX loop (lax.conv per channel)",
                            "kind": "exact",
                            "max_abs_diff_vs_scan": float(np.abs(np.asarray(out) - ref).max())}
  calls["eager_jax_loop"] = lambda: jax.block_until_ready(eager_jax_loop(x, p))
  torch_note = None
  try:
    import torch
    run = torch_loop_fn(x_np, p)
    out = np.moveaxis(run().numpy(), 1, -1)
    diff = float(np.abs(out - ref).max())
    threads = torch.get_num_threads()
    rows["torch_loop"] = {"label": f"PyTorch loop (conv2d per channel, {threads} threads)",
                          "kind": "exact", "max_abs_diff_vs_scan": diff, "threads": threads,
                          "version": torch.__version__}
    calls["torch_loop"] = run

    def run_1():
      torch.set_num_threads(1)
      try:
        return run()
      finally:
        torch.set_num_threads(threads)

    rows["torch_loop_1"] = {"label": "PyTorch loop (conv2d per channel, 1 thread)",
                            "kind": "exact", "max_abs_diff_vs_scan": diff, "threads": 1}
    calls["torch_loop_1"] = run_1
  except ImportError as e:  # pragma: no cover - depends on the environment
    torch_note = f"PyTorch not importable ({e}); its rows are skipped"
    log("  " + torch_note)

  a = jnp.asarray(rng.standard_normal((MATMUL_N, MATMUL_N)).astype(np.float32))
  b = jnp.asarray(rng.standard_normal((MATMUL_N, MATMUL_N)).astype(np.float32))
  mm = jax.jit(jnp.dot).lower(a, b).compile()
  jax.block_until_ready(mm(a, b))
  rows["matmul"] = {"label": f"jnp.dot {MATMUL_N}x{MATMUL_N} float32 (peak reference)",
                    "kind": "reference", "flops": 2 * MATMUL_N ** 3}
  calls["matmul"] = lambda: jax.block_until_ready(mm(a, b))

  slow = {"eager_jax_loop", "torch_loop", "torch_loop_1", f"jacobi_{c}"}
  keys = list(calls)
  times = {k: [] for k in keys}
  cold = {k: [] for k in keys}
  for r in range(reps):
    for i in range(len(keys)):
      k = keys[(i + r) % len(keys)]
      if k in slow and len(times[k]) >= max(2, (reps + 1) // 2):
        continue
      # Two back-to-back calls; the second is the row's time (steady state): the first re-warms
      # the buffers that this VM's memory reclaim may have paged out while the other rows ran.
      cold[k].append(_timed(calls[k]))
      times[k].append(_timed(calls[k]))
    log(f"  round {r + 1}/{reps}: scan {times['scan'][-1] * 1e3:.0f} ms, load {_load()}")
  for k, ts in times.items():
    rows[k].update(times_s=ts, median_s=statistics.median(ts), min_s=min(ts),
                   first_of_pair_times_s=cold[k],
                   first_of_pair_median_s=statistics.median(cold[k]))
  if malloc_ablation:
    rows["scan_malloc_default"] = _malloc_ablation(calls["scan"], reps, rows["scan"])
  peak = rows["matmul"]["flops"] / rows["matmul"]["median_s"]
  # The PyTorch baseline is its faster thread setting in this run (a conservative ratio).
  torch_keys = [k for k in ("torch_loop", "torch_loop_1") if k in rows]
  torch_best = min(torch_keys, key=lambda k: rows[k]["median_s"]) if torch_keys else None
  for k, row in rows.items():
    if k != "matmul":
      row["model_gflops_per_s"] = flops / row["median_s"] / 1e9
      row["fraction_of_matmul"] = flops / row["median_s"] / peak
      if torch_best:
        row["speedup_vs_torch"] = rows[torch_best]["median_s"] / row["median_s"]
  return {"height": height, "width": width, "channels": c, "batch": 1,
          "params": sum(v.size for v in p if v is not None), "model_flops": flops,
          "matmul_gflops_per_s": peak / 1e9, "rows": rows, "torch_note": torch_note,
          "torch_baseline": torch_best,
          "jax": jax.__version__, "platform": jax.devices()[0].platform}


def _acc_layer_shapes(model, variables, x) -> list[tuple[int, ...]]:
  """The input shapes of every ACC layer ``model`` applies (traced, nothing computed)."""
  import jax

  from jaxvision.nn import acc as nn_acc

  shapes, original = [], nn_acc.adjacent_channel_coupler

  def recording(inp, *args, **kwargs):
    shapes.append(tuple(inp.shape))
    return original(inp, *args, **kwargs)

  nn_acc.adjacent_channel_coupler = recording
  try:
    jax.eval_shape(lambda v, x_: model.apply(v, x_), variables, x)
  finally:
    nn_acc.adjacent_channel_coupler = original
  return shapes


def network_flops(model, variables, x, compiled) -> dict:
  """FLOPs of one inference: XLA's cost analysis, corrected for the ACC scans.

  XLA's ``cost_analysis`` counts a ``while`` body once, so each ACC layer (a ``lax.scan`` of
  depth C) contributes about ``1 / C`` of its work; the estimate adds the remaining
  ``(C - 1) / C`` of the analytic count (:func:`jaxvision.ops.acc_flops`) per layer.
  """
  from jaxvision import ops

  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  xla = float(cost.get("flops", 0.0))
  shapes = [s if len(s) == 4 else (1,) + s for s in _acc_layer_shapes(model, variables, x)]
  acc = [ops.acc_flops(*s) for s in shapes]
  chans = [s[-1] for s in shapes]
  correction = sum(f * (c - 1) / c for f, c in zip(acc, chans))
  return {"xla_cost_analysis_flops": xla, "acc_layers": len(acc),
          "acc_analytic_flops": float(sum(acc)), "flops": xla + correction}


def measure_networks(height, width, reps, peak_flops=None, log=print) -> dict:
  """Times whole registered models on one RGB image (inference); skips absent ones."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  from jaxvision import models

  out = {}
  x = jnp.asarray(np.random.default_rng(1).uniform(size=(1, height, width, 3))
                  .astype(np.float32))
  for name in ("acc_net", "mst_plus_plus"):
    if name not in models.list_models():
      out[name] = {"skipped": "not registered"}
      log(f"  {name}: not registered, skipped")
      continue
    try:
      model = models.create_model(name)
      variables = model.init(jax.random.key(0), x[:, :64, :64])
      n_params = sum(v.size for v in jax.tree.leaves(variables.get("params", variables)))
      fn = jax.jit(lambda v, x_: model.apply(v, x_))
      t0 = time.perf_counter()
      compiled = fn.lower(variables, x).compile()
      compile_s = time.perf_counter() - t0
      jax.block_until_ready(compiled(variables, x))
      ts = [_timed(lambda: jax.block_until_ready(compiled(variables, x))) for _ in range(reps)]
      row = {"params": int(n_params), "compile_s": compile_s, "times_s": ts,
             "median_s": statistics.median(ts),
             **network_flops(model, variables, x, compiled)}
      row["gflops_per_s"] = row["flops"] / row["median_s"] / 1e9
      if peak_flops:
        row["fraction_of_matmul"] = row["flops"] / row["median_s"] / peak_flops
      out[name] = row
      log(f"  {name}: {n_params} params, {row['flops'] / 1e9:.1f} GFLOP, "
          f"{row['median_s'] * 1e3:.0f} ms per image")
    except Exception as e:  # noqa: BLE001 - report, don't fail the layer benchmark
      out[name] = {"skipped": f"{type(e).__name__}: {e}"[:300]}
      log(f"  {name}: failed ({out[name]['skipped']})")
  return out


# ------------------------------------------------------------------------------------------
# Report.


def goals(report: dict) -> dict:
  rows = report["rows"]
  scan = rows["scan"]
  g = {"peak_fraction": {"goal": f">= {GOAL_PEAK_FRACTION:.0%} of the measured matmul rate",
                         "value": scan["fraction_of_matmul"],
                         "met": scan["fraction_of_matmul"] >= GOAL_PEAK_FRACTION}}
  if "speedup_vs_torch" in scan:
    g["vs_torch"] = {"goal": f">= {GOAL_VS_TORCH:g}x faster than the PyTorch loop",
                     "baseline": report["torch_baseline"], "value": scan["speedup_vs_torch"],
                     "met": scan["speedup_vs_torch"] >= GOAL_VS_TORCH}
  else:
    g["vs_torch"] = {"goal": f">= {GOAL_VS_TORCH:g}x faster than the PyTorch loop",
                     "value": None, "met": None, "note": report.get("torch_note")}
  return g


def markdown(report: dict) -> str:
  rows = report["rows"]
  g = report["goals"]
  lines = [
      "# Adjacent Channel Coupler: one layer, inference (cpu)", "",
      f"One ACC layer (eq. 4, both directions, zero boundary; {report['params']} parameters = "
      f"60 C) on a (1, {report['height']}, {report['width']}, {report['channels']}) float32 "
      f"image; model FLOPs {report['model_flops'] / 1e9:.3f} G; {report['cpu']}, "
      f"{report['cores']} cores; {report['date']}; jax {report['jax']}"
      + (f", torch {rows['torch_loop']['version']} ({rows['torch_loop']['threads']} threads)"
         if "torch_loop" in rows else "")
      + f"; XLA_FLAGS=`{report['xla_flags'] or '(unset)'}`; freed buffers retained "
      f"(glibc malloc): {'yes' if report.get('cpu_defaults', {}).get('malloc') else 'no'}; "
      "load average before/after: "
      f"{report['load_before']} / {report['load_after']}; {report['minutes']:.1f} min. "
      "Method: `benchmarks/spectral_recon.py`'s docstring. The machine is shared (other jobs "
      "running): medians of interleaved repetitions.", "",
      "## Goals", ""]
  vt = g["vs_torch"]
  if vt["value"] is not None:
    tb = rows[vt["baseline"]]
    lines.append(f"* `scan` vs the PyTorch per-channel loop: **{vt['value']:.1f}x** faster "
                 f"({rows['scan']['median_s'] * 1e3:.0f} ms vs "
                 f"{tb['median_s'] * 1e3:.0f} ms, the faster of its two thread settings, "
                 f"{tb['threads']} thread(s); goal {vt['goal']}: "
                 f"{'met' if vt['met'] else 'NOT met'}).")
  else:
    lines.append(f"* vs the PyTorch loop: not measured ({vt['note']}).")
  pf = g["peak_fraction"]
  lines.append(f"* `scan` throughput: **{rows['scan']['model_gflops_per_s']:.1f} GFLOP/s = "
               f"{pf['value']:.0%}** of the float32 matmul rate measured in the same run "
               f"({report['matmul_gflops_per_s']:.1f} GFLOP/s; goal {pf['goal']}: "
               f"{'met' if pf['met'] else 'NOT met'}).")
  lines += ["", "## Time per image (median)", "",
            "| row | model | ms | vs PyTorch loop (faster setting) | model GFLOP/s | % of matmul | "
            "max abs diff vs scan | compile s | temp MiB |",
            "|---|---|---|---|---|---|---|---|---|"]
  for k, r in rows.items():
    if k == "matmul":
      continue
    vs = f"{r['speedup_vs_torch']:.1f}x" if "speedup_vs_torch" in r else "-"
    comp = f"{r['compile_s']:.1f}" if "compile_s" in r else "-"
    temp = f"{r['temp_bytes'] / 2**20:.0f}" if "temp_bytes" in r else "-"
    lines.append(f"| {r['label']} | {r['kind']} | {r['median_s'] * 1e3:.0f} | {vs} | "
                 f"{r['model_gflops_per_s']:.2f} | {r['fraction_of_matmul']:.1%} | "
                 f"{r['max_abs_diff_vs_scan']:.1e} | {comp} | {temp} |")
  mm = rows["matmul"]
  lines.append(f"| {mm['label']} | reference | {mm['median_s'] * 1e3:.0f} | - | "
               f"{report['matmul_gflops_per_s']:.1f} | 100% | - | - | - |")
  net = report.get("networks")
  if net:
    nh, nw = report.get("network_size", (report["height"], report["width"]))
    lines += ["", f"## Whole networks (one {nh}x{nw} RGB image, jitted inference)", "",
              "| model | params | GFLOP | ACC layers | ms | GFLOP/s | % of matmul | compile s |",
              "|---|---|---|---|---|---|---|---|"]
    for name, r in net.items():
      if "skipped" in r:
        lines.append(f"| {name} | - | - | - | skipped: {r['skipped']} | - | - | - |")
      else:
        frac = f"{r['fraction_of_matmul']:.1%}" if "fraction_of_matmul" in r else "-"
        lines.append(f"| {name} | {r['params']:,} | {r['flops'] / 1e9:.1f} | "
                     f"{r['acc_layers']} | {r['median_s'] * 1e3:.0f} | "
                     f"{r['gflops_per_s']:.1f} | {frac} | {r['compile_s']:.1f} |")
    lines += ["", "GFLOP: XLA's `cost_analysis` of the compiled network plus, per ACC layer, "
              "the (C - 1) / C of its analytic FLOPs that XLA's count of the scan's `while` "
              "body (once) leaves out (`network_flops`)."]
  lines += ["", "## Notes", "",
            "* \"model GFLOP/s\" divides the exact layer's FLOPs (124 per pixel and channel: "
            "three 3x3 convs with bias per direction, the gate, the updates) by each row's "
            "time, also for rows that do more (Jacobi: K sweeps) or other (different models) "
            "work: it is a throughput of the ACC layer, not of the row's own arithmetic.",
            "* \"approximate\" rows stop before the exact K = C sweeps; their error is the "
            "last column. \"different model\" rows compute another function (see "
            "`jaxvision/ops/acc.py`); their difference is not an error.",
            "* The circular-linear row uses h / 9 (the layer's initialisation for that "
            "variant) so its linear chain stays bounded.",
            "* Temp MiB is XLA's `memory_analysis().temp_size_in_bytes`. With glibc's default "
            "malloc thresholds a call also page-faults every fresh buffer above 32 MiB in "
            "anew; the run uses the CLI's CPU defaults (`jaxvision/train/cpu.py`: XLA flags "
            "above, and freed buffers retained: "
            f"{'applied' if report.get('cpu_defaults', {}).get('malloc') else 'not applied'}"
            "); the ablation row restores glibc's thresholds for its calls, in a block after "
            "the interleaved rounds, paired with retained calls"
            + (f" (median {rows['scan_malloc_default']['paired_retained_median_s'] * 1e3:.0f}"
               " ms there)" if "scan_malloc_default" in rows else "") + ".",
            "* Each repetition is the second of two back-to-back calls (the steady state of "
            "a loop): the first re-warms buffers this VM's memory reclaim may have paged out "
            "while the other rows ran. Medians of the first calls: "
            + ", ".join(f"{r['label']} {r['first_of_pair_median_s'] * 1e3:.0f} ms"
                        for k, r in rows.items() if k in ("scan", "torch_loop", "torch_loop_1")
                        and "first_of_pair_median_s" in r) + ".",
            "* Times are medians of interleaved repetitions: "
            + ", ".join(f"{r['label']} {len(r['times_s'])}" for r in rows.values()) + "."]
  if report.get("torch_note"):
    lines.append(f"* {report['torch_note']}.")
  return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--quick", action="store_true", help="seconds-long smoke run (64x64)")
  p.add_argument("--reps", type=int, default=None, help="repetitions (default 7; 2 quick)")
  p.add_argument("--network", action="store_true",
                 help="also time the whole acc_net / mst_plus_plus models (if registered)")
  p.add_argument("--network-size", default=None,
                 help="HxW of the --network image (default 482x512; 64x64 with --quick)")
  p.add_argument("--out", help="output directory (default benchmarks/results; "
                               "/tmp/spectral_recon_quick with --quick)")
  a = p.parse_args(argv)
  from jaxvision.train.cpu import set_cpu_defaults
  cpu_defaults = set_cpu_defaults()  # README "CPU performance": before JAX starts
  out = Path(a.out) if a.out else Path("/tmp/spectral_recon_quick") if a.quick else RESULTS
  out.mkdir(parents=True, exist_ok=True)
  height, width = (64, 64) if a.quick else (HEIGHT, WIDTH)
  reps = a.reps or (2 if a.quick else 7)
  load_before, t0 = _load(), time.perf_counter()
  print(f"ACC layer {height}x{width}x{CHANNELS}, {reps} rounds")
  report = measure(height, width, CHANNELS, reps, a.quick,
                   malloc_ablation=cpu_defaults["malloc"])
  if a.network:
    nh, nw = (int(v) for v in a.network_size.split("x")) if a.network_size else (height, width)
    print(f"networks at {nh}x{nw}")
    report["networks"] = measure_networks(nh, nw, 2 if a.quick else 3,
                                          peak_flops=report["matmul_gflops_per_s"] * 1e9)
    report["network_size"] = [nh, nw]
  report.update(cpu=cpu_name(), cores=os.cpu_count(), load_before=load_before,
                load_after=_load(), minutes=(time.perf_counter() - t0) / 60,
                date=datetime.date.today().isoformat(),
                xla_flags=os.environ.get("XLA_FLAGS", ""), cpu_defaults=cpu_defaults)
  report["goals"] = goals(report)
  (out / "spectral_recon.json").write_text(json.dumps(report, indent=1))
  (out / "spectral_recon.md").write_text(markdown(report))
  print(markdown(report))
  return report


if __name__ == "__main__":
  main()
