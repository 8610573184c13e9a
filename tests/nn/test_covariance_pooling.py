"""iSQRT-COV global covariance pooling head (issue 3; spec svd-covariance-conditioning Sec. 2)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from jaxvision.nn import CovariancePooling


def _images(seed, b=3, h=4, w=4, spectrum=(2.0, 1.5, 1.0, 0.8)):
  """NHWC images whose per-image position covariance is exactly ``Q diag(spectrum) Q^T``."""
  rng = np.random.default_rng(seed)
  c = len(spectrum)
  out = []
  for _ in range(b):
    z = rng.normal(size=(h * w, c))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(z.T @ z / (h * w))).T  # covariance exactly I
    q, _ = np.linalg.qr(rng.normal(size=(c, c)))
    out.append((z * np.sqrt(spectrum)) @ q.T + rng.normal(size=c))
  return np.stack(out).reshape(b, h, w, c)


def _reference(x):
  """scipy: triu of sqrtm of each image's biased covariance over the H*W positions (float64)."""
  b, c = x.shape[0], x.shape[-1]
  iu = np.triu_indices(c)
  rows = []
  for img in np.asarray(x, np.float64).reshape(b, -1, c):
    cov = np.cov(img, rowvar=False, bias=True)
    rows.append(scipy.linalg.sqrtm(cov).real[iu])
  return np.stack(rows)


def test_eigh_equals_scipy_sqrtm_float64():
  with jax.enable_x64(True):
    x = jnp.asarray(_images(0))
    model = CovariancePooling(method="eigh")
    out, state = jax.jit(lambda x: model.apply({}, x, mutable=["intermediates"]))(x)
    assert out.shape == (3, 4 * 5 // 2)
    np.testing.assert_allclose(out, _reference(x), rtol=1e-10, atol=1e-12)
    cov, = state["intermediates"]["covariance"]
    for img, p in zip(np.asarray(x).reshape(3, -1, 4), np.asarray(cov)):
      np.testing.assert_allclose(p, np.cov(img, rowvar=False, bias=True), atol=1e-12)


def test_default_newton_schulz_float32_is_close_to_exact():
  x = _images(1).astype(np.float32)
  model = CovariancePooling()                                 # newton_schulz, 5 iterations
  assert (model.method, model.num_iters) == ("newton_schulz", 5)
  pool = jax.jit(model.apply)
  out = pool({}, x)
  assert out.shape == (3, 10) and out.dtype == jnp.float32
  ref = _reference(x)
  err = np.linalg.norm(out - ref, axis=-1) / np.linalg.norm(ref, axis=-1)
  assert np.all(err < 1e-2), err                               # kappa = 2.5, 5 iterations
  out20 = jax.jit(CovariancePooling(num_iters=20).apply)({}, x)
  np.testing.assert_allclose(out20, ref, rtol=1e-4, atol=1e-5)
  out_eigh = jax.jit(CovariancePooling(method="eigh").apply)({}, x)
  np.testing.assert_allclose(out_eigh, ref, rtol=1e-4, atol=1e-5)
  # bfloat16 features are pooled in float32.
  assert pool({}, x.astype(jnp.bfloat16)).dtype == jnp.float32


@pytest.mark.parametrize("method", ["eigh", "newton_schulz"])
def test_gradients_are_finite(method):
  x = jnp.asarray(_images(2, b=2, spectrum=(1.0, 1.0, 1.0, 2.0)), jnp.float32)  # repeated
  c = jnp.asarray(np.random.default_rng(3).normal(size=(2, 10)), jnp.float32)
  model = CovariancePooling(method=method)
  g = jax.jit(jax.grad(lambda x: jnp.sum(c * model.apply({}, x))))(x)
  assert g.shape == x.shape and np.all(np.isfinite(g)) and np.abs(np.asarray(g)).max() > 0


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match="`x`.*found shape \\(2, 3\\)"):
    CovariancePooling().init(jax.random.PRNGKey(0), jnp.zeros((2, 3)))
  with pytest.raises(ValueError, match="`method`.*'svd'"):
    CovariancePooling(method="svd").init(jax.random.PRNGKey(0), jnp.zeros((2, 3, 3, 2)))
