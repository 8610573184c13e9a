"""The ACC's exact scan as a native CPU kernel (XLA FFI), built on first use.

``adjacent_channel_coupler(solver="scan")`` runs :func:`acc_scan_cpu` for float32 on CPU
when the kernel is available, and the XLA scan of :mod:`jaxvision.ops.acc` otherwise (other
platforms, other dtypes, no C++ compiler, or ``JAXVISION_NATIVE_KERNELS=0``). The two compute
the same model: the kernel's exp is a polynomial (relative error < 2e-7) and its sums run in
a different order, so the outputs agree to float32 rounding (``tests/ops/test_acc_native.py``).

Why a kernel: XLA:CPU runs each step of the scan as about five loops over whole planes; the
kernel makes one pass per step (the two input planes through zero-bordered row rings and the
two padded state planes in, the two new states and the two output planes out) and splits
each step's rows over threads. The layout changes to and from channel-last stay in XLA.
Measured in ``benchmarks/results/spectral_recon.md``.

Transformations:

* ``jit``: a primitive lowered to an FFI custom call (``jaxvision_acc_scan``), platform
  ``cpu`` only: elsewhere :func:`jax.lax.platform_dependent` lowers the XLA scan.
* ``vmap``: vmapped axes become leading batch axes (the kernel treats every leading axis as
  batch).
* Differentiation: a ``custom_jvp`` whose rule is the JVP of the XLA scan, so forward and
  reverse mode both work and gradients are exactly the XLA scan's; only the undifferentiated
  output comes from the kernel.
* Sharding: the custom call is registered batch-partitionable and carries a Shardy sharding
  rule (the leading axis of every operand and of the result is one factor), so a
  batch-sharded input runs each device's images on that device and gives a batch-sharded
  result (the per-step weights are broadcast over the batch for this). The rule is built
  with a JAX-internal helper; without it the result is all-gathered (still correct).

Build: ``g++`` (``$CXX``) compiles ``csrc/acc_scan.cc`` against :func:`jax.ffi.include_dir`
with ``-O3 -march=native`` into ``$JAXVISION_CACHE_DIR`` (default ``~/.cache/jaxvision``),
keyed by the source, flags, compiler and CPU; written to a temporary file and renamed, so
concurrent builds (pytest-xdist workers) never load a half-written library. A failed build
is reported once (:func:`native_status`) and the XLA scan is used.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import jax
import jax.extend.core as jex_core
import jax.numpy as jnp
import numpy as np
from jax.interpreters import batching, mlir

__all__ = ["NATIVE_ENV", "acc_scan_cpu", "native_available", "native_status"]

NATIVE_ENV = "JAXVISION_NATIVE_KERNELS"
_TARGET = "jaxvision_acc_scan"
_SOURCE = Path(__file__).parent / "csrc" / "acc_scan.cc"
# gnu++20: GCC's ISO modes turn off FMA contraction. -fno-trapping-math lets the clamps in
# the exp if-convert, so the row loop vectorises.
_CXX_FLAGS = ("-O3", "-march=native", "-std=gnu++20", "-ffp-contract=fast", "-fno-math-errno",
              "-fno-trapping-math", "-fPIC", "-shared", "-pthread")
_DIRECTIONS = {"both": 0, "forward": 1, "backward": 2}
_BOUNDARIES = {"zero": 0, "input": 1}


def _cache_dir() -> Path:
  root = os.environ.get("JAXVISION_CACHE_DIR") or os.path.join(
      os.path.expanduser("~"), ".cache", "jaxvision")
  return Path(root) / "kernels"


def _cpu_signature() -> str:
  """The CPU model and feature flags (``-march=native`` depends on them)."""
  try:
    with open("/proc/cpuinfo") as f:
      lines = [l for l in f if l.startswith(("model name", "flags"))]
    return "".join(sorted(set(lines)))
  except OSError:
    return platform.processor() or platform.machine()


def _build(cxx: str) -> Path:
  source = _SOURCE.read_bytes()
  version = subprocess.run([cxx, "--version"], capture_output=True, text=True,
                           check=True).stdout
  key = hashlib.sha256(b"\0".join([
      source, " ".join(_CXX_FLAGS).encode(), version.encode(), _cpu_signature().encode(),
      jax.ffi.include_dir().encode()])).hexdigest()[:16]
  out_dir = _cache_dir()
  lib = out_dir / f"libjaxvision_acc_scan-{key}.so"
  if lib.exists():
    return lib
  out_dir.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=out_dir, suffix=".so.tmp")
  os.close(fd)
  try:
    cmd = [cxx, *_CXX_FLAGS, "-I", jax.ffi.include_dir(), str(_SOURCE), "-o", tmp]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
      raise RuntimeError(f"`{' '.join(cmd)}` failed:\n{res.stderr[-2000:]}")
    os.replace(tmp, lib)
  finally:
    if os.path.exists(tmp):
      os.unlink(tmp)
  return lib


@functools.lru_cache(maxsize=None)
def _load() -> tuple[bool, str]:
  """Builds (once per source/CPU), loads and registers the kernel: ``(ok, reason)``."""
  if os.environ.get(NATIVE_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
    return False, f"disabled by {NATIVE_ENV}={os.environ[NATIVE_ENV]}"
  cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
  if not cxx:
    return False, "no C++ compiler found (set $CXX)"
  try:
    lib = ctypes.cdll.LoadLibrary(str(_build(cxx)))
    jax.ffi.register_ffi_target(_TARGET, jax.ffi.pycapsule(lib.JaxvisionAccScan),
                                platform="cpu")
    jax.ffi.register_ffi_target_as_batch_partitionable(_TARGET)
  except Exception as e:  # noqa: BLE001 -- any build/load failure means: use the XLA scan
    warnings.warn(f"jaxvision: the native ACC kernel is unavailable, using the XLA scan "
                  f"({type(e).__name__}: {e})", RuntimeWarning, stacklevel=3)
    return False, f"{type(e).__name__}: {e}"
  return True, "ok"


def native_available() -> bool:
  """Whether the native CPU kernel is built and registered (building it if needed)."""
  return _load()[0]


def native_status() -> str:
  """``"ok"``, or why the native kernel is not used."""
  return _load()[1]


def _num_threads() -> int:
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:
    return os.cpu_count() or 1


# ------------------------------------------------------------------------------------------
# The primitive: abstract eval, a batching rule folding vmapped axes into the batch, and a
# CPU lowering to the FFI custom call with the batch-partitioner attribute and a Shardy
# sharding rule (so a batch-sharded input gives a batch-sharded result; ``jax.ffi.ffi_call``
# cannot attach the rule).

_acc_scan_p = jex_core.Primitive("jaxvision_acc_scan")


def _abstract_eval(x, weights, biases, **_):
  return jax.core.ShapedArray(x.shape, x.dtype)


@functools.lru_cache(maxsize=None)
def _jitted_bind(directions, boundary, num_threads):
  return jax.jit(functools.partial(_acc_scan_p.bind, directions=directions,
                                   boundary=boundary, num_threads=num_threads))


def _impl(x, weights, biases, *, directions, boundary, num_threads):
  """Eager use: the primitive compiled once per attribute set (and shape, by ``jit``)."""
  return _jitted_bind(directions, boundary, num_threads)(x, weights, biases)


def _batch(args, dims, **params):
  """Any vmapped axes become leading batch axes of every operand (the kernel flattens them)."""
  size = next(a.shape[d] for a, d in zip(args, dims) if d is not None)
  args = [jnp.moveaxis(a, d, 0) if d is not None else
          jnp.broadcast_to(a, (size,) + a.shape) for a, d in zip(args, dims)]
  return _acc_scan_p.bind(*args, **params), 0


def _sharding_rule(ctx):
  """Shardy: the leading axes of all operands and of the result are one batch factor."""
  try:
    from jax._src.custom_partitioning_sharding_rule import (
        sdy_sharding_rule_to_mlir, str_to_sdy_sharding_rule)
  except ImportError:  # a JAX without the helper: no rule (the result is then gathered)
    return None
  letters = iter("abcdefghijklmnopqrstuvwxyz")
  nb = len(ctx.avals_in[0].shape) - 3                        # batch axes of x (B, C, H, W)
  batch = " ".join(next(letters) for _ in range(nb))
  def spec(aval):
    return " ".join([batch] + [next(letters) for _ in range(len(aval.shape) - nb)])
  rule = (", ".join(spec(a) for a in ctx.avals_in) + " -> " +
          ", ".join(spec(a) for a in ctx.avals_out))
  def types(avals):
    try:                                   # newer JAX: (module_context, aval)
      return [mlir.aval_to_ir_type(ctx.module_context, a) for a in avals]
    except TypeError:
      return [mlir.aval_to_ir_type(a) for a in avals]
  return sdy_sharding_rule_to_mlir(str_to_sdy_sharding_rule(rule), types(ctx.avals_in),
                                   types(ctx.avals_out))


def _lowering(ctx, x, weights, biases, *, directions, boundary, num_threads):
  nb = len(ctx.avals_in[0].shape) - 3
  extra = {"mhlo.frontend_attributes": mlir.ir.DictAttr.get(
      {"num_batch_dims": mlir.ir.StringAttr.get(str(nb))})}
  if jax.config.jax_use_shardy_partitioner:
    rule = _sharding_rule(ctx)
    if rule is not None:
      extra["sdy.sharding_rule"] = rule
  return jax.ffi.ffi_lowering(_TARGET, extra_attributes=extra)(
      ctx, x, weights, biases, directions=np.int64(directions), boundary=np.int64(boundary),
      num_threads=np.int64(num_threads))


_acc_scan_p.def_abstract_eval(_abstract_eval)
_acc_scan_p.def_impl(_impl)
batching.primitive_batchers[_acc_scan_p] = _batch
mlir.register_lowering(_acc_scan_p, _lowering, platform="cpu")


def acc_scan_cpu(x, weights, biases, *, directions: str, boundary: str):
  """The kernel call: ``x`` (B, C, H, W) float32 planes; ``weights`` (B, C, D, 27) and
  ``biases`` (B, C, D, 3) float32 in step order (:func:`jaxvision.ops.acc._native_step_params`).
  Returns ``Y`` (B, C, H, W). Call only when :func:`native_available`."""
  return _acc_scan_p.bind(x, weights, biases, directions=_DIRECTIONS[directions],
                          boundary=_BOUNDARIES[boundary], num_threads=_num_threads())
