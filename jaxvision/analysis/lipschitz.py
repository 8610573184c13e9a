"""Empirical Lipschitz constants: the spectral norm of a layer's Jacobian around an input.

The spectral-transformer paper (spec spectral-transformer-ising Sec. 2, Lemmas 1-3) argues
that the Jacobian of spectral-wise self-attention grows with the input's dynamic range
(Lemma 1: ``||J_ii|| <= ||W_K W_Q|| / 4 + ||W_K W_Q|| (M - m)^2 / 4 + 1``), while the
Adjacent Channel Coupler's stays bounded (Lemma 2). Those are bounds; these tools measure
the quantity itself, locally:

* :func:`jacobian_spectral_norm` -- ``||J_f(x)||_2``, the largest singular value of the
  Jacobian of ``f`` at ``x``, by power iteration on ``J^T J`` with one ``jvp`` and one
  ``vjp`` per iteration (the Jacobian is never formed). This is the local Lipschitz
  constant of ``f`` at ``x`` in the Euclidean norm; the estimate increases monotonically
  to it (from below) and is exact for linear ``f`` when the iteration converges.
* :func:`gain_sensitivity` -- the finite-difference counterpart the spec's toy experiment
  uses: ``||f(g x) - f(x)|| / ||g x - x||`` for input gains ``g`` (e.g. 0.8, 1.2).
* :func:`lipschitz_vs_dynamic_range` -- ``||J_f(s x)||_2`` over a range of input scales
  ``s``: the input's dynamic range ``M - m`` grows linearly with ``s``, so this is the
  Lemma 1-vs-Lemma 2 curve.

Pure functions of arrays, callables and keys (no Flax). ``f`` maps an array to an array;
wrap a Flax module as ``lambda x: model.apply(variables, x)``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["gain_sensitivity", "jacobian_spectral_norm", "lipschitz_vs_dynamic_range"]


def _float_input(x, fn: str) -> jax.Array:
  x = jnp.asarray(x)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(f"{fn}: `x` must be a floating-point array; found dtype {x.dtype}.")
  if x.size == 0:
    raise ValueError(f"{fn}: `x` must be non-empty; found shape {x.shape}.")
  return x


def _normalise(v: jax.Array) -> jax.Array:
  norm = jnp.sqrt(jnp.sum(jnp.square(v)))
  return v / jnp.where(norm > 0, norm, 1.0)


def jacobian_spectral_norm(f: Callable[[jax.Array], jax.Array], x: jax.Array, *,
                           num_iters: int = 30, key: jax.Array | None = None,
                           return_history: bool = False):
  """The largest singular value of ``J = df/dx`` at ``x``, by power iteration.

  Each iteration is ``u = J v`` (``jax.jvp``), ``v <- J^T u / ||J^T u||``
  (``jax.vjp``), and the estimate is ``sigma = ||J v||``. The estimate after ``k``
  iterations is ``||J v_k|| <= sigma_max``; it converges geometrically with rate
  ``(sigma_2 / sigma_max)^2``. The linearisation is computed once (``jax.linearize``), so
  each iteration costs about one forward and one backward pass of ``f``.

  Args:
    f: a function from an array shaped like ``x`` to an array (any shape). It must be
      differentiable at ``x`` (BatchNorm in training mode couples the batch: evaluate
      modules in inference mode).
    x: the input, a float array of any shape.
    num_iters: power iterations (``>= 1``).
    key: PRNG key of the random unit start vector (default ``PRNGKey(0)``).
    return_history: also return the ``(num_iters,)`` estimates.

  Returns:
    A scalar (``x``'s dtype), or ``(sigma, history)`` with ``return_history``.
  """
  fn = "jacobian_spectral_norm"
  x = _float_input(x, fn)
  if not isinstance(num_iters, (int, np.integer)) or num_iters < 1:
    raise ValueError(f"{fn}: `num_iters` must be an integer >= 1; found {num_iters!r}.")
  key = jax.random.PRNGKey(0) if key is None else key
  y, jvp_fn = jax.linearize(f, x)
  if not jnp.issubdtype(jnp.asarray(y).dtype, jnp.floating):
    raise TypeError(f"{fn}: `f(x)` must be a floating-point array; found dtype "
                    f"{jnp.asarray(y).dtype}.")
  vjp_fn = jax.linear_transpose(jvp_fn, x)

  def body(v, _):
    u = jvp_fn(v)
    sigma = jnp.sqrt(jnp.sum(jnp.square(u)))
    (w,) = vjp_fn(u)
    return _normalise(w), sigma

  v0 = _normalise(jax.random.normal(key, x.shape, x.dtype))
  v, history = jax.lax.scan(body, v0, None, length=int(num_iters))
  sigma = jnp.sqrt(jnp.sum(jnp.square(jvp_fn(v))))
  history = jnp.concatenate([history[1:], sigma[None]])
  return (sigma, history) if return_history else sigma


def gain_sensitivity(f: Callable[[jax.Array], jax.Array], x: jax.Array,
                     gains: Sequence[float] = (0.8, 1.2)) -> jax.Array:
  """``||f(g x) - f(x)||_2 / ||g x - x||_2`` for each gain ``g`` (a secant Lipschitz ratio).

  The spec's toy check (Sec. 6.6): scale the input by 0.8 and 1.2 and measure how much the
  output moves per unit of input change. Every ratio is ``<= sup ||J||`` on the segment.

  Args:
    f: array -> array.
    x: float input, not all zero.
    gains: input gains, each ``!= 1``.

  Returns:
    ``(len(gains),)`` ratios.
  """
  fn = "gain_sensitivity"
  x = _float_input(x, fn)
  gains = tuple(float(g) for g in gains)
  if not gains or any(g == 1.0 for g in gains):
    raise ValueError(f"{fn}: `gains` must be a non-empty sequence of gains != 1; found "
                     f"{gains}.")
  y = f(x)
  dx = jnp.sqrt(jnp.sum(jnp.square(x)))
  out = [jnp.sqrt(jnp.sum(jnp.square(f(g * x) - y))) / (abs(g - 1.0) * dx) for g in gains]
  return jnp.stack(out)


def lipschitz_vs_dynamic_range(f: Callable[[jax.Array], jax.Array], x: jax.Array,
                               scales: Sequence[float], *, num_iters: int = 30,
                               key: jax.Array | None = None) -> dict[str, np.ndarray]:
  """``||J_f(s x)||_2`` for each scale ``s``: the local Lipschitz constant against the
  input's dynamic range ``max(s x) - min(s x)`` (Lemma 1's ``M - m``).

  Args:
    f: array -> array.
    x: the base input (float).
    scales: positive input scales.
    num_iters, key: as :func:`jacobian_spectral_norm` (the same start vector at every
      scale).

  Returns:
    ``{"scale", "dynamic_range", "lipschitz"}``, numpy float64 arrays ``(len(scales),)``.
  """
  fn = "lipschitz_vs_dynamic_range"
  x = _float_input(x, fn)
  scales = np.asarray(scales, np.float64)
  if scales.ndim != 1 or scales.size == 0 or not np.all(scales > 0):
    raise ValueError(f"{fn}: `scales` must be a non-empty 1-D sequence of positive numbers; "
                     f"found {scales.tolist()}.")
  estimate = jax.jit(lambda xs: jacobian_spectral_norm(f, xs, num_iters=num_iters, key=key))
  lips, ranges = [], []
  for s in scales:
    xs = (s * x).astype(x.dtype)
    lips.append(float(estimate(xs)))
    ranges.append(float(jnp.max(xs) - jnp.min(xs)))
  return {"scale": scales, "dynamic_range": np.asarray(ranges), "lipschitz": np.asarray(lips)}
