"""Planar geometry kernels (issue 4; spec icpr-13 Sec. 2 eq. 4 and Sec. 6.8).

References are NumPy float64 transcriptions of QCNet's ``utils/geometry.py`` and of the
textbook rotation ``[[cos, -sin], [sin, cos]]``, plus hand-built poses with closed forms.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxvision import ops

x64 = functools.partial(jax.enable_x64, True)


def _np_wrap(a):
  return -np.pi + np.mod(np.asarray(a, np.float64) + np.pi, 2 * np.pi)


def _np_rot(theta):
  c, s = np.cos(theta), np.sin(theta)
  return np.array([[c, -s], [s, c]])


def _np_features(pi, hi, pj, hj, ti=None, tj=None):
  """QCNet ``r_a2a`` / ``r_t`` for one edge, float64 (``atan2(cross, dot)``)."""
  rel = np.asarray(pj, np.float64) - pi
  head = np.array([np.cos(hi), np.sin(hi)])
  out = [np.hypot(*rel), np.arctan2(head[0] * rel[1] - head[1] * rel[0], head @ rel),
         _np_wrap(hj - hi)]
  if ti is not None:
    out.append(tj - ti)
  return np.array(out)


def _angle_close(a, b, atol):
  """Angles equal modulo 2 pi (a value at the +-pi seam may come out on either side)."""
  d = np.mod(np.asarray(a, np.float64) - np.asarray(b, np.float64) + np.pi, 2 * np.pi) - np.pi
  np.testing.assert_allclose(d, 0.0, atol=atol)


def _random_poses(seed, shape):
  rng = np.random.default_rng(seed)
  pos = rng.uniform(-6, 6, size=shape + (2,)).astype(np.float32)
  head = rng.uniform(-np.pi, np.pi, size=shape).astype(np.float32)
  return pos, head


# ------------------------------------------------------------------------------------------
# wrap_angle, rotation_matrix, frames.


def test_wrap_angle_edge_cases_and_range():
  with x64():
    pi = math.pi
    got = ops.wrap_angle(jnp.array([pi, -pi, 3 * pi, -3 * pi, 0.0, 2 * pi, pi / 2, -pi / 2]))
    np.testing.assert_allclose(got, [-pi, -pi, -pi, -pi, 0.0, 0.0, pi / 2, -pi / 2],
                               atol=1e-12)
    theta = np.random.default_rng(0).uniform(-50, 50, size=200)
    np.testing.assert_allclose(ops.wrap_angle(jnp.asarray(theta)), _np_wrap(theta), atol=1e-12)
  # float32: the remainder can round up to 2 pi just below -pi; the result stays < pi.
  below = np.nextafter(-np.float32(np.pi), np.float32(-10.0))
  theta = jnp.asarray(np.concatenate([[below, np.float32(np.pi)],
                                      np.random.default_rng(1).uniform(-1e3, 1e3, 1000)]),
                      jnp.float32)
  got = np.asarray(ops.wrap_angle(theta))
  assert got.dtype == np.float32
  assert np.all(got >= -np.float32(np.pi)) and np.all(got < np.float32(np.pi))
  _angle_close(got, np.asarray(theta, np.float64), atol=1e-4)
  np.testing.assert_allclose(jax.grad(lambda t: jnp.sum(ops.wrap_angle(t)))(theta), 1.0)


def test_rotation_matrix_and_frame_round_trip():
  rng = np.random.default_rng(2)
  theta = rng.uniform(-4, 4, size=(3, 5))
  R = ops.rotation_matrix(jnp.asarray(theta, jnp.float32))
  assert R.shape == (3, 5, 2, 2)
  np.testing.assert_allclose(R[1, 2], _np_rot(theta[1, 2]), atol=1e-6)
  np.testing.assert_allclose(jnp.linalg.det(R), 1.0, atol=1e-6)

  points = rng.uniform(-10, 10, size=(4, 7, 2)).astype(np.float32)
  origin = rng.uniform(-10, 10, size=(4, 2)).astype(np.float32)
  heading = rng.uniform(-np.pi, np.pi, size=4).astype(np.float32)
  local = ops.to_local_frame(points, origin[:, None], heading[:, None])
  want = np.einsum("aij,atj->ati", np.stack([_np_rot(-h) for h in heading]),
                   points - origin[:, None])
  np.testing.assert_allclose(local, want, atol=1e-5)
  back = ops.from_local_frame(local, origin[:, None], heading[:, None])
  np.testing.assert_allclose(back, points, atol=1e-5)
  # The origin itself maps to 0 and the heading direction to the local +x axis.
  ahead = origin + 3.0 * np.stack([np.cos(heading), np.sin(heading)], -1)
  np.testing.assert_allclose(ops.to_local_frame(ahead, origin, heading),
                             np.tile([3.0, 0.0], (4, 1)), atol=1e-5)


def test_se2_apply_moves_points_and_headings():
  rng = np.random.default_rng(3)
  points, headings = _random_poses(4, (5, 3))
  rot, trans = 0.7, np.array([2.5, -1.0], np.float32)
  moved, moved_head = ops.se2_apply(points, headings, rot, trans)
  np.testing.assert_allclose(moved, points @ _np_rot(rot).T + trans, atol=1e-5)
  _angle_close(moved_head, headings + rot, atol=1e-6)
  assert np.all(np.asarray(moved_head) < np.pi)
  only, none = ops.se2_apply(points, None, rot, trans)
  assert none is None
  np.testing.assert_allclose(only, moved, atol=0)
  # A point's coordinates in an agent's frame do not change when the scene moves.
  o = rng.integers(0, 5)
  np.testing.assert_allclose(
      ops.to_local_frame(moved, moved[o, 0], moved_head[o, 0]),
      ops.to_local_frame(points, points[o, 0], headings[o, 0]), atol=1e-5)


# ------------------------------------------------------------------------------------------
# Relative pose features (eq. 4, QCNet r_ij).


def test_relative_pose_features_closed_forms():
  pos_i = jnp.array([[0.0, 0.0], [1.0, 1.0], [2.0, 3.0], [2.0, 3.0]])
  head_i = jnp.array([0.0, math.pi / 2, math.pi / 4, math.pi / 4])
  pos_j = jnp.array([[0.0, 2.0], [0.0, 1.0], [3.0, 4.0], [3.0, 2.0]])
  head_j = jnp.array([math.pi / 2, -math.pi / 2, 0.0, -3.0])
  got = ops.relative_pose_features(pos_i, head_i, pos_j, head_j)
  want = [[2.0, math.pi / 2, math.pi / 2],         # straight left of i, turned left
          [1.0, math.pi / 2, -math.pi],            # i faces +y, j to its left, opposite way
          [math.sqrt(2), 0.0, -math.pi / 4],       # dead ahead
          [math.sqrt(2), -math.pi / 2, 2 * math.pi - 3.0 - math.pi / 4]]  # right; wrapped
  np.testing.assert_allclose(got, want, atol=1e-6)
  with_time = ops.relative_pose_features(pos_i, head_i, pos_j, head_j, jnp.full(4, 9),
                                         jnp.arange(4))
  assert with_time.shape == (4, 4)
  np.testing.assert_allclose(with_time[:, :3], got, atol=0)
  np.testing.assert_allclose(with_time[:, 3], [-9.0, -8.0, -7.0, -6.0])


def test_relative_pose_features_match_qcnet_reference_all_pairs():
  pos, head = _random_poses(5, (2, 6))
  t = np.arange(6, dtype=np.float32)[None].repeat(2, 0)
  got = np.asarray(ops.relative_pose_features(
      pos[:, :, None], head[:, :, None], pos[:, None], head[:, None], t[:, :, None],
      t[:, None]))
  assert got.shape == (2, 6, 6, 4)
  for b in range(2):
    for i in range(6):
      for j in range(6):
        want = _np_features(pos[b, i], head[b, i], pos[b, j], head[b, j], t[b, i], t[b, j])
        np.testing.assert_allclose(got[b, i, j, [0, 3]], want[[0, 3]], atol=1e-5)
        _angle_close(got[b, i, j, 1:3], want[1:3], atol=1e-5)


def test_relative_pose_features_are_se2_invariant():
  pos, head = _random_poses(6, (3, 8))
  rng = np.random.default_rng(7)
  rot = np.float32(rng.uniform(-np.pi, np.pi))
  trans = rng.uniform(-5, 5, size=2).astype(np.float32)
  features = lambda p, h: ops.relative_pose_features(p[:, :, None], h[:, :, None],
                                                     p[:, None], h[:, None])
  before = np.asarray(features(pos, head))
  after = np.asarray(features(*ops.se2_apply(pos, head, rot, trans)))
  np.testing.assert_allclose(after[..., 0], before[..., 0], atol=1e-5)
  # Off-diagonal bearings; the diagonal is a zero vector, bearing 0 by convention.
  _angle_close(after[..., 1:], before[..., 1:], atol=1e-5)
  np.testing.assert_allclose(before[:, np.arange(8), np.arange(8)], 0.0, atol=0)


def test_gradients_finite_at_coincident_points_and_correct_elsewhere():
  p = jnp.array([1.5, -2.0])

  def total(pi, hi, pj, hj):
    return jnp.sum(ops.relative_pose_features(pi, hi, pj, hj) * jnp.array([1.0, 2.0, 3.0]))

  grads = jax.jit(jax.grad(total, argnums=(0, 1, 2, 3)))(p, 0.4, p, -1.1)
  for g in grads:
    assert np.all(np.isfinite(np.asarray(g)))
  np.testing.assert_allclose(grads[0], 0.0, atol=0)        # distance, bearing: zero at 0
  np.testing.assert_allclose(grads[1], -3.0, atol=1e-6)    # d wrap(hj - hi)/d hi
  np.testing.assert_allclose(jax.grad(lambda x: ops.safe_norm(x))(jnp.zeros(2)), 0.0, atol=0)
  assert float(ops.angle_between_2d_vectors(jnp.array([1.0, 0.0]), jnp.zeros(2))) == 0.0
  with x64():
    rng = np.random.default_rng(8)
    args = tuple(jnp.asarray(a) for a in (rng.normal(size=(3, 2)), rng.normal(size=3),
                                          rng.normal(size=(3, 2)) + 2.0, rng.normal(size=3)))
    check_grads(jax.jit(ops.relative_pose_features), args, order=1, modes=["rev"])


def test_bad_inputs_name_the_argument():
  with pytest.raises(ValueError, match="`pos_i`"):
    ops.relative_pose_features(jnp.zeros((3, 3)), jnp.zeros(3), jnp.zeros((3, 2)), jnp.zeros(3))
  with pytest.raises(ValueError, match="`time_i` and `time_j`"):
    ops.relative_pose_features(jnp.zeros((3, 2)), jnp.zeros(3), jnp.zeros((3, 2)),
                               jnp.zeros(3), time_i=jnp.zeros(3))
  with pytest.raises(ValueError, match="`head_j`"):
    ops.relative_pose_features(jnp.zeros((3, 2)), jnp.zeros(3), jnp.zeros((3, 2)),
                               jnp.zeros(4))
  with pytest.raises(TypeError, match="`theta`"):
    ops.wrap_angle(jnp.zeros(2, jnp.complex64))
