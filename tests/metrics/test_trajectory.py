"""AV2 forecasting metrics (issue 4; spec icpr-13 Sec. 3 and Sec. 6.9).

The reference is a NumPy float64 transcription of av2-api's ``compute_ade``,
``compute_fde``, ``compute_is_missed_prediction`` and ``compute_brier_fde`` over the top-k
modes with renormalised probabilities (QCNet ``metrics.utils.topk``), plus hand-built cases.
"""

import numpy as np
import pytest

from jaxvision import metrics


def _np_av2(loc, probs, target, k, threshold=2.0):
  """Per-agent metrics for fully valid futures, as the AV2 API computes them."""
  out = {name: [] for name in ("min_ade", "min_fde", "miss", "brier_min_fde")}
  for pred, p, gt in zip(np.asarray(loc, np.float64), np.asarray(probs, np.float64),
                         np.asarray(target, np.float64)):
    top = np.argsort(-p, kind="stable")[:k]
    pred, p = pred[top], p[top] / p[top].sum()
    ade = np.linalg.norm(pred - gt, axis=2).mean(axis=1)               # compute_ade
    fde = np.linalg.norm((pred - gt)[:, -1], axis=-1)                   # compute_fde
    m = int(np.argmin(fde))
    out["min_fde"].append(fde[m])
    out["min_ade"].append(ade[m])
    out["miss"].append(float(fde[m] > threshold))                       # is_missed
    out["brier_min_fde"].append(fde[m] + (1.0 - p[m]) ** 2)             # brier_fde
  return {name: np.array(v) for name, v in out.items()}


def _straight(end_offsets, f=4):
  """(K, F, 2) trajectories from the origin whose end points sit at ``end_offsets``."""
  s = np.linspace(0.0, 1.0, f)[:, None]
  return np.stack([s * np.asarray(e, np.float64) for e in end_offsets]).astype(np.float32)


def test_matches_av2_reference_on_random_agents():
  rng = np.random.default_rng(0)
  a, k_modes, f = 7, 8, 6
  target = rng.normal(size=(a, f, 2)).cumsum(1).astype(np.float32)
  loc = (target[:, None] + rng.normal(scale=1.5, size=(a, k_modes, f, 2))).astype(np.float32)
  probs = rng.dirichlet(np.ones(k_modes), size=a).astype(np.float32)
  for k in (1, 3, 6, 8):
    got = metrics.forecasting_metrics(loc, probs, target, None, k=k)
    want = _np_av2(loc, probs, target, k)
    for name, value in want.items():
      np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-6, err_msg=f"{name} k={k}")
    np.testing.assert_array_equal(got["evaluated"], 1.0)


def test_brier_adds_one_minus_p_squared():
  target = _straight([[10.0, 0.0]])[0][None]                      # (1, F, 2)
  loc = (target[:, None] + _straight([[0.3, 0.4], [3.0, 4.0]])[None]).astype(np.float32)
  probs = np.array([[0.25, 0.75]], np.float32)
  got = metrics.forecasting_metrics(loc, probs, target, None, k=6)
  np.testing.assert_allclose(got["min_fde"], [0.5], rtol=1e-6)
  np.testing.assert_allclose(got["brier_min_fde"], [0.5 + 0.75**2], rtol=1e-6)  # not 0.5 * ..


def test_miss_rate_threshold():
  target = np.zeros((3, 4, 2), np.float32)
  far = _straight([[2.1, 0.0], [0.0, -3.0], [-5.0, 5.0]])              # all end > 2 m away
  near = _straight([[2.1, 0.0], [1.2, 1.5], [-5.0, 5.0]])              # one within 2 m
  edge = _straight([[2.0, 0.0], [0.0, -3.0], [-5.0, 5.0]])             # exactly 2 m: no miss
  loc = np.stack([far, near, edge])
  got = metrics.forecasting_metrics(loc, np.full((3, 3), 1 / 3, np.float32), target, None)
  np.testing.assert_array_equal(got["miss"], [1.0, 0.0, 0.0])


def test_min_ade_is_the_ade_of_the_min_fde_mode():
  f = 4
  target = np.zeros((1, f, 2), np.float32)
  loc = np.zeros((1, 2, f, 2), np.float32)
  loc[0, 0, :, 0] = [0.0, 0.0, 0.0, 1.0]       # ADE 0.25, FDE 1.0
  loc[0, 1, :, 0] = [2.0, 2.0, 2.0, 0.5]       # ADE 1.625, FDE 0.5  <- min-FDE mode
  got = metrics.forecasting_metrics(loc, np.array([[0.5, 0.5]], np.float32), target, None)
  np.testing.assert_allclose(got["min_fde"], [0.5])
  np.testing.assert_allclose(got["min_ade"], [1.625])   # not min ADE (0.25)


def test_top_k_by_probability_with_renormalisation():
  target = np.zeros((1, 4, 2), np.float32)
  loc = _straight([[0.0, 0.1], [1.0, 0.0], [3.0, 0.0], [0.0, 0.2]])[None]
  probs = np.array([[0.1, 0.4, 0.3, 0.2]], np.float32)
  got = metrics.forecasting_metrics(loc, probs, target, None, k=2)   # keeps modes 1 and 2
  np.testing.assert_allclose(got["min_fde"], [1.0], rtol=1e-6)
  np.testing.assert_allclose(got["brier_min_fde"], [1.0 + (1 - 4 / 7) ** 2], rtol=1e-6)
  got3 = metrics.forecasting_metrics(loc, probs, target, None, k=3)  # now mode 3 too
  np.testing.assert_allclose(got3["min_fde"], [0.2], rtol=1e-6)
  np.testing.assert_allclose(got3["brier_min_fde"], [0.2 + (1 - 2 / 9) ** 2], rtol=1e-6)


def test_invalid_steps_use_the_last_valid_step_and_skip_empty_agents():
  target = np.zeros((2, 4, 2), np.float32)
  target[0, 3] = np.nan                                   # padding at an invalid step
  valid = np.array([[1, 1, 1, 0], [0, 0, 0, 0]], np.float32)
  loc = np.zeros((2, 2, 4, 2), np.float32)
  loc[:, 0, :, 0] = [0.0, 1.0, 3.0, 0.0]                 # FDE at step 2 = 3, ADE = 4/3
  loc[:, 1, :, 0] = [1.0, 1.0, 1.0, 50.0]                # FDE at step 2 = 1, ADE = 1
  got = metrics.forecasting_metrics(loc, np.full((2, 2), 0.5, np.float32), target, valid)
  np.testing.assert_allclose(got["min_fde"], [1.0, 0.0])
  np.testing.assert_allclose(got["min_ade"], [1.0, 0.0])
  np.testing.assert_allclose(got["brier_min_fde"], [1.25, 0.0])
  np.testing.assert_array_equal(got["evaluated"], [1.0, 0.0])
  for value in got.values():
    assert np.all(np.isfinite(np.asarray(value)))


def test_bad_inputs_name_the_argument():
  loc, probs, target = np.zeros((2, 3, 4, 2)), np.ones((2, 3)), np.zeros((2, 4, 2))
  with pytest.raises(ValueError, match="`probs`"):
    metrics.forecasting_metrics(loc, probs[:, :2], target, None)
  with pytest.raises(ValueError, match="`target`"):
    metrics.forecasting_metrics(loc, probs, target[:, :3], None)
  with pytest.raises(ValueError, match="`valid`"):
    metrics.forecasting_metrics(loc, probs, target, np.ones((2, 3)))
  with pytest.raises(ValueError, match="`k`"):
    metrics.forecasting_metrics(loc, probs, target, None, k=0)
