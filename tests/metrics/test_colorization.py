"""Colorization metrics (issue 6; spec vibrant-colorization Sec. 3 "Metrics", Sec. 6.4).

References: hand computations and numpy transcriptions of the definitions (Zhang et al.
2016 Sec. 3.1, the authors' ``metrics.AUC`` / ``RebalancedAUC``, Hasler & Süsstrunk 2003);
Lab targets from ``skimage.color.rgb2lab``. Tiny arrays: everything runs in a few seconds.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import color as skcolor

from jaxvision import metrics

THRESHOLDS = np.arange(151.0)


def _lab_targets(seed, shape=(2, 8, 8)):
  """ab of random sRGB pixels (a few saturated ones) via skimage, float64 ``(*shape, 2)``."""
  rng = np.random.default_rng(seed)
  rgb = rng.uniform(size=(*shape, 3))
  rgb[..., :2, :] = np.eye(3)[rng.integers(0, 3, size=shape[:-1] + (2,))]  # primaries
  return skcolor.rgb2lab(rgb)[..., 1:]


def _np_curve(d, w=None):
  """The authors' ``AUC.update``: sum of ``d[..., None] <= thresholds`` (optionally weighted)."""
  w = np.ones_like(d) if w is None else w
  hits = (d.reshape(-1, 1) <= THRESHOLDS[None, :]) * w.reshape(-1, 1)
  return hits.sum(0) / w.sum()


def _grid_bin(ab):
  """Grid-10 cell index of ab in [-110, 110): a stand-in for a nearest-bin quantiser."""
  q = np.clip(np.floor((np.asarray(ab) + 110.0) / 10.0), 0, 21).astype(int)
  return q[..., 0] * 22 + q[..., 1]


def test_perfect_prediction_has_auc_one_and_thresholds_are_0_to_150():
  target = _lab_targets(0)
  assert metrics.auc_thresholds().tolist() == THRESHOLDS.tolist()
  assert float(metrics.auc_ab(target, target)) == 1.0
  assert float(metrics.auc_ab(target, target, integration="trapezoid")) == 1.0
  np.testing.assert_array_equal(metrics.ab_accuracy_curve(target, target), np.ones(151))


def test_constant_error_closed_form():
  target = np.round(_lab_targets(1))  # integers: the errors below are exact in float32
  for d in (0.0, 1.0, 10.5, 149.25, 150.0, 151.0):
    pred = target + np.array([0.0, d])
    want = (150 - np.ceil(d) + 1) / 151 if d <= 150 else 0.0
    np.testing.assert_allclose(float(metrics.auc_ab(pred, target)), want, atol=1e-6,
                               err_msg=f"d={d}")
  pred = target + np.array([10.5, 0.0])
  assert float(metrics.auc_ab(pred, target)) == pytest.approx(140 / 151, abs=1e-7)
  # Trapezoid: the step from 0 to 1 between t = 10 and 11 contributes 1/2.
  assert float(metrics.auc_ab(pred, target, integration="trapezoid")) == pytest.approx(
      139.5 / 150, abs=1e-7)


def test_gray_prediction_equals_the_chroma_distribution_by_hand():
  # Chromas 0, 3.5, 10 and 200: within t for 151, 147, 141 and 0 of the 151 thresholds.
  target = np.array([[0.0, 0.0], [3.5, 0.0], [6.0, 8.0], [120.0, -160.0]], np.float32)
  got = metrics.auc_ab(np.zeros_like(target), target)
  assert float(got) == pytest.approx((151 + 147 + 141 + 0) / (4 * 151), abs=1e-7)
  # On real Lab targets: (1/151) sum_t mean[C <= t], C the target chroma.
  target = _lab_targets(2)
  chroma = np.hypot(target[..., 0], target[..., 1])
  want = np.mean([np.mean(chroma <= t) for t in THRESHOLDS])
  got = jax.jit(metrics.auc_ab)(np.zeros_like(target), target)
  np.testing.assert_allclose(float(got), want, atol=1e-6)
  assert 0.2 < want < 0.95  # a non-trivial distribution


def test_curve_matches_the_authors_comparison_and_is_monotone():
  target = _lab_targets(3)
  pred = target + np.random.default_rng(3).normal(scale=30.0, size=target.shape)
  curve = np.asarray(metrics.ab_accuracy_curve(pred, target))
  d = np.linalg.norm(pred - target, axis=-1)
  np.testing.assert_allclose(curve, _np_curve(d), atol=1e-6)
  assert curve.shape == (151,) and np.all(np.diff(curve) >= 0)
  assert curve[0] == 0 < curve[20] < curve[-1] <= 1
  # jit-safe, thresholds traced too.
  jitted = jax.jit(metrics.auc_ab)(pred, target, thresholds=jnp.asarray(THRESHOLDS))
  np.testing.assert_allclose(float(jitted), np.mean(_np_curve(d)), atol=1e-6)
  # A larger error never raises the AuC.
  aucs = [float(metrics.auc_ab(target + s * (pred - target), target)) for s in (0, .5, 1, 2, 4)]
  assert aucs[0] == 1.0 and all(a >= b for a, b in zip(aucs, aucs[1:])) and aucs[-1] < aucs[1]


def test_counts_stream_over_batches_like_one_pooled_call():
  target = _lab_targets(4, shape=(4, 8, 8))
  pred = target + np.random.default_rng(4).normal(scale=20.0, size=target.shape)
  counts, total = 0.0, 0.0
  for i in range(4):
    c, t = metrics.ab_accuracy_counts(pred[i:i + 1], target[i:i + 1])
    counts, total = counts + c, total + t
  assert float(total) == 4 * 64
  np.testing.assert_allclose(float(metrics.auc_from_curve(counts / total)),
                             float(metrics.auc_ab(pred, target)), atol=1e-7)
  # Weighted counts stream too, and pool the weights over the whole set: not the mean of
  # per-image rebalanced AuCs (each normalised by its own weight sum).
  w = np.random.default_rng(5).uniform(0.1, 1.0, size=target.shape[:-1])
  w[0] *= 20.0  # one image dominates the weight
  counts, total = 0.0, 0.0
  for i in range(4):
    c, t = metrics.ab_accuracy_counts(pred[i], target[i], weights=w[i])
    counts, total = counts + c, total + t
  pooled = float(metrics.rebalanced_auc_ab(pred, target, weights=w))
  d = np.linalg.norm(pred - target, axis=-1)
  np.testing.assert_allclose(pooled, np.mean(_np_curve(d, w)), atol=1e-6)
  np.testing.assert_allclose(float(metrics.auc_from_curve(counts / total)), pooled, atol=1e-6)
  per_image = np.mean([float(metrics.rebalanced_auc_ab(pred[i], target[i], weights=w[i]))
                       for i in range(4)])
  assert abs(pooled - per_image) > 1e-4


def test_rebalanced_with_uniform_weights_is_plain_auc():
  target = _lab_targets(5)
  pred = target + np.random.default_rng(5).normal(scale=15.0, size=target.shape)
  plain = float(metrics.auc_ab(pred, target))
  ones = np.ones(target.shape[:-1])
  assert float(metrics.rebalanced_auc_ab(pred, target, weights=3.0 * ones)) == pytest.approx(
      plain, abs=1e-6)
  # All pixels in one bin: the inverse-prior weight is one constant.
  prior = np.zeros(484)
  prior[7] = 1.0
  w = metrics.auc_rebalancing_weights(prior)
  assert float(w[7]) == 1.0 and float(jnp.sum(w)) == 1.0  # unseen bins weigh 0, not inf
  got = metrics.rebalanced_auc_ab(pred, target, weights_fn=lambda ab: w[jnp.full(
      ab.shape[:-1], 7)])
  assert float(got) == pytest.approx(plain, abs=1e-6)


def test_rebalanced_auc_is_the_mean_of_per_bin_aucs():
  """Zhang's definition with the prior of the evaluated pixels: every class counts equally."""
  target = _lab_targets(6, shape=(3, 8, 8))
  pred = target + np.random.default_rng(6).normal(scale=25.0, size=target.shape)
  bins = _grid_bin(target)
  prior = np.bincount(bins.reshape(-1), minlength=484).astype(float)
  counts = prior[prior > 0]
  assert len(counts) >= 5 and counts.max() >= 3 * counts.min()  # unequally frequent bins
  w = metrics.auc_rebalancing_weights(prior)
  np.testing.assert_allclose(float(jnp.sum(w * prior / prior.sum())), 1.0, rtol=1e-6)
  got = metrics.rebalanced_auc_ab(pred, target, weights_fn=lambda ab: w[_grid_bin(ab)])
  d = np.linalg.norm(pred - target, axis=-1)
  per_bin = [np.mean(_np_curve(d[bins == q])) for q in np.flatnonzero(prior)]
  np.testing.assert_allclose(float(got), np.mean(per_bin), atol=1e-6)
  assert abs(float(got) - float(metrics.auc_ab(pred, target))) > 1e-3


def test_kolinguo_variant_scales_distances_at_the_predicted_bin():
  # Two bins, a common one (p = .9, factor 21) and a rare one (p = .1, factor 1).
  prior = np.array([0.9, 0.1])
  scale_table = metrics.kolinguo_distance_scale(prior)
  np.testing.assert_allclose(scale_table, [21.0, 1.0])
  np.testing.assert_allclose(metrics.kolinguo_distance_scale(np.full(4, 0.25)), np.ones(4))
  common, rare = np.array([0.0, 0.0]), np.array([60.0, 0.0])
  which = lambda ab: (jnp.abs(ab[..., 0] - 60.0) < 30.0).astype(jnp.int32)  # 0 common, 1 rare
  # Pixel A: target common, predicted rare (error 60). Pixel B: target rare, predicted
  # 5 units off inside the rare bin (error 5). Pixel C: common, predicted common, error 3.
  target = np.stack([common, rare, common])
  pred = np.stack([rare, rare + [5.0, 0.0], common + [3.0, 0.0]])
  # As coded: factors from the *predicted* bins: A x1 (60), B x1 (5), C x21 (63).
  coded = metrics.rebalanced_auc_ab_kolinguo(pred, target,
                                             scale_fn=lambda ab: scale_table[which(ab)])
  want = ((150 - 60 + 1) + (150 - 5 + 1) + (150 - 63 + 1)) / (3 * 151)
  assert float(coded) == pytest.approx(want, abs=1e-6)
  # As intended: weights 1/p of the *target* bins: A 1/.9, B 1/.1, C 1/.9.
  w = metrics.auc_rebalancing_weights(prior)
  intended = metrics.rebalanced_auc_ab(pred, target, weights_fn=lambda ab: w[which(ab)])
  wa = np.array([1 / .9, 1 / .1, 1 / .9])
  reach = np.array([150 - 60 + 1, 150 - 5 + 1, 150 - 3 + 1]) / 151
  assert float(intended) == pytest.approx(np.sum(wa * reach) / wa.sum(), abs=1e-6)
  plain = float(metrics.auc_ab(pred, target))
  assert float(coded) < plain < float(intended)
  # The code's variant is never above the plain AuC, and equals it for d = 0 or s = 1.
  target = _lab_targets(7)
  noisy = target + np.random.default_rng(7).normal(scale=10.0, size=target.shape)
  scale = 1.0 + 20.0 * np.random.default_rng(8).uniform(size=target.shape[:-1])
  assert (float(metrics.rebalanced_auc_ab_kolinguo(noisy, target, scale=scale))
          < float(metrics.auc_ab(noisy, target)))
  assert float(metrics.rebalanced_auc_ab_kolinguo(target, target, scale=scale)) == 1.0
  assert float(metrics.rebalanced_auc_ab_kolinguo(
      noisy, target, scale=np.ones(target.shape[:-1]))) == pytest.approx(
          float(metrics.auc_ab(noisy, target)), abs=1e-7)


def test_psnr_of_a_known_offset_and_rmse_units():
  rng = np.random.default_rng(9)
  target = rng.uniform(0.2, 0.8, size=(3, 8, 8, 3))
  offsets = np.array([0.01, 0.05, 0.1])
  pred = target + offsets[:, None, None, None]
  per_image = metrics.psnr_rgb(pred, target, reduction="none")
  np.testing.assert_allclose(per_image, -20 * np.log10(offsets), rtol=1e-5)
  np.testing.assert_allclose(float(metrics.psnr_rgb(pred, target)),
                             np.mean(-20 * np.log10(offsets)), rtol=1e-5)
  np.testing.assert_allclose(float(metrics.psnr_rgb(255 * pred, 255 * target, data_range=255)),
                             np.mean(-20 * np.log10(offsets)), rtol=1e-5)
  assert np.isinf(float(metrics.psnr_rgb(target, target)))
  ab = _lab_targets(10)
  err = np.where(np.arange(2) == 0, 11.0, -22.0)  # a off by 11, b off by -22 everywhere
  want = np.sqrt((11.0 ** 2 + 22.0 ** 2) / 2)
  np.testing.assert_allclose(float(metrics.rmse_ab(ab + err, ab)), want / 110, rtol=1e-6)
  np.testing.assert_allclose(float(metrics.rmse_ab(ab + err, ab, ab_norm=1.0)), want, rtol=1e-6)


def _hasler_numpy(rgb255):
  """Hasler & Süsstrunk (2003) M^(3), transcribed on 0-255 sRGB (population std)."""
  r, g, b = (rgb255[..., i].astype(np.float64) for i in range(3))
  rg, yb = r - g, 0.5 * (r + g) - b
  return (np.sqrt(np.std(rg) ** 2 + np.std(yb) ** 2)
          + 0.3 * np.sqrt(np.mean(rg) ** 2 + np.mean(yb) ** 2))


def test_hasler_colorfulness():
  gray = np.broadcast_to(np.linspace(0, 1, 16).reshape(4, 4, 1), (4, 4, 3))
  assert float(metrics.colorfulness_hasler(gray)) == 0.0
  # Red, green, blue, white: mu_rg = mu_yb = 0; var_rg = 2 * 255^2 / 4, var_yb =
  # (2 * 127.5^2 + 255^2) / 4, so M = 255 sqrt(3.5 / 4).
  img = np.array([[[1, 0, 0], [0, 1, 0]], [[0, 0, 1], [1, 1, 1]]], np.float64)
  assert float(metrics.colorfulness_hasler(img)) == pytest.approx(255 * np.sqrt(0.875), rel=1e-6)
  # Pure red: no spread, mean (255, 127.5): M = 0.3 * 255 * sqrt(1.25).
  red = np.zeros((2, 2, 3))
  red[..., 0] = 1
  assert float(metrics.colorfulness_hasler(red)) == pytest.approx(0.3 * 255 * np.sqrt(1.25),
                                                                  rel=1e-6)
  rng = np.random.default_rng(11)
  batch = rng.integers(0, 256, size=(3, 6, 5, 3)).astype(np.uint8)
  got = metrics.colorfulness_hasler(batch, input_range=255.0)
  assert got.shape == (3,)
  np.testing.assert_allclose(got, [_hasler_numpy(x) for x in batch], rtol=1e-5)
  np.testing.assert_allclose(metrics.colorfulness_hasler(batch / 255.0), got, rtol=1e-5)


def test_mean_chroma_and_its_gradient_at_gray():
  ab = _lab_targets(12)
  np.testing.assert_allclose(metrics.mean_chroma(ab),
                             np.hypot(ab[..., 0], ab[..., 1]).mean(axis=(-2, -1)), rtol=1e-6)
  assert metrics.mean_chroma(ab).shape == (2,)
  grad = jax.grad(lambda x: metrics.mean_chroma(x))(jnp.zeros((4, 4, 2)))
  assert np.all(np.isfinite(grad))


def test_float64_follows_the_input():
  with jax.enable_x64(True):
    ab = _lab_targets(13)
    for value in (metrics.auc_ab(ab + 3.0, ab), metrics.rmse_ab(ab + 3.0, ab),
                  metrics.mean_chroma(ab)):
      assert value.dtype == jnp.float64
  assert metrics.auc_ab(ab.astype(np.float32), ab.astype(np.float32)).dtype == jnp.float32


def test_bad_arguments_raise():
  ab = np.zeros((2, 4, 4, 2))
  with pytest.raises(ValueError, match=r"pred_ab.*\(\.\.\., 2\).*\(2, 4, 4, 3\)"):
    metrics.auc_ab(np.zeros((2, 4, 4, 3)), ab)
  with pytest.raises(ValueError, match=r"target_ab.*shape of `pred_ab`"):
    metrics.auc_ab(ab, ab[:1])
  with pytest.raises(ValueError, match="sorted ascending"):
    metrics.auc_ab(ab, ab, thresholds=[0.0, 2.0, 1.0])
  with pytest.raises(ValueError, match="integration"):
    metrics.auc_ab(ab, ab, integration="simpson")
  with pytest.raises(ValueError, match=r"weights.*\(2, 4, 4\).*\(2, 4\)"):
    metrics.rebalanced_auc_ab(ab, ab, weights=np.ones((2, 4)))
  with pytest.raises(ValueError, match="exactly one of `weights`"):
    metrics.rebalanced_auc_ab(ab, ab)
  with pytest.raises(ValueError, match="exactly one of `scale`"):
    metrics.rebalanced_auc_ab_kolinguo(ab, ab, scale=np.ones((2, 4, 4)), scale_fn=lambda x: x)
  with pytest.raises(ValueError, match=r"pred_rgb.*\(\.\.\., H, W, 3\)"):
    metrics.psnr_rgb(np.zeros((4, 4)), np.zeros((4, 4)))
  with pytest.raises(ValueError, match=r"rgb.*\(\.\.\., H, W, 3\)"):
    metrics.colorfulness_hasler(np.zeros((4, 4, 4)))
  with pytest.raises(ValueError, match=r"ab.*\(\.\.\., H, W, 2\)"):
    metrics.mean_chroma(np.zeros((4, 2)))
