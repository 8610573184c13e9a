"""Token sorting (issue 4; spec icpr-13 Sec. 2 "Sorting" and Sec. 6.7).

References: a NumPy double loop for the radius degree and ``np.lexsort`` over
``(valid, key + U[0, jitter))`` in float64 for the permutations.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision import ops


def _np_degree(pos, valid, radius):
  n = len(pos)
  deg = np.zeros(n, np.int64)
  for i in range(n):
    for j in range(n):
      if i != j and valid[i] and valid[j] and np.linalg.norm(pos[i] - pos[j]) < radius:
        deg[i] += 1
  return deg


def _np_perm(key, valid, noise=None):
  """Padded first (original order), then ascending ``key + noise`` (float64), then index."""
  key = np.asarray(key, np.float64) + (0.0 if noise is None else np.asarray(noise, np.float64))
  valid = np.asarray(valid, bool)
  return np.concatenate([np.flatnonzero(~valid),
                         np.flatnonzero(valid)[np.argsort(key[valid], kind="stable")]])


def test_radius_degree_matches_double_loop():
  rng = np.random.default_rng(0)
  pos = rng.uniform(0, 10, size=(3, 12, 2)).astype(np.float32)
  pos[0, 1] = pos[0, 0]                       # distinct tokens at one point count each other
  pos[0, 2], pos[0, 3] = [0.0, 0.0], [3.0, 0.0]   # exactly at the radius: not a neighbour
  valid = rng.random((3, 12)) < 0.8
  valid[0, :4] = True
  got = ops.radius_degree(pos, valid.astype(np.float32), 3.0)
  assert got.dtype == jnp.int32 and got.shape == (3, 12)
  for b in range(3):
    np.testing.assert_array_equal(got[b], _np_degree(pos[b], valid[b], 3.0))
  assert np.all(np.asarray(got)[~valid] == 0)
  np.testing.assert_array_equal(ops.radius_degree(pos[1], None, 3.0),
                                _np_degree(pos[1], np.ones(12, bool), 3.0))


def test_sort_without_rng_is_a_stable_ascending_sort_with_padding_first():
  rng = np.random.default_rng(1)
  key = rng.integers(0, 4, size=(4, 15))
  valid = rng.random((4, 15)) < 0.7
  perm = np.asarray(ops.sort_permutation(jnp.asarray(key), jnp.asarray(valid)))
  assert perm.dtype == np.int32
  for b in range(4):
    np.testing.assert_array_equal(perm[b], _np_perm(key[b], valid[b]))
    n_pad = int((~valid[b]).sum())
    assert not valid[b][perm[b, :n_pad]].any() and valid[b][perm[b, n_pad:]].all()
    assert np.all(np.diff(key[b][perm[b, n_pad:]]) >= 0)
  fkey = rng.normal(size=15).astype(np.float32)
  np.testing.assert_array_equal(ops.sort_permutation(fkey), np.argsort(fkey, kind="stable"))


def test_random_tie_break_is_key_plus_uniform_and_permutes_only_ties():
  rng = np.random.default_rng(2)
  key = rng.integers(0, 3, size=(2, 20))
  valid = rng.random((2, 20)) < 0.8
  orders = []
  for seed in range(6):
    prng = jax.random.key(seed)
    perm = np.asarray(ops.sort_permutation(key, valid, rng=prng, jitter=0.5))
    noise = np.asarray(jax.random.uniform(prng, key.shape, jnp.float32, 0.0, 0.5))
    for b in range(2):
      np.testing.assert_array_equal(perm[b], _np_perm(key[b], valid[b], noise[b]))
      n_pad = int((~valid[b]).sum())
      # Padding keeps its original order; valid tokens are ascending in the integer key.
      np.testing.assert_array_equal(perm[b, :n_pad], np.flatnonzero(~valid[b]))
      assert np.all(np.diff(key[b][perm[b, n_pad:]]) >= 0)
    np.testing.assert_array_equal(ops.sort_permutation(key, valid, rng=prng), perm)  # determ.
    orders.append(tuple(perm.ravel()))
  assert len(set(orders)) == 6       # different keys give different tie orders


def test_integer_keys_beyond_float32_precision_still_sort_exactly():
  key = jnp.array([2**25 + 1, 2**25, 2**25 + 1, 2**25], jnp.int32)
  for seed in range(4):
    perm = np.asarray(ops.sort_permutation(key, rng=jax.random.key(seed), jitter=0.9))
    assert set(perm[:2]) == {1, 3} and set(perm[2:]) == {0, 2}


def test_every_tie_order_appears_under_vmap_over_keys():
  key = jnp.array([1, 0, 1, 1, 2])
  keys = jax.random.split(jax.random.key(3), 240)
  perms = np.asarray(jax.vmap(lambda k: ops.sort_permutation(key, rng=k))(keys))
  assert np.all(perms[:, 0] == 1) and np.all(perms[:, 4] == 4)
  seen = {tuple(p[1:4]) for p in perms}
  assert seen == set(itertools.permutations([0, 2, 3]))


def test_unsort_of_sort_is_identity_and_inverse_matches_argsort():
  rng = np.random.default_rng(4)
  x = jnp.asarray(rng.normal(size=(3, 10, 2, 5)), jnp.float32)
  key = jnp.asarray(rng.integers(0, 4, size=(3, 10)))
  perm = ops.sort_permutation(key, rng=jax.random.key(5))
  inv = ops.inverse_permutation(perm)
  np.testing.assert_array_equal(inv, np.argsort(np.asarray(perm), axis=-1))
  sorted_x = ops.apply_permutation(x, perm, axis=1)
  np.testing.assert_array_equal(sorted_x, np.take_along_axis(
      np.asarray(x), np.asarray(perm)[:, :, None, None], axis=1))
  np.testing.assert_array_equal(ops.apply_permutation(sorted_x, inv, axis=1), x)
  # A single (n,) permutation applies to every batch row; negative axes count from the end.
  np.testing.assert_array_equal(ops.apply_permutation(x, perm[0], axis=-3),
                                np.asarray(x)[:, np.asarray(perm[0])])


def test_ensemble_over_tie_orders_is_invariant_to_key_order():
  rng = np.random.default_rng(6)
  x = jnp.asarray(rng.normal(size=(12, 3)), jnp.float32)
  key = jnp.asarray(rng.integers(0, 3, size=12))

  def order_dependent(k):
    perm = ops.sort_permutation(key, rng=k)
    y = jnp.cumsum(ops.apply_permutation(x, perm, axis=0), axis=0)    # a causal "scan"
    return ops.apply_permutation(y, ops.inverse_permutation(perm), axis=0)

  ensemble = jax.jit(jax.vmap(order_dependent))
  keys = jax.random.split(jax.random.key(7), 8)
  outs = ensemble(keys)
  assert float(jnp.max(jnp.abs(outs[0] - outs[1]))) > 0   # orders do differ
  np.testing.assert_allclose(jnp.mean(outs, 0), jnp.mean(ensemble(keys[::-1]), 0), atol=1e-6)


def test_bad_inputs_name_the_argument():
  with pytest.raises(ValueError, match="`jitter`"):
    ops.sort_permutation(jnp.arange(3), rng=jax.random.key(0), jitter=1.0)
  with pytest.raises(ValueError, match="`mask`"):
    ops.sort_permutation(jnp.arange(3), mask=jnp.ones(4))
  with pytest.raises(ValueError, match="`perm`"):
    ops.apply_permutation(jnp.zeros((2, 5, 3)), jnp.zeros((2, 4), jnp.int32), axis=1)
  with pytest.raises(ValueError, match="`positions`"):
    ops.radius_degree(jnp.zeros((4, 3)), None, 1.0)
  with pytest.raises(ValueError, match="`radius`"):
    ops.radius_degree(jnp.zeros((4, 2)), None, 0.0)
