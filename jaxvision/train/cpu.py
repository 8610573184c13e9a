"""CPU runtime defaults: XLA:CPU flags and glibc's allocator, set before JAX starts.

``jaxvision train`` (and the notebooks and benchmarks) call :func:`set_cpu_defaults` first.
In your own script or notebook, call it before JAX runs its first computation::

  from jaxvision.train.cpu import set_cpu_defaults
  set_cpu_defaults()
  import jax

It does two things, each measured (``benchmarks/results/train_step.md``,
``benchmarks/results/spectral.md``, ``benchmarks/results/spectral_recon.md``) and each with
its own opt-out:

* :func:`set_default_xla_flags` appends :data:`CPU_XLA_FLAGS` to ``XLA_FLAGS`` (opt out:
  ``JAXVISION_CPU_XLA_FLAGS=0``; a flag whose option you already set is left to you):

  - ``--xla_cpu_experimental_ynn_fusion_type=-individual_convolution,-individual_dot`` keeps
    convolutions and matrix products on XLA's Eigen kernels instead of YNNPACK (jaxlib 0.10's
    default), whose weight-gradient convolutions are slow (ResNet-18 train step ~1.7x faster)
    and whose batched float32 GEMM reaches ~60% of Eigen's (78 vs 130 GFLOP/s on one core);
  - ``--xla_cpu_prefer_vector_width=512`` lets XLA's fused elementwise/stencil loops use
    512-bit vectors where the CPU has AVX-512 (LLVM's default prefers 256): the ACC layer's
    scan ~15% faster (29 vs 34 ms, medians of alternating processes); no effect on CPUs
    without AVX-512.

* :func:`retain_freed_memory` (glibc only; opt out: ``JAXVISION_CPU_MALLOC=0``; skipped when
  an accelerator plugin is installed or ``JAX_PLATFORMS`` names another platform first) tells
  glibc's ``malloc`` to serve large blocks from one heap and keep freed memory for reuse.
  XLA:CPU allocates each call's temporary and output buffers afresh; with glibc's defaults,
  blocks above 32 MiB are ``mmap``-ed and returned on free, so every call page-faults its
  buffers anew (the ACC layer at 482x512: 16,400 minor faults per call; 37 vs 31 ms in
  ``benchmarks/results/spectral_recon.md``'s steady state, 57 vs 34 ms in separate processes).
  Retaining them removes most of the faults (the same layer: 0 on most calls; a call whose
  predecessor's buffer is not freed yet still faults in a new one). The cost: the process
  keeps its peak heap (freed memory is reused, not returned to the OS), and all threads
  share one malloc arena.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import os
import sys

# Each entry is one XLA:CPU option; added unless XLA_FLAGS already sets that option.
CPU_XLA_FLAGS = (
    "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution,-individual_dot",
    "--xla_cpu_prefer_vector_width=512",
)
MIN_JAXLIB_FOR_FLAGS = (0, 10)

# glibc mallopt(3) parameters and the values set by retain_freed_memory.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
RETAIN_BYTES = 1 << 30          # mmap / trim thresholds: blocks up to 1 GiB stay in the heap
GLIBC_INITIAL_THRESHOLD = 128 * 1024
ACCELERATOR_PLUGINS = ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin",
                       "jax_rocm7_plugin", "libtpu")


def _option(flag: str) -> str:
  return flag.split("=", 1)[0]


def set_default_xla_flags() -> bool:
  """Appends each of :data:`CPU_XLA_FLAGS` whose option ``XLA_FLAGS`` does not set yet.

  Must run before any JAX backend starts. Returns whether a flag was added. No-op with
  ``JAXVISION_CPU_XLA_FLAGS=0`` or when the installed jaxlib predates the flags.
  """
  if os.environ.get("JAXVISION_CPU_XLA_FLAGS", "1") == "0":
    return False
  try:
    import jaxlib
    version = tuple(int(p) for p in jaxlib.__version__.split(".")[:2])
  except (ImportError, ValueError):
    return False
  if version < MIN_JAXLIB_FOR_FLAGS:
    return False
  flags = os.environ.get("XLA_FLAGS", "")
  missing = [f for f in CPU_XLA_FLAGS if _option(f) not in flags]
  if not missing:
    return False
  os.environ["XLA_FLAGS"] = " ".join([flags] + missing).strip()
  return True


def _runs_on_cpu() -> bool:
  """Whether JAX will pick the CPU: no accelerator plugin installed, no other platform
  first in ``JAX_PLATFORMS``."""
  platforms = os.environ.get("JAX_PLATFORMS", "").strip()
  if platforms:
    return platforms.split(",")[0].strip() == "cpu"
  return not any(importlib.util.find_spec(p) is not None for p in ACCELERATOR_PLUGINS)


def retain_freed_memory(threshold_bytes: int = RETAIN_BYTES) -> bool:
  """glibc: large blocks from one heap, freed memory kept (``mallopt``); see the module doc.

  Sets ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` to ``threshold_bytes`` (default
  :data:`RETAIN_BYTES`; :data:`GLIBC_INITIAL_THRESHOLD` restores glibc's initial, but then
  static, thresholds: the benchmarks' ablation) and
  ``M_ARENA_MAX`` to 1 (XLA's worker threads would otherwise allocate from per-thread
  arenas, whose heaps are capped at 64 MiB and fall back to ``mmap``). Call it early, before
  other threads start. Returns whether the settings were applied: ``False`` off Linux/glibc,
  with ``JAXVISION_CPU_MALLOC=0``, or when JAX will run on an accelerator.
  """
  if os.environ.get("JAXVISION_CPU_MALLOC", "1") == "0" or not sys.platform.startswith("linux"):
    return False
  if not _runs_on_cpu():
    return False
  threshold_bytes = int(threshold_bytes)
  if not 0 < threshold_bytes < 2 ** 31:
    raise ValueError(f"retain_freed_memory: `threshold_bytes` must be in (0, 2**31); found "
                     f"{threshold_bytes}.")
  name = ctypes.util.find_library("c") or "libc.so.6"
  try:
    libc = ctypes.CDLL(name)
  except OSError:
    return False
  if not hasattr(libc, "gnu_get_libc_version"):   # not glibc (e.g. musl's no-op mallopt)
    return False
  mallopt = libc.mallopt
  mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
  return all(mallopt(param, value) == 1 for param, value in (
      (M_ARENA_MAX, 1), (M_MMAP_THRESHOLD, threshold_bytes),
      (M_TRIM_THRESHOLD, threshold_bytes)))


def set_cpu_defaults() -> dict[str, bool]:
  """:func:`set_default_xla_flags` and :func:`retain_freed_memory`; returns what was applied
  (``{"xla_flags": ..., "malloc": ...}``). Call before JAX starts."""
  return {"xla_flags": set_default_xla_flags(), "malloc": retain_freed_memory()}
