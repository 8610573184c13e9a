"""Spectral-reconstruction metrics (issue 7; spec spectral-transformer-ising Sec. 2 "Metrics",
Sec. 6.5): closed forms, invariances and a numpy re-statement of MST++'s ``Loss_MRAE``,
``Loss_MRAE_custom``, ``Loss_RMSE`` and ``Loss_PSNR`` (``train_code/utils.py``, NCHW
torch code transcribed to numpy on NHWC arrays)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision import metrics
from jaxvision.metrics import spectral


def _cubes(seed, shape=(2, 6, 7, 31)):
  rng = np.random.default_rng(seed)
  target = rng.uniform(0.05, 1.0, size=shape)
  pred = np.clip(target + rng.normal(scale=0.05, size=shape), -0.1, 1.2)
  return pred, target


# MST++'s formulas, restated in numpy (float64).

def _mst_mrae(outputs, label):
  return np.mean(np.abs(outputs - label) / label)


def _mst_mrae_custom(outputs, label):
  label_wo_zero = np.where(label == 0, 1e-8, label)
  return np.mean(np.abs(outputs - label) / label_wo_zero)


def _mst_rmse(outputs, label):
  return np.sqrt(np.mean((outputs - label) ** 2))


def _mst_psnr(im_true, im_fake, data_range=255):
  n = im_true.shape[0]
  itrue = np.clip(im_true, 0.0, 1.0).reshape(n, -1) * data_range
  ifake = np.clip(im_fake, 0.0, 1.0).reshape(n, -1) * data_range
  err = ((itrue - ifake) ** 2).sum(axis=1) / itrue.shape[1]
  return np.mean(10.0 * np.log(data_range ** 2 / err) / np.log(10.0))


def _np_sam_degrees(pred, target, eps=1e-8):
  p, t = pred.reshape(-1, pred.shape[-1]), target.reshape(-1, target.shape[-1])
  cos = (p * t).sum(-1) / (np.linalg.norm(p, axis=-1) * np.linalg.norm(t, axis=-1) + eps)
  return np.mean(np.degrees(np.arccos(np.clip(cos, -1, 1))))


def test_agree_with_mst_plus_plus_formulas_in_float64():
  with jax.enable_x64(True):
    pred, target = _cubes(0)
    got = {"mrae": metrics.mrae(pred, target, zero_guard=False),
           "mrae_custom": metrics.mrae(pred, target), "rmse": metrics.rmse(pred, target),
           "psnr": metrics.psnr(pred, target), "sam": metrics.sam(pred, target)}
    want = {"mrae": _mst_mrae(pred, target), "mrae_custom": _mst_mrae_custom(pred, target),
            "rmse": _mst_rmse(pred, target), "psnr": _mst_psnr(target, pred),
            "sam": _np_sam_degrees(pred, target)}
    for name, value in want.items():
      assert got[name].dtype == jnp.float64 and got[name].shape == (), name
      np.testing.assert_allclose(float(got[name]), value, rtol=1e-12, err_msg=name)
    # With zeros in the target, only the guarded version stays finite, and it is MST++'s.
    target[0, 1, 2, 3] = 0.0
    np.testing.assert_allclose(float(metrics.mrae(pred, target)),
                               _mst_mrae_custom(pred, target), rtol=1e-12)
    assert not np.isfinite(float(metrics.mrae(pred, target, zero_guard=False)))


def test_float32_inputs_give_float32_and_jit():
  pred, target = (x.astype(np.float32) for x in _cubes(1))
  for name in ("mrae", "rmse", "psnr", "sam"):
    fn = jax.jit(getattr(metrics, name))
    got = fn(pred, target)
    assert got.dtype == jnp.float32 and got.shape == ()
    np.testing.assert_allclose(float(got), float(getattr(metrics, name)(pred, target)),
                               rtol=1e-5)
  want = {"mrae": _mst_mrae, "rmse": _mst_rmse}
  for name, ref in want.items():
    np.testing.assert_allclose(float(getattr(metrics, name)(pred, target)),
                               ref(pred.astype(np.float64), target.astype(np.float64)),
                               rtol=1e-5)
  d = jax.jit(metrics.spectral_metrics, static_argnames="border")(pred, target, border=1)
  assert set(d) == {"mrae", "rmse", "psnr", "sam"}


def test_mrae_and_rmse_closed_forms():
  _, y = _cubes(2)
  assert float(metrics.mrae(y, y)) == 0.0 and float(metrics.rmse(y, y)) == 0.0
  np.testing.assert_allclose(float(metrics.mrae(np.zeros_like(y), y)), 1.0, rtol=1e-6)
  np.testing.assert_allclose(float(metrics.mrae(2 * y, y)), 1.0, rtol=1e-6)
  for c in (0.1, -0.03, 0.5):
    np.testing.assert_allclose(float(metrics.rmse(y + c, y)), abs(c), rtol=1e-5)
  # Guarded: zeros in the target give a finite (large) value.
  y0 = y.copy()
  y0[0, :2] = 0.0
  got = float(metrics.mrae(y0 + 0.01, y0))
  assert np.isfinite(got) and got > 1e3
  # MRAE is differentiable in the prediction (it is the training loss), also at zeros.
  g = jax.grad(lambda p: metrics.mrae(p, y0))(jnp.asarray(y0 + 0.01, jnp.float32))
  assert bool(jnp.all(jnp.isfinite(g)))


def test_psnr_constant_offset_is_20_db_and_clamps():
  rng = np.random.default_rng(3)
  target = rng.uniform(0.2, 0.8, size=(3, 8, 8, 31))
  np.testing.assert_allclose(float(metrics.psnr(target + 0.1, target)), 20.0, rtol=1e-5)
  np.testing.assert_allclose(float(metrics.psnr(255 * (target + 0.1), 255 * target,
                                                data_range=255)), 20.0, rtol=1e-5)
  offsets = np.array([0.01, 0.1, 0.2])
  per_image = metrics.psnr(target + offsets[:, None, None, None], target, reduction="none")
  np.testing.assert_allclose(per_image, -20 * np.log10(offsets), rtol=1e-5)
  assert np.isinf(float(metrics.psnr(target, target)))
  # Clamping: a prediction above 1 costs nothing against a target of 1, unless clamp=False.
  ones = np.ones((1, 4, 4, 31))
  assert np.isinf(float(metrics.psnr(ones + 0.5, ones)))
  np.testing.assert_allclose(float(metrics.psnr(ones + 0.5, ones, clamp=False)),
                             -20 * np.log10(0.5), rtol=1e-5)
  # psnr_rgb (colorization) is psnr without the clamp.
  rgb = rng.uniform(size=(2, 5, 5, 3))
  np.testing.assert_allclose(float(metrics.psnr_rgb(1.3 * rgb, rgb)),
                             float(metrics.psnr(1.3 * rgb, rgb, clamp=False)), rtol=1e-6)


def test_sam_invariances_bounds_and_degrees():
  pred, target = _cubes(4)
  base = float(metrics.sam(pred, target))
  alpha = np.random.default_rng(5).uniform(0.1, 10.0, size=pred.shape[:-1] + (1,))
  np.testing.assert_allclose(float(metrics.sam(alpha * pred, target)), base, rtol=1e-5)
  np.testing.assert_allclose(float(metrics.sam(pred, alpha * target)), base, rtol=1e-5)
  assert float(metrics.sam(target, target)) < 0.05            # float32 arccos near 1
  with jax.enable_x64(True):
    assert float(metrics.sam(target, target, eps=0.0)) < 1e-5
  # Non-negative spectra: at most 90 degrees; orthogonal ones exactly 90.
  rng = np.random.default_rng(6)
  a, b = rng.uniform(size=(2, 4, 4, 31))
  got = metrics.sam(a, b, reduction="none")
  assert got.shape == (4, 4) and float(jnp.max(got)) <= 90.0
  e = np.eye(31)
  np.testing.assert_allclose(float(metrics.sam(e[:3], e[3:6])), 90.0, rtol=1e-6)
  # The angle of (1, 0) and (1, 1) is 45 degrees: the unit is degrees, not radians.
  np.testing.assert_allclose(float(metrics.sam(np.array([1.0, 0.0]), np.array([1.0, 1.0]))),
                             45.0, rtol=1e-5)


def test_rmse_serves_iqa_scores_too():
  scores = np.arange(6.0)
  np.testing.assert_allclose(float(metrics.rmse(scores[:, None], scores + 2)), 2.0, rtol=1e-6)
  assert metrics.iqa.rmse is metrics.rmse is spectral.rmse


def test_crop_border_and_spectral_metrics():
  pred, target = _cubes(7, shape=(2, 10, 12, 31))
  c = metrics.crop_border(target, 2)
  np.testing.assert_array_equal(c, target[:, 2:-2, 2:-2])
  assert metrics.crop_border(target, 0) is target
  assert metrics.crop_border(np.zeros((300, 300, 31)), ).shape == (44, 44, 31)  # MST++: 128
  d = metrics.spectral_metrics(pred, target, border=2)
  inner = (pred[:, 2:-2, 2:-2], target[:, 2:-2, 2:-2])
  for name in ("mrae", "rmse", "psnr", "sam"):
    np.testing.assert_allclose(float(d[name]), float(getattr(metrics, name)(*inner)),
                               rtol=1e-6, err_msg=name)


def test_bad_inputs_name_the_argument():
  y = np.ones((2, 4, 4, 31))
  with pytest.raises(ValueError, match=r"mrae: `target` must have the shape of `pred` "
                     r"\(2, 4, 4, 31\); found \(2, 4, 4, 30\)"):
    metrics.mrae(y, y[..., :30])
  with pytest.raises(ValueError, match=r"rmse: `target` must have the shape"):
    metrics.rmse(y, y[:1])
  with pytest.raises(ValueError, match=r"psnr: `pred` must be channel-last images "
                     r"\(\.\.\., H, W, C\); found shape \(4, 31\)"):
    metrics.psnr(np.ones((4, 31)), np.ones((4, 31)))
  with pytest.raises(ValueError, match="psnr: `data_range` must be > 0"):
    metrics.psnr(y, y, data_range=0)
  with pytest.raises(ValueError, match="psnr: `reduction`"):
    metrics.psnr(y, y, reduction="sum")
  with pytest.raises(ValueError, match=r"sam: `pred` must be spectra"):
    metrics.sam(np.float32(1.0), np.float32(1.0))
  with pytest.raises(ValueError, match="sam: `eps` must be >= 0"):
    metrics.sam(y, y, eps=-1.0)
  with pytest.raises(ValueError, match="mrae: `pred` must not be empty"):
    metrics.mrae(np.ones((0, 31)), np.ones((0, 31)))
  with pytest.raises(ValueError, match=r"crop_border: a border of 2 needs H, W > 4; found "
                     r"H, W = 4, 4"):
    metrics.crop_border(y, 2)
  with pytest.raises(ValueError, match="crop_border: `border` must be an int >= 0"):
    metrics.crop_border(y, -1)
  with pytest.raises(ValueError, match=r"crop_border: `x` must be channel-last"):
    metrics.crop_border(np.ones((4, 31)), 0)
