"""Test setup: 8 simulated CPU devices, before any JAX backend is initialised."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402

NUM_DEVICES = 8
jax.config.update("jax_num_cpu_devices", NUM_DEVICES)


@pytest.fixture(scope="session", autouse=True)
def _check_devices():
  assert jax.device_count() == NUM_DEVICES, (
      f"tests need {NUM_DEVICES} simulated CPU devices; found {jax.device_count()} "
      "(was a JAX backend initialised before tests/conftest.py ran?)")


@pytest.fixture(scope="session", autouse=True)
def _compilation_cache(tmp_path_factory):
  """Many tests compile the same small programs: share them through a persistent cache."""
  jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("jax_cache")))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  yield
