"""Differentiable spectral functions of symmetric PSD matrices, polar factors and friends.

The kernels of Song, Sebe & Wang, "Improving Covariance Conditioning of the SVD
Meta-layer by Orthogonality" (ECCV 2022), and of the methods it compares against:

* ``spectral_function`` -- ``U f(Lambda) U^T`` with the exact Daleckii-Krein (Loewner)
  gradient, finite at repeated eigenvalues (spec Sec. 2(a)).
* ``sqrtm`` / ``inv_sqrtm`` -- eqs. (3)-(4), by ``eigh`` + Loewner gradient, coupled
  Newton-Schulz (iSQRT-COV, spec Sec. 2(d)), the matrix Pade approximant with the
  Lyapunov backward (MPA-Lya, spec Sec. 2(e)) or ``eigh`` with the Taylor-approximated
  gradient of eqs. (5)-(7) (Song et al., ICCV 2021; spec Sec. 2(b)).
* ``logm_spd``, ``powm`` -- other spectral functions.
* ``polar`` -- the nearest (semi-)orthogonal matrix ``U V^T``, eqs. (14)-(17) (NOG).
* ``expm_skew`` -- the orthogonal ``exp(W - W^T)``, eq. (13) (OW).
* ``spectral_norm`` -- power iteration for ``sigma_max``, eq. (11) (SN; Miyato et al., 2018).
* ``covariance``, ``condition_number`` -- eqs. (2) and (1).

Every function takes a batch of matrices over leading axes and composes with ``jit``,
``vmap`` and ``grad`` (the ``custom_vjp`` rules are reverse-mode: ``grad`` of ``grad``
works, ``jvp`` / ``jacfwd`` through them does not). Inputs are symmetrised,
``(P + P^T) / 2``, so each matrix function is a function of ``sym(P)`` and its gradient is
symmetric. Half-precision inputs are computed in float32 and cast back. All matrix
products use ``Precision.HIGHEST``: the default TPU float32 matmul takes bfloat16 passes,
which is catastrophic at the condition numbers these layers see.
"""

from __future__ import annotations

import dataclasses
import fractions
import functools
import operator
from typing import Callable

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
from jax import lax

__all__ = [
    "condition_number",
    "covariance",
    "expm_skew",
    "inv_sqrtm",
    "logm_spd",
    "polar",
    "powm",
    "spectral_function",
    "spectral_norm",
    "sqrtm",
    "SQRTM_METHODS",
    "POLAR_METHODS",
]

SQRTM_METHODS = ("eigh", "newton_schulz", "pade", "taylor")
POLAR_METHODS = ("svd", "newton_schulz")
_HIGHEST = lax.Precision.HIGHEST


# ------------------------------------------------------------------------------------------
# Small helpers.


def _mm(a: jax.Array, b: jax.Array) -> jax.Array:
  return jnp.matmul(a, b, precision=_HIGHEST)


def _mT(x: jax.Array) -> jax.Array:
  return jnp.swapaxes(x, -1, -2)


def _sym(x: jax.Array) -> jax.Array:
  return 0.5 * (x + _mT(x))


def _eye(n: int, dtype) -> jax.Array:
  return jnp.eye(n, dtype=dtype)


def _outer_pairs(lam: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``(lam_i, lam_j)`` broadcast to ``(..., n, n)``."""
  return lam[..., :, None], lam[..., None, :]


def _rotate(U: jax.Array, inner: jax.Array) -> jax.Array:
  """``U inner U^T``."""
  return _mm(_mm(U, inner), _mT(U))


def _as_matrix(x, name: str, fn: str, *, square: bool = True) -> tuple[jax.Array, jnp.dtype]:
  """Validates a ``(..., m, n)`` real floating matrix; returns it in >= float32 and its dtype."""
  x = jnp.asarray(x)
  if x.ndim < 2 or (square and x.shape[-1] != x.shape[-2]):
    want = "(..., n, n) (square in its last two axes)" if square else "(..., m, n)"
    raise ValueError(f"{fn}: `{name}` must have shape {want}; found shape {x.shape}.")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(f"{fn}: `{name}` must have a real floating dtype; found {x.dtype}.")
  compute = jnp.promote_types(x.dtype, jnp.float32)
  return x.astype(compute), x.dtype


def _check_method(method: str, allowed: tuple[str, ...], fn: str) -> None:
  if method not in allowed:
    raise ValueError(f"{fn}: `method` must be one of {allowed}; found {method!r}.")


def _check_count(value, name: str, fn: str, minimum: int = 1) -> int:
  try:
    value = operator.index(value)
  except TypeError:
    raise TypeError(f"{fn}: `{name}` must be an int >= {minimum}; found {value!r}.") from None
  if value < minimum:
    raise ValueError(f"{fn}: `{name}` must be an int >= {minimum}; found {value}.")
  return value


def _check_eps(eps, fn: str) -> float:
  eps = float(eps)
  if not eps >= 0.0:
    raise ValueError(f"{fn}: `eps` must be >= 0; found {eps}.")
  return eps


def _floor(eps: float, dtype, base: str = "tiny") -> float:
  """The eigenvalue clamp ``max(eps, finfo(dtype).<base>)``."""
  return max(eps, float(getattr(jnp.finfo(dtype), base)))


# ------------------------------------------------------------------------------------------
# Spectral functions with the Daleckii-Krein (Loewner) gradient.


@dataclasses.dataclass(frozen=True, eq=False)
class _Kernel:
  """An elementwise ``f`` on eigenvalues and its Loewner matrix ``L(lam)``, ``(..., n, n)``."""
  f: Callable[[jax.Array], jax.Array]
  loewner: Callable[[jax.Array], jax.Array]


def _divided_differences(f, df, lam: jax.Array) -> jax.Array:
  """``L_ij = (f(l_i) - f(l_j)) / (l_i - l_j)``, ``f'((l_i + l_j) / 2)`` for close pairs.

  A pair is close when ``|l_i - l_j| <= tol * max(|l_i|, |l_j|)`` with ``tol = eps^(1/3)`` of
  the dtype (6e-6 in float64, 5e-3 in float32): that balances the cancellation error of the
  quotient, ``eps |f| / |l_i - l_j|``, against the midpoint rule's ``f''' (l_i - l_j)^2 / 24``.
  """
  tol = float(jnp.finfo(lam.dtype).eps) ** (1.0 / 3.0)
  li, lj = _outer_pairs(lam)
  fl = f(lam)
  fi, fj = _outer_pairs(fl)
  diff = li - lj
  close = jnp.abs(diff) <= tol * jnp.maximum(jnp.abs(li), jnp.abs(lj))
  mid = 0.5 * (li + lj)
  if df is None:
    dmid = jax.jvp(f, (mid,), (jnp.ones_like(mid),))[1]
  else:
    dmid = df(mid)
  quotient = (fi - fj) / jnp.where(close, jnp.ones_like(diff), diff)
  return jnp.where(close, dmid.astype(lam.dtype), quotient)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _spectral(P: jax.Array, kernel: _Kernel) -> jax.Array:
  return _spectral_fwd(P, kernel)[0]


def _spectral_fwd(P, kernel):
  lam, U = jnp.linalg.eigh(P, symmetrize_input=False)
  out = _mm(U * kernel.f(lam)[..., None, :], _mT(U))
  return out, (lam, U)


def _spectral_bwd(kernel, res, g):
  lam, U = res
  inner = _mm(_mT(U), _mm(_sym(g), U))
  return (_rotate(U, kernel.loewner(lam) * inner),)


_spectral.defvjp(_spectral_fwd, _spectral_bwd)


def spectral_function(P: jax.Array, f: Callable[[jax.Array], jax.Array],
                      df: Callable[[jax.Array], jax.Array] | None = None) -> jax.Array:
  """``F(P) = U f(Lambda) U^T`` with the exact Daleckii-Krein gradient.

  Forward: ``sym(P) = U Lambda U^T`` by ``jnp.linalg.eigh`` (paper eq. 3), then ``f`` on the
  eigenvalues (eq. 4 for ``f = sqrt`` or ``f = 1 / sqrt``).

  Backward (spec Sec. 2(a)): ``P_bar = U (L o (U^T sym(G) U)) U^T`` with the Loewner matrix
  ``L_ij = (f(l_i) - f(l_j)) / (l_i - l_j)`` and ``L_ij = f'((l_i + l_j) / 2)`` where
  ``|l_i - l_j|`` is below a relative tolerance of ``eps^(1/3)`` (so ``L_ii = f'(l_i)``). This
  is eqs. (5) + (7) with the ``1 / (l_i - l_j)`` terms cancelled analytically: exact for
  distinct eigenvalues, finite (and still exact: ``F`` is smooth there) at repeated ones,
  where ``jax.grad`` through ``eigh`` gives NaN.

  Args:
    P: float ``(..., n, n)``, symmetric; only ``(P + P^T) / 2`` is used.
    f: elementwise ``jnp`` function of the eigenvalues, e.g. ``jnp.exp``. It must be
      defined on the whole spectrum (clamp yourself, e.g. ``lambda l: jnp.sqrt(jnp.maximum(l,
      1e-12))``).
    df: its derivative, elementwise; ``None`` differentiates ``f`` with ``jax.jvp``.

  Returns:
    ``(..., n, n)`` symmetric, the dtype of ``P``.
  """
  P, dtype = _as_matrix(P, "P", "spectral_function")
  if not callable(f):
    raise TypeError(f"spectral_function: `f` must be callable; found {f!r}.")
  if df is not None and not callable(df):
    raise TypeError(f"spectral_function: `df` must be callable or None; found {df!r}.")
  kernel = _Kernel(f, functools.partial(_divided_differences, f, df))
  return _spectral(_sym(P), kernel).astype(dtype)


def _sqrt_kernel(floor: float) -> _Kernel:
  """``f = sqrt(max(l, floor))``; ``L_ij = 1 / (sqrt(l_i) + sqrt(l_j))`` (bounded)."""
  def f(lam):
    return jnp.sqrt(jnp.maximum(lam, floor))

  def loewner(lam):
    si, sj = _outer_pairs(f(lam))
    return 1.0 / (si + sj)

  return _Kernel(f, loewner)


def _inv_sqrt_kernel(floor: float) -> _Kernel:
  """``f = max(l, floor)^(-1/2)``; ``L_ij = -1 / (s_i s_j (s_i + s_j))``, ``s = sqrt(l)``."""
  def f(lam):
    return lax.rsqrt(jnp.maximum(lam, floor))

  def loewner(lam):
    s = jnp.sqrt(jnp.maximum(lam, floor))
    si, sj = _outer_pairs(s)
    ri, rj = _outer_pairs(1.0 / s)
    return -(ri * rj) / (si + sj)

  return _Kernel(f, loewner)


def logm_spd(P: jax.Array, *, eps: float = 0.0) -> jax.Array:
  """Matrix logarithm ``U log(Lambda) U^T`` of a symmetric positive-definite matrix.

  Eigenvalues are clamped at ``max(eps, finfo.tiny)``; the gradient is the Loewner one of
  ``spectral_function`` (finite at repeated eigenvalues).

  Args:
    P: float ``(..., n, n)``, symmetric positive definite.
    eps: eigenvalue floor.

  Returns:
    ``(..., n, n)`` symmetric, the dtype of ``P``.
  """
  P, dtype = _as_matrix(P, "P", "logm_spd")
  floor = _floor(_check_eps(eps, "logm_spd"), P.dtype)
  f = lambda lam: jnp.log(jnp.maximum(lam, floor))
  df = lambda lam: 1.0 / jnp.maximum(lam, floor)
  kernel = _Kernel(f, functools.partial(_divided_differences, f, df))
  return _spectral(_sym(P), kernel).astype(dtype)


def powm(P: jax.Array, p: float, *, eps: float = 0.0) -> jax.Array:
  """Matrix power ``U Lambda^p U^T`` of a symmetric PSD matrix.

  Eigenvalues are clamped at ``max(eps, finfo.tiny)``; the gradient is the Loewner one of
  ``spectral_function``.

  Args:
    P: float ``(..., n, n)``, symmetric PSD (positive definite for ``p < 0``).
    p: the power, a static Python number.
    eps: eigenvalue floor.

  Returns:
    ``(..., n, n)`` symmetric, the dtype of ``P``.
  """
  P, dtype = _as_matrix(P, "P", "powm")
  try:
    p = float(p)
  except (TypeError, jax.errors.ConcretizationTypeError):
    raise TypeError(f"powm: `p` must be a static real number; found {p!r}.") from None
  floor = _floor(_check_eps(eps, "powm"), P.dtype)
  f = lambda lam: jnp.maximum(lam, floor) ** p
  df = lambda lam: p * jnp.maximum(lam, floor) ** (p - 1.0)
  kernel = _Kernel(f, functools.partial(_divided_differences, f, df))
  return _spectral(_sym(P), kernel).astype(dtype)


# ------------------------------------------------------------------------------------------
# Eqs. (5)-(7) by hand, and the Taylor-approximated K of Song et al. (ICCV 2021).


def _exact_k(lam: jax.Array) -> jax.Array:
  """``K_ij = 1 / (l_i - l_j)`` for ``i != j``, ``K_ii = 0`` (eq. 7); infinite at ties."""
  li, lj = _outer_pairs(lam)
  off = ~jnp.eye(lam.shape[-1], dtype=bool)
  return jnp.where(off, 1.0 / jnp.where(off, li - lj, 1.0), 0.0)


def _taylor_k(lam: jax.Array, terms: int) -> jax.Array:
  """Taylor-approximated ``K`` (Song et al., ICCV 2021; spec Sec. 2(b)).

  For ``l_i >= l_j``: ``K_ij ~= (1 / l_i) sum_{k=0}^{terms} (l_j / l_i)^k``; for ``l_i < l_j``:
  ``-(1 / l_j) sum_k (l_i / l_j)^k``; ``K_ii = 0``. Exact as ``terms -> inf`` for distinct
  positive eigenvalues; ``|K_ij| <= (terms + 1) / max(l_i, l_j)`` always, so near-equal pairs
  are damped instead of blowing up. ``K`` stays antisymmetric at exact ties
  (``l_i == l_j``, ``i != j``: ``K_ij = -K_ji = (terms + 1) / l_i`` for ``i < j``), so a tied
  pair contributes the ``l_j -> l_i`` limit of the damped gradient, 0. (The reference
  ``SVD_Taylor.py`` compares with ``>=``, which gives ``K_ij = K_ji = (terms + 1) / l_i`` at
  ties and a gradient that jumps there, e.g. at eigenvalues clamped to the same floor.)
  ``lam`` must be positive.
  """
  li, lj = _outer_pairs(lam)
  n = lam.shape[-1]
  upper = jnp.arange(n)[:, None] < jnp.arange(n)[None, :]
  ge = (li > lj) | ((li == lj) & upper)
  big = jnp.where(ge, li, lj)
  ratio = jnp.where(ge, lj, li) / big
  series = lax.fori_loop(0, terms, lambda _, s: 1.0 + ratio * s, jnp.ones_like(ratio))
  off = ~jnp.eye(n, dtype=bool)
  return jnp.where(off, jnp.where(ge, 1.0, -1.0) / big * series, 0.0)


def _eigen_power_backward(U: jax.Array, lam: jax.Array, g: jax.Array, p: float,
                          kmat: jax.Array) -> jax.Array:
  """Paper eqs. (5)-(7) for ``F = U Lambda^p U^T`` (``p = 1/2``: Q; ``p = -1/2``: S).

  (5) ``dl/dU = (G + G^T) U Lambda^p``;
  (6) ``dl/dLambda = p Lambda^(p-1) diag(U^T G U)``;
  (7) ``dl/dP = U (K^T o (U^T dl/dU) + (dl/dLambda)_diag) U^T``.

  Args:
    U: ``(..., n, n)`` eigenvectors (columns); lam: ``(..., n)`` eigenvalues (any order).
    g: ``(..., n, n)`` cotangent ``G = dl/dF``.
    p: the power.
    kmat: ``(..., n, n)`` the ``K`` of eq. (7), exact (``_exact_k``) or approximated.

  Returns:
    ``(..., n, n)`` eq. (7)'s ``dl/dP``, not symmetrised (eq. (8) adds its transpose).
  """
  d_u = _mm(g + _mT(g), U * (lam ** p)[..., None, :])
  d_lam = p * lam ** (p - 1.0) * jnp.diagonal(_mm(_mT(U), _mm(g, U)), axis1=-2, axis2=-1)
  inner = _mT(kmat) * _mm(_mT(U), d_u) + d_lam[..., None] * _eye(lam.shape[-1], lam.dtype)
  return _rotate(U, inner)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _taylor_power(P: jax.Array, p: float, floor: float, terms: int) -> jax.Array:
  return _taylor_power_fwd(P, p, floor, terms)[0]


def _taylor_power_fwd(P, p, floor, terms):
  lam, U = jnp.linalg.eigh(P, symmetrize_input=False)
  lam = jnp.maximum(lam, floor)
  return _mm(U * (lam ** p)[..., None, :], _mT(U)), (lam, U)


def _taylor_power_bwd(p, floor, terms, res, g):
  del floor
  lam, U = res
  return (_sym(_eigen_power_backward(U, lam, g, p, _taylor_k(lam, terms))),)


_taylor_power.defvjp(_taylor_power_fwd, _taylor_power_bwd)


# ------------------------------------------------------------------------------------------
# Coupled Newton-Schulz (iSQRT-COV) and the Lyapunov backward.


def _lyapunov_ns(b: jax.Array, c: jax.Array, num_iters: int) -> jax.Array:
  """Solves ``X B + B X = C`` by ``num_iters`` coupled Newton-Schulz steps (MPA-Lya).

  The sign iteration ``Z <- Z (3I - Z^2) / 2`` on ``[[B, C], [0, -B]]`` converges to
  ``[[I, 2X], [0, -I]]`` when the eigenvalues of the symmetric ``B`` lie in ``(0, sqrt(3))``;
  its blocks are ``b2 = b b; c <- (c (3I - b2) - b2 c + b c b) / 2; b <- b (3I - b2) / 2`` and
  ``X = c / 2`` (spec Sec. 2(e)). Convergence is slow for eigenvalues of ``B`` near 0 (each
  step multiplies them by about 1.5), i.e. for ill-conditioned ``B``.
  """
  eye3 = 3.0 * _eye(b.shape[-1], b.dtype)

  def body(_, bc):
    b, c = bc
    b2 = _mm(b, b)
    c = 0.5 * (_mm(c, eye3 - b2) - _mm(b2, c) + _mm(_mm(b, c), b))
    b = 0.5 * _mm(b, eye3 - b2)
    return b, c

  _, c = lax.fori_loop(0, num_iters, body, (b, c))
  return 0.5 * c


def _trace_normaliser(P: jax.Array) -> jax.Array:
  t = jnp.trace(P, axis1=-2, axis2=-1)[..., None, None]
  return jnp.maximum(t, jnp.finfo(P.dtype).tiny)


def _ns_iterate(P: jax.Array, num_iters: int):
  """Coupled NS: ``A = P / tr P``, ``Y0 = A``, ``Z0 = I``; ``T = (3I - Z Y) / 2``; ``Y <- Y T``;
  ``Z <- T Z``. Returns ``sqrt(tr P) Y``, ``Z / sqrt(tr P)`` and the residuals ``(Y, sqrt(tr P))``.
  """
  n = P.shape[-1]
  t = _trace_normaliser(P)
  eye = jnp.broadcast_to(_eye(n, P.dtype), P.shape)
  eye3 = 3.0 * _eye(n, P.dtype)

  def body(_, yz):
    y, z = yz
    t_k = 0.5 * (eye3 - _mm(z, y))
    return _mm(y, t_k), _mm(t_k, z)

  y, z = lax.fori_loop(0, num_iters, body, (P / t, eye))
  root_t = jnp.sqrt(t)
  return y * root_t, z / root_t, (y, root_t)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _ns_lyapunov(P: jax.Array, num_iters: int, backward_iters: int):
  sqrt_p, inv_sqrt_p, _ = _ns_iterate(P, num_iters)
  return sqrt_p, inv_sqrt_p


def _ns_lyapunov_fwd(P, num_iters, backward_iters):
  sqrt_p, inv_sqrt_p, (y, root_t) = _ns_iterate(P, num_iters)
  return (sqrt_p, inv_sqrt_p), (y, inv_sqrt_p, root_t)


def _ns_lyapunov_bwd(num_iters, backward_iters, res, g):
  y, inv_sqrt_p, root_t = res
  g_sqrt, g_inv = g
  # S = R^-1 with R = sqrt(P):  R_bar = G_R - S G_S S.  Then X R + R X = R_bar, i.e.
  # X B + B X = R_bar / sqrt(tr P) with B = Y = sqrt(P / tr P).
  r_bar = _sym(g_sqrt) - _mm(_mm(inv_sqrt_p, _sym(g_inv)), inv_sqrt_p)
  return (_sym(_lyapunov_ns(y, r_bar / root_t, backward_iters)),)


_ns_lyapunov.defvjp(_ns_lyapunov_fwd, _ns_lyapunov_bwd)


def _newton_schulz(P, num_iters, backward_iters, ns_backward):
  if ns_backward == "autodiff":
    sqrt_p, inv_sqrt_p, _ = _ns_iterate(P, num_iters)
    return sqrt_p, inv_sqrt_p
  return _ns_lyapunov(P, num_iters, backward_iters)


# ------------------------------------------------------------------------------------------
# Matrix Pade approximant (MPA-Lya).


def _pade_coefficients(m: int, n: int) -> tuple[np.ndarray, np.ndarray]:
  """``[m/n]`` Pade coefficients of ``sqrt(1 - x)``: ``sqrt(1 - x) ~= P(x) / Q(x)``, ``q_0 = 1``.

  From the Taylor coefficients ``c_k = binom(1/2, k) (-1)^k``, the linear system
  ``sum_{j=1}^{n} q_j c_{k-j} = -c_k`` (``k = m+1 .. m+n``), then ``p_i = sum_j q_j c_{i-j}``,
  solved exactly in rationals (the system's condition number is ~4e5, so a float64 solve
  would leave ~3e-13 errors) and returned as float64 arrays ``(m+1,)`` and ``(n+1,)``.
  """
  half = fractions.Fraction(1, 2)
  c = [fractions.Fraction(1)]
  for k in range(1, m + n + 1):
    c.append(-c[-1] * (half - k + 1) / k)
  coef = lambda k: c[k] if k >= 0 else fractions.Fraction(0)
  a = [[coef(k - j) for j in range(1, n + 1)] + [-c[k]] for k in range(m + 1, m + n + 1)]
  for col in range(n):  # Gauss-Jordan elimination with exact arithmetic.
    piv = next(r for r in range(col, n) if a[r][col] != 0)
    a[col], a[piv] = a[piv], a[col]
    a[col] = [v / a[col][col] for v in a[col]]
    for r in range(n):
      if r != col and a[r][col] != 0:
        a[r] = [vr - a[r][col] * vc for vr, vc in zip(a[r], a[col])]
  q = [fractions.Fraction(1)] + [a[r][n] for r in range(n)]
  p = [sum(q[j] * coef(i - j) for j in range(min(i, n) + 1)) for i in range(m + 1)]
  return np.array(p, dtype=np.float64), np.array(q, dtype=np.float64)


_PADE_P, _PADE_Q = _pade_coefficients(5, 5)


def _pade_sqrt_forward(P: jax.Array):
  """``sqrt(M) ~= sqrt(|M|_F) Q(I - A)^-1 P(I - A)``, ``A = M / |M|_F`` (MPA, spec Sec. 2(e))."""
  n = P.shape[-1]
  norm = jnp.sqrt(jnp.sum(P * P, axis=(-2, -1), keepdims=True))
  norm = jnp.maximum(norm, jnp.finfo(P.dtype).tiny)
  eye = jnp.broadcast_to(_eye(n, P.dtype), P.shape)
  x = eye - P / norm
  num = float(_PADE_P[0]) * eye
  den = float(_PADE_Q[0]) * eye
  x_k = x
  for k in range(1, len(_PADE_P)):
    num = num + float(_PADE_P[k]) * x_k
    den = den + float(_PADE_Q[k]) * x_k
    if k + 1 < len(_PADE_P):
      x_k = _mm(x_k, x)
  b = jnp.linalg.solve(den, num)  # sqrt(A); P(x), Q(x) commute, so this is symmetric.
  root_norm = jnp.sqrt(norm)
  return b * root_norm, (b, root_norm)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _pade_sqrt(P: jax.Array, backward_iters: int) -> jax.Array:
  return _pade_sqrt_forward(P)[0]


def _pade_sqrt_fwd(P, backward_iters):
  return _pade_sqrt_forward(P)


def _pade_sqrt_bwd(backward_iters, res, g):
  b, root_norm = res
  return (_sym(_lyapunov_ns(b, _sym(g) / root_norm, backward_iters)),)


_pade_sqrt.defvjp(_pade_sqrt_fwd, _pade_sqrt_bwd)


# ------------------------------------------------------------------------------------------
# Public matrix square roots.


def _matrix_root(fn: str, P, method, num_iters, eps, taylor_terms, backward_iters,
                 ns_backward, inverse: bool) -> jax.Array:
  P, dtype = _as_matrix(P, "P", fn)
  _check_method(method, SQRTM_METHODS, fn)
  num_iters = _check_count(num_iters, "num_iters", fn)
  eps = _check_eps(eps, fn)
  taylor_terms = _check_count(taylor_terms, "taylor_terms", fn, minimum=0)
  backward_iters = _check_count(backward_iters, "backward_iters", fn)
  if ns_backward not in ("lyapunov", "autodiff"):
    raise ValueError(f"{fn}: `ns_backward` must be 'lyapunov' or 'autodiff'; "
                     f"found {ns_backward!r}.")
  P = _sym(P)
  if method == "eigh":
    floor = _floor(eps, P.dtype)
    kernel = _inv_sqrt_kernel(floor) if inverse else _sqrt_kernel(floor)
    out = _spectral(P, kernel)
  elif method == "taylor":
    out = _taylor_power(P, -0.5 if inverse else 0.5, _floor(eps, P.dtype, "eps"), taylor_terms)
  elif method == "newton_schulz":
    if eps:
      P = P + eps * _eye(P.shape[-1], P.dtype)
    out = _newton_schulz(P, num_iters, backward_iters, ns_backward)[1 if inverse else 0]
  else:  # pade
    if eps:
      P = P + eps * _eye(P.shape[-1], P.dtype)
    out = _pade_sqrt(P, backward_iters)
    if inverse:
      out = jnp.linalg.solve(out, jnp.broadcast_to(_eye(P.shape[-1], P.dtype), P.shape))
  return out.astype(dtype)


def sqrtm(P: jax.Array, *, method: str = "eigh", num_iters: int = 5, eps: float = 0.0,
          taylor_terms: int = 9, backward_iters: int = 8,
          ns_backward: str = "lyapunov") -> jax.Array:
  """Matrix square root ``Q = P^(1/2) = U Lambda^(1/2) U^T`` (paper eq. 4), differentiable.

  Methods (spec Sec. 2):

  * ``"eigh"`` (a): ``eigh`` forward, eigenvalues clamped at ``max(eps, finfo.tiny)``; exact
    Loewner gradient ``L_ij = 1 / (sqrt(l_i) + sqrt(l_j))``, bounded at repeated
    eigenvalues.
  * ``"newton_schulz"`` (d; iSQRT-COV): ``A = P / tr(P)``, ``Y0 = A``, ``Z0 = I``,
    ``T = (3I - Z Y) / 2``, ``Y <- Y T``, ``Z <- T Z`` for ``num_iters`` steps; returns
    ``sqrt(tr P) Y``. Converges for every PSD ``P`` but slowly for ill-conditioned ones
    (5 steps: ~1e-3 relative error at condition number 3). ``eps > 0`` adds ``eps I`` first.
    Gradient: ``ns_backward="lyapunov"`` solves ``X Q + Q X = sym(G)`` by ``backward_iters``
    coupled NS steps started from ``Y`` (memory O(1) in ``num_iters``; the gradient of the
    exact square root, accurate once the forward has converged); ``"autodiff"``
    differentiates the iteration itself (the exact adjoint of the truncated forward, as
    iSQRT-COV).
  * ``"pade"`` (e; MPA-Lya): ``sqrt(|P|_F) Q5(I - A)^-1 P5(I - A)`` with ``A = P / |P|_F``
    and the [5/5] Pade coefficients of ``sqrt(1 - x)``; about 1e-3 relative error up to
    condition number 1e2. Gradient: the same Lyapunov solve, ``backward_iters`` steps from
    ``b = Q5^-1 P5``. ``eps > 0`` adds ``eps I`` first. ``num_iters`` is unused.
  * ``"taylor"`` (b; Song et al., ICCV 2021): ``eigh`` forward, eigenvalues clamped at
    ``max(eps, finfo.eps)``; gradient by eqs. (5)-(7) with
    ``K_ij ~= (1 / l_i) sum_{k=0}^{taylor_terms} (l_j / l_i)^k`` (``l_i >= l_j``), which damps
    near-degenerate pairs to ``|K_ij| <= (taylor_terms + 1) / max(l_i, l_j)``.

  Args:
    P: float ``(..., n, n)`` symmetric PSD; only ``(P + P^T) / 2`` is used.
    method: one of ``SQRTM_METHODS``.
    num_iters: forward Newton-Schulz steps (``"newton_schulz"``).
    eps: eigenvalue floor (``"eigh"``, ``"taylor"``) or diagonal shift (``"newton_schulz"``,
      ``"pade"``).
    taylor_terms: highest power ``K`` of the Taylor series (``"taylor"``; the reference code
      used 100, the OrthoImproveCond runs 9).
    backward_iters: Lyapunov Newton-Schulz steps (``"newton_schulz"``, ``"pade"``; 8 in
      MPA-Lya).
    ns_backward: ``"lyapunov"`` or ``"autodiff"`` (``"newton_schulz"``).

  Returns:
    ``(..., n, n)``, the dtype of ``P``.
  """
  return _matrix_root("sqrtm", P, method, num_iters, eps, taylor_terms, backward_iters,
                      ns_backward, inverse=False)


def inv_sqrtm(P: jax.Array, *, method: str = "eigh", num_iters: int = 5, eps: float = 0.0,
              taylor_terms: int = 9, backward_iters: int = 8,
              ns_backward: str = "lyapunov") -> jax.Array:
  """Inverse matrix square root ``S = P^(-1/2) = U Lambda^(-1/2) U^T`` (paper eq. 4).

  The ZCA whitening matrix of decorrelated BN. Methods as in ``sqrtm``:

  * ``"eigh"``: Loewner gradient ``L_ij = -1 / (s_i s_j (s_i + s_j))``, ``s = sqrt(l)``;
    eigenvalues clamped at ``max(eps, finfo.tiny)`` (pass ``eps > 0`` for singular ``P``:
    the floor alone leaves ``P^(-1/2)`` and its gradient astronomically large).
  * ``"newton_schulz"``: returns ``Z / sqrt(tr P)``; the Lyapunov backward maps ``G`` to
    ``-S sym(G) S`` (the adjoint of ``S = Q^-1``) and solves for ``Q``.
  * ``"pade"``: ``Q^-1`` of the Pade square root by a linear solve (as the released
    OrthoImproveCond ZCA layer, ``inverse(MPA_Lya(Sigma))``), differentiated through the
    solve and the Lyapunov backward.
  * ``"taylor"``: eqs. (5)-(7) with ``p = -1/2`` and the Taylor ``K``.

  Args and returns: as ``sqrtm``.
  """
  return _matrix_root("inv_sqrtm", P, method, num_iters, eps, taylor_terms, backward_iters,
                      ns_backward, inverse=True)


# ------------------------------------------------------------------------------------------
# Orthogonality: polar factor, exp of skew-symmetric, spectral norm.


def polar(G: jax.Array, *, method: str = "svd", num_iters: int = 15) -> jax.Array:
  """Nearest (semi-)orthogonal matrix ``R = U V^T = G (G^T G)^(-1/2)`` (eqs. 14-17, NOG).

  ``R = argmin |G - R|_F`` subject to ``R^T R = I`` (tall ``G``) or ``R R^T = I`` (wide).
  ``<G, R> = sum_i sigma_i(G)`` (the nuclear norm), so ``-R`` is a descent direction for a
  gradient ``G``; ``R`` is invariant to positive scaling of ``G``.

  * ``"svd"``: thin SVD ``G = U diag(s) V^T``, ``R = U V^T``.
  * ``"newton_schulz"``: ``X0 = G / |G|_F``, then ``num_iters`` cubic steps
    ``X <- X (3I - X^T X) / 2`` (on the smaller Gram side). Singular values ``s`` of ``X0``
    grow by about 1.5x per step while small, so ``num_iters`` must exceed about
    ``log(1 / s_min) / log(1.5) + 5``.

  A zero matrix maps to zeros. For rank-deficient ``G``, ``U V^T`` depends on the basis the
  SVD picks for the null space (Newton-Schulz leaves those directions at 0). NOG applies it
  to gradients and never differentiates it; the ``"svd"`` path's derivative is JAX's SVD
  rule (NaN at repeated singular values), the Newton-Schulz path's is plain autodiff.

  Args:
    G: float ``(..., m, n)``.
    method: one of ``POLAR_METHODS``.
    num_iters: Newton-Schulz steps.

  Returns:
    ``(..., m, n)``, the dtype of ``G``.
  """
  G, dtype = _as_matrix(G, "G", "polar", square=False)
  _check_method(method, POLAR_METHODS, "polar")
  num_iters = _check_count(num_iters, "num_iters", "polar")
  norm = jnp.sqrt(jnp.sum(G * G, axis=(-2, -1), keepdims=True))
  nonzero = norm > 0
  if method == "svd":
    u, _, vt = jnp.linalg.svd(G, full_matrices=False)
    out = jnp.where(nonzero, _mm(u, vt), 0.0)
  else:
    m, n = G.shape[-2:]
    x = G / jnp.where(nonzero, norm, 1.0)
    eye3 = 3.0 * _eye(min(m, n), G.dtype)
    if m >= n:
      step = lambda _, x: 0.5 * _mm(x, eye3 - _mm(_mT(x), x))
    else:
      step = lambda _, x: 0.5 * _mm(eye3 - _mm(x, _mT(x)), x)
    out = lax.fori_loop(0, num_iters, step, x)
  return out.astype(dtype)


def expm_skew(W: jax.Array) -> jax.Array:
  """The orthogonal matrix ``exp(W - W^T)`` (eq. 13, OW).

  ``W - W^T`` is skew-symmetric, so its exponential is orthogonal with determinant 1 for
  every ``W``: an unconstrained parameterisation of rotations. Computed by
  ``jax.scipy.linalg.expm`` (scaling and squaring), differentiable.

  Args:
    W: float ``(..., n, n)``.

  Returns:
    ``(..., n, n)``, the dtype of ``W``.
  """
  W, dtype = _as_matrix(W, "W", "expm_skew")
  return jsl.expm(W - _mT(W)).astype(dtype)


def _l2_normalise(x: jax.Array, eps: float) -> jax.Array:
  norm = jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True))
  return x / jnp.maximum(norm, eps)


def spectral_norm(W: jax.Array, *, num_iters: int = 1, u: jax.Array | None = None,
                  eps: float = 1e-12) -> tuple[jax.Array, jax.Array]:
  """Largest singular value by power iteration (Miyato et al., 2018; paper eq. 11, SN).

  Each step: ``v = normalise(W^T u)``, ``u = normalise(W v)``; then
  ``sigma = u^T W v``. The vectors are ``stop_gradient``-ed, as in Miyato, so
  ``d sigma / dW = u v^T``. Carry ``u`` across training steps (one step per call then
  tracks ``sigma_max`` as ``W`` drifts). For a conv kernel, reshape it to
  ``(out, in * kh * kw)`` first.

  Args:
    W: float ``(..., m, n)``.
    num_iters: power-iteration steps, >= 1.
    u: ``(..., m)`` left-vector estimate; ``None`` starts from ``ones(m) / sqrt(m)``
      (deterministic; fails only if it is exactly orthogonal to the top left vector).
    eps: floor of the norms in the normalisation.

  Returns:
    ``(sigma, u)``: ``sigma`` ``(...)`` the estimate of ``sigma_max(W)`` (a lower bound),
    ``u`` ``(..., m)`` the updated unit left vector; both in the dtype of ``W``.
  """
  W, dtype = _as_matrix(W, "W", "spectral_norm", square=False)
  num_iters = _check_count(num_iters, "num_iters", "spectral_norm")
  m = W.shape[-2]
  if u is None:
    u = jnp.full(W.shape[:-1], 1.0 / np.sqrt(m), W.dtype)
  else:
    u = jnp.asarray(u)
    if u.shape != W.shape[:-1]:
      raise ValueError(f"spectral_norm: `u` must have shape W.shape[:-1] = {W.shape[:-1]}; "
                       f"found {u.shape}.")
    u = u.astype(W.dtype)
  w_sg = lax.stop_gradient(W)
  u = lax.stop_gradient(u)
  v = None
  for _ in range(num_iters):
    v = _l2_normalise(jnp.einsum("...mn,...m->...n", w_sg, u, precision=_HIGHEST), eps)
    u = _l2_normalise(jnp.einsum("...mn,...n->...m", w_sg, v, precision=_HIGHEST), eps)
  u, v = lax.stop_gradient(u), lax.stop_gradient(v)
  sigma = jnp.einsum("...m,...mn,...n->...", u, W, v, precision=_HIGHEST)
  return sigma.astype(dtype), u.astype(dtype)


# ------------------------------------------------------------------------------------------
# Covariance and its conditioning.


def covariance(x: jax.Array) -> jax.Array:
  """Sample covariance ``P = (x - mu)^T (x - mu) / n`` (eq. 2, ``P = X J X^T``).

  ``J = (I - 1 1^T / n) / n`` is never materialised. The product runs at
  ``Precision.HIGHEST``: on TPU the default float32 matmul takes bfloat16 passes, which
  destroys a covariance whose condition number the SVD layer drives to 1e12.

  Args:
    x: float ``(..., n, d)``: ``n`` samples of ``d`` features (the paper's ``X^T``).

  Returns:
    ``(..., d, d)`` symmetric PSD, the dtype of ``x`` (float32 for half precision).
  """
  x, _ = _as_matrix(x, "x", "covariance", square=False)
  xc = x - jnp.mean(x, axis=-2, keepdims=True)
  return jnp.einsum("...nd,...ne->...de", xc, xc, precision=_HIGHEST) / x.shape[-2]


def _host_condition_number(p: np.ndarray, out_dtype) -> np.ndarray:
  p = np.asarray(p, dtype=np.float64)
  w = np.linalg.eigvalsh(0.5 * (p + np.swapaxes(p, -1, -2)))
  lo, hi = w[..., 0], w[..., -1]
  with np.errstate(divide="ignore", invalid="ignore"):
    kappa = np.where(lo > 0, hi / np.where(lo > 0, lo, 1.0), np.inf)
  return np.asarray(kappa, dtype=out_dtype)


def condition_number(P: jax.Array) -> jax.Array:
  """``kappa(P) = l_max / l_min`` of a symmetric PSD matrix, in float64 (eq. 1).

  The eigenvalues are computed on the host by ``np.linalg.eigvalsh`` in float64 through
  ``jax.pure_callback``, so the monitor is meaningful up to ~1e15 even under ``jit`` and
  without ``jax_enable_x64`` (a float32 ``eigvalsh`` is noise above ~1e7). It is the exact
  condition number of the matrix as stored: a float32 ``P`` already carries rounding of
  ``~1e-7 l_max`` in its entries. Not differentiable (the input is ``stop_gradient``-ed);
  it works under ``vmap`` and on sharded inputs (the matrices are gathered to the host).

  Args:
    P: float ``(..., n, n)``; only ``(P + P^T) / 2`` is used.

  Returns:
    ``(...)`` float64 when x64 is enabled, else float32; ``inf`` where ``l_min <= 0``.
  """
  P, _ = _as_matrix(P, "P", "condition_number")
  out_dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
  result = jax.ShapeDtypeStruct(P.shape[:-2], out_dtype)
  return jax.pure_callback(functools.partial(_host_condition_number, out_dtype=out_dtype),
                           result, lax.stop_gradient(P), vmap_method="expand_dims")
