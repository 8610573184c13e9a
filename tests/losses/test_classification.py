"""Cross-entropy against a float64 numpy closed form."""

import jax
import numpy as np
import pytest

from jaxvision.losses import softmax_cross_entropy


def _reference(logits, labels, eps):
  logits = logits.astype(np.float64)
  logp = logits - logits.max(-1, keepdims=True)
  logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
  k = logits.shape[-1]
  q = np.full(logits.shape, eps / k)
  np.put_along_axis(q, labels[..., None], 1 - eps + eps / k, axis=-1)
  return -(q * logp).sum(-1)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_matches_float64_reference(eps):
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(3, 5, 7)).astype(np.float32) * 4
  labels = rng.integers(0, 7, size=(3, 5))
  out = softmax_cross_entropy(logits, labels, label_smoothing=eps)
  assert out.shape == (3, 5)
  np.testing.assert_allclose(out, _reference(logits, labels, eps), rtol=1e-5)


def test_stable_for_huge_logits_and_gradient_is_softmax_minus_onehot():
  logits = np.array([[1e4, -1e4, 0.0]], np.float32)
  assert np.isfinite(softmax_cross_entropy(logits, np.array([1]))).all()
  x = np.array([[0.5, -1.0, 2.0]], np.float32)
  g = jax.grad(lambda z: softmax_cross_entropy(z, np.array([2])).sum())(x)
  p = np.exp(x) / np.exp(x).sum()
  np.testing.assert_allclose(g, p - np.array([[0, 0, 1]]), rtol=1e-5)


def test_shape_and_range_errors():
  with pytest.raises(ValueError, match="labels"):
    softmax_cross_entropy(np.zeros((4, 3)), np.zeros((5,), int))
  with pytest.raises(ValueError, match="label_smoothing"):
    softmax_cross_entropy(np.zeros((4, 3)), np.zeros((4,), int), label_smoothing=1.0)
