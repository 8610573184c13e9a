"""Decorrelated BN / ZCA whitening (issue 3; spec svd-covariance-conditioning Sec. 2, 6.5)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxvision import ops
from jaxvision.nn import DecorrelatedBatchNorm

MUTABLE = ["batch_stats", "intermediates"]


def _data(seed, shape, mix_scale=1.0):
  """NHWC features with correlated channels and a non-zero mean (numpy float32)."""
  rng = np.random.default_rng(seed)
  c = shape[-1]
  mix = np.eye(c) + mix_scale * rng.normal(size=(c, c)) / np.sqrt(c)
  x = rng.normal(size=shape) @ mix + rng.normal(size=c)
  return x.astype(np.float32)


def _np_groups(x, groups):
  """``(N, C)`` float64 samples split into ``groups`` ``(N, n)`` blocks."""
  flat = np.asarray(x, np.float64).reshape(-1, x.shape[-1])
  return np.split(flat, groups, axis=1)


def _np_cov(xg):
  xc = xg - xg.mean(0)
  return xc.T @ xc / len(xg)


def _plain(**kw):
  return DecorrelatedBatchNorm(use_scale=False, use_bias=False, **kw)


def _variables(model, channels, seed=0):
  """The variables ``model.init`` makes (checked in ``test_init_state...``), without compiling
  an init: fresh running statistics and a random ``U(0, 1)`` scale / ``N(0, 1)`` bias."""
  n = channels // model.groups
  rng = np.random.default_rng(seed)
  variables = {"batch_stats": {
      "mean": jnp.zeros((channels,)),
      "whitening": jnp.broadcast_to(jnp.eye(n), (model.groups, n, n))}}
  params = {}
  if model.use_scale:
    params["scale"] = jnp.asarray(rng.uniform(size=channels), jnp.float32)
  if model.use_bias:
    params["bias"] = jnp.asarray(rng.normal(size=channels), jnp.float32)
  if params:
    variables["params"] = params
  return variables


@functools.partial(jax.jit, static_argnums=0)
def _train(model, variables, x):
  return model.apply(variables, x, use_running_average=False, mutable=MUTABLE)


@pytest.mark.parametrize("groups,eps", [(2, 1e-2), (1, 1e-6)])
def test_output_covariance_is_shrunk_identity_per_group(groups, eps):
  x = _data(0, (8, 4, 4, 6))
  model = _plain(groups=groups, eps=eps)
  variables = _variables(model, 6)
  y, state = _train(model, variables, x)
  sown, = state["intermediates"]["covariance"]
  assert sown.shape == (groups, 6 // groups, 6 // groups) and sown.dtype == jnp.float32
  for g, (xg, yg) in enumerate(zip(_np_groups(x, groups), _np_groups(y, groups))):
    sigma = _np_cov(xg)
    n = len(sigma)
    np.testing.assert_allclose(sown[g], sigma, rtol=1e-5, atol=1e-6)  # sown before eps
    want = np.linalg.solve(sigma + eps * np.eye(n), sigma)     # (Sigma + eps I)^-1 Sigma
    np.testing.assert_allclose(_np_cov(yg), want, atol=2e-4)
    np.testing.assert_allclose(yg.mean(0), 0.0, atol=1e-5)
    if eps < 1e-4:
      np.testing.assert_allclose(_np_cov(yg), np.eye(n), atol=2e-4)


def test_rotation_equivariance():
  """whiten(x R) = whiten(x) R for orthogonal R (eps I is rotation invariant)."""
  x = _data(1, (16, 3, 3, 5))
  r, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(5, 5)))
  model = _plain()
  variables = _variables(model, 5)
  y, _ = _train(model, variables, x)
  y_rot, _ = _train(model, variables, (x @ r).astype(np.float32))
  np.testing.assert_allclose(y_rot, np.asarray(y) @ r, atol=2e-4)
  # Not trivially so: a per-channel (diagonal) standardisation is not equivariant.
  assert np.abs(np.asarray(y) @ r - np.asarray(x) @ r).max() > 0.1


def test_init_state_and_affine_parameters():
  x = _data(3, (4, 2, 2, 6))
  init = functools.partial(DecorrelatedBatchNorm(groups=3).init, use_running_average=False)
  variables = jax.jit(init)(jax.random.PRNGKey(0), x)
  stats, params = variables["batch_stats"], variables["params"]
  np.testing.assert_array_equal(stats["mean"], np.zeros(6))
  np.testing.assert_array_equal(stats["whitening"], np.broadcast_to(np.eye(2), (3, 2, 2)))
  assert params["scale"].shape == (6,) and np.all((params["scale"] >= 0) & (params["scale"] < 1))
  assert len(np.unique(params["scale"])) == 6                    # U(0, 1), not constant
  np.testing.assert_array_equal(params["bias"], np.zeros(6))
  helper = _variables(DecorrelatedBatchNorm(groups=3), 6)
  assert jax.tree.map(jnp.shape, helper) == jax.tree.map(jnp.shape, dict(variables))
  with pytest.raises(ValueError, match="`groups`.*6 channels.*groups=4"):
    DecorrelatedBatchNorm(groups=4).init(jax.random.PRNGKey(0), x, use_running_average=False)
  with pytest.raises(ValueError, match="`method`.*'svd'"):
    DecorrelatedBatchNorm(method="svd").init(jax.random.PRNGKey(0), x, use_running_average=False)


def test_eval_uses_running_statistics():
  x = _data(4, (8, 3, 3, 4))
  model = DecorrelatedBatchNorm(groups=2, momentum=0.9)
  variables = _variables(model, 4, seed=1)
  y_train, state = _train(model, variables, x)
  stats = state["batch_stats"]
  xs = np.asarray(x, np.float64).reshape(-1, 2, 2)
  mean = xs.mean(0)
  sigma = np.stack([_np_cov(xs[:, g]) for g in range(2)]) + 1e-2 * np.eye(2)
  white = np.stack([np.linalg.inv(scipy.linalg.sqrtm(s).real) for s in sigma])
  np.testing.assert_allclose(stats["mean"], 0.1 * mean.reshape(-1), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(stats["whitening"], 0.9 * np.eye(2) + 0.1 * white, rtol=1e-4)

  evaluate = jax.jit(lambda v, x: model.apply(v, x, use_running_average=True))
  new_vars = {"params": variables["params"], "batch_stats": stats}
  y_eval = evaluate(new_vars, x)
  p = variables["params"]
  run_mean = np.asarray(stats["mean"], np.float64).reshape(2, 2)
  manual = np.einsum("gij,sgj->sgi", np.asarray(stats["whitening"], np.float64), xs - run_mean)
  manual = manual.reshape(x.shape) * np.asarray(p["scale"]) + np.asarray(p["bias"])
  np.testing.assert_allclose(y_eval, manual, rtol=1e-4, atol=1e-4)
  assert np.abs(np.asarray(y_eval) - np.asarray(y_train)).max() > 0.1
  # The attribute default is overridable at call time, and evaluation mutates nothing.
  _, st = DecorrelatedBatchNorm(groups=2, use_running_average=True).apply(
      new_vars, x, mutable=MUTABLE)
  assert not st.get("intermediates")
  jax.tree.map(np.testing.assert_array_equal, st["batch_stats"], stats)


def test_running_whitening_converges_on_stationary_data():
  c, eps, steps = 4, 1e-2, 120
  rng = np.random.default_rng(5)
  q, _ = np.linalg.qr(rng.normal(size=(c, c)))
  cov_true = (q * np.array([4.0, 2.0, 1.0, 0.5])) @ q.T
  mu_true = rng.normal(size=c)
  chol = np.linalg.cholesky(cov_true).T
  model = _plain(eps=eps)
  variables = _variables(model, c)

  @jax.jit
  def run(stats, key):
    def step(stats, key):
      x = jax.random.normal(key, (1024, c)) @ chol + mu_true
      _, state = model.apply({"batch_stats": stats}, x.astype(jnp.float32),
                             use_running_average=False, mutable=["batch_stats"])
      return state["batch_stats"], None
    return jax.lax.scan(step, stats, jax.random.split(key, steps))[0]

  stats = run(variables["batch_stats"], jax.random.PRNGKey(6))
  want = np.linalg.inv(scipy.linalg.sqrtm(cov_true + eps * np.eye(c)).real)
  w = np.asarray(stats["whitening"][0])
  assert np.linalg.norm(w - want) / np.linalg.norm(want) < 2e-2
  np.testing.assert_allclose(stats["mean"], mu_true, atol=5e-2)


def test_sharded_batch_gives_global_statistics():
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  x = _data(7, (16, 2, 2, 4))
  model = DecorrelatedBatchNorm(groups=2)
  variables = _variables(model, 4)
  x_sharded = jax.device_put(x, NamedSharding(mesh, P("data")))
  assert len(x_sharded.sharding.device_set) == 8
  y_ref, st_ref = _train(model, variables, x)
  y, st = _train(model, variables, x_sharded)
  np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-6), st, st_ref)
  # Per-device statistics (2 samples per device) would be far from the global ones.
  _, st_local = _train(model, variables, x[:2])
  assert np.abs(np.asarray(st["batch_stats"]["mean"] - st_local["batch_stats"]["mean"])).max() \
      > 1e-2


def test_eigh_and_newton_schulz_agree_on_well_conditioned_input():
  x = _data(8, (16, 2, 2, 4), mix_scale=0.3)
  kappa = np.linalg.cond(_np_cov(_np_groups(x, 1)[0]) + 1e-2 * np.eye(4))
  assert kappa < 10
  ys = []
  for method in ("eigh", "newton_schulz", "pade"):
    model = _plain(method=method, num_iters=25)
    variables = _variables(model, 4)
    ys.append(np.asarray(_train(model, variables, x)[0]))
  np.testing.assert_allclose(ys[1], ys[0], atol=1e-4)
  np.testing.assert_allclose(ys[2], ys[0], atol=2e-3)


@pytest.mark.parametrize("method", ["eigh", "newton_schulz"])
def test_gradients_are_finite_also_for_degenerate_spectra(method):
  rng = np.random.default_rng(9)
  z = rng.normal(size=(32, 4))
  z -= z.mean(0)
  z = z @ np.linalg.inv(np.linalg.cholesky(z.T @ z / 32)).T   # covariance exactly I
  model = DecorrelatedBatchNorm(method=method, num_iters=10)
  c = jnp.asarray(rng.normal(size=(32, 4)), jnp.float32)
  variables = _variables(model, 4)

  @jax.jit
  def grads(params, x):
    def loss(params, x):
      y, _ = model.apply({"params": params, "batch_stats": variables["batch_stats"]}, x,
                         use_running_average=False, mutable=["batch_stats"])
      return jnp.sum(c * y)
    return jax.grad(loss, argnums=(0, 1))(params, x)

  for x in (jnp.asarray(z, jnp.float32), jnp.asarray(_data(10, (32, 4)))):
    g_params, g_x = grads(variables["params"], x)
    for g in jax.tree.leaves((g_params, g_x)):
      assert np.all(np.isfinite(g))
    assert np.abs(np.asarray(g_x)).max() > 0


def test_float64_input_under_x64():
  with jax.enable_x64(True):
    x = jnp.asarray(_data(11, (32, 3)), jnp.float64)
    model = _plain(eps=0.0)
    variables = _variables(model, 3)
    y, state = _train(model, variables, x)
    assert y.dtype == jnp.float64
    np.testing.assert_allclose(_np_cov(np.asarray(y)), np.eye(3), atol=1e-10)
    kappa = ops.condition_number(state["intermediates"]["covariance"][0])
    np.testing.assert_allclose(kappa, np.linalg.cond(_np_cov(np.asarray(x))), rtol=1e-8)
