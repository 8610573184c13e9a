"""Soft orthogonality loss (eq. 12) against numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision import losses


def _semi_orthogonal(rng, rows, cols):
  q, _ = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
  return q if rows >= cols else q.T


def test_orthogonality_loss_is_zero_for_orthogonal_weights():
  rng = np.random.default_rng(0)
  with jax.enable_x64(True):
    assert float(losses.orthogonality_loss(jnp.asarray(_semi_orthogonal(rng, 8, 8)))) < 1e-14
    # The paper's conv1: 64 filters of 3x3x3 -> (64, 27); orthonormal columns, in HWIO.
    m = _semi_orthogonal(rng, 64, 27)
    kernel = jnp.asarray(m.reshape(64, 3, 3, 3).transpose(2, 3, 1, 0))
    assert float(losses.orthogonality_loss(kernel)) < 1e-13
    # The literal W W^T - I_64 cannot reach 0 at rank 27: it is sqrt(64 - 27) here.
    assert float(losses.orthogonality_loss(kernel, side="rows")) == pytest.approx(np.sqrt(37))
    assert np.all(np.isfinite(jax.grad(losses.orthogonality_loss)(kernel)))
  exact = jnp.eye(4)[::-1] * jnp.array([1.0, -1.0, 1.0, 1.0])   # loss exactly 0: kink of the norm
  assert float(losses.orthogonality_loss(exact)) == 0.0
  np.testing.assert_array_equal(jax.grad(losses.orthogonality_loss)(exact), 0.0)  # 0, not NaN


def test_orthogonality_loss_matches_numpy():
  rng = np.random.default_rng(1)
  k = rng.standard_normal((3, 3, 4, 5)).astype(np.float32)     # matrix (5, 36)
  w = k.transpose(3, 2, 0, 1).reshape(5, -1)
  expected = np.linalg.norm(w.astype(np.float64) @ w.T - np.eye(5))
  assert float(losses.orthogonality_loss(jnp.asarray(k))) == pytest.approx(expected, rel=1e-5)
  expected_cols = np.linalg.norm(w.T.astype(np.float64) @ w - np.eye(36))
  assert float(losses.orthogonality_loss(jnp.asarray(k), side="columns")) == pytest.approx(
      expected_cols, rel=1e-5)
  d = rng.standard_normal((7, 3))                              # Dense: orientation-free
  assert float(losses.orthogonality_loss(jnp.asarray(d))) == pytest.approx(
      float(losses.orthogonality_loss(jnp.asarray(d.T))), rel=1e-6)
  assert float(losses.orthogonality_loss(jnp.asarray(d))) == pytest.approx(
      np.linalg.norm(d.T @ d - np.eye(3)), rel=1e-5)
  g = jax.grad(losses.orthogonality_loss)(jnp.asarray(d, jnp.float32))
  e = d.T @ d - np.eye(3)                                      # d||E||/dD = 2 D E / ||E||
  np.testing.assert_allclose(g, 2 * d @ e / np.linalg.norm(e), rtol=1e-4, atol=1e-6)


def test_orthogonality_loss_errors():
  with pytest.raises(ValueError, match="`w` must be a 2-D matrix.*found shape \\(3,\\)"):
    losses.orthogonality_loss(jnp.ones(3))
  with pytest.raises(ValueError, match="`side` must be one of"):
    losses.orthogonality_loss(jnp.ones((3, 3)), side="both")
