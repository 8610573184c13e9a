"""Smoke tests of ``benchmarks/ssm_toys.py`` (spec icpr-13 Secs. 6.11, 6.12): the toy data, the
token orders, the pose target against an independent float64 chaining of the relative poses,
a few training steps, and the report writers."""

from __future__ import annotations

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import ssm_toys

# One compiled pose generator for the tests below (batch 32, 7 poses).
_pose_batch = jax.jit(ssm_toys.pose_batch, static_argnums=(1, 2))


def test_local_causal_mask_matches_loop():
  got = np.asarray(ssm_toys.local_causal_mask(9, 3))
  want = np.array([[1 <= i - j <= 3 for j in range(9)] for i in range(9)])
  np.testing.assert_array_equal(got, want)


def test_recall_batch_layout():
  x, label = jax.jit(ssm_toys.recall_batch, static_argnums=(1, 2, 3))(
      jax.random.PRNGKey(0), 256, 10, 8)
  x, label = np.asarray(x), np.asarray(label)
  assert x.shape == (256, 10, 8) and label.shape == (256,)
  assert set(np.unique(label)) == {0.0, 1.0}
  first = np.eye(10)[0][None].repeat(256, 0)
  np.testing.assert_array_equal(x[:, :, 0], first * (2 * label - 1)[:, None])   # label, token 0
  np.testing.assert_array_equal(x[:, :, 1], first)                              # marker
  np.testing.assert_array_equal(x[:, :, 2], 1.0)                                # token type
  assert abs(x[:, :, 3:].std() / ssm_toys.TOKEN_NOISE - 1.0) < 0.05             # noise
  # The noise carries nothing about the label.
  assert abs(np.corrcoef(x[:, 1:, 3:].mean((1, 2)), label)[0, 1]) < 0.2


def test_recall_permutation_orders():
  perms = jax.jit(lambda key: {o: ssm_toys.recall_permutation(key, 64, 12, o, window=3)
                               for o in ssm_toys.ORDERS})(jax.random.PRNGKey(1))
  for order, perm in perms.items():
    perm = np.asarray(perm)
    assert perm.shape == (64, 12) and perm.dtype == np.int32, order
    np.testing.assert_array_equal(np.sort(perm, 1), np.arange(12)[None].repeat(64, 0))
    if order == "given":
      np.testing.assert_array_equal(perm, np.arange(12)[None].repeat(64, 0))
      continue
    assert len({tuple(p) for p in perm}) > 60, order                  # fresh per sequence
    if order == "label_last":
      np.testing.assert_array_equal(perm[:, -1], 0)
    if order == "window_last":
      np.testing.assert_array_equal(np.sort(perm[:, -4:], 1), np.arange(4)[None].repeat(64, 0))
      assert len({tuple(p[-4:]) for p in perm}) > 1                   # the tail is shuffled too
    if order == "random":
      # The label token lands before the last token about half of the time.
      before = np.argmax(perm == 0, 1) < np.argmax(perm == 11, 1)
      assert 0.3 < before.mean() < 0.7


def test_recall_permutation_rejects_unknown_order():
  with pytest.raises(ValueError, match="`order` must be one of"):
    ssm_toys.recall_permutation(jax.random.PRNGKey(0), 2, 5, "sorted")


def test_pose_target_is_the_chained_relative_poses():
  """The target (token 0 in the last frame) follows from the ``r_{t,t-1}`` alone: chain them in
  float64 NumPy (token ``t-1``'s pose in ``t``'s frame is ``(d cos b, d sin b)`` with relative
  heading ``phi``), which is the information the SSM gets through rho."""
  b = _pose_batch(jax.random.PRNGKey(2), 32, 7)
  b = jax.tree.map(np.asarray, b)
  assert b["tokens"].shape == (32, 7, ssm_toys.HIDDEN) and b["rel"].shape == (32, 7, 3)
  np.testing.assert_array_equal(b["rel"][:, 0], 0.0)
  np.testing.assert_array_equal(b["rel_valid"], np.eye(7)[0][None].repeat(32, 0) == 0)
  q = np.zeros((32, 2))                                        # token 0 in its own frame
  for t in range(1, 7):
    dist, bearing, phi = (b["rel"][:, t, i].astype(np.float64) for i in range(3))
    c, s = np.cos(phi), np.sin(phi)
    q = np.stack([dist * np.cos(bearing) + c * q[:, 0] - s * q[:, 1],
                  dist * np.sin(bearing) + s * q[:, 0] + c * q[:, 1]], -1)
  np.testing.assert_allclose(b["target"], q, atol=2e-4)
  # Steps and turns stay in the documented ranges.
  step = np.linalg.norm(np.diff(b["position"], axis=1), axis=-1)
  lo, hi = ssm_toys.POSE_STEP
  assert step.min() >= lo - 1e-4 and step.max() <= hi + 1e-4
  assert np.abs(b["rel"][:, 1:, 2]).max() <= ssm_toys.POSE_MAX_TURN + 1e-5


def test_pose_models_use_rel_only_where_claimed():
  """``rho`` feeds the relative pose to the SSM only (the eq. 5 parameters, no token path) and
  depends on it, not on the masked row 0; ``rel_in_tokens`` and ``rel_in_ssm_input`` have no
  injection; ``no_rho`` never sees it."""
  b = jax.tree.map(lambda x: x[:1], _pose_batch(jax.random.PRNGKey(3), 32, 7))
  # Three copies of the sequence: as is, row 0 changed (masked), row 3 changed.
  tokens = jnp.repeat(b["tokens"], 3, 0)
  rel = jnp.repeat(b["rel"], 3, 0).at[1, 0].set(5.0).at[2, 3].add(2.0)
  valid = jnp.repeat(b["rel_valid"], 3, 0)
  model = ssm_toys.pose_model("rho")
  # Random parameters of the right shapes (the initialisers are slow to compile).
  leaves, tree = jax.tree.flatten(jax.eval_shape(model.init, jax.random.PRNGKey(0), tokens,
                                                 None, rel, valid))
  sizes = np.cumsum([x.size for x in leaves])[:-1]
  flat = 0.3 * np.random.default_rng(0).standard_normal(sizes[-1] + leaves[-1].size)
  params = jax.tree.unflatten(tree, [jnp.asarray(v.reshape(x.shape), jnp.float32)
                                     for v, x in zip(np.split(flat, sizes), leaves)])
  y = np.asarray(jax.jit(model.apply)(params, tokens, None, rel, valid))
  np.testing.assert_array_equal(y[1], y[0])                            # row 0 is masked
  assert np.abs(y[2] - y[0]).max() > 1e-4                              # the pose matters
  shape = lambda v, *a: str(jax.tree_util.tree_structure(
      jax.eval_shape(ssm_toys.pose_model(v).init, jax.random.PRNGKey(0), tokens, *a)))
  assert "rel_a" in str(tree)
  for v in ("rel_in_tokens", "rel_in_ssm_input"):
    assert "rel_embedding" in shape(v, None, rel, valid) and "rel_a" not in shape(
        v, None, rel, valid), v
  assert "ssm_block" in shape("rel_in_ssm_input", None, rel, valid)   # the split block
  assert "rel" not in shape("no_rho")
  with pytest.raises(ValueError, match="`variant` must be one of"):
    ssm_toys.pose_model("tokens")
  with pytest.raises(ValueError, match="`rel_mode` must be one of"):
    jax.eval_shape(ssm_toys.ToyASB(2, rel_mode="input").init, jax.random.PRNGKey(0), tokens,
                   None, rel, valid)


class _LastTokenProbe(nn.Module):
  """A linear head on the last token (ignores the SSM order): cheap to compile."""

  @nn.compact
  def __call__(self, x, perm=None):
    del perm
    return nn.Dense(1)(x[:, -1])


def test_fit_trains_each_seed_and_report(tmp_path):
  """``fit`` trains the seeds together and tests them: with ``L = 1`` the last token is the
  label token, so a linear probe must learn the recall in a few dozen Adam steps; then the
  JSON/markdown/figure writers on the result."""
  run = ssm_toys.fit(_LastTokenProbe(), *ssm_toys.recall_task(1), [0, 1], 30, lr=0.05,
                     test_size=ssm_toys.EVAL_BATCH)
  assert len(run["test"]) == 2 and min(run["test"]) > 0.95, run["test"]
  loss = np.asarray(run["loss_curve"])
  assert loss.shape == (30, 2) and np.isfinite(loss).all()
  assert (loss[-5:].mean(0) < 0.5 * loss[:5].mean(0)).all()          # it learned, per seed
  assert not np.allclose(loss[:, 0], loss[:, 1])                      # the seeds differ
  recall = {"attention": {"use_ssm": False, "order": "given",
                          **ssm_toys._summary(run, [0, 1], False)}}
  pose_run = {"test": [2.0, 3.0], "seconds": 1.0, "metric_curve": [[9.0, 8.0], [4.0, 5.0]],
              "loss_curve": [[1.0, 1.0], [0.5, 0.5]]}
  report = {"config": {"steps": 4, "seeds": [0, 1], "batch": 64, "learning_rate": 3e-3,
                       "test_size": 512}, "cpu": "cpu", "seconds": 1.0, "recall": recall,
            "pose": {"baselines": {"0": {"zero": 40.0, "mean": 20.0},
                                   "1": {"zero": 42.0, "mean": 21.0}},
                     "rho": ssm_toys._summary(pose_run, [0, 1], True),
                     "no_rho": ssm_toys._summary({**pose_run, "test": [19.0, 21.0]}, [0, 1],
                                                 True)}}
  report["claims"] = ssm_toys.claims(report)
  assert any("rho lower MSE than no_rho: yes (2.500 vs 20.000" in c for c in report["claims"])
  ssm_toys.plot(report, tmp_path / "toys.png")
  assert (tmp_path / "toys.png").stat().st_size > 1000
  md = ssm_toys.markdown(report)
  assert "| rho | 2.500 | 2.000, 3.000 |" in md and "| predict mean | 20.500 |" in md
  json.dumps(report)
