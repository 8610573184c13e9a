"""Degenerate covariances and gradient-failure counts (issue 3; spec Sec. 2 "Instability").

The promised spectra are checked in float64 (``jax.enable_x64``) with numpy's ``eigvalsh``
as the independent reference.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision import analysis, ops

x64 = functools.partial(jax.enable_x64, True)
KAPPA = 1e2


def _clusters(lam, rtol):
  """Sizes of the runs of an ascending spectrum whose consecutive relative gaps are <= rtol."""
  gaps = np.diff(lam) / lam[1:]
  sizes, run = [], 1
  for g in gaps:
    if g <= rtol:
      run += 1
    else:
      sizes.append(run)
      run = 1
  return sizes + [run]


def test_repeated_kind_has_exact_multiplicities_in_float64():
  n = 12
  with x64():
    P, lam = analysis.degenerate_covariances(jax.random.PRNGKey(0), 40, n, kind="repeated",
                                             dtype=jnp.float64, return_spectrum=True)
    P = np.asarray(P)
  assert P.shape == (40, n, n) and P.dtype == np.float64
  np.testing.assert_array_equal(P, np.swapaxes(P, -1, -2))
  w = np.linalg.eigvalsh(P)
  np.testing.assert_allclose(w, lam, rtol=0, atol=1e-13)  # the promised spectrum
  separation = KAPPA ** (1 / (2 * n)) - 1
  multiplicities = []
  for wi, li in zip(w, lam):
    assert li[0] >= 1 / KAPPA * (1 - 1e-12) and li[-1] <= 1.0
    # Within a cluster the stated eigenvalues are equal; the computed ones agree to
    # rounding; distinct clusters are at least `separation` apart.
    sizes = _clusters(li, 0.0)
    assert sizes == _clusters(wi, 1e-11)
    assert max(sizes) >= 2
    gaps = np.diff(li) / li[:-1]  # relative to the smaller
    assert np.all((gaps == 0) | (gaps >= separation * 0.999))
    multiplicities += sizes
  assert max(multiplicities) >= 4  # varied multiplicities, not only pairs


def test_near_kind_has_gaps_between_1e9_and_1e6_in_float64():
  n = 12
  with x64():
    P, lam = analysis.degenerate_covariances(jax.random.PRNGKey(1), 40, n, kind="near",
                                             dtype=jnp.float64, return_spectrum=True)
    w = np.linalg.eigvalsh(np.asarray(P))
  separation = KAPPA ** (1 / (2 * n)) - 1
  all_near = []
  for wi, li in zip(w, lam):
    gaps = np.diff(li) / li[:-1]
    near = gaps < separation * 0.999
    assert near.any()  # at least one near-tie per matrix
    assert np.all(gaps > 0)  # no exact ties
    assert np.all(gaps[near] >= 1e-9 * (1 - 1e-5)) and np.all(gaps[near] <= 1e-6 * (1 + 1e-5))
    # float64 eigvalsh resolves the gaps (absolute error ~1e-16 against gaps >= 1e-11).
    np.testing.assert_allclose(np.diff(wi)[near], np.diff(li)[near], rtol=1e-3)
    all_near += list(gaps[near])
  logs = np.log10(all_near)
  assert logs.min() < -8.5 and logs.max() > -6.5  # the whole range is covered


@pytest.mark.parametrize("kind", analysis.DEGENERATE_KINDS)
def test_float32_output_is_the_rounded_float64_matrix(kind):
  key = jax.random.PRNGKey(2)
  P32, lam = analysis.degenerate_covariances(key, 16, 10, kind=kind, return_spectrum=True)
  assert P32.dtype == jnp.float32 and P32.shape == (16, 10, 10)
  P32 = np.asarray(P32, np.float64)
  np.testing.assert_array_equal(P32, np.swapaxes(P32, -1, -2))
  with x64():
    P64 = np.asarray(analysis.degenerate_covariances(key, 16, 10, kind=kind,
                                                     dtype=jnp.float64))
  np.testing.assert_allclose(P32, P64, rtol=0, atol=1.2e-7)
  # Weyl: each eigenvalue of the stored float32 matrix is within |P32 - P64|_2 of lambda.
  bound = np.linalg.norm(P32 - P64, ord=2, axis=(-2, -1))
  assert np.all(np.abs(np.linalg.eigvalsh(P32) - lam) <= bound[:, None] * (1 + 1e-6) + 1e-15)
  assert np.all(np.linalg.eigvalsh(P32)[:, 0] > 0)


def test_generator_is_deterministic_and_validates_arguments():
  key = jax.random.PRNGKey(3)
  a = analysis.degenerate_covariances(key, 4, 6, kind="near")
  np.testing.assert_array_equal(a, analysis.degenerate_covariances(key, 4, 6, kind="near"))
  assert not np.array_equal(a, analysis.degenerate_covariances(jax.random.PRNGKey(4), 4, 6,
                                                               kind="near"))
  with pytest.raises(ValueError, match="kind"):
    analysis.degenerate_covariances(key, 4, 6, kind="distinct")
  with pytest.raises(ValueError, match="`n` must be an int >= 2"):
    analysis.degenerate_covariances(key, 4, 1, kind="repeated")
  with pytest.raises(ValueError, match="max_condition"):
    analysis.degenerate_covariances(key, 4, 6, kind="repeated", max_condition=1.0)
  with pytest.raises(ValueError, match="jax_enable_x64"):
    analysis.degenerate_covariances(key, 4, 6, kind="repeated", dtype=jnp.float64)
  with pytest.raises(TypeError, match="PRNG key"):
    analysis.degenerate_covariances(3, 4, 6, kind="repeated")
  with pytest.raises(ValueError, match=r"\(num, n, n\)"):
    analysis.gradient_failures(jnp.ones((4, 3)), jnp.sqrt)


@pytest.mark.parametrize("fn", ["sqrtm", "inv_sqrtm"])
def test_plain_eigh_autodiff_fails_on_repeated_eigenvalues_loewner_never(fn):
  P = analysis.degenerate_covariances(jax.random.PRNGKey(5), 200, 16, kind="repeated")
  plain = analysis.gradient_failures(P, analysis.eigh_autodiff(fn))
  ours = analysis.gradient_failures(P, functools.partial(getattr(ops, fn), method="eigh"))
  assert isinstance(plain, int) and isinstance(ours, int)
  assert plain > 0  # NaN/inf from K_ij = 1 / (l_i - l_j) at ties (about half of them)
  assert ours == 0
  near = analysis.degenerate_covariances(jax.random.PRNGKey(6), 200, 16, kind="near")
  assert analysis.gradient_failures(near, functools.partial(getattr(ops, fn),
                                                            method="eigh")) == 0


def test_gradient_failures_counts_matrices_not_entries():
  # diag(1, 1, 2) (exact tie): plain eigh autodiff is NaN; a distinct spectrum is fine.
  P = jnp.stack([jnp.diag(jnp.array([1.0, 1.0, 2.0])), jnp.diag(jnp.array([1.0, 2.0, 3.0])),
                 jnp.diag(jnp.array([4.0, 4.0, 4.0]))])
  assert analysis.gradient_failures(P, analysis.eigh_autodiff("sqrtm")) == 2
  # Chunking (with a padded last chunk) gives the same count.
  assert analysis.gradient_failures(P, analysis.eigh_autodiff("sqrtm"), batch_size=2) == 2
  assert analysis.gradient_failures(P, ops.sqrtm) == 0


@pytest.mark.slow  # the whole table (every method, 10^3 matrices); benchmarks/svd_failures.py
def test_failure_table_counts_are_integers_in_range():
  num = 24
  table = analysis.failure_table(num=num, n=6, key=jax.random.PRNGKey(7), batch_size=8)
  assert table["num_repeated"] + table["num_near"] == num
  methods = {(r["function"], r["method"]) for r in table["rows"]}
  for fn in ("sqrtm", "inv_sqrtm"):
    assert {(fn, m) for m in ops.SQRTM_METHODS} <= methods
    assert (fn, "jnp.linalg.eigh autodiff") in methods
  for r in table["rows"]:
    for k in ("repeated", "near", "total", "num_rel_error_above_1e-2"):
      assert isinstance(r[k], int) and 0 <= r[k] <= num
    assert r["repeated"] <= table["num_repeated"] and r["near"] <= table["num_near"]
    assert r["total"] == r["repeated"] + r["near"]
    if r["method"] == "eigh":
      assert r["total"] == 0 and r["num_rel_error_above_1e-2"] == 0
      assert r["median_rel_error"] < 1e-4 and r["control_median_rel_error"] < 1e-4
