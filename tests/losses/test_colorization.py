"""Colorization losses (issue 6; spec vibrant-colorization Sec. 2 and 6.2-6.3; Zhang et al.
2016 eqs. 2-4).

References: NumPy float64 transcriptions of the report's eqs. (2)-(3), of the authors'
``MSELoss_Vibrant`` (``(mse_sum / 2 + gamma * 2 * mse_sum(c_pred, c_true)) / batch``) and of
Zhang et al.'s rebalanced cross-entropy, written independently of the implementation.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision import losses, ops

x64 = functools.partial(jax.enable_x64, True)

chroma_l2 = jax.jit(losses.chroma_l2, static_argnames="convention")
grad_chroma_l2 = jax.jit(jax.grad(lambda p, t, g, c: jnp.sum(losses.chroma_l2(
    p, t, gamma=g, convention=c))), static_argnums=3)


def _ab(seed, shape=(3, 4, 5, 2), scale=40.0):
  return np.random.default_rng(seed).normal(scale=scale, size=shape)


def _np_paper(pred, target, gamma):
  """Eq. (2) without the weight decay, per example."""
  n = pred.shape[0]
  c, c_hat = np.linalg.norm(target, axis=-1), np.linalg.norm(pred, axis=-1)
  return (0.5 * ((target - pred) ** 2).reshape(n, -1).sum(-1)
          + gamma * ((c - c_hat) ** 2).reshape(n, -1).sum(-1))


def _np_code(pred, target, gamma):
  """The authors' MSELoss_Vibrant (reduction='sum'), a batch scalar."""
  c_pred, c_true = np.linalg.norm(pred, axis=-1), np.linalg.norm(target, axis=-1)
  ab_loss = np.sum((pred - target) ** 2) / 2.0
  chroma_loss = 2 * np.sum((c_pred - c_true) ** 2)
  return (ab_loss + gamma * chroma_loss) / pred.shape[0]


def test_chroma_l2_paper_and_code_conventions():
  pred, target = _ab(0), _ab(1)
  with x64():
    for gamma in (0.0, 0.25, 1.0, 2.0):
      got = np.asarray(chroma_l2(pred, target, gamma=gamma))
      assert got.shape == (3,) and got.dtype == np.float64
      np.testing.assert_allclose(got, _np_paper(pred, target, gamma), rtol=1e-12)
      code = np.asarray(chroma_l2(pred, target, gamma=gamma, convention="code"))
      np.testing.assert_allclose(code.mean(), _np_code(pred, target, gamma), rtol=1e-12)
      # gamma_paper = 2 gamma_code.
      np.testing.assert_allclose(code, chroma_l2(pred, target, gamma=2 * gamma), rtol=1e-12)
    # gamma = 0 is half the sum of squared errors.
    np.testing.assert_allclose(chroma_l2(pred, target, gamma=0.0),
                               0.5 * ((pred - target) ** 2).reshape(3, -1).sum(-1),
                               rtol=1e-12)
  # float32 by default, bf16 promoted; gamma may be an array.
  out = chroma_l2(pred.astype(np.float32), target.astype(jnp.bfloat16), gamma=jnp.float32(1))
  assert out.dtype == jnp.float32


def test_chroma_term_vanishes_when_chroma_matches():
  target = _ab(2)
  theta = np.random.default_rng(3).uniform(0, 2 * np.pi, size=target.shape[:-1])
  c, s = np.cos(theta), np.sin(theta)
  # The prediction is the target rotated per pixel: equal chroma, different hue.
  pred = np.stack([c * target[..., 0] - s * target[..., 1],
                   s * target[..., 0] + c * target[..., 1]], -1)
  with x64():
    half_sse = 0.5 * ((pred - target) ** 2).reshape(3, -1).sum(-1)
    assert np.all(half_sse > 100)
    for gamma in (0.5, 3.0):
      np.testing.assert_allclose(chroma_l2(pred, target, gamma=gamma), half_sse, rtol=1e-12)
    # A desaturated prediction (same hue, half chroma) pays the chroma term.
    assert np.all(np.asarray(chroma_l2(0.5 * target, target, gamma=1.0))
                  > np.asarray(chroma_l2(0.5 * target, target, gamma=0.0)))


def test_gradient_is_eq_3():
  pred, target = _ab(4), _ab(5)
  with x64():
    for gamma in (0.0, 0.5, 2.0):
      got = np.asarray(grad_chroma_l2(pred, target, gamma, "paper"))
      c = np.linalg.norm(target, axis=-1, keepdims=True)
      c_hat = np.linalg.norm(pred, axis=-1, keepdims=True)
      eq3 = pred * (1 + 2 * gamma - 2 * gamma * c / c_hat) - target
      np.testing.assert_allclose(got, eq3, rtol=1e-10, atol=1e-10)
      # Code units: the same with 2 gamma.
      np.testing.assert_allclose(grad_chroma_l2(pred, target, gamma / 2, "code"), eq3,
                                 rtol=1e-10, atol=1e-10)


def test_gradient_finite_at_zero_predicted_chroma():
  target = _ab(6, shape=(2, 3, 2))
  pred = _ab(7, shape=(2, 3, 2))
  pred[0, 1] = 0.0
  pred[1] = 0.0
  with x64():
    g = np.asarray(grad_chroma_l2(pred, target, 1.0, "paper"))
    assert np.all(np.isfinite(g))
    # At C^ = 0 the chroma term's subgradient is 0 (torch.norm's): only -Y remains.
    np.testing.assert_allclose(g[0, 1], -target[0, 1], rtol=1e-12)
    np.testing.assert_allclose(g[1], -target[1], rtol=1e-12)
    # The value is exact there: the chroma term is gamma * C^2.
    np.testing.assert_allclose(chroma_l2(pred, target, gamma=1.0),
                               _np_paper(pred, target, 1.0), rtol=1e-12)
    # Zero target chroma too.
    g = grad_chroma_l2(np.zeros((1, 2)), np.zeros((1, 2)), 1.0, "paper")
    np.testing.assert_array_equal(g, 0.0)


@pytest.mark.parametrize("gamma,t_star", [(0.5, 20.0), (1.0, 80.0 / 3.0), (2.0, 32.0),
                                          (0.0, 0.0)])
def test_closed_form_optimum_of_the_toy(gamma, t_star):
  """Target +-v (|v| = r = 40) with equal probability; predict y = (t, 0): the expected loss
  is minimised at t* = 2 gamma r / (1 + 2 gamma) (spec Sec. 2)."""
  def expected(t):
    v = jnp.array([[[40.0, 0.0]], [[-40.0, 0.0]]], t.dtype)
    y = jnp.broadcast_to(jnp.stack([t, jnp.zeros_like(t)]), (2, 1, 2))
    return jnp.mean(losses.chroma_l2(y, v, gamma=gamma))

  with x64():        # the loss is flat near its minimum: float32 cannot resolve 1e-3
    ts = jnp.linspace(0.0, 40.0, 40001)
    values = jax.jit(jax.vmap(expected))(ts)
    assert abs(float(ts[jnp.argmin(values)]) - t_star) < 1e-3
    # At exactly gray (t = 0) the gradient is finite and, for these symmetric targets, 0:
    # the L2 parts of +-v cancel and the chroma term's subgradient is 0 (a kink, a local
    # maximum along |t| for gamma > 0). 200 gradient-descent steps from a nearly gray start
    # reach t* (the step 0.5 / (1 + 2 gamma) is half the inverse curvature).
    step = jax.jit(jax.grad(expected))
    assert float(step(jnp.float64(0.0))) == 0.0
    t = jnp.float64(1.0)
    for _ in range(200):
      t = t - 0.5 / (1 + 2 * gamma) * step(t)
    assert abs(float(t) - t_star) < 1e-3


def test_chroma_l2_errors_and_registry():
  assert losses.get_loss("chroma_l2") is losses.chroma_l2
  assert losses.get_loss("rebalanced_cross_entropy") is losses.rebalanced_soft_cross_entropy
  with pytest.raises(ValueError, match=r"`target_ab` must have the shape of `pred_ab`"):
    losses.chroma_l2(np.zeros((2, 3, 2)), np.zeros((2, 4, 2)), gamma=1.0)
  with pytest.raises(ValueError, match=r"`pred_ab` must have shape \(N, \.\.\., 2\).*\(2, 3\)"):
    losses.chroma_l2(np.zeros((2, 3)), np.zeros((2, 3)), gamma=1.0)
  with pytest.raises(ValueError, match="`gamma` must be a finite number >= 0; found -1"):
    losses.chroma_l2(np.zeros((2, 2)), np.zeros((2, 2)), gamma=-1.0)
  with pytest.raises(ValueError, match="`convention` must be one of"):
    losses.chroma_l2(np.zeros((2, 2)), np.zeros((2, 2)), gamma=1.0, convention="torch")
  with pytest.raises(TypeError):
    losses.chroma_l2(np.zeros((2, 2)), np.zeros((2, 2)))        # gamma is required


# ------------------------------------------------------------------------------------------
# Zhang et al.'s rebalanced cross-entropy.


def _np_log_softmax(x):
  m = x.max(-1, keepdims=True)
  return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def _np_encode(ab, bins, sigma=5.0, k=5):
  flat = ab.reshape(-1, 2)
  d2 = ((flat[:, None] - bins[None]) ** 2).sum(-1)
  z = np.zeros_like(d2)
  for i, row in enumerate(d2):
    nn = np.argsort(row, kind="stable")[:k]
    w = np.exp(-row[nn] / (2 * sigma ** 2))
    z[i, nn] = w / w.sum()
  return z.reshape(ab.shape[:-1] + (len(bins),))


rebalanced_ce = jax.jit(losses.rebalanced_soft_cross_entropy,
                        static_argnames=("k", "gray_threshold"))


def test_rebalanced_cross_entropy_matches_reference():
  bins = ops.ab_gamut_bins()
  rng = np.random.default_rng(8)
  target = rng.normal(scale=25.0, size=(2, 3, 4, 2))
  logits = rng.normal(size=(2, 3, 4, len(bins)))
  prior = ops.ab_prior(rng.normal(scale=15.0, size=(2000, 2)), bins)
  with x64():
    w = np.asarray(ops.rebalancing_weights(jnp.asarray(prior, jnp.float64)))
    got = np.asarray(rebalanced_ce(logits, target, bins, w))
    z = _np_encode(target, bins)
    v = w[z.argmax(-1)]                                        # eq. (3): the nearest bin
    ref = -(v * (z * _np_log_softmax(logits)).sum(-1)).reshape(2, -1).sum(-1)
    assert got.shape == (2,)
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    # Without weights: the plain soft cross-entropy; k = 10 (Zhang's Caffe layer).
    np.testing.assert_allclose(rebalanced_ce(logits, target, bins),
                               -(z * _np_log_softmax(logits)).reshape(2, -1).sum(-1),
                               rtol=1e-12)
    z10 = _np_encode(target, bins, k=10)
    np.testing.assert_allclose(rebalanced_ce(logits, target, bins, k=10),
                               -(z10 * _np_log_softmax(logits)).reshape(2, -1).sum(-1),
                               rtol=1e-12)
    # The gradient in the logits is v (softmax - Z); the minimum is at softmax = Z.
    g = np.asarray(jax.jit(jax.grad(lambda s: jnp.sum(losses.rebalanced_soft_cross_entropy(
        s, target, bins, w))))(jnp.asarray(logits)))
    sm = np.exp(_np_log_softmax(logits))
    np.testing.assert_allclose(g, v[..., None] * (sm - z), rtol=1e-10, atol=1e-14)
    best = np.log(np.maximum(z, 1e-300))
    assert np.all(np.asarray(rebalanced_ce(best, target, bins, w)) < got)


def test_rebalancing_weights_up_weight_rare_colours():
  bins = ops.ab_gamut_bins()
  rng = np.random.default_rng(9)
  prior = ops.ab_prior(rng.normal(scale=10.0, size=(5000, 2)), bins)
  w = ops.rebalancing_weights(prior)
  # Two pixels with the same (uniform) prediction: a common gray and a rare saturated one.
  target = np.array([[[1.0, -1.0]], [[60.0, 50.0]]])
  logits = np.zeros((2, 1, len(bins)))
  plain = rebalanced_ce(logits, target, bins)
  balanced = rebalanced_ce(logits, target, bins, w)
  np.testing.assert_allclose(plain[0], plain[1], rtol=1e-5)     # uniform prediction
  assert float(balanced[1]) > 2 * float(balanced[0])


def test_gray_threshold_and_errors():
  bins = ops.ab_gamut_bins()
  rng = np.random.default_rng(10)
  target = rng.normal(scale=20.0, size=(3, 4, 4, 2))
  target[1] = rng.uniform(-4.9, 4.9, size=(4, 4, 2))               # a gray image
  logits = rng.normal(size=(3, 4, 4, len(bins)))
  full = np.asarray(rebalanced_ce(logits, target, bins))
  masked = np.asarray(rebalanced_ce(logits, target, bins, gray_threshold=5.0))
  assert full[1] > 0 and masked[1] == 0.0
  np.testing.assert_allclose(masked[[0, 2]], full[[0, 2]], rtol=1e-6)
  with pytest.raises(ValueError, match=r"`logits` must have shape .*\(3, 4, 4, 229\).*"
                                       r"\(3, 4, 4, 10\)"):
    losses.rebalanced_soft_cross_entropy(logits[..., :10], target, bins)
  with pytest.raises(ValueError, match=r"`weights` must have shape \(Q,\) = \(229,\)"):
    losses.rebalanced_soft_cross_entropy(logits, target, bins, np.ones(5))
  with pytest.raises(ValueError, match=r"`target_ab` must have shape \(N, \.\.\., 2\)"):
    losses.rebalanced_soft_cross_entropy(logits, target[..., :1], bins)
