"""Degenerate covariances and gradient-failure counts of the differentiable SVD meta-layer.

Song, Sebe & Wang, "Improving Covariance Conditioning of the SVD Meta-layer by
Orthogonality" (ECCV 2022), Table 5 counts the "failure times" of an SVD layer in training:
the steps at which it broke. In a differentiable ``U f(Lambda) U^T`` the break is the
backward pass at (nearly) repeated eigenvalues, where eq. (7)'s ``K_ij = 1 / (l_i - l_j)``
is infinite (spec svd-covariance-conditioning Sec. 2, "Instability"). These tools measure
it directly: random covariances with exactly or nearly repeated eigenvalues, and the number
of them whose gradient is not finite.

* ``degenerate_covariances`` -- random SPD matrices ``Q diag(lambda) Q^T`` with eigenvalue
  multiplicities (``kind="repeated"``) or near-ties (``kind="near"``).
* ``gradient_failures`` -- how many matrices of a batch get a NaN/inf gradient of
  ``sum(fn(P) * C)``.
* ``failure_table`` -- those counts for every ``jaxvision.ops.sqrtm`` / ``inv_sqrtm`` method
  and for plain autodiff through ``jnp.linalg.eigh``.

Pure functions of arrays and keys (no Flax); they run eagerly (each jits its own work).
"""

from __future__ import annotations

import functools
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxvision.ops import spectral

__all__ = [
    "DEGENERATE_KINDS",
    "degenerate_covariances",
    "eigh_autodiff",
    "failure_table",
    "gradient_failures",
]

DEGENERATE_KINDS = ("repeated", "near")
NEAR_GAP_RANGE = (1e-9, 1e-6)  # relative gaps of the near-repeated eigenvalues


def _check_key(key, fn: str) -> jax.Array:
  key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
  if not (jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or
          (key.dtype == jnp.uint32 and key.shape == (2,))):
    raise TypeError(f"{fn}: `key` must be a PRNG key (jax.random.key or PRNGKey); found "
                    f"dtype {key.dtype}, shape {key.shape}.")
  return key


def _check_int(value, name: str, fn: str, minimum: int) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
    raise ValueError(f"{fn}: `{name}` must be an int >= {minimum}; found {value!r}.")
  return int(value)


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _degenerate_f64(key, num: int, n: int, kind: str, max_condition: float):
  """The float64 spectra ``(num, n)`` (ascending) and matrices ``(num, n, n)``."""
  k_clusters, k_labels, k_slots, k_jitter, k_gaps, k_rot = jax.random.split(key, 6)
  f64 = jnp.float64
  # Each matrix: d <= n - 1 cluster labels for its n eigenvalues (pigeonhole: at least one
  # cluster holds >= 2), every cluster at its own slot of a log-spaced grid over
  # [1 / max_condition, 1], jittered inside the middle half of the slot, so that distinct
  # clusters are at least max_condition^(1 / (2 n)) apart (relative).
  d = jax.random.randint(k_clusters, (num, 1), 1, n)
  labels = jax.random.randint(k_labels, (num, n), 0, d)
  slots = jax.vmap(lambda k: jax.random.permutation(k, n))(jax.random.split(k_slots, num))
  jitter = jax.random.uniform(k_jitter, (num, n), f64, 0.25, 0.75)
  log_values = -jnp.log(max_condition) * (slots + jitter) / n  # per cluster label
  log_lam = jnp.take_along_axis(log_values, labels, axis=1)
  if kind == "near":
    # Split each cluster: its r-th member (r = 0, 1, ...) is lambda_c (1 + delta_c)^r, with
    # delta_c log-uniform in NEAR_GAP_RANGE.
    lo, hi = np.log(NEAR_GAP_RANGE[0]), np.log(NEAR_GAP_RANGE[1])
    delta = jnp.exp(jax.random.uniform(k_gaps, (num, n), f64, lo, hi))
    same = labels[:, :, None] == labels[:, None, :]
    rank = jnp.sum(same & jnp.tril(jnp.ones((n, n), bool), -1)[None], axis=-1)
    log_lam = log_lam + rank * jnp.log1p(jnp.take_along_axis(delta, labels, axis=1))
  lam = jnp.sort(jnp.exp(log_lam), axis=-1)
  # Haar-random rotation: QR of a Gaussian with the signs of diag(R) moved into Q.
  q, r = jnp.linalg.qr(jax.random.normal(k_rot, (num, n, n), f64))
  q = q * jnp.sign(jnp.diagonal(r, axis1=-2, axis2=-1))[:, None, :]
  p = jnp.matmul(q * lam[:, None, :], jnp.swapaxes(q, -1, -2),
                 precision=jax.lax.Precision.HIGHEST)
  return lam, 0.5 * (p + jnp.swapaxes(p, -1, -2))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _distinct_f64(key, num: int, n: int, max_condition: float):
  """Control matrices: the same rotation, a log-uniform spectrum in [1 / max_condition, 1]."""
  k_lam, k_rot = jax.random.split(key)
  lam = jnp.exp(-jnp.log(max_condition) * jax.random.uniform(k_lam, (num, n), jnp.float64))
  q, r = jnp.linalg.qr(jax.random.normal(k_rot, (num, n, n), jnp.float64))
  q = q * jnp.sign(jnp.diagonal(r, axis1=-2, axis2=-1))[:, None, :]
  p = jnp.matmul(q * lam[:, None, :], jnp.swapaxes(q, -1, -2),
                 precision=jax.lax.Precision.HIGHEST)
  return 0.5 * (p + jnp.swapaxes(p, -1, -2))


def degenerate_covariances(key: jax.Array, num: int, n: int, *, kind: str,
                           max_condition: float = 1e2, dtype=jnp.float32,
                           return_spectrum: bool = False):
  """Random SPD matrices with exactly or nearly repeated eigenvalues.

  ``P = Q diag(lambda) Q^T`` with ``Q`` Haar-random orthogonal and, per matrix, a random
  number ``d`` in ``[1, n - 1]`` of eigenvalue clusters: each of the ``n`` eigenvalues gets
  a uniformly random cluster label, so at least one value is repeated and multiplicities
  vary from 2 to ``n`` (a multiple of the identity). Cluster values lie in
  ``[1 / max_condition, 1]`` (log-spaced slots), distinct clusters at least
  ``max_condition^(1 / (2n)) - 1`` apart relatively (15% for ``n = 16``, ``kappa = 1e2``).

  * ``kind="repeated"``: the members of a cluster are equal (multiplicities).
  * ``kind="near"``: the ``r``-th member of a cluster is ``lambda_c (1 + delta_c)^r`` with
    ``delta_c`` log-uniform in ``[1e-9, 1e-6]``: consecutive relative gaps ``delta_c``.

  The spectra and matrices are built in float64 (inside ``jax.enable_x64``) and then cast
  to ``dtype``. A float32 ``P`` stores its entries to ``~6e-8`` relative, which moves each
  eigenvalue by up to ``|P32 - P|_2`` (Weyl): a ``"repeated"`` cluster is then spread over
  ~1e-7 of ``lambda_max`` -- the rounding a float32 covariance with a true multiplicity
  has -- and near-ties closer than that are indistinguishable from exact ties in float32.
  ``dtype=jnp.float64`` (requires ``jax_enable_x64``) keeps the exact spectra.

  Args:
    key: a PRNG key.
    num: number of matrices, >= 1.
    n: matrix size, >= 2.
    kind: ``"repeated"`` or ``"near"`` (``DEGENERATE_KINDS``).
    max_condition: ``lambda_max / lambda_min`` is at most this (> 1).
    dtype: ``jnp.float32`` (default) or ``jnp.float64``.
    return_spectrum: also return the exact float64 eigenvalues.

  Returns:
    ``P``: ``(num, n, n)`` symmetric positive definite, ``dtype``; with
    ``return_spectrum``, ``(P, spectrum)``, ``spectrum`` a numpy float64 ``(num, n)``
    array, ascending.
  """
  fn = "degenerate_covariances"
  key = _check_key(key, fn)
  num = _check_int(num, "num", fn, 1)
  n = _check_int(n, "n", fn, 2)
  if kind not in DEGENERATE_KINDS:
    raise ValueError(f"{fn}: `kind` must be one of {DEGENERATE_KINDS}; found {kind!r}.")
  max_condition = float(max_condition)
  if not max_condition > 1.0:
    raise ValueError(f"{fn}: `max_condition` must be > 1; found {max_condition}.")
  dtype = jnp.dtype(dtype)
  if dtype not in (jnp.float32, jnp.float64):
    raise TypeError(f"{fn}: `dtype` must be float32 or float64; found {dtype}.")
  if dtype == jnp.float64 and not jax.config.jax_enable_x64:
    raise ValueError(f"{fn}: dtype=float64 needs jax_enable_x64 (e.g. inside "
                     "`with jax.enable_x64(True):`); found it disabled.")
  with jax.enable_x64(True):
    lam, p = _degenerate_f64(key, num, n, kind, max_condition)
    lam = np.asarray(lam)
    p = np.asarray(p)
  p = jnp.asarray(p.astype(dtype))
  return (p, lam) if return_spectrum else p


def eigh_autodiff(fn: str) -> Callable[[jax.Array], jax.Array]:
  """``U f(Lambda) U^T`` for ``fn`` = ``"sqrtm"`` or ``"inv_sqrtm"``, differentiated by JAX's
  own ``eigh`` rule (eqs. (5)-(7) with the exact ``K``; NaN at exact ties) -- the contrast.
  """
  if fn not in ("sqrtm", "inv_sqrtm"):
    raise ValueError(f"eigh_autodiff: `fn` must be 'sqrtm' or 'inv_sqrtm'; found {fn!r}.")

  def f(P):
    lam, u = jnp.linalg.eigh(P)
    val = jnp.sqrt(lam) if fn == "sqrtm" else jax.lax.rsqrt(lam)
    return jnp.matmul(u * val[..., None, :], jnp.swapaxes(u, -1, -2),
                      precision=jax.lax.Precision.HIGHEST)

  return f


def _cotangent(key, n: int, dtype) -> jax.Array:
  return jax.random.normal(key, (n, n), dtype)


def _batched_gradients(P: jax.Array, fn: Callable, cotangent: jax.Array,
                       batch_size: int) -> np.ndarray:
  """``grad_P sum(fn(P_i) * C)`` for every matrix, by a jitted ``vmap`` over chunks."""
  grad = jax.jit(jax.vmap(jax.grad(lambda p, c: jnp.sum(fn(p) * c)), in_axes=(0, None)))
  num = P.shape[0]
  out = []
  for start in range(0, num, batch_size):
    chunk = P[start:start + batch_size]
    valid = chunk.shape[0]
    if valid < batch_size and num > batch_size:  # pad to reuse the compiled chunk
      chunk = jnp.concatenate([chunk, jnp.broadcast_to(chunk[:1], (batch_size - valid,)
                                                       + chunk.shape[1:])])
    out.append(np.asarray(grad(chunk, cotangent))[:valid])
  return np.concatenate(out)


def _check_batch(P, fn_name: str) -> jax.Array:
  P = jnp.asarray(P)
  if P.ndim != 3 or P.shape[-1] != P.shape[-2]:
    raise ValueError(f"{fn_name}: `P` must have shape (num, n, n); found {P.shape}.")
  if not jnp.issubdtype(P.dtype, jnp.floating):
    raise TypeError(f"{fn_name}: `P` must be a real floating array; found {P.dtype}.")
  return P


def gradient_failures(P: jax.Array, fn: Callable[[jax.Array], jax.Array], *,
                      key: jax.Array | None = None, batch_size: int = 1000) -> int:
  """Number of matrices whose gradient of ``sum(fn(P_i) * C)`` has a NaN or inf entry.

  ``C`` is one fixed standard-normal ``(n, n)`` cotangent (from ``key``, default
  ``PRNGKey(0)``), the same for every matrix; the gradient of each matrix is computed on
  its own (``vmap`` of ``grad``), so one failure cannot contaminate another.

  Args:
    P: ``(num, n, n)`` float matrices.
    fn: maps one ``(n, n)`` matrix to an array (e.g. ``functools.partial(
      jaxvision.ops.sqrtm, method="eigh")``).
    key: PRNG key of the cotangent.
    batch_size: matrices per jitted call.

  Returns:
    A Python ``int`` in ``[0, num]``.
  """
  P = _check_batch(P, "gradient_failures")
  if not callable(fn):
    raise TypeError(f"gradient_failures: `fn` must be callable; found {fn!r}.")
  batch_size = _check_int(batch_size, "batch_size", "gradient_failures", 1)
  key = jax.random.PRNGKey(0) if key is None else _check_key(key, "gradient_failures")
  g = _batched_gradients(P, fn, _cotangent(key, P.shape[-1], P.dtype), batch_size)
  return int(np.sum(~np.all(np.isfinite(g), axis=(-2, -1))))


def _methods() -> list[tuple[str, str, Callable]]:
  rows = []
  for fn_name in ("sqrtm", "inv_sqrtm"):
    for method in spectral.SQRTM_METHODS:
      rows.append((fn_name, method,
                   functools.partial(getattr(spectral, fn_name), method=method)))
    rows.append((fn_name, "jnp.linalg.eigh autodiff", eigh_autodiff(fn_name)))
  return rows


def failure_table(num: int = 10000, n: int = 16, key: jax.Array | None = None, *,
                  max_condition: float = 1e2, batch_size: int = 1000,
                  with_errors: bool = True) -> dict:
  """Gradient failures of every square-root method on random degenerate covariances.

  ``num // 2`` matrices of ``kind="repeated"`` and ``num - num // 2`` of ``kind="near"``
  (``degenerate_covariances``, float32, ``n x n``, condition number <= ``max_condition``);
  for ``sqrtm`` and ``inv_sqrtm`` with each method of ``SQRTM_METHODS`` (defaults:
  Newton-Schulz 5 steps, Pade [5/5], Taylor 9 terms, Lyapunov backward 8 steps) and for
  plain autodiff through ``jnp.linalg.eigh`` (``eigh_autodiff``), the number of matrices
  whose gradient of ``sum(F(P) * C)`` (one fixed random ``C``) has a NaN/inf entry -- the
  paper's "failure times" (Table 5), whose goal is 0.

  With ``with_errors``, also the accuracy of the finite gradients: the relative Frobenius
  error against the exact gradient (the Loewner gradient in float64 of the same float32
  matrices; ``F`` is smooth on SPD matrices, so that gradient is well defined at ties),
  median and the count above 1e-2. A finite gradient can still be wrong. For contrast the
  median error on a control set of ``num // 2`` non-degenerate matrices (log-uniform
  spectrum in ``[1 / max_condition, 1]``, Haar rotation) separates a method's truncation
  error (Newton-Schulz and Pade are not converged at ``kappa = 1e2`` with their default
  steps) from what the degeneracy adds.

  Args:
    num: number of matrices (>= 2).
    n: matrix size (16: the default; 10,000 matrices take a few seconds per method on
      a CPU core).
    key: PRNG key (default ``PRNGKey(0)``): matrices and cotangent.
    max_condition: see ``degenerate_covariances``.
    batch_size: matrices per jitted call.
    with_errors: also compute gradient errors.

  Returns:
    ``{"num", "n", "num_repeated", "num_near", "max_condition", "rows": [...]}``, each row
    ``{"function", "method", "repeated", "near", "total"`` (ints in ``[0, num]``),
    ``"seconds"`` (gradients of all ``num`` matrices, compilation included) and, with
    ``with_errors``, ``"median_rel_error"``, ``"num_rel_error_above_1e-2"`` (non-finite
    ones included) and ``"control_median_rel_error"``}``.
  """
  num = _check_int(num, "num", "failure_table", 2)
  n = _check_int(n, "n", "failure_table", 2)
  key = jax.random.PRNGKey(0) if key is None else _check_key(key, "failure_table")
  k_rep, k_near, k_cot = jax.random.split(key, 3)
  num_rep = num // 2
  sets = {"repeated": degenerate_covariances(k_rep, num_rep, n, kind="repeated",
                                             max_condition=max_condition),
          "near": degenerate_covariances(k_near, num - num_rep, n, kind="near",
                                         max_condition=max_condition)}
  cot = _cotangent(k_cot, n, jnp.float32)
  refs, control = {}, None
  if with_errors:
    with jax.enable_x64(True):
      control = jnp.asarray(np.asarray(_distinct_f64(jax.random.fold_in(key, 1), num_rep, n,
                                                     float(max_condition))).astype(np.float32))
      cot64 = jnp.asarray(np.asarray(cot, np.float64))
      for fn_name in ("sqrtm", "inv_sqrtm"):
        exact = functools.partial(getattr(spectral, fn_name), method="eigh")
        refs[fn_name] = {k: _batched_gradients(jnp.asarray(np.asarray(p, np.float64)),
                                               exact, cot64, batch_size)
                         for k, p in [*sets.items(), ("control", control)]}
  rows = []
  for fn_name, method, f in _methods():
    row = {"function": fn_name, "method": method}
    t0 = time.perf_counter()
    grads = {k: _batched_gradients(p, f, cot, batch_size) for k, p in sets.items()}
    row["seconds"] = time.perf_counter() - t0
    for k, g in grads.items():
      row[k] = int(np.sum(~np.all(np.isfinite(g), axis=(-2, -1))))
    row["total"] = row["repeated"] + row["near"]
    if with_errors:
      errs = np.concatenate([
          np.linalg.norm(grads[k] - refs[fn_name][k], axis=(-2, -1))
          / np.linalg.norm(refs[fn_name][k], axis=(-2, -1)) for k in sets])
      finite = np.isfinite(errs)
      row["median_rel_error"] = float(np.median(errs[finite])) if finite.any() else None
      row["num_rel_error_above_1e-2"] = int(np.sum(~finite | (errs > 1e-2)))
      g = _batched_gradients(control, f, cot, batch_size)
      ref = refs[fn_name]["control"]
      err = np.linalg.norm(g - ref, axis=(-2, -1)) / np.linalg.norm(ref, axis=(-2, -1))
      row["control_median_rel_error"] = float(np.median(err))
    rows.append(row)
  return {"num": num, "n": n, "num_repeated": num_rep, "num_near": num - num_rep,
          "max_condition": float(max_condition), "rows": rows}
