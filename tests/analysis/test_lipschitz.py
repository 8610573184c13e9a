"""Tests for jaxvision.analysis.lipschitz: power iteration against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision import analysis


def test_linear_map_equals_largest_singular_value():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(7, 12))
  with jax.enable_x64(True):
    x = jnp.asarray(rng.normal(size=(3, 4)))
    f = lambda v: jnp.asarray(a) @ v.reshape(-1)
    sigma, history = analysis.jacobian_spectral_norm(f, x, num_iters=200, return_history=True)
    exact = np.linalg.svd(a, compute_uv=False)[0]
    np.testing.assert_allclose(float(sigma), exact, rtol=1e-8)
    # Power iteration estimates rise monotonically toward sigma_max, never above it.
    h = np.asarray(history)
    assert np.all(np.diff(h) >= -1e-12) and np.all(h <= exact * (1 + 1e-12))


def test_elementwise_nonlinearity_is_max_derivative():
  x = jnp.linspace(-2.0, 2.0, 41).reshape(41)
  sigma = analysis.jacobian_spectral_norm(jnp.tanh, x * 0.3, num_iters=500)
  # Diagonal Jacobian: the norm is the largest |tanh'| = 1 - tanh^2 (at the smallest |x|).
  expected = float(jnp.max(1 - jnp.tanh(x * 0.3) ** 2))
  np.testing.assert_allclose(float(sigma), expected, rtol=1e-3)


def test_gain_sensitivity_of_linear_and_quadratic():
  x = jnp.arange(1.0, 7.0)
  np.testing.assert_allclose(np.asarray(analysis.gain_sensitivity(lambda v: 3 * v, x)), [3, 3],
                             rtol=1e-6)
  # f(v) = v^2 elementwise: ||(g^2 - 1) x^2|| / (|g - 1| ||x||) = (g + 1) ||x^2|| / ||x||.
  r = np.asarray(analysis.gain_sensitivity(jnp.square, x, gains=(0.8, 1.2)))
  base = float(jnp.linalg.norm(x ** 2) / jnp.linalg.norm(x))
  np.testing.assert_allclose(r, [1.8 * base, 2.2 * base], rtol=1e-5)


def test_dynamic_range_curve_grows_for_a_softmax_attention():
  # Softmax over a scaled input: its Jacobian depends on the scale; a linear map's does not.
  x = jax.random.normal(jax.random.PRNGKey(1), (6, 5))
  lin = analysis.lipschitz_vs_dynamic_range(lambda v: 2.0 * v, x, [0.5, 1, 4])
  np.testing.assert_allclose(lin["lipschitz"], 2.0, rtol=1e-4)
  np.testing.assert_allclose(lin["dynamic_range"], np.ptp(np.asarray(x)) * np.array([0.5, 1, 4]),
                             rtol=1e-6)

  def attention(v):  # spectral-wise: C x C attention from the input itself
    a = jax.nn.softmax(v.T @ v, axis=-1)
    return v @ a.T

  scales = [0.25, 1.0, 4.0]
  curve = analysis.lipschitz_vs_dynamic_range(attention, x, scales, num_iters=300)
  # Against the dense Jacobian's largest singular value at each scale (jacfwd + SVD).
  exact = [np.linalg.svd(np.asarray(jax.jacfwd(attention)(s * x)).reshape(x.size, x.size),
                         compute_uv=False)[0] for s in scales]
  np.testing.assert_allclose(curve["lipschitz"], exact, rtol=2e-3)
  assert curve["lipschitz"][-1] > 1.1 * curve["lipschitz"][0]  # it depends on the range

def test_bad_inputs():
  with pytest.raises(ValueError, match="num_iters"):
    analysis.jacobian_spectral_norm(jnp.sin, jnp.ones(3), num_iters=0)
  with pytest.raises(TypeError, match="floating"):
    analysis.jacobian_spectral_norm(jnp.sin, jnp.ones(3, jnp.int32))
  with pytest.raises(ValueError, match="gains"):
    analysis.gain_sensitivity(jnp.sin, jnp.ones(3), gains=(1.0,))
  with pytest.raises(ValueError, match="scales"):
    analysis.lipschitz_vs_dynamic_range(jnp.sin, jnp.ones(3), [1.0, -1.0])
