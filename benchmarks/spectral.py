r"""Matrix square roots, forward + backward: jaxvision's methods vs PyTorch and plain JAX.

  python benchmarks/spectral.py                # CPU: benchmarks/results/spectral.{json,md}
  python benchmarks/spectral.py --cores 1,all  # ... also with all cores (a second process)
  python benchmarks/spectral.py --accelerator  # GPU/TPU: benchmarks/results/spectral_<platform>.*
  python benchmarks/spectral.py --sizes 32 --reps 3 --out /tmp/s   # seconds-long smoke run

What is measured (issue 3, spec svd-covariance-conditioning Sec. 2): the wall time of one
jitted ``jax.grad`` of ``loss(P) = sum(F(P) * C)`` -- the forward ``F`` plus its backward --
for ``F = sqrtm`` and ``F = inv_sqrtm`` (``jaxvision.ops``) on a batch of 64 float32
matrices ``P = A A^T / n + 1e-3 I`` (``A`` standard normal ``n x n``; condition numbers in
the thousands, reported), ``C`` a fixed standard-normal cotangent, for ``n`` = 64, 128, 256
and every method:

* ``eigh``               -- ``eigh`` forward, the exact Loewner (Daleckii-Krein) custom VJP;
* ``newton_schulz``      -- coupled Newton-Schulz, ``num_iters`` = 5 and 10, Lyapunov
                            backward (8 coupled NS steps, the default);
* ``pade``               -- MPA-Lya: [5/5] Pade forward, the same Lyapunov backward;
* ``taylor``             -- ``eigh`` forward, eqs. (5)-(7) with the 9-term Taylor ``K``;

against two baselines computing ``U f(Lambda) U^T`` from an eigendecomposition without a
custom gradient: plain JAX (``jnp.linalg.eigh``, autodiff through JAX's ``eigh`` rule, also
jitted) and PyTorch (``torch.linalg.eigh`` + autograd, ``U @ diag_embed(f(lam)) @ U.mT``,
the way a PyTorch user writes it; eager mode, what PyTorch users run).

Every timing calls the function once and waits for the result (``block_until_ready``;
``torch.cuda.synchronize`` on GPU). The JAX function returns the forward output as an
auxiliary result of ``jax.grad`` (one more ``(64, n, n)`` write) for the accuracy check.
After compiling and one untimed call of every variant, the repetitions go round-robin over
*all* variants of one size, JAX and PyTorch interleaved (the starting variant rotates each
round), so machine noise hits every variant alike; the tables report medians (every time is
in the JSON). The machine load average is recorded.

FLOPs are counted analytically for the methods whose cost is matrix products, per matrix,
with ``M = 2 n^3`` the FLOPs of one ``n x n`` product (elementwise work not counted):

* ``newton_schulz``, ``T`` iterations: forward ``3 T M`` (``Z Y``, ``Y T``, ``T Z``);
  Lyapunov backward ``6 M`` per coupled step (``b b``, ``c (3I - b^2)``, ``b^2 c``, ``b c b``
  twice, ``b (3I - b^2)``) x 8 steps = ``48 M``; ``inv_sqrtm`` adds ``2 M`` for the adjoint
  ``S G S`` of the inverse. Total ``(3 T + 48) M`` (``sqrtm``), ``(3 T + 50) M``
  (``inv_sqrtm``). Matrix products only. (``sqrtm``'s compiled backward also multiplies out
  ``S 0 S`` for the zero cotangent of the unused inverse output, 2 M that XLA does not fold
  away: counted as waste, not work.)
* ``pade``: forward ``4 M`` (powers ``x^2..x^5``) + one ``n x n`` solve with ``n``
  right-hand sides (LU ``2 n^3 / 3`` + triangular solves ``2 n^3`` = ``4 M / 3``); backward
  ``48 M``; ``inv_sqrtm`` adds a second solve (``4 M / 3``) and its adjoint (a transposed
  solve ``M`` + one product ``M``). Mostly, not only, matrix products.
* ``eigh``-based methods (``eigh``, ``taylor``, the baselines) are dominated by the LAPACK
  eigensolver (tridiagonalisation, BLAS-2 bound): no FLOP rate is reported for them.

The peak those FLOP rates are compared with is the matmul of the same shapes, a batched
float32 ``(64, n, n) @ (64, n, n)`` (the faster of ``jnp.matmul`` at
``Precision.HIGHEST``, as the kernels run it, and ``torch.bmm``), measured in the same run
as a chain of 8 such products per call (one product alone is dominated by the per-call
dispatch at small ``n``, which the kernels' loops amortise; its rate is recorded too);
a ``4096^2`` GEMM is reported for reference. The issue's CPU goals: ``eigh`` with its custom
gradient at least as fast as PyTorch's ``eigh`` (ratio >= 1), and the matmul-only method
(``newton_schulz``) at >= 70% of the batched-matmul peak at every iteration count. The
forward relative error of each method against a float64 ``eigh`` reference is reported too
(Newton-Schulz and Pade are not converged at these condition numbers).

CPU configurations. Each runs in its own worker process, JAX and PyTorch together in it:
``--cores 1`` (the default) pins the worker to one core before either library starts
(``os.sched_setaffinity``, and ``OMP/OPENBLAS/MKL_NUM_THREADS=1``), so every thread pool --
XLA's, the OpenBLAS under jaxlib's LAPACK (``eigh``, ``solve``), PyTorch's OpenMP/MKL -- has
one thread; ``all`` leaves the affinity and the libraries' default pools alone. On a
machine shared with other jobs only the pinned configuration is reproducible: the
multi-threaded LAPACK of both frameworks synchronises its threads inside every small
per-matrix call of the batch, and while another process holds a core each of those waits
for a scheduler time slice (on the 2-core development machine, with other test runs going,
all-cores medians differed up to 9x between variants doing nearly the same work and were up
to 50x slower than pinned ones: ``taylor`` ``sqrtm`` at n = 128, 5.6 s against 0.11 s).
Compilations are shared between workers through a temporary persistent cache.

XLA flags. ``--xla jaxvision`` (the default) runs each worker with the XLA:CPU flags
``jaxvision train`` sets (``jaxvision.train.cpu.CPU_XLA_FLAGS``: matrix products and
convolutions on XLA's Eigen kernels instead of YNNPACK, whose batched float32 GEMM reaches
about 60% of Eigen's on this CPU; AVX-512 vector width; the committed results predate the
second flag); ``--xla jaxvision,default`` adds a second run of each core
configuration under XLA's own defaults, side by side.

On a machine whose first JAX device is an accelerator, the same benchmark runs there (PyTorch
on CUDA if it has it, else PyTorch is left out) and writes ``spectral_<platform>.{json,md}``;
``--accelerator`` refuses to run without one; ``--cpu`` forces the CPU.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import cpu_name  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BATCH = 64
DEFAULT_SIZES = (64, 128, 256)
DEFAULT_REPS = {64: 15, 128: 9, 256: 5}
NS_ITERS = (5, 10)
CHAIN = 8  # batched products per call in the matmul-peak measurement
BACKWARD_ITERS = 8  # jaxvision's default Lyapunov steps (MPA-Lya's 8)
FUNCTIONS = ("sqrtm", "inv_sqrtm")
GOAL_EIGH_VS_TORCH = 1.0
GOAL_FRACTION_OF_PEAK = 0.70


def analytic_flops(method: str, fn: str, n: int, num_iters: int = 0) -> float | None:
  """FLOPs of one forward + backward per matrix (module docstring); ``None`` if eigh-bound."""
  m = 2.0 * n**3
  solve = 4.0 * m / 3.0
  if method == "newton_schulz":
    return (3 * num_iters + 6 * BACKWARD_ITERS + (2 if fn == "inv_sqrtm" else 0)) * m
  if method == "pade":
    flops = 4 * m + solve + 6 * BACKWARD_ITERS * m
    return flops + (solve + 2 * m if fn == "inv_sqrtm" else 0.0)
  return None


def _variants():
  """``(label, method, kwargs)``: the jaxvision methods, then the two baselines."""
  out = [("eigh", "eigh", {})]
  out += [(f"newton_schulz T={t}", "newton_schulz", {"num_iters": t}) for t in NS_ITERS]
  out += [("pade", "pade", {}), ("taylor", "taylor", {}),
          ("jnp.linalg.eigh autodiff", "jax_plain", {}), ("torch.linalg.eigh autograd",
                                                         "torch", {})]
  return out


def _load() -> list[float] | None:
  try:
    return [round(x, 2) for x in os.getloadavg()]
  except OSError:
    return None


def run(sizes, reps_for, warmup: int, log=print) -> dict:
  import jax
  import jax.numpy as jnp
  import numpy as np

  from jaxvision import ops

  dev = jax.devices()[0]
  plat = dev.platform
  try:
    import torch
  except ImportError:  # the comparison is optional; the JAX numbers still stand
    torch = None
  tdev = None
  if torch is not None:
    if plat == "cpu":
      tdev = "cpu"
      torch.set_num_threads(os.cpu_count())
    elif plat == "gpu" and torch.cuda.is_available():
      tdev = "cuda"
      torch.backends.cuda.matmul.allow_tf32 = False  # full float32, as Precision.HIGHEST
  tsync = (lambda: torch.cuda.synchronize()) if tdev == "cuda" else (lambda: None)
  highest = jax.lax.Precision.HIGHEST

  def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t

  def jax_plain(fn):
    def f(p):
      lam, u = jnp.linalg.eigh(p)
      val = jnp.sqrt(lam) if fn == "sqrtm" else jax.lax.rsqrt(lam)
      return jnp.matmul(u * val[..., None, :], jnp.swapaxes(u, -1, -2), precision=highest)
    return f

  def torch_step(fn, tp, tc):
    def step():
      tp.grad = None
      lam, u = torch.linalg.eigh(tp)
      val = lam.sqrt() if fn == "sqrtm" else lam.rsqrt()
      out = u @ torch.diag_embed(val) @ u.mT
      (out * tc).sum().backward()
      tsync()
      return tp.grad
    return step

  # --- Reference peaks: a large GEMM, then per size the batched matmul of the same shapes.
  rng = np.random.default_rng(0)
  big = 4096 if plat != "cpu" or max(sizes) >= 128 else 1024  # small: smoke runs
  a = rng.standard_normal((big, big), dtype=np.float32)
  ja = jax.device_put(a, dev)
  gemm = jax.jit(lambda x: jnp.matmul(x, x, precision=highest))
  jax.block_until_ready(gemm(ja))
  gemm_j, gemm_t = [], []
  ta = torch.from_numpy(a).to(tdev) if tdev else None
  if tdev:
    torch.mm(ta, ta)
    tsync()
  for _ in range(3):
    gemm_j.append(timed(lambda: jax.block_until_ready(gemm(ja))))
    if tdev:
      gemm_t.append(timed(lambda: (torch.mm(ta, ta), tsync())))
  del ja, ta
  gemm_report = {
      "n": big, "jax_gflop_per_s": 2 * big**3 / statistics.median(gemm_j) / 1e9,
      "torch_gflop_per_s": 2 * big**3 / statistics.median(gemm_t) / 1e9 if gemm_t else None}
  log(f"GEMM {big}^2: {gemm_report}")

  per_size = {}
  for n in sizes:
    reps = reps_for(n)
    amat = rng.standard_normal((BATCH, n, n), dtype=np.float32)
    p_np = (amat @ np.swapaxes(amat, -1, -2) / n + 1e-3 * np.eye(n, dtype=np.float32))
    p_np = (0.5 * (p_np + np.swapaxes(p_np, -1, -2))).astype(np.float32)
    c_np = rng.standard_normal((BATCH, n, n), dtype=np.float32)
    p64 = p_np.astype(np.float64)
    lam64, u64 = np.linalg.eigh(p64)
    kappa = lam64[:, -1] / lam64[:, 0]
    ref = {"sqrtm": (u64 * np.sqrt(lam64)[:, None, :]) @ np.swapaxes(u64, -1, -2),
           "inv_sqrtm": (u64 / np.sqrt(lam64)[:, None, :]) @ np.swapaxes(u64, -1, -2)}
    jp, jc = jax.device_put(p_np, dev), jax.device_put(c_np, dev)

    # Batched-matmul peak of these shapes: a chain of CHAIN dependent products
    # x <- x @ q (q orthogonal, so x stays bounded) per call, so that the per-call dispatch
    # cost, which dominates one small product, is amortised as it is inside the kernels'
    # loops. The single-product time is recorded too.
    q_np = np.linalg.qr(rng.standard_normal((BATCH, n, n)))[0].astype(np.float32)
    jq = jax.device_put(q_np, dev)
    one = jax.jit(lambda x, y: jnp.matmul(x, y, precision=highest))
    chain = jax.jit(lambda x, y: jax.lax.fori_loop(
        0, CHAIN, lambda _, z: jnp.matmul(z, y, precision=highest), x))
    jax.block_until_ready((one(jp, jq), chain(jp, jq)))
    if tdev:
      tpp, tqq = torch.from_numpy(p_np).to(tdev), torch.from_numpy(q_np).to(tdev)

      def tchain():
        z = tpp
        for _ in range(CHAIN):
          z = torch.bmm(z, tqq)
        tsync()

      tchain()
    one_j, chain_j, one_t, chain_t = [], [], [], []
    for _ in range(max(reps, 5)):
      one_j.append(timed(lambda: jax.block_until_ready(one(jp, jq))))
      chain_j.append(timed(lambda: jax.block_until_ready(chain(jp, jq))))
      if tdev:
        one_t.append(timed(lambda: (torch.bmm(tpp, tqq), tsync())))
        chain_t.append(timed(tchain))
    mm_flops = BATCH * 2.0 * n**3
    rate = lambda ts, k: k * mm_flops / statistics.median(ts) / 1e9 if ts else None
    batched = {"jax_gflop_per_s": rate(chain_j, CHAIN), "torch_gflop_per_s": rate(chain_t, CHAIN),
               "jax_single_call_gflop_per_s": rate(one_j, 1),
               "torch_single_call_gflop_per_s": rate(one_t, 1), "chain": CHAIN}
    batched["peak_gflop_per_s"] = max(batched["jax_gflop_per_s"],
                                      batched["torch_gflop_per_s"] or 0.0)
    peak = batched["peak_gflop_per_s"] * 1e9

    # Build every variant: (key, callable doing one fwd+bwd and waiting for it).
    calls, meta = {}, {}
    for fn in FUNCTIONS:
      for label, method, kw in _variants():
        key = f"{fn} | {label}"
        if method == "torch":
          if not tdev:
            continue
          tp = torch.from_numpy(p_np).to(tdev).requires_grad_(True)
          tc = torch.from_numpy(c_np).to(tdev)
          step = torch_step(fn, tp, tc)
          t0 = time.perf_counter()
          step()
          with torch.no_grad():
            lam, u = torch.linalg.eigh(tp)
            val = lam.sqrt() if fn == "sqrtm" else lam.rsqrt()
            fwd = (u @ torch.diag_embed(val) @ u.mT).cpu().numpy()
          calls[key] = step
          meta[key] = {"framework": "torch", "first_call_s": time.perf_counter() - t0}
        else:
          if method == "jax_plain":
            f = jax_plain(fn)
          else:
            f = (lambda fn_, m_, kw_: lambda p: getattr(ops, fn_)(p, method=m_, **kw_))(
                fn, method, kw)
          # grad of the loss; the forward output comes along as aux (for its error).
          grad = jax.jit(jax.grad(lambda p, c, f=f: (jnp.sum(f(p) * c), f(p)), has_aux=True))
          t0 = time.perf_counter()
          compiled = grad.lower(jp, jc).compile()
          compile_s = time.perf_counter() - t0
          calls[key] = (lambda g: lambda: jax.block_until_ready(g(jp, jc)))(compiled)
          t0 = time.perf_counter()
          fwd = np.asarray(calls[key]()[1])
          meta[key] = {"framework": "jax", "compile_s": compile_s,
                       "first_call_s": time.perf_counter() - t0}
        err = np.linalg.norm(fwd - ref[fn], axis=(-2, -1)) / np.linalg.norm(ref[fn],
                                                                            axis=(-2, -1))
        meta[key].update(fn=fn, label=label, method=method, **kw,
                         forward_rel_error_median=float(np.median(err)))
        flops = analytic_flops(method, fn, n, kw.get("num_iters", 0))
        meta[key]["gflop_per_batch"] = flops * BATCH / 1e9 if flops else None
    for call in calls.values():  # extra warm-up beyond the first call above
      for _ in range(warmup):
        call()
    times = {k: [] for k in calls}
    keys = list(calls)
    for r in range(reps):
      for i in range(len(keys)):
        k = keys[(i + r) % len(keys)]
        times[k].append(timed(calls[k]))
    results = {}
    for k, ts in times.items():
      med = statistics.median(ts)
      res = dict(meta[k], times_s=ts, median_s=med, min_s=min(ts))
      if res["gflop_per_batch"]:
        res["gflop_per_s"] = res["gflop_per_batch"] / med
        res["fraction_of_batched_peak"] = res["gflop_per_batch"] * 1e9 / med / peak
      results[k] = res
    for fn in FUNCTIONS:
      tk, ek, pk = (f"{fn} | torch.linalg.eigh autograd", f"{fn} | eigh",
                    f"{fn} | jnp.linalg.eigh autodiff")
      if tk in results:
        results[ek]["speedup_vs_torch"] = results[tk]["median_s"] / results[ek]["median_s"]
      results[ek]["speedup_vs_plain_jax"] = results[pk]["median_s"] / results[ek]["median_s"]
    per_size[str(n)] = {
        "n": n, "batch": BATCH, "reps": reps, "condition_number_median": float(np.median(kappa)),
        "condition_number_max": float(kappa.max()),
        "batched_matmul": batched,
        "variants": results, "load_average_after": _load()}
    log(f"n={n}: done " + ", ".join(f"{k}={v['median_s'] * 1e3:.1f}ms"
                                     for k, v in results.items()))
  return {"platform": plat, "device": str(dev.device_kind), "torch_device": tdev,
          "gemm": gemm_report, "sizes": per_size, "jax": jax.__version__,
          "torch": torch.__version__ if torch is not None else None}


def goals(report: dict) -> dict:
  """The issue's goals, evaluated per size / function / iteration count."""
  eigh_rows, ns_rows = [], []
  for n, s in report["sizes"].items():
    for fn in FUNCTIONS:
      e = s["variants"][f"{fn} | eigh"]
      if "speedup_vs_torch" in e:
        eigh_rows.append({"n": int(n), "fn": fn, "speedup_vs_torch": e["speedup_vs_torch"],
                          "met": e["speedup_vs_torch"] >= GOAL_EIGH_VS_TORCH})
      for t in NS_ITERS:
        v = s["variants"][f"{fn} | newton_schulz T={t}"]
        ns_rows.append({"n": int(n), "fn": fn, "num_iters": t,
                        "fraction_of_batched_peak": v["fraction_of_batched_peak"],
                        "met": v["fraction_of_batched_peak"] >= GOAL_FRACTION_OF_PEAK})
  return {
      "eigh_vs_torch": {"goal": f">= {GOAL_EIGH_VS_TORCH}x", "rows": eigh_rows,
                        "all_met": bool(eigh_rows) and all(r["met"] for r in eigh_rows)},
      "newton_schulz_fraction_of_peak": {"goal": f">= {GOAL_FRACTION_OF_PEAK:.0%}",
                                         "rows": ns_rows,
                                         "all_met": all(r["met"] for r in ns_rows)},
  }


def _markdown_config(name: str, cfg: dict) -> list[str]:
  sizes = list(cfg["sizes"].values())
  ns = [s["n"] for s in sizes]
  head = " | ".join(f"n={n}" for n in ns)
  sep = "|---|---|" + "---|" * len(ns)
  keys = list(sizes[0]["variants"])
  lines = [f"## {name}", "",
           (f"XLA_FLAGS=`{cfg['xla_flags']}`; " if cfg.get("xla_flags") else
            "XLA_FLAGS unset; " if "xla_flags" in cfg else "")
           + f"PyTorch on {cfg['torch_device'] or '-'}; medians of "
           f"{', '.join(str(s['reps']) for s in sizes)} interleaved repetitions for n = "
           f"{', '.join(map(str, ns))}; load average after each size: "
           + ", ".join(f"{s['load_average_after']}" for s in sizes) + ".", "",
           "### Time per batch of 64 (ms, forward + backward)", "",
           f"| function | method | {head} |", sep]
  for k in keys:
    v0 = sizes[0]["variants"][k]
    cells = " | ".join(f"{s['variants'][k]['median_s'] * 1e3:.1f}" for s in sizes)
    lines.append(f"| {v0['fn']} | {v0['label']} | {cells} |")
  lines += ["", "### Goal 1: `eigh` (Loewner custom gradient) vs PyTorch `eigh` + autograd", "",
            "Speedup = other time / jaxvision `eigh` time, medians (in brackets: fastest "
            "repetitions). Goal: >= 1x PyTorch (medians).", "",
            f"| function | vs | {head} |", sep]
  for fn in FUNCTIONS:
    for label, other in (("torch.linalg.eigh autograd", "PyTorch"),
                         ("jnp.linalg.eigh autodiff", "plain JAX autodiff")):
      if f"{fn} | {label}" in sizes[0]["variants"]:
        cells = " | ".join(
            f"{v[f'{fn} | {label}']['median_s'] / v[f'{fn} | eigh']['median_s']:.2f}x "
            f"({v[f'{fn} | {label}']['min_s'] / v[f'{fn} | eigh']['min_s']:.2f}x)"
            for v in (s["variants"] for s in sizes))
        lines.append(f"| {fn} | {other} | {cells} |")
  lines += ["", "### Goal 2: achieved GFLOP/s and fraction of the batched-matmul peak", "",
            "Analytic FLOPs (script docstring) / median time; in brackets the fraction of the "
            "peak (faster of XLA and PyTorch on 8 chained (64, n, n) @ (64, n, n) float32 "
            "products), then of XLA's own batched matmul. Goal: `newton_schulz` >= 70% of the "
            "peak at every iteration count; `pade` (matmuls + LU solves) for reference.", "",
            f"| function | method | {head} |", sep]
  for k in keys:
    v0 = sizes[0]["variants"][k]
    if v0.get("gflop_per_batch"):
      cells = " | ".join(
          f"{s['variants'][k]['gflop_per_s']:.1f} "
          f"({100 * s['variants'][k]['fraction_of_batched_peak']:.0f}% / "
          f"{100 * s['variants'][k]['gflop_per_s'] / s['batched_matmul']['jax_gflop_per_s']:.0f}%)"
          for s in sizes)
      lines.append(f"| {v0['fn']} | {v0['label']} | {cells} |")
  cells = " | ".join(f"{s['batched_matmul']['peak_gflop_per_s']:.1f}" for s in sizes)
  lines.append(f"| | **batched-matmul peak** | {cells} |")
  for suffix, what in (("gflop_per_s", "8 chained products"),
                       ("single_call_gflop_per_s", "one product per call")):
    cells = " | ".join(
        " / ".join(f"{b[f'{fw}_{suffix}']:.1f}" if b[f"{fw}_{suffix}"] else "-"
                   for fw in ("jax", "torch"))
        for b in (s["batched_matmul"] for s in sizes))
    lines.append(f"| | XLA / PyTorch, {what} | {cells} |")
  g = cfg["gemm"]
  lines += ["", f"Reference GEMM {g['n']}^2 float32: XLA {g['jax_gflop_per_s']:.1f} GFLOP/s"
            + (f", PyTorch {g['torch_gflop_per_s']:.1f} GFLOP/s" if g["torch_gflop_per_s"]
               else "") + ".", ""]
  gl = cfg["goals"]
  eig, nsg = gl["eigh_vs_torch"], gl["newton_schulz_fraction_of_peak"]
  lines += [f"Goal 1 (`eigh` >= 1x PyTorch): **{'met' if eig['all_met'] else 'not met'}**"
            + (" -- met for " + ", ".join(f"{r['fn']} n={r['n']}" for r in eig["rows"]
                                         if r["met"]) if any(r["met"] for r in eig["rows"])
               and not eig["all_met"] else "") + ".  ",
            f"Goal 2 (`newton_schulz` >= 70% of peak): **"
            f"{'met' if nsg['all_met'] else 'not met'}**"
            + (" -- met for " + ", ".join(f"{r['fn']} T={r['num_iters']} n={r['n']}"
                                         for r in nsg["rows"] if r["met"])
               if any(r["met"] for r in nsg["rows"]) and not nsg["all_met"] else "") + ".", ""]
  return lines


def markdown(report: dict) -> str:
  first = next(iter(report["configurations"].values()))
  sizes = list(first["sizes"].values())
  lines = [f"# Matrix square roots: forward + backward ({report['platform']})", "",
           f"{report['benchmark']}; {report['machine']}; {report['date']}; jax "
           f"{report['jax']}, torch {report['torch']}; load average before/after the run: "
           f"{report['load_average_before']} / {report['load_average_after']}; "
           f"{report['wall_s'] / 60:.1f} min. Method, FLOP counts and peaks: "
           "`benchmarks/spectral.py`'s docstring.", ""]
  if report["platform"] == "cpu":
    lines += ["Each CPU configuration runs in its own process: pinned to a core count "
              "(every thread pool, XLA's, OpenBLAS's under jaxlib's LAPACK, PyTorch's "
              "OpenMP/MKL, sized to it) or with all cores and the libraries' defaults. On a "
              "machine shared with other jobs only the pinned numbers are reproducible (the "
              "script's docstring says why).", ""]
  lines += ["Forward accuracy (median relative Frobenius error vs float64 `eigh`; condition "
            "numbers median / max: " + ", ".join(
                f"n={s['n']}: {s['condition_number_median']:.0f} / "
                f"{s['condition_number_max']:.0f}" for s in sizes) + "):", "",
            "| function | method | " + " | ".join(f"n={s['n']}" for s in sizes) + " |",
            "|---|---|" + "---|" * len(sizes)]
  for k in first["sizes"][str(sizes[0]["n"])]["variants"]:
    v0 = sizes[0]["variants"][k]
    cells = " | ".join(f"{s['variants'][k]['forward_rel_error_median']:.1e}" for s in sizes)
    lines.append(f"| {v0['fn']} | {v0['label']} | {cells} |")
  lines.append("")
  for name, cfg in report["configurations"].items():
    lines += _markdown_config(name, cfg)
  return "\n".join(lines)


XLA_CONFIGS = ("jaxvision", "default")


def _worker_env(cores: str, xla: str) -> dict:
  from jaxvision.train.cpu import CPU_XLA_FLAGS
  options = [f.split("=", 1)[0] for f in CPU_XLA_FLAGS]
  flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
           if f.split("=", 1)[0] not in options]
  if xla == "jaxvision":
    flags.extend(CPU_XLA_FLAGS)
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT), XLA_FLAGS=" ".join(flags))
  if cores != "all":  # pinned: every library sizes its thread pool from the affinity mask
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
      env[var] = cores
  return env


def _run_worker(cores: str, xla: str, args, cache_dir: str) -> dict:
  cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", cores, "--sizes", args.sizes,
         "--reps", str(args.reps), "--warmup", str(args.warmup), "--cache", cache_dir]
  env = _worker_env(cores, xla)
  proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
  result = None
  for line in proc.stdout:
    if line.startswith("RESULT "):
      result = json.loads(line[len("RESULT "):])
    else:
      print(f"[{cores} core(s), {xla} XLA flags] {line}", end="", flush=True)
  if proc.wait() != 0 or result is None:
    raise RuntimeError(f"spectral.py worker ({cores} cores, {xla} XLA flags) failed with code "
                       f"{proc.returncode}")
  result["xla_flags"] = env["XLA_FLAGS"]
  return result


def _reps_for(args):
  if args.reps:
    return lambda n: args.reps
  return lambda n: DEFAULT_REPS.get(n, 15 if n <= 64 else 9 if n <= 128 else 5)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                      help="comma-separated matrix sizes n")
  parser.add_argument("--reps", type=int, default=0,
                      help="repetitions per size (0: %s)" % DEFAULT_REPS)
  parser.add_argument("--warmup", type=int, default=0,
                      help="warm-up calls per variant after the first (untimed) one")
  parser.add_argument("--cores", default="1",
                      help="CPU configurations, comma-separated: a core count (the worker "
                           "is pinned to that many cores) or 'all' (no pinning)")
  parser.add_argument("--xla", default="jaxvision",
                      help="XLA:CPU flag sets, comma-separated: 'jaxvision' (the CLI's "
                           "defaults) and/or 'default' (XLA's own)")
  parser.add_argument("--accelerator", action="store_true",
                      help="require an accelerator (the first JAX device not a CPU)")
  parser.add_argument("--cpu", action="store_true", help="run on the CPU even if a GPU is visible")
  parser.add_argument("--out", default=str(RESULTS))
  parser.add_argument("--worker", help=argparse.SUPPRESS)
  parser.add_argument("--cache", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  sizes = [int(s) for s in args.sizes.split(",") if s]
  bad = [x for x in args.xla.split(",") if x not in XLA_CONFIGS]
  if bad:
    parser.error(f"--xla: expected a comma-separated subset of {XLA_CONFIGS}, found {bad}")

  if args.worker:  # a CPU worker: pin first, then start JAX and PyTorch.
    if args.worker != "all":
      cpus = sorted(os.sched_getaffinity(0))
      os.sched_setaffinity(0, set(cpus[-int(args.worker):]))
    sys.path.insert(0, str(ROOT))
    import jax
    jax.config.update("jax_compilation_cache_dir", args.cache)  # shared by the workers
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    result = run(sizes, _reps_for(args), args.warmup, log=lambda s: print(s, flush=True))
    result["cores_used"] = len(os.sched_getaffinity(0))
    print("RESULT " + json.dumps(result), flush=True)
    return

  if args.cpu and args.accelerator:
    parser.error("--cpu and --accelerator exclude each other")
  if args.cpu:
    os.environ["JAX_PLATFORMS"] = "cpu"
  sys.path.insert(0, str(ROOT))
  import jax

  plat = jax.devices()[0].platform
  if args.accelerator and plat == "cpu":
    sys.exit("spectral.py --accelerator: no accelerator visible (jax.devices()[0] is a CPU); "
             "run without --accelerator for the CPU benchmark.")
  load_before = _load()
  t0 = time.perf_counter()
  if plat == "cpu":
    configs = {}
    with tempfile.TemporaryDirectory(prefix="spectral_xla_cache_") as cache:
      for cores in args.cores.split(","):
        for xla in args.xla.split(","):
          name = ("all cores" if cores == "all" else f"{cores} core" + ("s" if cores != "1" else "")
                  ) + (", jaxvision XLA flags" if xla == "jaxvision" else ", XLA defaults")
          configs[name] = _run_worker(cores, xla, args, cache)
  else:
    configs = {str(jax.devices()[0].device_kind): run(
        sizes, _reps_for(args), args.warmup, log=lambda s: print(s, flush=True))}
  for cfg in configs.values():
    cfg["goals"] = goals(cfg)
  first = next(iter(configs.values()))
  machine = (f"{cpu_name()}, {os.cpu_count()} cores" if plat == "cpu"
             else f"{first['device']} ({cpu_name()} host)")
  report = {
      "benchmark": f"jax.grad of sum(F(P) * C), F = sqrtm / inv_sqrtm, batch {BATCH} x n x n "
                   "float32, P = A A^T / n + 1e-3 I",
      "date": datetime.date.today().isoformat(), "machine": machine, "platform": plat,
      "cores": os.cpu_count(), "load_average_before": load_before,
      "load_average_after": _load(), "wall_s": time.perf_counter() - t0,
      "jax": first["jax"], "torch": first["torch"], "configurations": configs}
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  stem = "spectral" if plat == "cpu" else f"spectral_{plat}"
  (out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
  md = markdown(report)
  (out / f"{stem}.md").write_text(md)
  print(md)


if __name__ == "__main__":
  main()
