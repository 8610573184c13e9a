"""SOC orthogonal conv (OW, eq. 13) and spectrally normalised conv (SN, eq. 11); issue 3."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision import ops
from jaxvision.nn import SOCConv, SpectralNormConv

x64 = functools.partial(jax.enable_x64, True)


# ------------------------------------------------------------------------------------------
# SOCConv.


def _soc_variables(features, kernel_size=(3, 3), use_bias=True, seed=0, dtype=np.float32):
  """SOC parameters as ``SOCConv.init`` makes them (N(0, 1/C) kernel), without compiling init."""
  rng = np.random.default_rng(seed)
  params = {"kernel": rng.normal(size=(*kernel_size, features, features)) / np.sqrt(features)}
  if use_bias:
    params["bias"] = rng.uniform(-1, 1, size=features) / np.sqrt(features)
  return {"params": jax.tree.map(lambda a: jnp.asarray(a, dtype), params)}


def test_soc_preserves_norms_circular():
  model = SOCConv(8, use_bias=False)
  x = jax.random.normal(jax.random.PRNGKey(0), (6, 8, 8, 8))
  variables = _soc_variables(8, use_bias=False)
  apply = jax.jit(model.apply, static_argnames="train")
  ratio = lambda z: np.linalg.norm(np.asarray(z).reshape(6, -1), axis=1) / \
      np.linalg.norm(np.asarray(x).reshape(6, -1), axis=1)
  z_eval, z_train = apply(variables, x), apply(variables, x, train=True)
  np.testing.assert_allclose(ratio(z_eval), 1.0, atol=1e-3)     # T = 10
  np.testing.assert_allclose(ratio(z_eval), 1.0, atol=1e-5)     # (in fact float32-exact)
  np.testing.assert_allclose(ratio(z_train), 1.0, atol=3e-4)    # T = 5: <= 0.7^6/6! ~ 1.6e-4
  assert np.abs(np.asarray(z_eval - x)).max() > 0.1             # not the identity
  # `train` selects the number of Taylor terms: one term is visibly not orthogonal.
  z_one = jax.jit(model.clone(train_terms=1).apply, static_argnames="train")(
      variables, x, train=True)
  assert np.abs(ratio(z_one) - 1.0).max() > 1e-3


@pytest.mark.parametrize("padding", ["circular", "zeros"])
def test_soc_jacobian_is_orthogonal_float64(padding):
  with x64():
    model = SOCConv(3, padding=padding, use_bias=False, train_terms=1)   # eval_terms=10
    variables = _soc_variables(3, use_bias=False, seed=1, dtype=np.float64)

    @jax.jit
    def jacobians():
      # The layer is linear without bias: its Jacobian's columns are the images of a basis.
      jac = lambda c, train: model.apply(variables, jnp.eye(4 * 5 * c).reshape(-1, 4, 5, c),
                                         train=train).reshape(4 * 5 * c, -1).T
      return jac(3, False), jac(3, True), jac(2, False)

    jac, one, jac2 = map(np.asarray, jacobians())
    np.testing.assert_allclose(jac.T @ jac, np.eye(60), atol=1e-6)
    # One term: J - I is the normalised skew operator, with norm <= the 0.7 correction.
    skew = one - np.eye(60)
    np.testing.assert_allclose(skew + skew.T, 0.0, atol=1e-12)
    assert 0.1 < np.linalg.norm(skew, 2) <= 0.7 + 1e-12
    # Fewer input channels are zero-padded: the columns stay orthonormal.
    assert jac2.shape == (60, 40)
    np.testing.assert_allclose(jac2.T @ jac2, np.eye(40), atol=1e-6)
    np.testing.assert_allclose(jac2, jac.reshape(60, 20, 3)[:, :, :2].reshape(60, 40), atol=1e-12)


def test_soc_1x1_bound_is_exact_and_gradients_are_finite():
  with x64():
    model = SOCConv(4, kernel_size=1, eval_terms=1, use_bias=False)
    variables = _soc_variables(4, (1, 1), use_bias=False, dtype=np.float64)
    basis = jnp.eye(16).reshape(16, 2, 2, 4)
    skew = np.asarray(jax.jit(model.apply)(variables, basis).reshape(16, 16).T) - np.eye(16)
    np.testing.assert_allclose(np.linalg.norm(skew, 2), 1.0, rtol=1e-12)   # correction 1.0
  model = SOCConv(4)
  x = jax.random.normal(jax.random.PRNGKey(4), (2, 5, 5, 3))
  loss = lambda p: jnp.sum(jnp.sin(model.apply({"params": p}, x, train=True)))
  grads = jax.jit(jax.grad(loss))(_soc_variables(4)["params"])
  for g in jax.tree.leaves(grads):
    assert np.all(np.isfinite(g)) and np.abs(np.asarray(g)).max() > 0


def test_soc_init_shapes_and_errors():
  x = jnp.zeros((1, 4, 4, 5))
  shapes = jax.eval_shape(SOCConv(8, kernel_size=(3, 5)).init, jax.random.PRNGKey(0), x)
  assert jax.tree.map(lambda a: a.shape, shapes) == {
      "params": {"kernel": (3, 5, 8, 8), "bias": (8,)}}
  with pytest.raises(ValueError, match="5 channels, more than `features`=4"):
    SOCConv(4).init(jax.random.PRNGKey(0), x)
  with pytest.raises(ValueError, match="`kernel_size` must be odd"):
    SOCConv(8, kernel_size=2).init(jax.random.PRNGKey(0), x)
  with pytest.raises(ValueError, match="`padding`.*'reflect'"):
    SOCConv(8, padding="reflect").init(jax.random.PRNGKey(0), x)
  with pytest.raises(ValueError, match="`x`.*at least one spatial axis.*found shape \\(4, 5\\)"):
    SOCConv(8).init(jax.random.PRNGKey(0), jnp.zeros((4, 5)))
  with pytest.raises(ValueError, match="`x`.*1 spatial axes for kernel_size \\(3,\\)"):
    SOCConv(8, kernel_size=(3,)).init(jax.random.PRNGKey(0), x)


# ------------------------------------------------------------------------------------------
# SpectralNormConv.


def test_spectral_norm_conv_converges_and_updates_u_only_in_training():
  model = SpectralNormConv(6, (3, 3))
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 5, 3))
  variables = jax.jit(model.init)(jax.random.PRNGKey(1), x)
  kernel = variables["params"]["kernel"]
  assert kernel.shape == (3, 3, 3, 6) and variables["batch_stats"]["u"].shape == (6,)
  np.testing.assert_allclose(jnp.linalg.norm(variables["batch_stats"]["u"]), 1.0, rtol=1e-6)
  np.testing.assert_allclose(np.std(kernel), np.sqrt(2.0 / (6 * 9)), rtol=0.3)  # He fan-out
  apply = jax.jit(lambda v, x, train: model.apply(v, x, train=train,
                                                  mutable=["batch_stats", "intermediates"]),
                  static_argnums=2)

  u0 = variables["batch_stats"]["u"]
  _, st = apply(variables, x, False)
  np.testing.assert_array_equal(st["batch_stats"]["u"], u0)      # evaluation: u unchanged
  _, st = apply(variables, x, True)
  assert np.abs(np.asarray(st["batch_stats"]["u"] - u0)).max() > 1e-3

  sigma_true = np.linalg.svd(np.asarray(ops.kernel_to_matrix(kernel), np.float64),
                             compute_uv=False)[0]

  @jax.jit
  def train_calls(stats):   # 300 training steps, one power iteration each
    def step(stats, _):
      _, st = model.apply({**variables, "batch_stats": stats}, x, train=True,
                          mutable=["batch_stats"])
      return st["batch_stats"], None
    return jax.lax.scan(step, stats, None, length=300)[0]

  stats = train_calls(variables["batch_stats"])   # sigma_2 / sigma_1 = 0.97 for this kernel
  y, st = apply({**variables, "batch_stats": stats}, x, False)
  sigma, = st["intermediates"]["sigma"]
  np.testing.assert_allclose(sigma, sigma_true, rtol=1e-5)
  normalised = np.asarray(ops.kernel_to_matrix(kernel / sigma), np.float64)
  np.testing.assert_allclose(np.linalg.svd(normalised, compute_uv=False)[0], 1.0, rtol=1e-5)
  # The layer is flax's Conv with the normalised kernel.
  ref = nn.Conv(6, (3, 3)).apply(
      {"params": {"kernel": kernel / sigma, "bias": variables["params"]["bias"]}}, x)
  np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_spectral_norm_conv_strides_padding_and_gradients():
  x = jax.random.normal(jax.random.PRNGKey(2), (2, 7, 7, 4))
  out_shape = lambda m: jax.eval_shape(
      lambda x: m.init_with_output(jax.random.PRNGKey(0), x)[0], x).shape
  for kw in (dict(strides=2), dict(padding="VALID"), dict(padding=1, strides=(2, 1))):
    assert out_shape(SpectralNormConv(5, 3, **kw)) == out_shape(nn.Conv(5, (3, 3), **kw))
  model = SpectralNormConv(5, (3, 3), use_bias=False)
  rng = np.random.default_rng(4)
  variables = {"params": {"kernel": jnp.asarray(rng.normal(size=(3, 3, 4, 5)), jnp.float32)},
               "batch_stats": {"u": jnp.full((5,), 1 / np.sqrt(5), jnp.float32)}}
  loss = lambda p: jnp.sum(model.apply({**variables, "params": p}, x) ** 2)
  g = jax.jit(jax.grad(loss))(variables["params"])["kernel"]
  assert np.all(np.isfinite(g)) and np.abs(np.asarray(g)).max() > 0
  # d sigma / dW = u v^T: the loss is scale invariant in W, so <g, W> = 0.
  np.testing.assert_allclose(jnp.vdot(g, variables["params"]["kernel"]), 0.0, atol=1e-3)
