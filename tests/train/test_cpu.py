"""CPU runtime defaults: XLA flags respect the user's choices; glibc keeps freed buffers."""

import os
import subprocess
import sys
import textwrap

import pytest

from jaxvision.train import cpu


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch):
  monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
  for name in ("JAXVISION_CPU_XLA_FLAGS", "JAXVISION_CPU_MALLOC", "JAX_PLATFORMS"):
    monkeypatch.delenv(name, raising=False)


def test_xla_flags_added_once_and_respect_user_choice(monkeypatch):
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
  assert cpu.set_default_xla_flags()
  assert os.environ["XLA_FLAGS"] == " ".join(("--xla_cpu_enable_fast_math=false",)
                                             + cpu.CPU_XLA_FLAGS)
  assert not cpu.set_default_xla_flags()  # already chosen: not added twice
  # The user's own value for one option wins; the other option is still added.
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=dot")
  assert cpu.set_default_xla_flags()
  assert os.environ["XLA_FLAGS"] == ("--xla_cpu_experimental_ynn_fusion_type=dot "
                                     "--xla_cpu_prefer_vector_width=512")
  monkeypatch.setenv("XLA_FLAGS", "")
  monkeypatch.setenv("JAXVISION_CPU_XLA_FLAGS", "0")
  assert not cpu.set_default_xla_flags() and os.environ["XLA_FLAGS"] == ""


def test_malloc_opt_outs(monkeypatch):
  monkeypatch.setenv("JAXVISION_CPU_MALLOC", "0")
  assert not cpu.retain_freed_memory()
  monkeypatch.delenv("JAXVISION_CPU_MALLOC")
  monkeypatch.setenv("JAX_PLATFORMS", "cuda,cpu")
  assert not cpu.retain_freed_memory()          # an accelerator run: host malloc untouched


# A fresh interpreter: a 48 MiB output per call (above glibc's 32 MiB
# mmap ceiling) and count the minor page faults of six later calls.
_FAULTS = textwrap.dedent("""
    import json, resource, sys
    from jaxvision.train.cpu import retain_freed_memory
    applied = retain_freed_memory() if sys.argv[1] == "retain" else False
    import jax, jax.numpy as jnp
    x = jnp.ones((12 * 1024, 1024))
    f = jax.jit(lambda x: jnp.sin(x) * jnp.cos(x) + jnp.sum(jnp.exp(x), axis=0))
    f(x).block_until_ready()
    f(x).block_until_ready()
    faults = []
    for _ in range(6):
      before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
      y = f(x).block_until_ready()
      del y
      faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(json.dumps({"applied": applied, "faults": faults}))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc")
def test_retained_memory_stops_per_call_page_faults():
  import json
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  runs = {}
  for mode in ("retain", "default"):
    out = subprocess.run([sys.executable, "-c", _FAULTS, mode], env=env, check=True,
                         capture_output=True, text=True).stdout
    runs[mode] = json.loads(out.strip().splitlines()[-1])
  if not runs["retain"]["applied"]:
    pytest.skip("not glibc")
  pages = 48 * 2**20 // 4096                     # the 48 MiB output, in 4 KiB pages
  # glibc's default: every call faults its buffer in anew. Retained: calls reuse it (not
  # every call: XLA frees a buffer asynchronously, so one may still be live when the next
  # call allocates).
  assert min(runs["default"]["faults"]) > pages // 2, runs
  assert min(runs["retain"]["faults"]) < pages // 20, runs
