"""Image-quality-assessment metrics: SROCC, KROCC, PLCC, RMSE and prediction->MOS mappings.

The criteria of the Norm-in-Norm paper (Li, Jiang & Jiang, ACM MM 2020; spec
``norm-in-norm-iqa`` Sec. 2 "Metrics") as the authors' ``IQAPerformance`` computes them
with ``scipy.stats``:

* ``srocc`` = ``spearmanr`` (Pearson on *average* ranks, ties included),
* ``krocc`` = ``kendalltau`` (tau-b, ties included),
* ``plcc`` = ``pearsonr``, ``rmse`` = ``sqrt(mean((target - pred)^2))`` in MOS units (the
  library's one :func:`~jaxvision.metrics.spectral.rmse`, re-exported here),

usually after mapping the predictions to the MOS scale: the least-squares linear mapping
of eqs. (16)-(17) (``fit_linear_mapping``, fitted on the *training* set and applied at test
time, as ``IQAPerformance.linear_mapping``) or the 4-parameter logistic common in IQA
(VQEG; ``fit_logistic_mapping``).

All functions are pure ``jnp`` and follow the input dtype: ``promote(dtype, float32)``, so
float64 inputs under ``jax.enable_x64(True)`` give float64 results (scipy agreement to
~1e-12). They are ``jit``-safe (shapes are static). Scores are ``(N,)`` or ``(N, 1)`` with
``N >= 2``; NaNs are not supported. A constant input gives NaN correlations, as scipy.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from jaxvision.metrics.spectral import rmse  # the library's one RMSE (any shape)

__all__ = [
    "apply_linear_mapping",
    "average_ranks",
    "fit_linear_mapping",
    "fit_logistic_mapping",
    "iqa_performance",
    "krocc",
    "logistic_mapping",
    "plcc",
    "rmse",
    "srocc",
]


def _float_dtype(*arrays):
  return jnp.result_type(*(a.dtype for a in arrays), jnp.float32)


def _vector(x, name: str, fn: str, min_n: int = 2) -> jax.Array:
  x = jnp.asarray(x)
  if not (x.ndim == 1 or (x.ndim == 2 and x.shape[1] == 1)):
    raise ValueError(f"{fn}: `{name}` must have shape (N,) or (N, 1); found {x.shape}.")
  if x.shape[0] < min_n:
    raise ValueError(f"{fn}: `{name}` must have N >= {min_n} entries; found N = "
                     f"{x.shape[0]}.")
  return x.reshape(-1)


def _pair(pred, target, fn: str) -> tuple[jax.Array, jax.Array]:
  """Validated flattened ``(N,)`` copies in ``promote(dtype, float32)``."""
  pred, target = _vector(pred, "pred", fn), _vector(target, "target", fn)
  if target.shape[0] != pred.shape[0]:
    raise ValueError(f"{fn}: `target` must have N = {pred.shape[0]} entries like `pred`; "
                     f"found N = {target.shape[0]}.")
  dtype = _float_dtype(pred, target)
  return pred.astype(dtype), target.astype(dtype)


def average_ranks(x: jax.Array) -> jax.Array:
  """1-based ranks with ties given their average rank (``scipy.stats.rankdata``'s default).

  ``rank_i = #{j: x_j < x_i} + (#{j: x_j == x_i} + 1) / 2``, from two ``searchsorted``
  calls on the sorted values: exact, ``O(N log N)``.

  Args:
    x: ``(N,)`` or ``(N, 1)``, any real dtype, ``N >= 1``.

  Returns:
    ``(N,)`` of dtype ``promote(x.dtype, float32)``.
  """
  x = _vector(x, "x", "average_ranks", min_n=1)
  dtype = _float_dtype(x)
  s = jnp.sort(x)
  left = jnp.searchsorted(s, x, side="left")
  right = jnp.searchsorted(s, x, side="right")
  return (left + right + 1).astype(dtype) / 2


def _pearson(x: jax.Array, y: jax.Array) -> jax.Array:
  xm, ym = x - jnp.mean(x), y - jnp.mean(y)
  r = jnp.dot(xm / jnp.linalg.norm(xm), ym / jnp.linalg.norm(ym))
  return jnp.clip(r, -1.0, 1.0)


def plcc(pred: jax.Array, target: jax.Array) -> jax.Array:
  """Pearson's linear correlation coefficient, paper eq. (12) (= ``scipy.stats.pearsonr``).

  Args:
    pred: ``(N,)`` or ``(N, 1)``, ``N >= 2``.
    target: ``(N,)`` or ``(N, 1)``, same ``N``.

  Returns:
    A scalar in ``[-1, 1]`` of dtype ``promote(dtype, float32)``; NaN if either is constant.
  """
  return _pearson(*_pair(pred, target, "plcc"))


def srocc(pred: jax.Array, target: jax.Array) -> jax.Array:
  """Spearman's rank-order correlation: Pearson on average ranks (= ``spearmanr``).

  Invariant to any strictly increasing map of either argument.

  Args:
    pred: ``(N,)`` or ``(N, 1)``, ``N >= 2``.
    target: ``(N,)`` or ``(N, 1)``, same ``N``.

  Returns:
    A scalar in ``[-1, 1]`` of dtype ``promote(dtype, float32)``; NaN if either is constant.
  """
  pred, target = _pair(pred, target, "srocc")
  return _pearson(average_ranks(pred), average_ranks(target))


def krocc(pred: jax.Array, target: jax.Array, *, chunk_size: int = 1024) -> jax.Array:
  """Kendall's tau-b with ties (= ``scipy.stats.kendalltau``, its default ``variant='b'``).

  ``tau_b = sum_{i,j} s^x_ij s^y_ij / sqrt(sum_{i,j} |s^x_ij| * sum_{i,j} |s^y_ij|)`` with
  ``s^x_ij = sign(x_i - x_j)`` (from comparisons, so exact): ``(concordant - discordant)
  / sqrt((n0 - n1)(n0 - n2))``, both sums counting every pair twice. ``O(N^2)`` time; the
  rows are processed ``chunk_size`` at a time in a ``lax.scan``, so the peak memory is a
  few ``(chunk_size, N)`` int32 arrays (about 40 MB each for ``N = 10^4`` and the default
  1024), never an ``(N, N)`` matrix. Row counts are exact int32; their sums are accumulated
  in the result dtype (exact in float64; float32 rounds once the pair count passes 2^24).

  Args:
    pred: ``(N,)`` or ``(N, 1)``, ``N >= 2``.
    target: ``(N,)`` or ``(N, 1)``, same ``N``.
    chunk_size: rows per scan step, ``>= 1``.

  Returns:
    A scalar in ``[-1, 1]`` of dtype ``promote(dtype, float32)``; NaN if either is constant.
  """
  x, y = _pair(pred, target, "krocc")
  chunk_size = int(chunk_size)
  if chunk_size < 1:
    raise ValueError(f"krocc: `chunk_size` must be >= 1; found {chunk_size}.")
  dtype = x.dtype
  n = x.shape[0]
  b = min(chunk_size, n)
  num_chunks = -(-n // b)
  pad = num_chunks * b - n
  rows_x = jnp.pad(x, (0, pad)).reshape(num_chunks, b)
  rows_y = jnp.pad(y, (0, pad)).reshape(num_chunks, b)
  valid = (jnp.arange(num_chunks * b) < n).reshape(num_chunks, b).astype(jnp.int32)

  def sign(rows, v):
    return ((rows[:, None] > v[None, :]).astype(jnp.int32) -
            (rows[:, None] < v[None, :]).astype(jnp.int32))

  def step(carry, chunk):
    rx, ry, ok = chunk
    sx, sy = sign(rx, x), sign(ry, y)
    sums = jnp.stack([jnp.sum(sx * sy, axis=1), jnp.sum(jnp.abs(sx), axis=1),
                      jnp.sum(jnp.abs(sy), axis=1)]) * ok
    return carry + jnp.sum(sums.astype(dtype), axis=1), None

  (s, tx, ty), _ = jax.lax.scan(step, jnp.zeros(3, dtype), (rows_x, rows_y, valid))
  return jnp.clip(s / jnp.sqrt(tx * ty), -1.0, 1.0)


def fit_linear_mapping(pred: jax.Array, target: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The least-squares ``target ~ k1 * pred + k2``, paper eqs. (16)-(17), closed form.

  ``k1 = sum (pred - mean)(target - mean) / sum (pred - mean)^2``, ``k2 = mean(target) -
  k1 mean(pred)``: the solution ``IQAPerformance.linear_mapping`` gets from
  ``inv(XᵀX) Xᵀ y``. Fit it on the *training* set's predictions and MOS (after training)
  and apply it to the test predictions with :func:`apply_linear_mapping`; prefer float64
  (``jax.enable_x64``) on large sets.

  Args:
    pred: ``(N,)`` or ``(N, 1)``, ``N >= 2``, not constant.
    target: ``(N,)`` or ``(N, 1)``, same ``N``.

  Returns:
    ``(k1, k2)``: scalars of dtype ``promote(dtype, float32)``.
  """
  pred, target = _pair(pred, target, "fit_linear_mapping")
  pm, tm = jnp.mean(pred), jnp.mean(target)
  pc = pred - pm
  k1 = jnp.dot(pc, target - tm) / jnp.dot(pc, pc)
  return k1, tm - k1 * pm


def apply_linear_mapping(pred: jax.Array, coeffs: Sequence[jax.Array]) -> jax.Array:
  """``k1 * pred + k2`` with ``coeffs = (k1, k2)`` from :func:`fit_linear_mapping`.

  Args:
    pred: float, any shape.
    coeffs: ``(k1, k2)`` scalars.

  Returns:
    ``pred``'s shape, dtype ``promote(dtype, float32)``.
  """
  if len(coeffs) != 2:
    raise ValueError(f"apply_linear_mapping: `coeffs` must be (k1, k2); found {len(coeffs)} "
                     "values.")
  k1, k2 = (jnp.asarray(c) for c in coeffs)
  pred = jnp.asarray(pred)
  dtype = _float_dtype(pred, k1, k2)
  return k1.astype(dtype) * pred.astype(dtype) + k2.astype(dtype)


def _logistic(x: jax.Array, beta: jax.Array) -> jax.Array:
  return (beta[0] - beta[1]) * jax.nn.sigmoid((x - beta[2]) / jnp.abs(beta[3])) + beta[1]


def logistic_mapping(pred: jax.Array, beta: Sequence[jax.Array]) -> jax.Array:
  """The 4-parameter logistic of IQA (VQEG): ``(b1 - b2) / (1 + exp(-(x - b3)/|b4|)) + b2``.

  Computed as ``(b1 - b2) sigmoid((x - b3) / |b4|) + b2`` (no overflow). Increasing in
  ``x`` when ``b1 > b2``; ``b1``/``b2`` are the upper/lower asymptotes, ``b3`` the centre,
  ``|b4|`` the width.

  Args:
    pred: float, any shape.
    beta: ``(b1, b2, b3, b4)``, e.g. from :func:`fit_logistic_mapping`.

  Returns:
    ``pred``'s shape, dtype ``promote(dtype, float32)``.
  """
  beta = jnp.asarray(beta)
  if beta.shape != (4,):
    raise ValueError(f"logistic_mapping: `beta` must be (b1, b2, b3, b4); found shape "
                     f"{beta.shape}.")
  pred = jnp.asarray(pred)
  dtype = _float_dtype(pred, beta)
  return _logistic(pred.astype(dtype), beta.astype(dtype))


def fit_logistic_mapping(pred: jax.Array, target: jax.Array, *, num_iters: int = 100,
                         beta0: Sequence[float] | None = None) -> jax.Array:
  """Least-squares fit of :func:`logistic_mapping`, by Levenberg-Marquardt in ``jnp``.

  Minimises ``sum_i (f(pred_i; beta) - target_i)^2``. Deterministic:

  * The problem is solved in normalised coordinates ``x' = (pred - mean(pred)) / std(pred)``
    and ``y' = (target - min(target)) / (max(target) - min(target))`` (the logistic family is
    closed under these affine changes, so the optimum maps back exactly); a zero std or
    range is replaced by 1.
  * The default start is ``b1 = max(target)``, ``b2 = min(target)``, ``b3 = mean(pred)``,
    ``b4 = std(pred)`` (population std), i.e. ``(1, 0, 0, 1)`` normalised; ``beta0``
    overrides it.
  * ``num_iters`` LM steps (a ``fori_loop``, so ``jit``-safe): Marquardt damping
    ``lambda * diag(JᵀJ)`` with ``lambda`` starting at 1e-3, divided by 3 on an accepted
    step (one that lowers the cost) and multiplied by 10 otherwise; the Jacobian is
    ``jax.jacfwd`` of the residual.

  On well-posed data it converges to the same optimum as ``scipy.optimize.curve_fit``
  from the same start. The returned ``b4`` is ``|b4|`` (the model depends on it only).

  Args:
    pred: ``(N,)`` or ``(N, 1)``, ``N >= 2``.
    target: ``(N,)`` or ``(N, 1)``, same ``N``.
    num_iters: LM iterations, ``>= 1``.
    beta0: optional start ``(b1, b2, b3, b4)`` in the original units.

  Returns:
    ``(4,)`` ``(b1, b2, b3, |b4|)``, dtype ``promote(dtype, float32)``.
  """
  fn = "fit_logistic_mapping"
  x, y = _pair(pred, target, fn)
  num_iters = int(num_iters)
  if num_iters < 1:
    raise ValueError(f"{fn}: `num_iters` must be >= 1; found {num_iters}.")
  dtype = x.dtype
  mx, sx = jnp.mean(x), jnp.std(x)
  sx = jnp.where(sx > 0, sx, 1.0)
  y_lo, y_range = jnp.min(y), jnp.max(y) - jnp.min(y)
  y_range = jnp.where(y_range > 0, y_range, 1.0)
  xn, yn = (x - mx) / sx, (y - y_lo) / y_range
  if beta0 is None:
    beta = jnp.array([1.0, 0.0, 0.0, 1.0], dtype)
  else:
    b = jnp.asarray(beta0, dtype)
    if b.shape != (4,):
      raise ValueError(f"{fn}: `beta0` must be (b1, b2, b3, b4); found shape {b.shape}.")
    beta = jnp.stack([(b[0] - y_lo) / y_range, (b[1] - y_lo) / y_range, (b[2] - mx) / sx,
                      b[3] / sx])

  residual = lambda bt: _logistic(xn, bt) - yn
  cost_of = lambda r: jnp.sum(jnp.square(r))
  tiny = jnp.finfo(dtype).tiny

  def lm_step(_, state):
    beta, lam, cost = state
    r = residual(beta)
    jac = jax.jacfwd(residual)(beta)                                    # (N, 4)
    jtj, jtr = jac.T @ jac, jac.T @ r
    damp = jnp.maximum(jnp.diag(jtj), tiny)
    delta = jnp.linalg.solve(jtj + lam * jnp.diag(damp), -jtr)
    new = beta + delta
    new_cost = cost_of(residual(new))
    ok = jnp.isfinite(new_cost) & (new_cost < cost)
    beta = jnp.where(ok, new, beta)
    lam = jnp.clip(jnp.where(ok, lam / 3.0, lam * 10.0), 1e-12, 1e12)
    return beta, lam, jnp.where(ok, new_cost, cost)

  state = (beta, jnp.asarray(1e-3, dtype), cost_of(residual(beta)))
  beta, _, _ = jax.lax.fori_loop(0, num_iters, lm_step, state)
  return jnp.stack([y_lo + y_range * beta[0], y_lo + y_range * beta[1], mx + sx * beta[2],
                    sx * jnp.abs(beta[3])])


def iqa_performance(pred: jax.Array, target: jax.Array,
                    mapping: Sequence[jax.Array] | None = None) -> dict[str, jax.Array]:
  """SROCC, KROCC, PLCC and RMSE of ``pred`` against the MOS ``target`` (``IQAPerformance``).

  ``mapping`` is applied to ``pred`` first: ``None`` = the raw predictions; ``(k1, k2)`` =
  :func:`apply_linear_mapping` (the paper's protocol, with the coefficients fitted on the
  training set); ``(b1, b2, b3, b4)`` = :func:`logistic_mapping`. SROCC and KROCC are
  invariant to any increasing mapping and PLCC to a positive affine one, so only RMSE
  (in MOS units) needs the mapping; a decreasing mapping flips the correlations' signs.

  Args:
    pred: ``(N,)`` or ``(N, 1)`` predictions, ``N >= 2``.
    target: ``(N,)`` or ``(N, 1)`` MOS, same ``N``.
    mapping: ``None``, ``(k1, k2)`` or ``(b1, b2, b3, b4)``.

  Returns:
    ``{"srocc", "krocc", "plcc", "rmse"}``: scalars of dtype ``promote(dtype, float32)``.
  """
  pred, target = _pair(pred, target, "iqa_performance")
  if mapping is not None:
    size = len(mapping)
    if size == 2:
      pred = apply_linear_mapping(pred, mapping)
    elif size == 4:
      pred = logistic_mapping(pred, mapping)
    else:
      raise ValueError("iqa_performance: `mapping` must be None, (k1, k2) or (b1, b2, b3, "
                       f"b4); found {size} values.")
  return {"srocc": srocc(pred, target), "krocc": krocc(pred, target),
          "plcc": plcc(pred, target), "rmse": rmse(pred, target)}
