r"""Selective scan, forward + backward: jaxvision's methods vs a naive JAX scan and PyTorch.

  python benchmarks/scan.py                   # full run (~15 min): benchmarks/results/scan.*
  python benchmarks/scan.py --quick           # seconds-long smoke run into /tmp/scan_quick
  python benchmarks/scan.py --sizes 1024,4096 --torch-max 1024 --out /tmp/s

What is measured (issue 4, spec icpr-13 Sec. 2 "Memory cost"): the wall time of one jitted
``jax.grad`` of ``loss = sum(selective_scan(u, delta, A, B, C, D, delta_bias=...,
delta_softplus=True) * cot)`` with respect to ``u, delta, A, B, C, D, delta_bias`` -- the
forward scan plus its backward -- at batch 2, D = 256 channels, N = 16 states, variable
(batch, N, L) ``B`` and ``C`` (Mamba's layout), float32, for L = 1k ... 64k and every
method of ``jaxvision.ops.selective_scan``:

* ``chunked``     -- ``lax.scan`` over chunks of 64 steps with a custom VJP that stores one
                     state per chunk and recomputes the chunk in the backward pass;
* ``sequential``  -- ``lax.scan`` over L, autodiff;
* ``associative`` -- ``lax.associative_scan`` over the materialised (L, batch, D, N) terms,
                     autodiff;

against two baselines computing the same function:

* ``naive``: the obvious one-line JAX version -- materialise ``exp(delta A)`` and
  ``delta B u`` as (batch, L, D, N), ``lax.associative_scan`` over L, contract with C,
  ``+ D u`` -- differentiated by JAX (jitted);
* ``torch loop``: PyTorch written as mamba_ssm's ``selective_scan_ref`` (the reference's
  sequential Python loop over L on ``deltaA[:, :, i]``, ``deltaB_u[:, :, i]``), eager, with
  autograd's backward. Its time grows faster than linearly in L (each step's backward adds a
  full (batch, D, L, N) gradient of the strided slice), so it runs only up to ``--torch-max``
  (default 1024) and stops earlier if the previous length took more than ``--torch-stop-s``
  seconds.

Peak memory is XLA's ``compiled.memory_analysis().temp_size_in_bytes`` of the jitted grad
(temporary buffers; the arguments and the returned gradients are not included), reported
also as a multiple of one (batch, L, D) float32 activation. A method is skipped at a length
where that temp size exceeds ``--max-gib`` (8 GiB) or where its time, extrapolated linearly
from the previous length (quadratically for PyTorch), exceeds ``--max-call-s`` (60 s); the
JSON and the table say which and why.

Every JAX variant is compiled and called once untimed; then the repetitions go round-robin
over all variants of one length, the starting variant rotating each round, so that the load
of this shared machine (2 cores, other jobs running) hits every variant alike. Tables report
medians (every time is in the JSON) and the load average. PyTorch runs on the same CPU with
its default thread count, no warm-up (it has nothing to compile).

Goals (the issue's): (1) >= 3x faster than the naive version at L = 2048, D = 128 (a
separate row, more repetitions); (2) >= 100x faster than the PyTorch loop; (3) time linear
in L (the log-log slope of ``chunked`` time vs L, fitted over L >= 4096, where fixed
per-call costs no longer flatten the curve; all-length slopes of every method are reported
too); (4) ``chunked``
peak temp memory within 2x of one (batch, L, D) float32 activation at the largest L.
Before timing, the gradients of every variant are compared with ``chunked``'s at the
smallest length (and PyTorch's at its first length), as a guard against timing something
that computes something else.
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
BATCH, DIM, STATE = 2, 256, 16
SIZES = (1024, 2048, 4096, 8192, 16384, 32768, 65536)
GOAL_ROW = dict(length=2048, dim=128)
CHUNK = 64
METHODS = ("chunked", "sequential", "associative", "naive")
GOAL_VS_NAIVE, GOAL_VS_TORCH, GOAL_MEMORY_RATIO = 3.0, 100.0, 2.0
SLOPE_FROM = 4096
GIB = 2.0**30


def _load() -> list[float] | None:
  try:
    return [round(x, 2) for x in os.getloadavg()]
  except OSError:
    return None


def _timed(fn) -> float:
  t = time.perf_counter()
  fn()
  return time.perf_counter() - t


def _reps(length: int, quick: bool) -> int:
  if quick:
    return 2
  return 5 if length <= 2048 else 3 if length <= 8192 else 2


def make_inputs(length: int, dim: int, seed: int = 0):
  """Mamba-like float32 inputs: S4D-real ``A``, ``delta_bias`` = softplus^-1(dt0)."""
  import numpy as np
  rng = np.random.default_rng(seed)
  dt0 = np.exp(rng.uniform(np.log(1e-3), np.log(0.1), size=dim))
  f32 = lambda x: np.asarray(x, np.float32)
  return dict(
      u=f32(rng.standard_normal((BATCH, dim, length))),
      delta=f32(0.5 * rng.standard_normal((BATCH, dim, length))),
      A=f32(-np.tile(np.arange(1, STATE + 1), (dim, 1))),
      B=f32(rng.standard_normal((BATCH, STATE, length))),
      C=f32(rng.standard_normal((BATCH, STATE, length))),
      D=f32(np.ones(dim)),
      delta_bias=f32(dt0 + np.log(-np.expm1(-dt0))),
      cot=f32(rng.standard_normal((BATCH, dim, length))),
  )


ARGS = ("u", "delta", "A", "B", "C", "D", "delta_bias")


def jax_grad_fn(method: str):
  """The jitted ``grad`` of ``sum(out * cot)`` for a jaxvision method or ``"naive"``."""
  import jax
  import jax.numpy as jnp

  from jaxvision import ops

  def naive(u, delta, A, B, C, D, delta_bias):
    delta = jax.nn.softplus(delta + delta_bias[:, None])
    a = jnp.exp(jnp.einsum("bdl,dn->bldn", delta, A))
    bu = jnp.einsum("bdl,bnl,bdl->bldn", delta, B, u)
    _, h = jax.lax.associative_scan(lambda x, y: (x[0] * y[0], y[0] * x[1] + y[1]), (a, bu),
                                    axis=1)
    return jnp.einsum("bldn,bnl->bdl", h, C) + D[:, None] * u

  def scan(u, delta, A, B, C, D, delta_bias):
    return ops.selective_scan(u, delta, A, B, C, D, delta_bias=delta_bias, delta_softplus=True,
                              method=method, chunk_size=CHUNK)

  f = naive if method == "naive" else scan
  return jax.jit(jax.grad(lambda *a: jnp.sum(f(*a[:-1]) * a[-1]), argnums=tuple(range(7))))


def torch_step(x: dict):
  """One forward + backward of ``selective_scan_ref``'s loop in PyTorch (CPU, eager)."""
  import torch
  import torch.nn.functional as F

  t = {k: torch.from_numpy(v.copy()) for k, v in x.items()}
  leaves = [t[k].requires_grad_(True) for k in ARGS]

  def ref(u, delta, A, B, C, D, delta_bias):
    # mamba_ssm/ops/selective_scan_interface.py::selective_scan_ref, real A, variable B/C.
    delta = F.softplus(delta + delta_bias[..., None])
    batch, dim, dstate = u.shape[0], A.shape[0], A.shape[1]
    x = A.new_zeros((batch, dim, dstate))
    ys = []
    delta_a = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    delta_b_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    for i in range(u.shape[2]):
      x = delta_a[:, :, i] * x + delta_b_u[:, :, i]
      ys.append(torch.einsum("bdn,bn->bd", x, C[:, :, i]))
    y = torch.stack(ys, dim=2)
    return y + u * D[:, None]

  def step():
    for leaf in leaves:
      leaf.grad = None
    (ref(*leaves) * t["cot"]).sum().backward()
    return [leaf.grad for leaf in leaves]

  return step


def _max_rel_diff(got, want) -> float:
  import numpy as np
  return max(float(np.abs(np.asarray(g) - np.asarray(w)).max() / np.abs(np.asarray(w)).max())
             for g, w in zip(got, want))


def measure_length(length, dim, methods, reps, *, torch_ok, predicted, max_gib, max_call_s,
                   log=print, check_against_torch=False):
  """Compiles, checks and times every variant at one length; returns a dict per variant."""
  import jax
  import numpy as np

  x = make_inputs(length, dim)
  args = [x[k] for k in ARGS] + [x["cot"]]
  act = BATCH * length * dim * 4
  out, calls = {}, {}
  ref_grads = None
  for m in methods:
    row = {"method": m}
    t0 = time.perf_counter()
    compiled = jax_grad_fn(m).lower(*args).compile()
    row["compile_s"] = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    row["temp_bytes"] = int(mem.temp_size_in_bytes)
    row["temp_over_activation"] = mem.temp_size_in_bytes / act
    if mem.temp_size_in_bytes > max_gib * GIB:
      row["skipped"] = f"temp memory {mem.temp_size_in_bytes / GIB:.1f} GiB > {max_gib} GiB"
    elif predicted.get(m, 0.0) > max_call_s:
      row["skipped"] = (f"extrapolated {predicted[m]:.0f} s per call > {max_call_s:.0f} s")
    else:
      t0 = time.perf_counter()
      grads = jax.block_until_ready(compiled(*args))
      row["first_call_s"] = time.perf_counter() - t0
      if ref_grads is None:
        ref_grads = grads
      else:
        row["grad_max_rel_diff_vs_" + methods[0]] = _max_rel_diff(grads, ref_grads)
      calls[m] = (lambda c: lambda: jax.block_until_ready(c(*args)))(compiled)
    out[m] = row
    del compiled
  if torch_ok:
    step = torch_step(x)
    t0 = time.perf_counter()
    tg = step()
    out["torch loop"] = {"method": "torch loop", "first_call_s": time.perf_counter() - t0}
    if check_against_torch and ref_grads is not None:
      out["torch loop"]["grad_max_rel_diff_vs_" + methods[0]] = _max_rel_diff(
          [g.numpy() for g in tg], ref_grads)
    calls["torch loop"] = step
  keys = list(calls)
  times = {k: [] for k in keys}
  if "torch loop" in times:  # its first call is a representative (nothing to compile)
    times["torch loop"].append(out["torch loop"]["first_call_s"])
  for r in range(reps):
    for i in range(len(keys)):
      k = keys[(i + r) % len(keys)]
      if k == "torch loop" and len(times[k]) >= max(1, reps // 2):
        continue
      times[k].append(_timed(calls[k]))
  for k, ts in times.items():
    out[k].update(times_s=ts, median_s=statistics.median(ts), min_s=min(ts))
  log(f"L={length} D={dim}: " + ", ".join(
      f"{k}={v['median_s'] * 1e3:.0f}ms" if "median_s" in v else f"{k}=skipped"
      for k, v in out.items()) + f"  load {_load()}")
  return out


def fit_slope(lengths, times) -> float | None:
  import numpy as np
  if len(lengths) < 2:
    return None
  return float(np.polyfit(np.log(lengths), np.log(times), 1)[0])


def run(sizes, *, dim, goal_row, torch_max, torch_stop_s, max_gib, max_call_s, quick,
        log=print) -> dict:
  import jax
  import torch

  per_length = {}
  predicted: dict[str, float] = {}
  last: dict[str, tuple[int, float]] = {}
  torch_stopped = None
  torch_first = True
  for length in sizes:
    for m, (l0, t0) in last.items():
      growth = (length / l0) ** (2 if m == "torch loop" else 1)
      predicted[m] = t0 * growth
    torch_ok = length <= torch_max and torch_stopped is None
    if torch_ok and predicted.get("torch loop", 0.0) > max_call_s * 5:
      torch_ok, torch_stopped = False, (
          f"stopped before L={length}: extrapolated "
          f"{predicted['torch loop']:.0f} s per call")
    res = measure_length(length, dim, METHODS, _reps(length, quick), torch_ok=torch_ok,
                         predicted=predicted, max_gib=max_gib, max_call_s=max_call_s,
                         log=log, check_against_torch=torch_ok and torch_first)
    torch_first = torch_first and not torch_ok
    for m, row in res.items():
      if "median_s" in row:
        last[m] = (length, row["median_s"])
    if "torch loop" in res and res["torch loop"]["median_s"] > torch_stop_s and \
        torch_stopped is None:
      torch_stopped = (f"stopped after L={length}: one call took "
                       f"{res['torch loop']['median_s']:.0f} s (> {torch_stop_s:.0f} s); it "
                       "grows faster than linearly")
    per_length[str(length)] = {"length": length, "dim": dim, "variants": res,
                               "load_average_after": _load()}
  if torch_stopped is None:
    torch_stopped = f"not run above --torch-max = {torch_max}"
  goal = measure_length(goal_row["length"], goal_row["dim"], METHODS,
                        3 if quick else 7, torch_ok=False, predicted={}, max_gib=max_gib,
                        max_call_s=1e9, log=log)
  return {"platform": jax.devices()[0].platform, "batch": BATCH, "dim": dim, "state": STATE,
          "chunk_size": CHUNK, "lengths": per_length,
          "goal_row": {**goal_row, "variants": goal, "load_average_after": _load()},
          "torch_stopped": torch_stopped, "torch_threads": torch.get_num_threads(),
          "jax": jax.__version__, "torch": torch.__version__,
          "xla_flags": os.environ.get("XLA_FLAGS", "")}


def goals(report: dict) -> dict:
  lengths = report["lengths"]
  g = report["goal_row"]["variants"]
  vs_naive = g["naive"]["median_s"] / g["chunked"]["median_s"]
  torch_rows = [
      {"length": int(n), "torch_s": s["variants"]["torch loop"]["median_s"],
       "chunked_s": s["variants"]["chunked"]["median_s"],
       "speedup": s["variants"]["torch loop"]["median_s"] / s["variants"]["chunked"]["median_s"]}
      for n, s in lengths.items() if "median_s" in s["variants"].get("torch loop", {})]
  slopes = {}
  for m in METHODS + ("torch loop",):
    pts = [(int(n), s["variants"][m]["median_s"]) for n, s in lengths.items()
           if "median_s" in s["variants"].get(m, {})]
    slopes[m] = {"slope": fit_slope([p[0] for p in pts], [p[1] for p in pts]),
                 "lengths": [p[0] for p in pts]}
  # The goal's fit leaves out the short lengths, where fixed per-call costs flatten the
  # curve, when at least three lengths >= SLOPE_FROM remain.
  pts = [(int(n), s["variants"]["chunked"]["median_s"]) for n, s in lengths.items()]
  long_pts = [p for p in pts if p[0] >= SLOPE_FROM]
  pts = long_pts if len(long_pts) >= 3 else pts
  chunked_slope = fit_slope([p[0] for p in pts], [p[1] for p in pts])
  largest = max(lengths.values(), key=lambda s: s["length"])
  ratio = largest["variants"]["chunked"]["temp_over_activation"]
  return {
      "vs_naive": {"goal": f">= {GOAL_VS_NAIVE:g}x at L={report['goal_row']['length']}, "
                           f"D={report['goal_row']['dim']}",
                   "speedup": vs_naive, "met": vs_naive >= GOAL_VS_NAIVE},
      "vs_torch": {"goal": f">= {GOAL_VS_TORCH:g}x", "rows": torch_rows,
                   "met": bool(torch_rows) and all(r["speedup"] >= GOAL_VS_TORCH
                                                   for r in torch_rows)},
      "linear_time": {"goal": "log-log slope of chunked time vs L within 1 +- 0.15",
                      "slope": chunked_slope, "fit_lengths": [p[0] for p in pts],
                      "slopes_all_lengths": slopes,
                      "met": chunked_slope is not None and abs(chunked_slope - 1) <= 0.15},
      "chunked_memory": {"goal": f"temp <= {GOAL_MEMORY_RATIO:g}x one (batch, L, D) float32 "
                                 "activation at the largest L",
                         "length": largest["length"], "ratio": ratio,
                         "met": ratio <= GOAL_MEMORY_RATIO},
  }


def markdown(report: dict) -> str:
  lengths = list(report["lengths"].values())
  head = " | ".join(f"L={s['length']}" for s in lengths)
  sep = "|---|" + "---|" * len(lengths)
  g = report["goals"]
  names = list(METHODS) + ["torch loop"]
  label = {"chunked": f"chunked (c={report['chunk_size']})", "sequential": "sequential",
           "associative": "associative", "naive": "naive associative one-liner",
           "torch loop": "PyTorch `selective_scan_ref` loop"}
  lines = [
      "# Selective scan: forward + backward (cpu)", "",
      f"jax.grad of sum(selective_scan(...) * cot) w.r.t. u, delta, A, B, C, D, delta_bias; "
      f"batch {report['batch']}, D {report['dim']}, N {report['state']}, variable B/C, "
      f"float32; {report['cpu']}, {report['cores']} cores; {report['date']}; jax "
      f"{report['jax']}, torch {report['torch']} ({report['torch_threads']} threads); "
      f"XLA_FLAGS=`{report['xla_flags'] or '(unset)'}`; load average before/after: "
      f"{report['load_before']} / {report['load_after']}; {report['minutes']:.1f} min. "
      "Method: `benchmarks/scan.py`'s docstring. The machine is shared (other jobs running): "
      "medians of interleaved repetitions.", "",
      "## Goals", "",
      f"* vs the naive one-liner at L={report['goal_row']['length']}, "
      f"D={report['goal_row']['dim']}: **{g['vs_naive']['speedup']:.1f}x** "
      f"(goal {g['vs_naive']['goal']}: {'met' if g['vs_naive']['met'] else 'NOT met'}).",
  ]
  for r in g["vs_torch"]["rows"]:
    lines.append(f"* vs the PyTorch loop at L={r['length']}, D={report['dim']}: "
                 f"**{r['speedup']:.0f}x** ({r['torch_s']:.1f} s vs "
                 f"{r['chunked_s'] * 1e3:.0f} ms; goal {g['vs_torch']['goal']}: "
                 f"{'met' if r['speedup'] >= GOAL_VS_TORCH else 'NOT met'}).")
  lt = g["linear_time"]
  sl = lt["slopes_all_lengths"]
  lines.append(
      f"* time vs L, log-log slope: chunked **{lt['slope']:.2f}** "
      f"(fitted over L = {lt['fit_lengths'][0]}..{lt['fit_lengths'][-1]}; goal 1 +- 0.15: "
      f"{'met' if lt['met'] else 'NOT met'}). Over all the lengths each method ran: "
      + ", ".join(f"{m} {sl[m]['slope']:.2f} (L <= {sl[m]['lengths'][-1]})" for m in names
                  if sl[m]["slope"] is not None) + ".")
  lines.append(
      f"* chunked peak temp memory at L={g['chunked_memory']['length']}: "
      f"**{g['chunked_memory']['ratio']:.2f}x** one (batch, L, D) float32 activation "
      f"(goal <= {GOAL_MEMORY_RATIO:g}x: {'met' if g['chunked_memory']['met'] else 'NOT met'}).")
  lines += ["", "## Time per call (ms, median)", "", f"| method | {head} |", sep]
  for m in names:
    cells = []
    for s in lengths:
      v = s["variants"].get(m)
      cells.append("-" if v is None else "skip" if "skipped" in v else
                   f"{v['median_s'] * 1e3:.0f}")
    lines.append(f"| {label[m]} | " + " | ".join(cells) + " |")
  lines += ["", "## Peak temp memory (MiB; in brackets: multiples of one (batch, L, D) "
            "float32 activation)", "", f"| method | {head} |", sep]
  for m in METHODS:
    cells = [f"{s['variants'][m]['temp_bytes'] / 2**20:.0f} "
             f"({s['variants'][m]['temp_over_activation']:.2f})" for s in lengths]
    lines.append(f"| {label[m]} | " + " | ".join(cells) + " |")
  gr = report["goal_row"]
  lines += ["", f"## Goal row: L={gr['length']}, D={gr['dim']} (medians of "
            f"{len(gr['variants']['chunked']['times_s'])} interleaved repetitions; load after "
            f"{gr['load_average_after']})", "",
            "| method | ms | vs naive | temp MiB |", "|---|---|---|---|"]
  for m in METHODS:
    v = gr["variants"][m]
    lines.append(f"| {label[m]} | {v['median_s'] * 1e3:.1f} | "
                 f"{gr['variants']['naive']['median_s'] / v['median_s']:.2f}x | "
                 f"{v['temp_bytes'] / 2**20:.1f} |")
  skipped = [f"{label[m]} at L={s['length']}: {s['variants'][m]['skipped']}"
             for s in lengths for m in METHODS if "skipped" in s["variants"][m]]
  lines += ["", "## Notes", "",
            f"* PyTorch loop: {report['torch_stopped']}."]
  lines += [f"* Skipped: {x}." for x in skipped]
  checks = [f"{label[m]} at L={s['length']}: {v:.1e}" for s in lengths[:1]
            for m, row in s["variants"].items() if m != "torch loop"
            for k, v in row.items() if k.startswith("grad_max_rel_diff")]
  tchecks = [f"{label['torch loop']} at L={s['length']}: {row[k]:.1e}" for s in lengths
             for m, row in s["variants"].items() if m == "torch loop"
             for k in row if k.startswith("grad_max_rel_diff")]
  lines.append("* Gradients vs `chunked` (max abs difference / max abs value): "
               + "; ".join(checks + tchecks) + ".")
  lines.append("* Temp memory is XLA's `memory_analysis().temp_size_in_bytes` of the "
               "compiled grad; arguments and returned gradients (7 inputs' worth) are extra "
               "for every method alike. PyTorch's memory is not measured.")
  return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6.4, 4.6))
  for m, style in (("chunked", "o-"), ("sequential", "s-"), ("associative", "^-"),
                   ("naive", "v--"), ("torch loop", "x:")):
    pts = [(s["length"], s["variants"][m]["median_s"]) for s in report["lengths"].values()
           if "median_s" in s["variants"].get(m, {})]
    if pts:
      ax.plot(*zip(*pts), style, label=m)
  pts = [(s["length"], s["variants"]["chunked"]["median_s"])
         for s in report["lengths"].values()]
  l0, t0 = pts[0]
  ls = [p[0] for p in pts]
  ax.plot(ls, [t0 * l / l0 for l in ls], color="grey", lw=0.8, ls="--", label="linear in L")
  ax.set(xscale="log", yscale="log", xlabel="sequence length L",
         ylabel="forward + backward time (s, median)",
         title=f"selective_scan, batch {report['batch']}, D {report['dim']}, "
               f"N {report['state']} (CPU)")
  ax.legend(fontsize=8)
  ax.grid(True, which="both", lw=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--sizes", help="comma-separated sequence lengths (default 1k..64k)")
  p.add_argument("--dim", type=int, default=DIM)
  p.add_argument("--torch-max", type=int, default=1024,
                 help="longest L for the PyTorch loop")
  p.add_argument("--torch-stop-s", type=float, default=20.0,
                 help="stop PyTorch after a length whose call took longer than this")
  p.add_argument("--max-gib", type=float, default=8.0)
  p.add_argument("--max-call-s", type=float, default=60.0)
  p.add_argument("--quick", action="store_true", help="seconds-long smoke run")
  p.add_argument("--out", help="output directory (default benchmarks/results; "
                               "/tmp/scan_quick with --quick)")
  a = p.parse_args(argv)
  if a.quick:
    sizes, dim, goal_row = (128, 256), 32, dict(length=256, dim=16)
    torch_max = min(a.torch_max, 128)
  else:
    sizes, dim, goal_row, torch_max = SIZES, a.dim, GOAL_ROW, a.torch_max
  if a.sizes:
    sizes = tuple(int(s) for s in a.sizes.split(","))
  out = Path(a.out) if a.out else Path("/tmp/scan_quick") if a.quick else RESULTS
  out.mkdir(parents=True, exist_ok=True)
  load_before, t0 = _load(), time.perf_counter()
  report = run(sizes, dim=dim, goal_row=goal_row, torch_max=torch_max,
               torch_stop_s=a.torch_stop_s, max_gib=a.max_gib, max_call_s=a.max_call_s,
               quick=a.quick)
  report.update(cpu=cpu_name(), cores=os.cpu_count(), load_before=load_before,
                load_after=_load(), minutes=(time.perf_counter() - t0) / 60,
                date=datetime.date.today().isoformat())
  report["goals"] = goals(report)
  (out / "scan.json").write_text(json.dumps(report, indent=1))
  (out / "scan.md").write_text(markdown(report))
  plot(report, out / "scan.png")
  print(markdown(report))
  return report


if __name__ == "__main__":
  main()
