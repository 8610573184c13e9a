"""IQA metrics (issue 5; spec norm-in-norm-iqa Sec. 2 "Metrics", Sec. 6.6-6.7).

References: scipy.stats (rankdata, spearmanr, kendalltau, pearsonr), numpy.linalg.lstsq and
scipy.optimize.curve_fit, in float64 under ``jax.enable_x64``, on data with ties.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, stats

from jaxvision import metrics


def _scores(seed, n=200, decimals=0):
  """MOS-like targets and correlated predictions, both rounded so that both have ties."""
  rng = np.random.default_rng(seed)
  target = np.round(rng.uniform(0.0, 100.0, size=n) / 5.0, decimals)
  pred = np.round(0.3 * target + rng.normal(scale=3.0, size=n), decimals)
  assert len(np.unique(target)) < n and len(np.unique(pred)) < n
  return pred, target


# jit: one compilation per shape (eager dispatch of the many small ops is slower).
_jit = {name: jax.jit(getattr(metrics, name))
        for name in ("average_ranks", "srocc", "krocc", "plcc", "rmse", "iqa_performance",
                     "fit_linear_mapping", "apply_linear_mapping", "fit_logistic_mapping",
                     "logistic_mapping")}


def test_average_ranks_match_rankdata():
  with jax.enable_x64(True):
    pred, _ = _scores(0)
    got = _jit["average_ranks"](pred)
    assert got.dtype == jnp.float64
    np.testing.assert_array_equal(np.asarray(got), stats.rankdata(pred))
    np.testing.assert_array_equal(np.asarray(metrics.average_ranks(np.array([[3.0], [1.0],
                                                                             [3.0], [3.0]]))),
                                  [3.0, 1.0, 3.0, 3.0])


@pytest.mark.parametrize("seed", [0, 1])
def test_correlations_match_scipy_with_ties(seed):
  with jax.enable_x64(True):
    pred, target = _scores(seed)
    want = {"srocc": stats.spearmanr(pred, target)[0],
            "krocc": stats.kendalltau(pred, target)[0],
            "plcc": stats.pearsonr(pred, target)[0],
            "rmse": np.sqrt(np.mean((pred - target) ** 2))}
    for name, value in want.items():
      got = _jit[name](pred, target)
      assert got.dtype == jnp.float64 and got.shape == ()
      np.testing.assert_allclose(float(got), value, rtol=1e-12, atol=1e-14, err_msg=name)
    perf = _jit["iqa_performance"](pred[:, None], target)
    assert set(perf) == {"srocc", "krocc", "plcc", "rmse"}
    for name, value in want.items():
      np.testing.assert_allclose(float(perf[name]), value, rtol=1e-12, atol=1e-14,
                                 err_msg=name)


def test_float32_inputs_give_float32():
  pred, target = _scores(2)
  pred, target = pred.astype(np.float32), target.astype(np.float32)
  for name in ("srocc", "krocc", "plcc", "rmse"):
    got = _jit[name](pred, target)
    assert got.dtype == jnp.float32
  np.testing.assert_allclose(float(_jit["srocc"](pred, target)),
                             stats.spearmanr(pred, target)[0], rtol=1e-6)
  np.testing.assert_allclose(float(_jit["krocc"](pred, target)),
                             stats.kendalltau(pred, target)[0], rtol=1e-6)
  assert metrics.srocc(jnp.asarray(pred, jnp.bfloat16), target).dtype == jnp.float32


def test_krocc_chunking_and_tau_b_ties():
  with jax.enable_x64(True):
    pred, target = _scores(3, n=53, decimals=0)
    want = stats.kendalltau(pred, target)[0]                         # tau-b
    assert abs(want - stats.kendalltau(pred, target, variant="c")[0]) > 1e-6
    for chunk in (1, 7, 53, 4096):
      np.testing.assert_allclose(float(metrics.krocc(pred, target, chunk_size=chunk)), want,
                                 rtol=1e-12)
    # All ties in one argument: undefined, NaN as in scipy.
    assert np.isnan(float(metrics.krocc(np.ones(5), np.arange(5.0))))
    with pytest.raises(ValueError, match="`chunk_size` must be >= 1; found 0"):
      metrics.krocc(pred, target, chunk_size=0)


def test_rank_correlations_are_invariant_to_increasing_maps():
  with jax.enable_x64(True):
    pred, target = _scores(4)
    base_s, base_k = float(_jit["srocc"](pred, target)), float(_jit["krocc"](pred, target))
    base_p = float(_jit["plcc"](pred, target))
    for mapped in (3.0 * pred + 7.0, np.exp(pred / 10.0), pred ** 3):
      np.testing.assert_allclose(float(_jit["srocc"](mapped, target)), base_s, rtol=1e-12)
      np.testing.assert_allclose(float(_jit["krocc"](mapped, target)), base_k, rtol=1e-12)
    np.testing.assert_allclose(float(_jit["plcc"](3.0 * pred + 7.0, target)), base_p,
                               rtol=1e-12)
    # A decreasing map flips the signs; PLCC is not invariant to a non-affine map.
    np.testing.assert_allclose(float(_jit["srocc"](-2.0 * pred, target)), -base_s, rtol=1e-12)
    np.testing.assert_allclose(float(_jit["krocc"](-2.0 * pred, target)), -base_k, rtol=1e-12)
    np.testing.assert_allclose(float(_jit["plcc"](-2.0 * pred, target)), -base_p, rtol=1e-12)
    assert abs(float(_jit["plcc"](np.exp(pred / 3.0), target)) - base_p) > 1e-3


def test_linear_mapping_is_least_squares_fitted_on_train_applied_to_test():
  with jax.enable_x64(True):
    pred, target = _scores(5, n=300, decimals=1)
    train, test = slice(0, 200), slice(200, 300)
    k1, k2 = _jit["fit_linear_mapping"](pred[train, None], target[train])
    x = np.stack([pred[train], np.ones(200)], 1)
    want, *_ = np.linalg.lstsq(x, target[train], rcond=None)
    np.testing.assert_allclose([float(k1), float(k2)], want, rtol=1e-11)
    mapped = _jit["apply_linear_mapping"](pred[test], (k1, k2))
    np.testing.assert_allclose(np.asarray(mapped), want[0] * pred[test] + want[1], rtol=1e-12)
    perf = _jit["iqa_performance"](pred[test], target[test], mapping=(k1, k2))
    raw = _jit["iqa_performance"](pred[test], target[test])
    for name in ("srocc", "krocc", "plcc"):                 # invariant: k1 > 0
      np.testing.assert_allclose(float(perf[name]), float(raw[name]), rtol=1e-12)
    want_rmse = np.sqrt(np.mean((want[0] * pred[test] + want[1] - target[test]) ** 2))
    np.testing.assert_allclose(float(perf["rmse"]), want_rmse, rtol=1e-12)
    assert float(perf["rmse"]) < float(raw["rmse"])
    # Fitted on the same set, the RMSE is the least-squares residual.
    k = _jit["fit_linear_mapping"](pred, target)
    resid = np.linalg.lstsq(np.stack([pred, np.ones_like(pred)], 1), target, rcond=None)[1][0]
    np.testing.assert_allclose(float(_jit["iqa_performance"](pred, target, mapping=k)["rmse"]),
                               np.sqrt(resid / len(pred)), rtol=1e-10)


def _np_logistic(x, b1, b2, b3, b4):
  return (b1 - b2) / (1 + np.exp(-(x - b3) / np.abs(b4))) + b2


def test_logistic_fit_recovers_known_parameters_on_noiseless_data():
  with jax.enable_x64(True):
    x = np.linspace(-2.0, 12.0, 80)
    beta = np.array([90.0, 10.0, 4.0, 1.7])
    beta_fit = _jit["fit_logistic_mapping"](x, _np_logistic(x, *beta))
    assert beta_fit.dtype == jnp.float64 and beta_fit.shape == (4,)
    np.testing.assert_allclose(np.asarray(beta_fit), beta, rtol=1e-8)
    # float32 without x64: the same parameters to float32 accuracy.
  beta_fit = jax.jit(metrics.fit_logistic_mapping)(x.astype(np.float32),
                                                   _np_logistic(x, *beta).astype(np.float32))
  assert beta_fit.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(beta_fit), beta, rtol=2e-3)


@pytest.mark.parametrize("seed", [0, 1])
def test_logistic_fit_matches_curve_fit(seed):
  rng = np.random.default_rng(seed)
  x = rng.normal(loc=3.0, scale=2.0, size=150)
  y = _np_logistic(x, 85.0, 15.0, 3.5, 1.2) + rng.normal(scale=4.0, size=150)
  with jax.enable_x64(True):
    beta_fit = np.asarray(_jit["fit_logistic_mapping"](x, y))
    beta0 = [y.max(), y.min(), x.mean(), x.std()]                   # the documented start
    want, _ = optimize.curve_fit(_np_logistic, x, y, p0=beta0, maxfev=20000)
    np.testing.assert_allclose(np.asarray(_jit["logistic_mapping"](x, beta_fit)),
                               _np_logistic(x, *want), rtol=1e-5)
    want[3] = abs(want[3])
    np.testing.assert_allclose(beta_fit, want, rtol=1e-4)
    cost = lambda b: np.sum((_np_logistic(x, *b) - y) ** 2)
    assert cost(beta_fit) <= cost(want) * (1 + 1e-10)
    # Mapping then evaluating: SROCC/KROCC unchanged (increasing map), RMSE vs the fit.
    perf = _jit["iqa_performance"](x, y, mapping=beta_fit)
    np.testing.assert_allclose(float(perf["srocc"]), stats.spearmanr(x, y)[0], rtol=1e-12)
    np.testing.assert_allclose(float(perf["rmse"]), np.sqrt(cost(beta_fit) / len(x)),
                               rtol=1e-12)


def test_bad_shapes_name_the_argument():
  good = np.arange(5.0)
  with pytest.raises(ValueError, match=r"srocc: `pred` must have shape \(N,\) or \(N, 1\); "
                     r"found \(5, 2\)"):
    metrics.srocc(np.zeros((5, 2)), good)
  with pytest.raises(ValueError, match=r"plcc: `target` must have shape .*found \(\)"):
    metrics.plcc(good, np.float64(1.0))
  with pytest.raises(ValueError, match="krocc: `target` must have N = 5 entries like `pred`; "
                     "found N = 4"):
    metrics.krocc(good, good[:4])
  with pytest.raises(ValueError, match="rmse: `pred` must have N >= 2 entries; found N = 1"):
    metrics.rmse(good[:1], good[:1])
  with pytest.raises(ValueError, match="`mapping` must be None"):
    metrics.iqa_performance(good, good, mapping=(1.0, 2.0, 3.0))
  with pytest.raises(ValueError, match="`beta` must be"):
    metrics.logistic_mapping(good, (1.0, 2.0))
  with pytest.raises(ValueError, match="fit_linear_mapping: `pred`"):
    metrics.fit_linear_mapping(np.zeros((5, 1, 1)), good)
