"""Token sorting for sequence models over sets: graph degrees, permutations and their inverses.

MambaTraj (spec Sec. 2 "Sorting", paper Sec. 4.3) runs a selective SSM over tokens that have
no natural order (lane segments, agents at one time step). It orders them by ascending degree
in the radius graph, shuffles equal degrees at random while training, and averages the outputs
of several random tie orders at inference. The pieces:

* ``radius_degree`` -- the number of valid neighbours within a radius (a masked
  ``dist < r`` sum).
* ``sort_permutation`` -- ascending order with padded tokens first and an optional random
  tie-break (``key + U[0, jitter)``, ``jitter < 1``, so only equal integer keys permute).
* ``apply_permutation`` / ``inverse_permutation`` -- gather along a sequence axis, and undo.

**Padded tokens first.** Padding is put at the *front* of the sorted sequence. A causal scan
that gives those tokens ``delta = 0`` (so ``Abar = exp(0 A) = 1`` and ``Bbar x = 0``) and a
zero relative-pose injection ``rho = 0`` (spec eq. 5) keeps its state exactly at the initial
``h = 0`` through them: the real tokens then see the same state as if the padding were not
there, whatever its amount. Padding at the end would instead let it read a non-zero state.
For the backward branch of a bidirectional SSM the padding is at the end of its reading
order, where it again changes nothing that real tokens read.

The inference-time ensemble over tie orders is a ``jax.vmap`` of ``sort_permutation`` over
a batch of PRNG keys.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

__all__ = [
    "apply_permutation",
    "inverse_permutation",
    "radius_degree",
    "sort_permutation",
]


def _mask_like(mask, shape: tuple[int, ...], name: str, fn: str) -> jax.Array:
  """``mask`` (0/1 or bool) broadcast to ``shape`` as bool."""
  mask = jnp.asarray(mask)
  try:
    return jnp.broadcast_to(mask, shape).astype(bool)
  except ValueError:
    raise ValueError(f"{fn}: `{name}` must broadcast to {shape}; found {mask.shape}.") from None


def radius_degree(positions: jax.Array, mask: jax.Array | None, radius: float) -> jax.Array:
  """Degree of each token in the radius graph over valid tokens (spec Sec. 2 "Sorting").

  ``deg_i = sum_{j != i} valid_i valid_j [||p_j - p_i|| < radius]``: distinct tokens at
  the same position count each other, a token never counts itself, and padded tokens have
  degree 0 and count for no one. Computed densely, ``O(n^2)`` per scene.

  Args:
    positions: float ``(..., n, 2)``.
    mask: ``(..., n)`` (1/True = valid token), broadcast-compatible; ``None`` = all valid.
    radius: ``> 0``, in the units of ``positions`` (the paper's map graph uses 50 m).

  Returns:
    int32 ``(..., n)``.
  """
  fn = "radius_degree"
  positions = jnp.asarray(positions)
  if positions.ndim < 2 or positions.shape[-1] != 2:
    raise ValueError(f"{fn}: `positions` must have shape (..., n, 2); found {positions.shape}.")
  if not jnp.issubdtype(positions.dtype, jnp.floating):
    positions = positions.astype(jnp.float32)
  if not float(radius) > 0:
    raise ValueError(f"{fn}: `radius` must be > 0; found {radius}.")
  n = positions.shape[-2]
  valid = (jnp.ones(positions.shape[:-1], bool) if mask is None
           else _mask_like(mask, positions.shape[:-1], "mask", fn))
  diff = positions[..., :, None, :] - positions[..., None, :, :]
  near = jnp.sum(diff * diff, axis=-1) < float(radius) ** 2
  pair = near & valid[..., :, None] & valid[..., None, :] & ~jnp.eye(n, dtype=bool)
  return jnp.sum(pair, axis=-1, dtype=jnp.int32)


def sort_permutation(key: jax.Array, mask: jax.Array | None = None,
                     rng: jax.Array | None = None, jitter: float = 0.5) -> jax.Array:
  """The permutation that sorts tokens by ascending ``key``, padded tokens first.

  Sorting by ``perm`` (``apply_permutation(x, perm, axis)``) gives: every padded token
  (``mask == 0``) first, in their original order, then the valid tokens by ascending
  ``key``. Without ``rng``, equal keys keep their original order (a stable sort). With
  ``rng`` the sort key is ``key + U[0, jitter)`` (spec Sec. 2 "Sorting"): for integer keys
  and ``jitter < 1`` that permutes only tokens of equal key, each tie order equally likely.
  Integer keys are sorted lexicographically by ``(key, U)`` -- the same order as
  ``key + U`` in exact arithmetic, but free of float rounding at any key size (so ``jitter``
  does not change the result). A float key gets the additive noise, which also reorders
  keys closer than ``jitter``. The same ``rng`` always gives the same permutation.

  Args:
    key: ``(..., n)`` int or float, e.g. ``radius_degree`` or time steps.
    mask: ``(..., n)`` (1/True = valid), broadcast-compatible; ``None`` = all valid.
    rng: optional PRNG key for the random tie-break.
    jitter: in ``(0, 1)``; the width of the uniform tie-break noise.

  Returns:
    int32 ``(..., n)``: ``perm[..., s]`` is the original index of the token at sorted
    position ``s``.
  """
  fn = "sort_permutation"
  key = jnp.asarray(key)
  if key.ndim < 1:
    raise ValueError(f"{fn}: `key` must have shape (..., n); found a scalar.")
  if not (jnp.issubdtype(key.dtype, jnp.integer) or jnp.issubdtype(key.dtype, jnp.floating)
          or key.dtype == jnp.bool_):
    raise TypeError(f"{fn}: `key` must be int or float; found dtype {key.dtype}.")
  if not 0.0 < float(jitter) < 1.0:
    raise ValueError(f"{fn}: `jitter` must be in (0, 1); found {jitter}.")
  valid = (jnp.ones(key.shape, bool) if mask is None
           else _mask_like(mask, key.shape, "mask", fn))
  integer = not jnp.issubdtype(key.dtype, jnp.floating)
  dtype = jnp.float64 if key.dtype == jnp.float64 else jnp.float32
  noise = (jnp.zeros(key.shape, dtype) if rng is None
           else jax.random.uniform(rng, key.shape, dtype, 0.0, float(jitter)))
  if integer:
    primary, secondary = (key.astype(jnp.int32) if key.dtype == jnp.bool_ else key), noise
  else:
    primary, secondary = key + noise, jnp.zeros(key.shape, jnp.int32)
  # Padded tokens tie on (key, noise) = 0, so they keep their original order.
  primary = jnp.where(valid, primary, jnp.zeros((), primary.dtype))
  secondary = jnp.where(valid, secondary, jnp.zeros((), secondary.dtype))
  iota = lax.broadcasted_iota(jnp.int32, key.shape, key.ndim - 1)
  # Lexicographic (valid, key, tie noise, index): padding first, ascending keys, random ties,
  # then the original index (stable).
  *_, perm = lax.sort((valid.astype(jnp.int32), primary, secondary, iota),
                      dimension=key.ndim - 1, num_keys=4)
  return perm


def apply_permutation(x: jax.Array, perm: jax.Array, axis: int = 1) -> jax.Array:
  """Reorders ``x`` along ``axis``: ``out[..., s, ...] = x[..., perm[..., s], ...]``.

  ``perm`` covers the axes of ``x`` up to and including ``axis`` (its leading axes broadcast,
  a ``(n,)`` permutation applies to every batch row); it is broadcast over the trailing
  feature axes of ``x``.

  Args:
    x: ``(*batch, n, *features)`` with ``n`` at ``axis``.
    perm: int ``(*batch, n)``, broadcast-compatible with ``x.shape[:axis + 1]``.
    axis: the sequence axis of ``x`` (negative values count from the end of ``x``).

  Returns:
    ``x``'s shape (batch axes broadcast) and dtype.
  """
  fn = "apply_permutation"
  x, perm = jnp.asarray(x), jnp.asarray(perm)
  if not -x.ndim <= axis < x.ndim:
    raise ValueError(f"{fn}: `axis` must be in [{-x.ndim}, {x.ndim}) for `x` of shape "
                     f"{x.shape}; found {axis}.")
  axis %= x.ndim
  if not jnp.issubdtype(perm.dtype, jnp.integer):
    raise TypeError(f"{fn}: `perm` must be an int array; found dtype {perm.dtype}.")
  if perm.ndim < 1 or perm.ndim > axis + 1 or perm.shape[-1] != x.shape[axis]:
    raise ValueError(f"{fn}: `perm` must have shape (..., {x.shape[axis]}) with at most "
                     f"{axis + 1} axes, matching `x` {x.shape} up to axis {axis}; "
                     f"found {perm.shape}.")
  index = perm.reshape((1,) * (axis + 1 - perm.ndim) + perm.shape
                       + (1,) * (x.ndim - axis - 1))
  return jnp.take_along_axis(x, index, axis=axis)


def inverse_permutation(perm: jax.Array) -> jax.Array:
  """The permutation that undoes ``perm`` along the last axis (``argsort(perm)``).

  ``apply_permutation(apply_permutation(x, perm, a), inverse_permutation(perm), a) == x``.

  Args:
    perm: int ``(..., n)``, each row a permutation of ``0..n-1``.

  Returns:
    int32 ``(..., n)``.
  """
  perm = jnp.asarray(perm)
  if perm.ndim < 1 or not jnp.issubdtype(perm.dtype, jnp.integer):
    raise ValueError("inverse_permutation: `perm` must be an int array of shape (..., n); "
                     f"found shape {perm.shape}, dtype {perm.dtype}.")
  iota = lax.broadcasted_iota(jnp.int32, perm.shape, perm.ndim - 1)
  *_, inverse = lax.sort((perm.astype(jnp.int32), iota), dimension=perm.ndim - 1, num_keys=1)
  return inverse
