r"""Closed-form ridge regression RGB -> spectrum: the linear spectral-recovery baseline.

Per pixel, ``ŷ = φ(x) W`` with ``x`` the RGB value, ``φ`` a fixed feature map and ``W`` the
``(F, bands)`` solution of the ridge problem over the training pixels ``(x_i, y_i)``::

  W = argmin_W (1/n) sum_i ||φ(x_i) W - y_i||^2 + lam ||W'||^2
    = (XᵀX / n + lam D)^-1 XᵀY / n,

``X = [φ(x_i)]`` ``(n, F)``, ``Y`` ``(n, bands)``, ``D = diag(1, ..., 1, 0)`` so that the bias
row ``W'`` excludes is not shrunk. ``lam`` is per pixel: the textbook ``(XᵀX + Λ I)^-1 XᵀY``
with ``Λ = n lam`` (here independent of how many pixels were seen). ``lam = 0`` is
ordinary least squares (``numpy.linalg.lstsq``).

Feature maps ``φ`` (:func:`rgb_features`):

* ``degree=1`` (default): ``(r, g, b)`` -- linear regression, the classic baseline;
* polynomial ``degree`` 2 or 3: every monomial ``r^a g^b b^c`` with ``1 <= a + b + c <=
  degree`` (9 or 19 terms);
* ``root=True``: root-polynomial regression (Finlayson, Mackiewicz & Hurlbert, TIP 2015;
  used for spectral recovery by Lin & Finlayson, "Exposure invariance in spectral
  reconstruction from RGB images", CIC 2019): each monomial of degree ``k`` raised to
  ``1/k`` and duplicates dropped (``sqrt(r^2) = r``), giving 3 / 6 / 13 terms that are all
  degree-1 homogeneous -- without bias the fit is exposure invariant (``φ(s x) = s φ(x)``).
  RGB is clipped at 0 before the roots.
* ``bias=True`` (default) appends a constant 1.

Fitting accumulates ``XᵀX``, ``XᵀY`` and ``n`` in float64 on the host over batches
(:func:`ridge_statistics`), so it scales to every pixel of a dataset; prediction
(:meth:`SpectralRidge.predict`) is a ``jnp`` matmul, ``jit``-able. This is a plain dataclass,
not a Flax module: there is nothing to train by gradient descent.

Because a camera maps 31 bands to 3 channels, distinct spectra share an RGB (metamers):
even the best map has a non-zero error floor on natural data, which this baseline attains
for its feature class. Spec ``spectral-transformer-ising`` Sec. 6.6 uses it as the bar a
learned model must beat.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any, Iterable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["RidgeStatistics", "SpectralRidge", "feature_exponents", "feature_names",
           "fit_spectral_ridge", "rgb_features", "ridge_statistics", "solve_ridge"]

MAX_DEGREE = 3


def _check_features(degree, root, fn: str) -> tuple[int, bool]:
  if (isinstance(degree, bool) or not isinstance(degree, (int, np.integer))
      or not 1 <= degree <= MAX_DEGREE):
    raise ValueError(f"{fn}: `degree` must be an int in [1, {MAX_DEGREE}]; found {degree!r}.")
  return int(degree), bool(root)


def feature_exponents(degree: int = 1, *, root: bool = False) -> tuple[tuple[int, int, int], ...]:
  """The monomials ``r^a g^b b^c`` of the feature map, as ``(a, b, c)``.

  Ordered by total degree, then lexicographically descending (``r`` first). With ``root``,
  exponents whose ``gcd > 1`` are dropped (their root equals a lower-degree term).
  """
  degree, root = _check_features(degree, root, "feature_exponents")
  out = []
  for k in range(1, degree + 1):
    for e in sorted((e for e in itertools.product(range(k + 1), repeat=3) if sum(e) == k),
                    reverse=True):
      if root and math.gcd(*e) > 1:
        continue
      out.append(e)
  return tuple(out)


def feature_names(degree: int = 1, *, root: bool = False, bias: bool = True) -> list[str]:
  """Readable names of the features, e.g. ``["r", "g", "b", "sqrt(r*g)", ..., "1"]``."""
  names = []
  for e in feature_exponents(degree, root=root):
    mono = "*".join(c if p == 1 else f"{c}^{p}" for c, p in zip("rgb", e) if p)
    k = sum(e)
    names.append(mono if not root or k == 1 else
                (f"sqrt({mono})" if k == 2 else f"cbrt({mono})"))
  return names + (["1"] if bias else [])


def rgb_features(rgb, degree: int = 1, *, root: bool = False, bias: bool = True):
  """The feature map ``φ`` of RGB values (module docstring).

  Works on numpy arrays (float64 stays float64: the fitting path) and jax arrays
  (``jit``-able: the prediction path).

  Args:
    rgb: ``(..., 3)``.
    degree: 1, 2 or 3.
    root: root-polynomial terms.
    bias: append a constant 1.

  Returns:
    ``(..., F)`` with ``F = len(feature_names(degree, root=root, bias=bias))``, rgb's float
    dtype (float32 for integer input).
  """
  degree, root = _check_features(degree, root, "rgb_features")
  xp = np if isinstance(rgb, np.ndarray) else jnp
  rgb = xp.asarray(rgb)
  if rgb.ndim < 1 or rgb.shape[-1] != 3:
    raise ValueError(f"rgb_features: `rgb` must be (..., 3); found shape {rgb.shape}.")
  if not xp.issubdtype(rgb.dtype, xp.floating):
    rgb = rgb.astype(xp.float32)
  if root:
    rgb = xp.maximum(rgb, 0)
  chans = [rgb[..., i] for i in range(3)]
  feats = []
  for e in feature_exponents(degree, root=root):
    term = None
    for c, p in zip(chans, e):
      for _ in range(p):
        term = c if term is None else term * c
    k = sum(e)
    if root and k == 2:
      term = xp.sqrt(term)
    elif root and k == 3:
      term = xp.cbrt(term)
    feats.append(term)
  if bias:
    feats.append(xp.ones_like(chans[0]))
  return xp.stack(feats, axis=-1)


@dataclasses.dataclass(frozen=True)
class RidgeStatistics:
  """Sufficient statistics of the ridge problem, float64: ``xtx = XᵀX`` ``(F, F)``,
  ``xty = XᵀY`` ``(F, bands)``, ``n`` pixels, and the feature map that made them."""
  xtx: np.ndarray
  xty: np.ndarray
  n: int
  degree: int = 1
  root: bool = False
  bias: bool = True

  @classmethod
  def zeros(cls, bands: int, degree: int = 1, root: bool = False, bias: bool = True
            ) -> "RidgeStatistics":
    f = len(feature_names(degree, root=root, bias=bias))
    return cls(np.zeros((f, f)), np.zeros((f, int(bands))), 0, int(degree), bool(root),
               bool(bias))

  def update(self, rgb, cube) -> "RidgeStatistics":
    """The statistics with the pixels of ``rgb (..., 3)`` and ``cube (..., bands)`` added."""
    rgb, cube = np.asarray(rgb, np.float64), np.asarray(cube, np.float64)
    if rgb.shape[-1:] != (3,) or cube.ndim < 1 or rgb.shape[:-1] != cube.shape[:-1]:
      raise ValueError(f"ridge: `rgb` (..., 3) and `cube` (..., bands) must have the same "
                       f"pixels; found {rgb.shape} and {cube.shape}.")
    if cube.shape[-1] != self.xty.shape[1]:
      raise ValueError(f"ridge: `cube` must have {self.xty.shape[1]} bands like the data so "
                       f"far; found {cube.shape[-1]}.")
    x = rgb_features(rgb.reshape(-1, 3), self.degree, root=self.root, bias=self.bias)
    y = cube.reshape(-1, cube.shape[-1])
    # einsum, not x.T @ y: OpenBLAS's threaded gemm is pathologically slow on such skinny
    # products on a loaded machine (seconds instead of milliseconds, measured).
    xtx = np.einsum("nf,ng->fg", x, x, optimize=True)
    xty = np.einsum("nf,nb->fb", x, y, optimize=True)
    return dataclasses.replace(self, xtx=self.xtx + xtx, xty=self.xty + xty,
                               n=self.n + x.shape[0])


@dataclasses.dataclass(frozen=True)
class SpectralRidge:
  """A fitted ridge map RGB -> spectrum.

  Attributes:
    weights: float64 ``(F, bands)``; the last row is the bias when ``bias``.
    degree, root, bias: the feature map (:func:`rgb_features`).
    lam: the per-pixel ridge penalty it was solved with.
    num_pixels: training pixels.
  """
  weights: np.ndarray
  degree: int = 1
  root: bool = False
  bias: bool = True
  lam: float = 0.0
  num_pixels: int = 0

  @property
  def num_bands(self) -> int:
    return int(self.weights.shape[1])

  def predict(self, rgb) -> jax.Array:
    """Predicted spectra ``φ(rgb) W``.

    Args:
      rgb: ``(..., 3)`` float, e.g. ``(N, H, W, 3)`` (numpy or jax; ``jit``-able).

    Returns:
      ``(..., bands)`` jax array, ``promote(rgb.dtype, float32)`` (float32 weights unless
      x64 is enabled).
    """
    rgb = jnp.asarray(rgb)
    dtype = jnp.result_type(rgb.dtype, jnp.float32)
    x = rgb_features(rgb.astype(dtype), self.degree, root=self.root, bias=self.bias)
    return x @ jnp.asarray(self.weights, dtype)

  __call__ = predict


def solve_ridge(stats: RidgeStatistics, lam: float = 0.0) -> SpectralRidge:
  """``W = (XᵀX / n + lam D)^-1 XᵀY / n`` from accumulated statistics, in float64.

  Raises (naming ``lam``) when the system is singular, e.g. ``lam = 0`` with collinear
  features or fewer pixels than features.
  """
  if not lam >= 0:
    raise ValueError(f"solve_ridge: `lam` must be >= 0; found {lam!r}.")
  if stats.n == 0:
    raise ValueError("solve_ridge: no pixels were accumulated.")
  f = stats.xtx.shape[0]
  d = np.ones(f)
  if stats.bias:
    d[-1] = 0.0
  a = stats.xtx / stats.n + float(lam) * np.diag(d)
  b = stats.xty / stats.n
  try:
    w = np.linalg.solve(a, b)
    if not np.all(np.isfinite(w)):
      raise np.linalg.LinAlgError
  except np.linalg.LinAlgError:
    raise ValueError(f"solve_ridge: the normal equations are singular with lam={lam} "
                     f"({stats.n} pixels, {f} features); use lam > 0 or more varied "
                     "pixels.") from None
  return SpectralRidge(w, stats.degree, stats.root, stats.bias, float(lam), int(stats.n))


def _batches(data, batch_size: int) -> Iterable[tuple[Any, Any]]:
  """``(rgb, cube)`` pairs from arrays, a batch dict, a Source or an iterable of batches."""
  if isinstance(data, dict):
    yield data["rgb"], data["cube"]
    return
  if isinstance(data, tuple) and len(data) == 2 and hasattr(data[0], "shape"):
    yield data
    return
  if hasattr(data, "get") and hasattr(data, "__len__") and hasattr(data, "info"):
    n = len(data)
    for start in range(0, n, batch_size):
      batch = data.get(np.arange(start, min(n, start + batch_size)))
      yield batch["rgb"], batch["cube"]
    return
  for batch in data:
    if isinstance(batch, dict):
      yield batch["rgb"], batch["cube"]
    else:
      rgb, cube = batch
      yield rgb, cube


def ridge_statistics(data, *, degree: int = 1, root: bool = False, bias: bool = True,
                     pixel_stride: int = 1, batch_size: int = 64) -> RidgeStatistics:
  """Accumulates :class:`RidgeStatistics` (float64) over ``data``.

  Args:
    data: ``(rgb, cube)`` arrays (``(..., 3)``, ``(..., bands)``); a batch dict with
      ``"rgb"`` and ``"cube"``; a :class:`~jaxvision.data.sources.Source` of such batches
      (read in its deterministic view, ``batch_size`` examples at a time); or an iterable of
      batch dicts / ``(rgb, cube)`` pairs.
    degree, root, bias: the feature map (:func:`rgb_features`).
    pixel_stride: use every ``pixel_stride``-th row and column of ``(..., H, W, C)`` images
      (1: every pixel); ignored for flat ``(n, C)`` pixel arrays.
    batch_size: examples per ``get`` when ``data`` is a Source.
  """
  degree, root = _check_features(degree, root, "ridge_statistics")
  if isinstance(pixel_stride, bool) or not isinstance(pixel_stride, (int, np.integer)) or (
      pixel_stride < 1):
    raise ValueError(f"ridge_statistics: `pixel_stride` must be an int >= 1; found "
                     f"{pixel_stride!r}.")
  stats = None
  for rgb, cube in _batches(data, int(batch_size)):
    rgb, cube = np.asarray(rgb), np.asarray(cube)
    if pixel_stride > 1 and rgb.ndim >= 3 and cube.ndim >= 3:
      rgb = rgb[..., ::pixel_stride, ::pixel_stride, :]
      cube = cube[..., ::pixel_stride, ::pixel_stride, :]
    if stats is None:
      stats = RidgeStatistics.zeros(cube.shape[-1] if cube.ndim else 0, degree, root, bias)
    stats = stats.update(rgb, cube)
  if stats is None:
    raise ValueError("ridge_statistics: `data` gave no batches.")
  return stats


def fit_spectral_ridge(data, *, lam: float = 1e-6, degree: int = 1, root: bool = False,
                       bias: bool = True, pixel_stride: int = 1,
                       batch_size: int = 64) -> SpectralRidge:
  """Fits the ridge map RGB -> spectrum on every training pixel of ``data``, in closed form.

  :func:`ridge_statistics` then :func:`solve_ridge`. The small default ``lam`` only
  guards against singular systems (e.g. degree-3 features of few colours); ``lam=0`` is
  least squares.

  Example::

    train = create_dataset("synthetic_hsi", "train")
    ridge = fit_spectral_ridge(train)
    batch = create_dataset("synthetic_hsi", "test").get(np.arange(16))
    metrics.mrae(ridge.predict(batch["rgb"]), batch["cube"])

  Returns:
    A :class:`SpectralRidge`.
  """
  stats = ridge_statistics(data, degree=degree, root=root, bias=bias,
                           pixel_stride=pixel_stride, batch_size=batch_size)
  return solve_ridge(stats, lam)
