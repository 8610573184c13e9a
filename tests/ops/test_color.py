"""Colour spaces and the ab quantiser (issue 6; spec vibrant-colorization Sec. 2, 3, 6.1).

References: ``skimage.color`` (rgb2lab, lab2rgb, lab2lch, lch2lab) in float64, the spec's
test-vector table, and NumPy float64 transcriptions of Zhang et al. 2016's soft encoding
(Sec. 2.1), annealed mean (eq. 5) and rebalancing weights (eq. 4), written independently
of the implementation.
"""

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from skimage import color as skcolor

from jaxvision import ops

x64 = functools.partial(jax.enable_x64, True)

# Most checks run the public functions under a caller's jit; some call them eagerly.
rgb_to_lab = jax.jit(ops.rgb_to_lab)
lab_to_rgb = jax.jit(ops.lab_to_rgb, static_argnames="clip")
lab_to_lch = jax.jit(ops.lab_to_lch)
lch_to_lab = jax.jit(ops.lch_to_lab)
encode_ab_soft = jax.jit(ops.encode_ab_soft, static_argnames=("sigma", "k"))
decode = ops.decode_ab_annealed_mean

# Black, white, grays, primaries, secondaries, and values at the gamma threshold.
EDGE_RGB = np.array([[0, 0, 0], [1, 1, 1], [0.5, 0.5, 0.5], [1e-6, 1e-6, 1e-6],
                     [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1],
                     [0.04045, 0.04045, 0.04045], [0.0404, 0.0405, 0.2],
                     [0.2, 0.4, 0.6]], np.float64)


def _sk_lab2rgb(lab):
  with warnings.catch_warnings():   # "negative Z values that have been clipped to zero"
    warnings.simplefilter("ignore", UserWarning)
    return skcolor.lab2rgb(np.asarray(lab, np.float64))


def _random_lab(rng, n):
  """Lab values over (and beyond) the whole gamut: out-of-gamut, clipped, negative Z."""
  return np.stack([rng.uniform(-5, 105, n), rng.uniform(-140, 140, n),
                   rng.uniform(-140, 140, n)], -1)


# ------------------------------------------------------------------------------------------
# rgb <-> lab.


def test_spec_test_vectors():
  table = {(1, 0, 0): (53.2406, 80.0923, 67.2028), (0, 1, 0): (87.7351, -86.1830, 83.1797),
           (0, 0, 1): (32.2957, 79.1856, -107.8573), (1, 1, 1): (100, -0.0025, 0.0047),
           (0.2, 0.4, 0.6): (42.008, -0.154, -32.8429)}
  with x64():
    got = np.asarray(rgb_to_lab(jnp.array(list(table), jnp.float64)))
  np.testing.assert_allclose(got, np.array(list(table.values())), atol=1e-3)
  # float32 agrees to ~1e-4 relative.
  got32 = rgb_to_lab(jnp.array(list(table), jnp.float32))
  assert got32.dtype == jnp.float32
  np.testing.assert_allclose(got32, got, atol=2e-3)


def test_rgb_to_lab_matches_skimage():
  rng = np.random.default_rng(0)
  rgb = np.concatenate([rng.uniform(size=(500, 3)), EDGE_RGB,
                        rng.integers(0, 256, size=(200, 3)) / 255.0])
  with x64():
    got = np.asarray(rgb_to_lab(jnp.asarray(rgb)))
  np.testing.assert_allclose(got, skcolor.rgb2lab(rgb), rtol=0, atol=1e-8)
  # uint8 images are scaled by 1/255, as skimage.img_as_float.
  img = rng.integers(0, 256, size=(4, 5, 3)).astype(np.uint8)
  got8 = rgb_to_lab(img)
  assert got8.dtype == jnp.float32 and got8.shape == (4, 5, 3)
  np.testing.assert_allclose(got8, skcolor.rgb2lab(img), atol=2e-3)


def test_lab_to_rgb_matches_skimage_including_clipping():
  rng = np.random.default_rng(1)
  with x64():
    lab = np.concatenate([_random_lab(rng, 2000), np.asarray(rgb_to_lab(EDGE_RGB)),
                          [[0, 0, 0], [100, 0, 0], [50, 0, 150], [20, -100, 100]]])
    got = np.asarray(lab_to_rgb(jnp.asarray(lab)))
    unclipped = np.asarray(lab_to_rgb(jnp.asarray(lab), clip=False))
  ref = _sk_lab2rgb(lab)
  np.testing.assert_allclose(got, ref, rtol=0, atol=1e-8)
  # The sample really exercises clipping (most random Lab values are out of gamut), and
  # the unclipped values agree with skimage wherever skimage did not clip.
  out = np.any((unclipped < 0) | (unclipped > 1), -1)
  assert 0.3 < out.mean() < 0.99
  np.testing.assert_allclose(np.clip(unclipped, 0, 1), ref, atol=1e-8)


def test_round_trips_float64():
  rng = np.random.default_rng(2)
  # The edge colours without 0.04045 itself (below).
  rgb = np.concatenate([rng.uniform(size=(1000, 3)), EDGE_RGB[:10], EDGE_RGB[11:]])
  with x64():
    back = np.asarray(lab_to_rgb(rgb_to_lab(jnp.asarray(rgb))))
    np.testing.assert_allclose(back, rgb, rtol=0, atol=1e-10)
    # skimage's thresholds are consistent only to ~1e-6 (0.04045 / 12.92 = 0.00313080 >
    # 0.0031308): exactly at the sRGB threshold the round trip is off by 3e-8, in skimage
    # too, and this module reproduces that.
    edge = np.full((1, 3), 0.04045)
    back = np.asarray(lab_to_rgb(rgb_to_lab(jnp.asarray(edge))))
    np.testing.assert_allclose(back - edge, -2.9591878e-08, rtol=1e-6)
    np.testing.assert_allclose(back, skcolor.lab2rgb(skcolor.rgb2lab(edge)), atol=1e-15)
    # lab -> rgb -> lab for in-gamut Lab (the random Lab values whose unclipped sRGB is in
    # [0, 1]).
    lab = _random_lab(rng, 20000)
    raw = np.asarray(lab_to_rgb(jnp.asarray(lab), clip=False))
    lab = lab[np.all((raw >= 0) & (raw <= 1), -1)]
    assert len(lab) > 300
    again = np.asarray(rgb_to_lab(lab_to_rgb(jnp.asarray(lab))))
    np.testing.assert_allclose(again, lab, rtol=0, atol=1e-9)


def test_grayscale_has_zero_ab_and_broadcasting():
  v = np.linspace(0, 1, 11)
  lab = rgb_to_lab(np.stack([v, v, v], -1))
  assert np.all(np.abs(lab[:, 1:]) < 0.01)
  np.testing.assert_allclose(lab[[0, -1], 0], [0, 100], atol=1e-4)
  assert np.all(np.diff(np.asarray(lab[:, 0])) > 0)
  img = np.random.default_rng(3).uniform(size=(2, 3, 4, 3)).astype(np.float32)
  np.testing.assert_allclose(rgb_to_lab(img)[1, 2], rgb_to_lab(img[1, 2]), atol=1e-5)
  np.testing.assert_allclose(rgb_to_lab(img), ops.rgb_to_lab(img), atol=1e-4)   # jit = eager
  assert rgb_to_lab(img.astype(jnp.bfloat16)).dtype == jnp.float32


def test_input_errors():
  with pytest.raises(ValueError, match=r"`rgb` must have shape \(\.\.\., 3\).*\(4, 2\)"):
    ops.rgb_to_lab(np.zeros((4, 2)))
  with pytest.raises(ValueError, match=r"`lab` must have shape"):
    ops.lab_to_rgb(np.zeros(4))
  with pytest.raises(TypeError, match=r"`rgb` must have a floating or unsigned.*int32"):
    ops.rgb_to_lab(np.zeros((2, 3), np.int32))
  with pytest.raises(ValueError, match=r"`lch` must have shape"):
    ops.lch_to_lab(np.zeros((2, 2)))


# ------------------------------------------------------------------------------------------
# LCh.


def test_lch_matches_skimage_and_round_trips():
  rng = np.random.default_rng(4)
  with x64():
    lab = np.concatenate([_random_lab(rng, 1000), [[50, 0, 0], [30, 1, 0], [30, -1, 0],
                                                   [30, 0, -1], [30, -1e-9, -1e-300]]])
    lch = np.asarray(lab_to_lch(jnp.asarray(lab)))
    np.testing.assert_allclose(lch, skcolor.lab2lch(lab), rtol=0, atol=1e-12)
    assert np.all((lch[:, 2] >= 0) & (lch[:, 2] < 2 * np.pi))
    np.testing.assert_allclose(np.asarray(lch_to_lab(jnp.asarray(lch))), lab, atol=1e-10)
    np.testing.assert_allclose(lch_to_lab(lch), skcolor.lch2lab(lch), atol=1e-10)
  # Hue in radians: pure +a is 0, +b is pi/2, -a is pi, -b is 3 pi/2; zero chroma is 0.
  np.testing.assert_allclose(
      lab_to_lch(np.array([[50., 10, 0], [50, 0, 10], [50, -10, 0], [50, 0, -10],
                               [50, 0, 0]]))[:, 1:],
      [[10, 0], [10, np.pi / 2], [10, np.pi], [10, 3 * np.pi / 2], [0, 0]], atol=1e-5)


# ------------------------------------------------------------------------------------------
# Gradients.


_KERNELS = (ops.rgb_to_lab, ops.lab_to_rgb, ops.lab_to_lch, ops.lch_to_lab)


@jax.jit
def _jacobians(points):
  """Forward- and reverse-mode Jacobians of the four kernels at their points, in one
  compilation: ``[(jacfwd, jacrev)] * 4``, each ``(n, 3, 3)``."""
  return [(jax.vmap(jax.jacfwd(f))(x), jax.vmap(jax.jacrev(f))(x))
          for f, x in zip(_KERNELS, points)]


def test_gradients_are_finite_everywhere():
  rng = np.random.default_rng(5)
  rgb = np.concatenate([EDGE_RGB, rng.uniform(size=(50, 3)),
                        [[0.0031308 * 12.92, 0, 1], [-0.1, 0.5, 1.2]]])
  lab = np.concatenate([[[0, 0, 0], [100, 0, 0], [0, 50, -50], [50, 0, 150],
                         [20, -100, 100], [120, 0, 0]], _random_lab(rng, 200)])
  lab0 = np.array([[50.0, 0, 0], [0, 0, 0], [70, 1e-30, 0]])        # zero chroma
  lch = np.array([[50.0, 0, 0], [50, 0, 1], [0, 10, 7]])
  with x64():
    jacs = [(np.asarray(fwd), np.asarray(rev))
            for fwd, rev in _jacobians([jnp.asarray(x, jnp.float64)
                                        for x in (rgb, lab, lab0, lch)])]
  for (fwd, rev), f in zip(jacs, _KERNELS):
    assert np.all(np.isfinite(fwd)) and np.all(np.isfinite(rev)), f.__name__
    np.testing.assert_allclose(fwd, rev, rtol=1e-12, atol=1e-12)
  # At black the derivative is the linear segments': dL/dR = 116 * 7.787 * M[1, 0] / 12.92.
  np.testing.assert_allclose(jacs[0][0][0, 0, 0], 116 * 7.787 * 0.212671 / 12.92, rtol=1e-10)
  # A colour clipped in every channel (L = 120 is brighter than white) has zero gradient.
  j = jacs[1][1]
  np.testing.assert_array_equal(j[5], 0.0)
  assert np.any(j[6:] != 0)
  # Zero chroma: C and h have zero (not NaN) gradients, L passes through.
  np.testing.assert_array_equal(jacs[2][1][:2], np.broadcast_to(np.diag([1.0, 0, 0]),
                                                                (2, 3, 3)))


def test_check_grads_generic_points():
  # rgb -> lab -> lch and lch -> lab -> rgb in one function: a wrong derivative in any of
  # the four kernels makes its Jacobian wrong. Jitted: check_grads evaluates it many times.
  def both(rgb, lch):
    return ops.lab_to_lch(ops.rgb_to_lab(rgb)), ops.lab_to_rgb(ops.lch_to_lab(lch))

  with x64():
    rgb = jnp.array([[0.3, 0.6, 0.8], [0.9, 0.2, 0.5]])
    lab = jnp.array([[45.0, 10.0, -20.0], [60.0, -15.0, 30.0]])   # in gamut: no clipping
    raw = np.asarray(lab_to_rgb(lab, clip=False))
    assert np.all((raw > 0.01) & (raw < 0.99))
    # Forward mode only: test_gradients_are_finite_everywhere checks jacrev == jacfwd.
    check_grads(jax.jit(both), (rgb, lab_to_lch(lab)), order=1, modes=("fwd",))


# ------------------------------------------------------------------------------------------
# The ab quantiser.


def _in_gamut_somewhere(ab, num_l=1001):
  """Reference: some L in linspace(0, 100, num_l) maps (L, a, b) into the sRGB cube."""
  ls = np.linspace(0, 100, num_l)
  lab = np.stack([ls, np.full_like(ls, ab[0]), np.full_like(ls, ab[1])], -1)
  with x64():
    raw = np.asarray(lab_to_rgb(jnp.asarray(lab), clip=False))
  return bool(np.any(np.all((raw >= 0) & (raw <= 1), -1)))


def test_gamut_bins_count_grid_and_criterion():
  bins = ops.ab_gamut_bins()
  # 229 bin centres are displayable at some L (the spec's and the authors' notebook's
  # count); Zhang et al.'s 313 are not reproducible from the sRGB gamut.
  assert bins.shape == (229, 2) and bins.dtype == np.float64
  assert not bins.flags.writeable
  np.testing.assert_array_equal(bins % 10, 0.0)                    # on the 10-grid
  assert len(np.unique(bins, axis=0)) == 229
  order = np.lexsort((bins[:, 1], bins[:, 0]))                     # a-major, then b
  np.testing.assert_array_equal(order, np.arange(229))
  for ab in bins[::7]:
    assert _in_gamut_somewhere(ab)
  # Grid neighbours just outside the kept set fail the criterion.
  kept = {tuple(b) for b in bins}
  outside = [(a + da, b + db) for a, b in kept for da, db in ((10, 0), (-10, 0), (0, 10),
                                                              (0, -10))]
  outside = sorted({o for o in outside if o not in kept})
  assert len(outside) > 40
  for ab in outside[::5]:
    assert not _in_gamut_somewhere(ab)
  assert (0.0, 0.0) in kept and (80.0, 60.0) in kept and (100.0, 100.0) not in kept
  # Converged in the number of lightness samples.
  assert len(ops.ab_gamut_bins(num_l=3001)) == 229
  assert len(ops.ab_gamut_bins(num_l=101)) == 225


def test_gamut_bins_cell_criterion():
  cells = ops.ab_gamut_bins(criterion="cell")
  assert len(cells) == 262
  assert len(ops.ab_gamut_bins(criterion="cell", num_samples=256)) == 261
  centres = {tuple(b) for b in ops.ab_gamut_bins()}
  assert centres <= {tuple(b) for b in cells}
  # Every uint8 sRGB colour on a coarse lattice falls into a kept cell.
  v = np.arange(0, 256, 15) / 255.0
  rgb = np.stack(np.meshgrid(v, v, v, indexing="ij"), -1).reshape(-1, 3)
  idx = {tuple(k) for k in np.round(skcolor.rgb2lab(rgb)[:, 1:] / 10) * 10}
  assert idx <= {tuple(b) for b in cells}
  with pytest.raises(ValueError, match="`criterion` must be one of"):
    ops.ab_gamut_bins(criterion="hull")
  with pytest.raises(ValueError, match="`grid` must be a finite number > 0"):
    ops.ab_gamut_bins(grid=0)


def _np_soft_encode(ab, bins, sigma, k):
  d2 = np.sum((ab[:, None, :] - bins[None]) ** 2, -1)
  out = np.zeros_like(d2)
  for i, row in enumerate(d2):
    nn = np.argsort(row, kind="stable")[:k]
    w = np.exp(-row[nn] / (2 * sigma ** 2))
    out[i, nn] = w / w.sum()
  return out


@pytest.mark.parametrize("k,sigma", [(5, 5.0), (10, 5.0), (1, 5.0), (3, 12.0)])
def test_encode_ab_soft(k, sigma):
  bins = ops.ab_gamut_bins()
  rng = np.random.default_rng(6)
  ab = rng.uniform(-70, 70, size=(300, 2))
  with x64():
    z = np.asarray(encode_ab_soft(jnp.asarray(ab), bins, sigma=sigma, k=k))
  np.testing.assert_allclose(z.sum(-1), 1.0, atol=1e-12)
  np.testing.assert_array_equal((z > 0).sum(-1), k)
  np.testing.assert_allclose(z, _np_soft_encode(ab, bins, sigma, k), atol=1e-12)
  # The nearest bin has the largest weight; leading axes are kept.
  np.testing.assert_array_equal(z.argmax(-1),
                                np.argmin(((ab[:, None] - bins) ** 2).sum(-1), -1))
  z32 = encode_ab_soft(ab.reshape(3, 10, 10, 2).astype(np.float32), bins, sigma=sigma, k=k)
  assert z32.shape == (3, 10, 10, 229) and z32.dtype == jnp.float32
  np.testing.assert_allclose(z32.reshape(300, -1), z, atol=1e-5)


def test_encode_ab_soft_far_from_bins_and_errors():
  bins = ops.ab_gamut_bins()
  z = encode_ab_soft(np.array([[400.0, -400.0]]), bins)     # underflow-free weights
  assert np.all(np.isfinite(z)) and abs(float(z.sum()) - 1) < 1e-6
  with pytest.raises(ValueError, match=r"`k` must be an integer in \[1, Q = 229\]"):
    ops.encode_ab_soft(np.zeros((2, 2)), bins, k=230)
  with pytest.raises(ValueError, match=r"`ab` must have shape \(\.\.\., 2\)"):
    ops.encode_ab_soft(np.zeros((2, 3)), bins)
  with pytest.raises(ValueError, match=r"`bins` must have shape \(Q, 2\)"):
    ops.encode_ab_soft(np.zeros((2, 2)), np.zeros((5, 3)))
  with pytest.raises(ValueError, match="`sigma` must be a finite number > 0"):
    ops.encode_ab_soft(np.zeros((2, 2)), bins, sigma=0)


def test_annealed_mean():
  bins = ops.ab_gamut_bins()
  rng = np.random.default_rng(7)
  logits = rng.normal(scale=2.0, size=(20, 229))
  logits[np.arange(20), rng.integers(0, 229, 20)] = logits.max(-1) + 1.0   # a clear mode
  with x64():
    p = np.asarray(jax.nn.softmax(jnp.asarray(logits), -1))
    # T = 1 is the mean.
    np.testing.assert_allclose(decode(p, bins, temperature=1.0),
                               p @ bins, atol=1e-10)
    # Reference eq. (5) at Zhang's T = 0.38.
    f = np.exp(np.log(p) / 0.38)
    f /= f.sum(-1, keepdims=True)
    np.testing.assert_allclose(decode(p, bins), f @ bins, atol=1e-9)
    np.testing.assert_allclose(
        decode(logits, bins, from_logits=True), f @ bins, atol=1e-9)
    # T -> 0 approaches the mode, monotonically.
    mode = bins[p.argmax(-1)]
    errs = [np.abs(np.asarray(decode(p, bins, temperature=t)) - mode
                   ).max() for t in (0.38, 0.1, 0.01)]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-6
    # Zero probabilities: weight 0, finite gradients.
    pz = p.copy()
    pz[:, ::2] = 0.0
    g = jax.grad(lambda x: jnp.sum(decode(x, bins)))(jnp.asarray(pz))
    assert np.all(np.isfinite(np.asarray(g)))
  with pytest.raises(ValueError, match="`temperature` must be a finite number > 0"):
    ops.decode_ab_annealed_mean(p, bins, temperature=0.0)
  with pytest.raises(ValueError, match=r"`probs` must have shape \(\.\.\., Q\) with Q = 229"):
    ops.decode_ab_annealed_mean(p[:, :10], bins)


def test_prior_and_rebalancing_weights():
  bins = ops.ab_gamut_bins()
  rng = np.random.default_rng(8)
  # Mostly desaturated colours with a few saturated ones, as natural images.
  ab = np.concatenate([rng.normal(scale=8.0, size=(3000, 2)),
                       rng.uniform(-60, 60, size=(300, 2))])
  with x64():
    counts = np.asarray(ops.ab_histogram(jnp.asarray(ab), bins, chunk=512))
    nearest = np.argmin(((ab[:, None] - bins) ** 2).sum(-1), -1)
    np.testing.assert_array_equal(counts, np.bincount(nearest, minlength=229))
    # sigma = 0 only normalises; the smoothed prior is the kernel-smoothed histogram.
    np.testing.assert_allclose(ops.prior_from_histogram(counts, bins, sigma=0.0),
                               counts / counts.sum(), atol=1e-15)
    prior = np.asarray(ops.ab_prior(jnp.asarray(ab), bins))
    kern = np.exp(-((bins[:, None] - bins[None]) ** 2).sum(-1) / 50.0)
    ref = kern @ counts
    np.testing.assert_allclose(prior, ref / ref.sum(), rtol=1e-12)
    assert abs(prior.sum() - 1) < 1e-12 and np.all(prior > 0)
    assert prior.argmax() == np.argmin((bins ** 2).sum(-1))        # the gray bin (0, 0)
    # The "soft" method is the mean soft encoding (k = 10).
    soft = np.asarray(ops.ab_prior(jnp.asarray(ab), bins, method="soft"))
    np.testing.assert_allclose(
        soft, np.asarray(encode_ab_soft(jnp.asarray(ab), bins, k=10)).mean(0), atol=1e-12)
    # Eq. (4): E_p[w] = 1, w decreases with p (rarer bins weigh more), the closed form.
    w = np.asarray(ops.rebalancing_weights(jnp.asarray(prior)))
    assert abs(np.sum(prior * w) - 1) < 1e-12
    order = np.argsort(prior)
    assert np.all(np.diff(w[order]) <= 1e-12) and w[order[0]] > 1 > w[order[-1]]
    ref_w = 1 / (0.5 * prior + 0.5 / 229)
    np.testing.assert_allclose(w, ref_w / np.sum(prior * ref_w), rtol=1e-12)
    np.testing.assert_allclose(ops.rebalancing_weights(prior, lam=1.0), 1.0, rtol=1e-12)
    # An unnormalised prior gives the same weights.
    np.testing.assert_allclose(ops.rebalancing_weights(3.0 * prior), w, rtol=1e-12)
  with pytest.raises(ValueError, match=r"`lam` must be in \[0, 1\]"):
    ops.rebalancing_weights(prior, lam=1.5)
  with pytest.raises(ValueError, match="`method` must be one of"):
    ops.ab_prior(ab, bins, method="kde")
  with pytest.raises(ValueError, match=r"`counts` must have shape \(Q,\) = \(229,\)"):
    ops.prior_from_histogram(counts[:5], bins)
