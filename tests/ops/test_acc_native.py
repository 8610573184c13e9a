"""The native CPU kernel of the ACC scan (``jaxvision/ops/acc_native.py``, ``csrc/acc_scan.cc``).

The oracle is the XLA scan of the same model (``jaxvision.ops.acc._acc_scan``, itself tested
against a float64 loop in ``test_acc.py``): the kernel must agree to float32 rounding for
every direction, boundary, odd and even channel counts, widths on and off the 16-lane vector
path, batches, ``vmap``, and batch-sharded inputs; its derivatives must be the XLA scan's.
"""

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from jaxvision import ops
from jaxvision.ops import acc as acc_lib
from jaxvision.ops import acc_native

pytestmark = pytest.mark.skipif(not acc_native.native_available(),
                                reason=f"native kernel: {acc_native.native_status()}")
TARGET = "jaxvision_acc_scan"


def _xla(x, params, directions="both", boundary="zero"):
  """The XLA scan, bypassing the dispatch."""
  xt, p, unbatched = acc_lib._prepare(x, params, directions, "test")
  return acc_lib._finish(acc_lib._acc_scan(xt, p, acc_lib._dirs(directions), boundary),
                         unbatched)


def _inputs(shape, directions="both", scale=1.0, seed=0):
  kx, kp = jax.random.split(jax.random.PRNGKey(seed))
  x = jax.random.normal(kx, shape)
  params = ops.init_acc_params(kp, shape[-1], directions=directions)
  return x, jax.tree.map(lambda a: a * scale, params)


def _acc(directions="both", boundary="zero"):
  return jax.jit(functools.partial(ops.adjacent_channel_coupler, directions=directions,
                                   boundary=boundary))


def _hlo(fn, *args):
  return fn.lower(*args).compile().as_text()


@pytest.mark.parametrize("shape", [(2, 5, 7, 6), (1, 9, 40, 5), (3, 17, 33, 4), (1, 1, 1, 1),
                                   (2, 3, 16, 31)])
@pytest.mark.parametrize("directions", ["both", "forward", "backward"])
@pytest.mark.parametrize("boundary", ["zero", "input"])
def test_matches_xla_scan(shape, directions, boundary):
  x, params = _inputs(shape, directions)
  fn = _acc(directions, boundary)
  assert TARGET in _hlo(fn, x, params)
  np.testing.assert_allclose(fn(x, params), _xla(x, params, directions, boundary),
                             rtol=2e-6, atol=2e-6)


def test_saturated_gates_and_large_image():
  # Weights x 30 drive the sigmoid far into both tails (exp clamped at +-88); 64 x 128 runs
  # the rows on several threads.
  x, params = _inputs((1, 64, 128, 7), scale=30.0)
  y, ref = _acc()(x, params), _xla(x, params)
  assert bool(jnp.all(jnp.isfinite(y)))
  np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-4 * float(jnp.abs(ref).max()))


def test_unbatched_and_vmap():
  x, params = _inputs((3, 2, 6, 20, 5))                 # vmapped axis, then (B, H, W, C)
  fn = jax.vmap(ops.adjacent_channel_coupler, in_axes=(0, None))
  got = jax.jit(fn)(x, params)
  assert TARGET in _hlo(jax.jit(fn), x, params)
  want = jnp.stack([_xla(xi, params) for xi in x])
  np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6)
  np.testing.assert_allclose(_acc()(x[0, 0], params), _xla(x[0, 0], params), rtol=2e-6,
                             atol=2e-6)


def test_derivatives_are_the_xla_scans():
  x, params = _inputs((2, 5, 6, 4))
  loss = lambda f: (lambda x, p: jnp.sum(jnp.sin(f(x, p))))
  g_native = jax.jit(jax.grad(loss(ops.adjacent_channel_coupler), argnums=(0, 1)))(x, params)
  g_xla = jax.jit(jax.grad(loss(_xla), argnums=(0, 1)))(x, params)
  for a, b in zip(jax.tree.leaves(g_native), jax.tree.leaves(g_xla)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
  dx = jax.random.normal(jax.random.PRNGKey(5), x.shape)
  _, t_native = jax.jvp(lambda x: ops.adjacent_channel_coupler(x, params), (x,), (dx,))
  _, t_xla = jax.jvp(lambda x: _xla(x, params), (x,), (dx,))
  np.testing.assert_allclose(t_native, t_xla, rtol=1e-6, atol=1e-6)


def test_batch_sharded():
  devices = np.array(jax.devices())
  mesh = jax.sharding.Mesh(devices, ("data",))
  x, params = _inputs((len(devices), 6, 18, 5))
  xs = jax.device_put(x, NamedSharding(mesh, PartitionSpec("data")))
  fn = _acc()
  y = fn(xs, params)
  np.testing.assert_allclose(y, _xla(x, params), rtol=2e-6, atol=2e-6)
  hlo = _hlo(fn, xs, params)
  # Batch-partitioned: each device's kernel call runs its own image (B = 1 per device), and
  # the result stays sharded (no all-gather).
  calls = [line for line in hlo.splitlines() if f'custom_call_target="{TARGET}"' in line]
  assert calls and all("f32[1,5,6,18]" in line.split("custom-call(")[0] for line in calls)
  assert "all-gather" not in hlo
  assert y.sharding.spec == PartitionSpec("data")


def test_float64_and_disabled_use_the_xla_scan(monkeypatch):
  x, params = _inputs((1, 4, 5, 3))
  with jax.enable_x64(True):
    x64, p64 = x.astype(jnp.float64), jax.tree.map(lambda a: a.astype(jnp.float64), params)
    assert TARGET not in _hlo(_acc(), x64, p64)
  monkeypatch.setenv(acc_native.NATIVE_ENV, "0")
  acc_native._load.cache_clear()
  try:
    assert not acc_native.native_available()
    assert acc_native.NATIVE_ENV in acc_native.native_status()
    assert TARGET not in _hlo(jax.jit(lambda x, p: ops.adjacent_channel_coupler(x, p)), x,
                              params)
  finally:
    monkeypatch.undo()
    acc_native._load.cache_clear()
  assert acc_native.native_available()


def test_failed_build_falls_back_with_a_warning(monkeypatch, tmp_path):
  monkeypatch.setenv("JAXVISION_CACHE_DIR", str(tmp_path))       # nothing cached there
  monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
  acc_native._load.cache_clear()
  try:
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter("always")
      assert not acc_native.native_available()
    assert any("native ACC kernel is unavailable" in str(w.message) for w in caught)
    assert "no-such-compiler" in acc_native.native_status()
    assert not list(tmp_path.rglob("*.so"))                       # nothing half-written
  finally:
    monkeypatch.undo()
    acc_native._load.cache_clear()
  assert acc_native.native_available()
