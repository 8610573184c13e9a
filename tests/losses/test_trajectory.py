"""Trajectory losses (issue 4; spec icpr-13 Sec. 2 "Losses eqs. 7-8" and Sec. 6.9).

References: NumPy float64 transcriptions of the Laplace NLL, HiVT's winner-take-all
selection and its soft-target cross-entropy, plus closed forms.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision import losses

A, K, F = 3, 4, 5


def _case(seed):
  rng = np.random.default_rng(seed)
  loc = rng.normal(size=(A, K, F, 2)).astype(np.float32)
  scale = rng.uniform(0.3, 2.0, size=(A, K, F, 2)).astype(np.float32)
  target = rng.normal(size=(A, F, 2)).astype(np.float32)
  valid = (rng.random((A, F)) < 0.7).astype(np.float32)
  valid[:, 0] = 1.0
  return loc, scale, target, valid


def _np_nll(loc, scale, target):
  loc, scale, target = (np.asarray(a, np.float64) for a in (loc, scale, target))
  return np.sum(np.log(2 * scale) + np.abs(target - loc) / scale, axis=-1)


def _np_err(loc, target, valid):
  """(A, K) sum over valid steps of the L2 error, and the valid count (A,)."""
  d = np.linalg.norm(np.asarray(loc, np.float64) - np.asarray(target, np.float64)[:, None], axis=-1)
  return (d * valid[:, None]).sum(-1), valid.sum(-1)


def test_laplace_nll_closed_form_and_reference():
  y = jnp.asarray(np.random.default_rng(0).normal(size=(2, 7, 2)), jnp.float32)
  np.testing.assert_allclose(losses.laplace_nll(y, jnp.ones_like(y), y), 2 * np.log(2.0),
                             rtol=1e-6)
  loc, scale, target, valid = _case(1)
  got = losses.laplace_nll(loc, scale, target[:, None], valid[:, None])
  assert got.shape == (A, K, F) and got.dtype == jnp.float32
  np.testing.assert_allclose(got, _np_nll(loc, scale, target[:, None]) * valid[:, None],
                             rtol=1e-5)
  # Padding in invalid targets (NaN here) leaks into neither the value nor the gradient.
  bad = np.where(valid[..., None] > 0, target, np.nan)[:, None]
  f = lambda m: jnp.sum(losses.laplace_nll(m, scale, bad, valid[:, None]))
  assert np.isfinite(float(f(loc)))
  assert np.all(np.isfinite(np.asarray(jax.jit(jax.grad(f))(jnp.asarray(loc)))))


def test_scale_from_raw():
  x = jnp.linspace(-30.0, 5.0, 41)
  b = losses.scale_from_raw(x, eps=1e-3)
  want = np.where(x > 0, x, np.expm1(np.minimum(x, 0))) + 1.0 + 1e-3
  np.testing.assert_allclose(b, want, rtol=1e-6, atol=1e-7)
  assert float(jnp.min(b)) > 1e-3 - 1e-9


def test_winner_take_all_picks_the_best_mode_on_valid_steps():
  t = np.arange(F, dtype=np.float32)
  target = np.stack([t, np.zeros(F, np.float32)], -1)[None]          # (1, F, 2)
  valid = np.array([[1, 1, 1, 0, 0]], np.float32)
  loc = np.repeat(target[:, None], 3, axis=1).copy()                  # (1, 3, F, 2)
  loc[0, 0, :, 1] = 0.5                                               # 0.5 off everywhere
  loc[0, 1, :3, 1] = 0.2                                              # best on valid steps,
  loc[0, 1, 3:, 1] = 9.0                                              # bad on invalid ones
  loc[0, 2, :, 1] = -0.3
  scale = np.ones_like(loc)
  loss, best = losses.winner_take_all_laplace(loc, scale, target, valid)
  assert best.dtype == jnp.int32 and int(best[0]) == 1
  np.testing.assert_allclose(loss, [2 * np.log(2.0) + 0.2], rtol=1e-6)


def test_winner_take_all_matches_reference_and_grads_reach_only_the_best_mode():
  loc, scale, target, valid = _case(2)
  valid[2] = 0.0                                       # an agent without a valid future
  target[2] = np.nan
  loss, best = losses.winner_take_all_laplace(loc, scale, target, valid)
  err, count = _np_err(loc, np.nan_to_num(target), valid)
  want_best = np.argmin(err, -1)
  np.testing.assert_array_equal(best[:2], want_best[:2])
  for a in range(2):
    nll = _np_nll(loc[a, want_best[a]], scale[a, want_best[a]], target[a])
    np.testing.assert_allclose(loss[a], (nll * valid[a]).sum() / count[a], rtol=1e-5)
  assert float(loss[2]) == 0.0

  grad_fn = jax.jit(jax.grad(lambda m, s: jnp.sum(
      losses.winner_take_all_laplace(m, s, target, valid)[0]), argnums=(0, 1)))
  g_loc, g_scale = (np.asarray(g) for g in grad_fn(loc, scale))
  assert np.all(np.isfinite(g_loc)) and np.all(np.isfinite(g_scale))
  for a in range(A):
    for k in range(K):
      chosen = a < 2 and k == want_best[a]
      assert (np.abs(g_scale[a, k]).sum() > 0) == chosen, (a, k)
      assert (np.abs(g_loc[a, k]).sum() > 0) == chosen, (a, k)


def test_soft_target_confidence_matches_reference_and_stops_gradient():
  loc, _, target, valid = _case(3)
  logits = np.random.default_rng(4).normal(size=(A, K)).astype(np.float32)
  valid[1] = 0.0
  got = losses.soft_target_confidence(logits, loc, target, valid)
  err, count = _np_err(loc, target, valid)
  q = np.exp(-err / np.maximum(count, 1)[:, None])
  q /= q.sum(-1, keepdims=True)
  logp = logits - np.log(np.exp(logits.astype(np.float64)).sum(-1, keepdims=True))
  want = np.where(count > 0, -(q * logp).sum(-1), 0.0)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  assert float(got[1]) == 0.0

  f = lambda lg, m: jnp.sum(losses.soft_target_confidence(lg, m, target, valid))
  g_logits, g_loc = jax.jit(jax.grad(f, argnums=(0, 1)))(logits, loc)
  np.testing.assert_array_equal(g_loc, 0.0)
  p = np.exp(logp)
  np.testing.assert_allclose(g_logits, np.where(count[:, None] > 0, p - q, 0.0), atol=1e-6)


@pytest.mark.parametrize("fn", ["wta", "conf"])
def test_bad_shapes_name_the_argument(fn):
  loc, scale, target, valid = _case(5)
  call = {"wta": functools.partial(losses.winner_take_all_laplace, loc, scale),
          "conf": functools.partial(losses.soft_target_confidence, np.zeros((A, K)), loc)}[fn]
  with pytest.raises(ValueError, match="`target`"):
    call(target[:, :-1], valid)
  with pytest.raises(ValueError, match="`valid`"):
    call(target, valid[:, :-1])
  if fn == "wta":
    with pytest.raises(ValueError, match="`scale`"):
      losses.winner_take_all_laplace(loc, scale[:, :-1], target, valid)
  else:
    with pytest.raises(ValueError, match="`logits`"):
      losses.soft_target_confidence(np.zeros((A, K + 1)), loc, target, valid)
