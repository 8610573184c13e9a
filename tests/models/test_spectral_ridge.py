"""The closed-form ridge baseline RGB -> 31 bands (issue 7; spec spectral-transformer-ising
Sec. 4, 6.6): numpy least-squares references, shrinkage, batched float64 accumulation, the
root-polynomial features, exact recovery of a linear camera inverse, and the non-zero floor
on the synthetic scenes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision import metrics
from jaxvision.data import spectral
from jaxvision.models import spectral_ridge as sr


def _pixels(seed, n=500, bands=31):
  rng = np.random.default_rng(seed)
  rgb = rng.uniform(0.05, 1.0, size=(n, 3))
  cube = rgb @ rng.normal(size=(3, bands)) + 0.1 * rng.normal(size=(n, bands)) + 0.3
  return rgb, cube


def _design(rgb, degree=1, root=False, bias=True):
  return sr.rgb_features(np.asarray(rgb, np.float64), degree, root=root, bias=bias)


def test_feature_maps():
  assert sr.feature_names(1) == ["r", "g", "b", "1"]
  assert len(sr.feature_names(2, bias=False)) == 9 and len(sr.feature_names(3, bias=False)) == 19
  assert sr.feature_names(2, root=True, bias=False) == ["r", "g", "b", "sqrt(r*g)",
                                                        "sqrt(r*b)", "sqrt(g*b)"]
  assert len(sr.feature_names(3, root=True, bias=False)) == 13   # Finlayson et al. 2015
  x = np.array([[0.2, 0.5, 0.8]])
  f = sr.rgb_features(x, 3, root=True)
  want = dict(zip(sr.feature_names(3, root=True), f[0]))
  np.testing.assert_allclose(want["sqrt(r*g)"], np.sqrt(0.1))
  np.testing.assert_allclose(want["cbrt(r*g*b)"], np.cbrt(0.08))
  np.testing.assert_allclose(want["cbrt(r^2*b)"], np.cbrt(0.032))
  # Root-polynomial terms are degree-1 homogeneous (exposure invariance).
  np.testing.assert_allclose(sr.rgb_features(3 * x, 3, root=True, bias=False),
                             3 * sr.rgb_features(x, 3, root=True, bias=False), rtol=1e-12)
  # numpy float64 and jax float32 agree.
  g = sr.rgb_features(jnp.asarray(x, jnp.float32), 2)
  assert g.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(g), sr.rgb_features(x, 2), rtol=1e-6)
  with pytest.raises(ValueError, match=r"`degree` must be an int in \[1, 3\]; found 4"):
    sr.rgb_features(x, 4)
  with pytest.raises(ValueError, match=r"`rgb` must be \(\.\.\., 3\); found shape \(1, 4\)"):
    sr.rgb_features(np.ones((1, 4)))


@pytest.mark.parametrize("degree,root,bias", [(1, False, True), (1, False, False),
                                              (2, True, True), (3, False, True)])
def test_lam_zero_equals_numpy_lstsq(degree, root, bias):
  rgb, cube = _pixels(0)
  model = sr.fit_spectral_ridge((rgb, cube), lam=0.0, degree=degree, root=root, bias=bias)
  want, *_ = np.linalg.lstsq(_design(rgb, degree, root, bias), cube, rcond=None)
  assert model.weights.dtype == np.float64 and model.num_pixels == 500
  np.testing.assert_allclose(model.weights, want, rtol=1e-7, atol=1e-8)


def test_ridge_equals_the_augmented_system_and_shrinks():
  rgb, cube = _pixels(1)
  x = _design(rgb)
  n, f = x.shape
  norms = []
  for lam in (0.0, 1e-3, 1e-1, 10.0):
    w = sr.fit_spectral_ridge((rgb, cube), lam=lam).weights
    # min (1/n)||XW - Y||^2 + lam ||W without the bias row||^2, as a stacked lstsq.
    penalty = np.sqrt(n * lam) * np.eye(f)[:-1]
    want, *_ = np.linalg.lstsq(np.vstack([x, penalty]),
                               np.vstack([cube, np.zeros((f - 1, cube.shape[1]))]), rcond=None)
    np.testing.assert_allclose(w, want, rtol=1e-7, atol=1e-9, err_msg=f"lam={lam}")
    norms.append(np.linalg.norm(w[:-1]))
  assert all(a > b for a, b in zip(norms, norms[1:]))
  # The unpenalised bias: as lam grows, the prediction tends to the mean spectrum.
  w = sr.fit_spectral_ridge((rgb, cube), lam=1e8).weights
  np.testing.assert_allclose(w[-1], cube.mean(0), rtol=1e-5)


def test_batched_accumulation_equals_one_shot_and_accepts_sources():
  src = spectral.synthetic_hsi("train", image_size=16, num_examples=10)
  batch = src.get(np.arange(10))
  whole = sr.fit_spectral_ridge(batch, degree=2, root=True)
  from_source = sr.fit_spectral_ridge(src, degree=2, root=True, batch_size=3)
  from_iter = sr.fit_spectral_ridge((src.get(np.arange(i, i + 2)) for i in range(0, 10, 2)),
                                    degree=2, root=True)
  from_pairs = sr.fit_spectral_ridge([(batch["rgb"][:4], batch["cube"][:4]),
                                      (batch["rgb"][4:], batch["cube"][4:])],
                                     degree=2, root=True)
  for m in (from_source, from_iter, from_pairs):
    np.testing.assert_allclose(m.weights, whole.weights, rtol=1e-9, atol=1e-12)
    assert m.num_pixels == 10 * 16 * 16
  strided = sr.ridge_statistics(batch, pixel_stride=4)
  assert strided.n == 10 * 4 * 4


def test_recovers_an_exactly_linear_camera_inverse():
  # Spectra in a 3-D span (three measured reflectances under D65, mixed per pixel), seen
  # through the measured Nikon response: RGB is an invertible linear image of the mixing
  # coefficients, so linear regression recovers every spectrum (floor 0).
  a = spectral.measured_spectra()
  basis = a["reflectances"][[2, 13, 22]] * spectral.illuminant_spectrum("D65")
  rng = np.random.default_rng(0)
  cam = spectral.camera_response("nikon_d5100").astype(np.float64)
  coef = rng.uniform(0.05, 1.0, size=(2, 400, 3))
  cube = coef @ basis
  rgb = cube @ cam
  model = sr.fit_spectral_ridge((rgb[0], cube[0]), lam=0.0, bias=False)
  with jax.enable_x64(True):
    pred = model.predict(rgb[1])
    assert float(metrics.mrae(pred, cube[1])) < 1e-9
  # The map is the camera's pseudo-inverse on that span: W = (B R)^-1 B.
  np.testing.assert_allclose(model.weights, np.linalg.solve(basis @ cam, basis), atol=1e-8)


def test_synthetic_floor_is_the_least_squares_residual_and_nonzero():
  # rgb_norm="none": the RGB is exactly cube @ R; ridge (lam=0) attains the least-squares
  # floor of its feature class on the training pixels, which is > 0 (metamers).
  train = spectral.synthetic_hsi("train", image_size=16, num_examples=48, rgb_norm="none")
  test = spectral.synthetic_hsi("test", image_size=16, num_examples=16, rgb_norm="none")
  tb, vb = train.get(np.arange(48)), test.get(np.arange(16))
  x, y = tb["rgb"].reshape(-1, 3).astype(np.float64), tb["cube"].reshape(-1, 31)
  floors = {}
  for degree, root in ((1, False), (2, True)):
    model = sr.fit_spectral_ridge(tb, lam=0.0, degree=degree, root=root)
    _, res, *_ = np.linalg.lstsq(_design(x, degree, root), y, rcond=None)
    floor = np.sqrt(res.sum() / y.size)
    with jax.enable_x64(True):
      fit_rmse = float(metrics.rmse(model.predict(tb["rgb"].astype(np.float64)), tb["cube"]))
    np.testing.assert_allclose(fit_rmse, floor, rtol=1e-6)
    floors[degree] = floor
    held_out = float(metrics.mrae(model.predict(vb["rgb"]), vb["cube"]))
    assert 0.01 < held_out < 0.5, (degree, held_out)
  assert 0.005 < floors[2] < floors[1]   # richer (nested) features: lower, still non-zero


def test_predict_is_jittable_and_errors_are_clear():
  rgb, cube = _pixels(2)
  model = sr.fit_spectral_ridge((rgb, cube), degree=2, root=True)
  img = rgb[:48].reshape(2, 4, 6, 3).astype(np.float32)
  out = jax.jit(model.predict)(img)
  assert out.shape == (2, 4, 6, 31) and out.dtype == jnp.float32 and model.num_bands == 31
  np.testing.assert_allclose(np.asarray(out), _design(img.reshape(-1, 3), 2, True).dot(
      model.weights).reshape(2, 4, 6, 31), rtol=1e-4, atol=1e-4)
  with pytest.raises(ValueError, match=r"the same pixels; found \(5, 3\) and \(4, 31\)"):
    sr.fit_spectral_ridge((rgb[:5], cube[:4]))
  with pytest.raises(ValueError, match="`lam` must be >= 0"):
    sr.fit_spectral_ridge((rgb, cube), lam=-1.0)
  with pytest.raises(ValueError, match="singular with lam=0.0"):
    sr.fit_spectral_ridge((np.ones((10, 3)), cube[:10]), lam=0.0)
  with pytest.raises(ValueError, match="gave no batches"):
    sr.fit_spectral_ridge([])
  with pytest.raises(ValueError, match="`pixel_stride` must be an int >= 1"):
    sr.fit_spectral_ridge((rgb, cube), pixel_stride=0)
