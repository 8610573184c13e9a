"""Planar (SE(2)) geometry for motion forecasting: angles, local frames, relative poses.

The kernels behind the relative-pose features of MambaTraj (spec Sec. 2, eq. 4, which follows
QCNet, Zhou et al., CVPR 2023) and the SE(2)-invariance property of spec Sec. 6.8:

* ``wrap_angle`` -- angles to ``[-pi, pi)`` (QCNet ``utils.wrap_angle``).
* ``rotation_matrix``, ``to_local_frame``, ``from_local_frame`` -- a pose's frame.
* ``relative_pose_features`` -- QCNet's ``r_ij = [||p_j - p_i||, angle(h_i, p_j - p_i),
  wrap(theta_j - theta_i), (t_j - t_i)]``, invariant to any rigid motion of the scene.
* ``se2_apply`` -- move a whole scene (points and headings) by one rigid motion.
* ``safe_norm``, ``angle_between_2d_vectors`` -- the two building blocks, gradient-safe.

Every function broadcasts over leading axes with NumPy rules. Coincident points are
gradient-safe: the distance ``0`` and the undefined bearing ``atan2(0, 0) = 0`` of a
zero vector have zero (not NaN) gradients.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

__all__ = [
    "angle_between_2d_vectors",
    "from_local_frame",
    "relative_pose_features",
    "rotation_matrix",
    "safe_norm",
    "se2_apply",
    "to_local_frame",
    "wrap_angle",
]


def _float(x, name: str, fn: str) -> jax.Array:
  """``x`` as an array in a floating dtype (integers become float32)."""
  x = jnp.asarray(x)
  if jnp.issubdtype(x.dtype, jnp.complexfloating) or x.dtype == jnp.bool_:
    raise TypeError(f"{fn}: `{name}` must be real; found dtype {x.dtype}.")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    x = x.astype(jnp.float32)
  return x


def _points(x, name: str, fn: str) -> jax.Array:
  x = _float(x, name, fn)
  if x.ndim < 1 or x.shape[-1] != 2:
    raise ValueError(f"{fn}: `{name}` must have shape (..., 2); found {x.shape}.")
  return x


def wrap_angle(theta: jax.Array) -> jax.Array:
  """Wraps angles to ``[-pi, pi)``: ``-pi + (theta + pi) mod 2 pi`` (QCNet ``wrap_angle``).

  ``pi`` maps to ``-pi``; the derivative is 1 everywhere. Floating rounding can make the
  remainder equal ``2 pi`` for ``theta + pi`` just below a multiple of ``2 pi``; that case
  is folded back, so the result is always ``< pi`` (in the working dtype).

  Args:
    theta: radians, any shape; integer inputs are computed in float32.

  Returns:
    Same shape and floating dtype as ``theta``.
  """
  theta = _float(theta, "theta", "wrap_angle")
  out = jnp.remainder(theta + math.pi, 2.0 * math.pi) - math.pi
  return jnp.where(out >= math.pi, out - 2.0 * math.pi, out)


def rotation_matrix(theta: jax.Array) -> jax.Array:
  """The counter-clockwise rotation ``[[cos, -sin], [sin, cos]]``.

  Args:
    theta: radians, shape ``(...)``.

  Returns:
    ``(..., 2, 2)`` in the floating dtype of ``theta``.
  """
  theta = _float(theta, "theta", "rotation_matrix")
  c, s = jnp.cos(theta), jnp.sin(theta)
  return jnp.stack([jnp.stack([c, -s], -1), jnp.stack([s, c], -1)], -2)


def _rotate(points: jax.Array, c: jax.Array, s: jax.Array) -> jax.Array:
  """``R points`` with ``R = [[c, -s], [s, c]]``, elementwise (no matmul precision issue)."""
  x, y = points[..., 0], points[..., 1]
  return jnp.stack([c * x - s * y, s * x + c * y], -1)


def to_local_frame(points: jax.Array, origin: jax.Array, heading: jax.Array) -> jax.Array:
  """Expresses world points in the frame at ``origin`` whose x axis points along ``heading``.

  ``local = R(-heading) (points - origin)``; the inverse of ``from_local_frame``.

  Args:
    points: ``(..., 2)``.
    origin: ``(..., 2)``, broadcast-compatible with ``points``.
    heading: radians, broadcast-compatible with ``points[..., 0]`` (add axes to use one
      frame for many points, e.g. ``origin[:, None]``, ``heading[:, None]``).

  Returns:
    ``(..., 2)``, the broadcast shape.
  """
  fn = "to_local_frame"
  points, origin = _points(points, "points", fn), _points(origin, "origin", fn)
  heading = _float(heading, "heading", fn)
  return _rotate(points - origin, jnp.cos(heading), -jnp.sin(heading))


def from_local_frame(points: jax.Array, origin: jax.Array, heading: jax.Array) -> jax.Array:
  """Maps points from the frame at (``origin``, ``heading``) back to the world frame.

  ``world = R(heading) points + origin``; the inverse of ``to_local_frame``.

  Args:
    points: ``(..., 2)`` local coordinates.
    origin: ``(..., 2)``, broadcast-compatible with ``points``.
    heading: radians, broadcast-compatible with ``points[..., 0]``.

  Returns:
    ``(..., 2)``, the broadcast shape.
  """
  fn = "from_local_frame"
  points, origin = _points(points, "points", fn), _points(origin, "origin", fn)
  heading = _float(heading, "heading", fn)
  return _rotate(points, jnp.cos(heading), jnp.sin(heading)) + origin


def safe_norm(x: jax.Array, axis: int = -1, keepdims: bool = False) -> jax.Array:
  """Euclidean norm whose gradient at ``x = 0`` is 0 instead of NaN.

  Args:
    x: real array.
    axis: the reduced axis.
    keepdims: keep it with size 1.

  Returns:
    ``x.shape`` without ``axis``; the floating dtype of ``x``.
  """
  x = _float(x, "x", "safe_norm")
  sq = jnp.sum(x * x, axis=axis, keepdims=keepdims)
  positive = sq > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def _safe_atan2(y: jax.Array, x: jax.Array) -> jax.Array:
  """``atan2(y, x)`` with value 0 and zero gradient at ``(0, 0)``."""
  zero = (x == 0) & (y == 0)
  return jnp.where(zero, 0.0, jnp.arctan2(jnp.where(zero, 0.0, y), jnp.where(zero, 1.0, x)))


def angle_between_2d_vectors(ctr_vector: jax.Array, nbr_vector: jax.Array) -> jax.Array:
  """Signed angle from ``ctr_vector`` to ``nbr_vector``, in ``[-pi, pi]``.

  ``atan2(ctr x nbr, ctr . nbr)``, QCNet's ``utils.angle_between_2d_vectors``; positive is
  counter-clockwise. A zero vector gives 0 with a zero gradient.

  Args:
    ctr_vector: ``(..., 2)``.
    nbr_vector: ``(..., 2)``, broadcast-compatible.

  Returns:
    ``(...)``, the broadcast shape.
  """
  fn = "angle_between_2d_vectors"
  a, b = _points(ctr_vector, "ctr_vector", fn), _points(nbr_vector, "nbr_vector", fn)
  cross = a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
  dot = a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1]
  return _safe_atan2(cross, dot)


def relative_pose_features(pos_i: jax.Array, head_i: jax.Array, pos_j: jax.Array,
                           head_j: jax.Array, time_i: jax.Array | None = None,
                           time_j: jax.Array | None = None) -> jax.Array:
  """QCNet's relative pose ``r_ij`` of token ``j`` seen from token ``i`` (spec eq. 4).

  Exactly the ``r_t`` / ``r_pl2a`` / ``r_a2a`` features of QCNet
  (``modules/qcnet_agent_encoder.py``), with ``i`` the attending (centre) token and ``j``
  the neighbour::

    r_ij = [ ||p_j - p_i||,
             angle_between_2d_vectors((cos theta_i, sin theta_i), p_j - p_i),
             wrap_angle(theta_j - theta_i),
             t_j - t_i ]                      # only when times are given

  Each entry is unchanged by a rigid motion of the whole scene, so attention keyed on
  ``r_ij`` is SE(2)-invariant (spec Sec. 6.8). For temporal edges QCNet's ``j`` is the
  earlier step, so ``t_j - t_i < 0``. Coincident points give distance 0 and bearing 0, with
  finite gradients.

  Args:
    pos_i: ``(..., 2)`` positions of the centre tokens.
    head_i: ``(...)`` their headings (radians).
    pos_j: ``(..., 2)`` neighbour positions; broadcast with ``pos_i`` (e.g. ``pos[:, None]``
      against ``pos[None, :]`` for all pairs).
    head_j: ``(...)`` neighbour headings.
    time_i: optional ``(...)`` time of the centre tokens (steps or seconds).
    time_j: optional ``(...)`` neighbour times; give both times or neither.

  Returns:
    ``(..., 3)``, or ``(..., 4)`` with times; the broadcast batch shape and the promoted
    floating dtype of the inputs.
  """
  fn = "relative_pose_features"
  if (time_i is None) != (time_j is None):
    raise ValueError(f"{fn}: give both `time_i` and `time_j` or neither; found "
                     f"time_i={'None' if time_i is None else 'array'}, "
                     f"time_j={'None' if time_j is None else 'array'}.")
  pos_i, pos_j = _points(pos_i, "pos_i", fn), _points(pos_j, "pos_j", fn)
  head_i, head_j = _float(head_i, "head_i", fn), _float(head_j, "head_j", fn)
  for name, h, p in (("head_i", head_i, pos_i), ("head_j", head_j, pos_j)):
    try:
      jnp.broadcast_shapes(h.shape, p.shape[:-1])
    except ValueError:
      raise ValueError(f"{fn}: `{name}` must broadcast with the positions' batch shape "
                       f"{p.shape[:-1]}; found {h.shape}.") from None
  rel = pos_j - pos_i
  head_vector = jnp.stack([jnp.cos(head_i), jnp.sin(head_i)], -1)
  feats = [safe_norm(rel), angle_between_2d_vectors(head_vector, rel),
           wrap_angle(head_j - head_i)]
  if time_i is not None:
    feats.append(_float(time_j, "time_j", fn) - _float(time_i, "time_i", fn))
  feats = jnp.broadcast_arrays(*feats)
  dtype = jnp.result_type(*feats)
  return jnp.stack([f.astype(dtype) for f in feats], -1)


def se2_apply(points: jax.Array, headings: jax.Array | None, rotation: jax.Array,
              translation: jax.Array) -> tuple[jax.Array, jax.Array | None]:
  """Moves a scene by one rigid motion: ``p -> R(rotation) p + translation``.

  Headings turn with the scene, ``theta -> wrap_angle(theta + rotation)``.

  Args:
    points: ``(..., 2)`` world positions (agents, lane-segment end points, ...).
    headings: ``(...)`` headings broadcast-compatible with ``points[..., 0]``, or ``None``.
    rotation: radians, broadcast-compatible with ``points[..., 0]`` (a scalar moves the
      whole scene; for a batch of scenes ``(B, A, T, 2)`` pass ``rotation[:, None, None]``).
    translation: ``(..., 2)`` broadcast-compatible with ``points``.

  Returns:
    ``(points', headings')``; ``headings'`` is ``None`` when ``headings`` is.
  """
  fn = "se2_apply"
  points, translation = _points(points, "points", fn), _points(translation, "translation", fn)
  rotation = _float(rotation, "rotation", fn)
  moved = _rotate(points, jnp.cos(rotation), jnp.sin(rotation)) + translation
  if headings is None:
    return moved, None
  return moved, wrap_angle(_float(headings, "headings", fn) + rotation)
