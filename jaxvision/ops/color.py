"""Colour spaces and the ab quantiser for automatic colorization.

The kernels behind the colorization methods (spec ``vibrant-colorization`` Sec. 2 and 3;
Zhang, Isola & Efros, "Colorful Image Colorization", ECCV 2016, Sec. 2 and 3.1):

* ``rgb_to_lab`` / ``lab_to_rgb`` -- sRGB in ``[0, 1]`` <-> CIE L*a*b* (D65 white, 2 degree
  observer) with the same constants, thresholds and branches as ``skimage.color.rgb2lab`` /
  ``lab2rgb`` (scikit-image 0.26): equal to ~1e-13 in float64.
* ``lab_to_lch`` / ``lch_to_lab`` -- the cylindrical L, chroma ``C = ||(a, b)||_2``, hue.
* ``ab_gamut_bins`` -- the in-gamut ab bin centres on a grid (Zhang's ``Q`` classes).
* ``encode_ab_soft`` -- Zhang's soft encoding of ab onto the ``k`` nearest bins (Sec. 2.1).
* ``decode_ab_annealed_mean`` -- Zhang's annealed-mean decoding, eq. (5).
* ``ab_histogram``, ``ab_prior``, ``prior_from_histogram`` -- the empirical colour prior.
* ``rebalancing_weights`` -- Zhang's class-rebalancing weights, eq. (4).

All functions are channel-last and broadcast over leading axes. They are ``jit``/``vmap``
safe and differentiable with *finite* gradients everywhere, including black pixels (the
cube root and the sRGB power at 0) and zero chroma (``sqrt`` and ``atan2`` at
``a = b = 0``): every singular branch is evaluated on a masked ("double-``where``")
argument, so a masked-out branch never produces an ``inf * 0 = NaN`` cotangent.

Arguments are checked eagerly (shape, dtype and option errors name the argument) and the
work runs in a cached ``jax.jit`` (structural options static), so eager calls from an
input pipeline stay fast; inside a caller's ``jit`` the inner ``jit`` is inlined.

Dtypes: floating inputs are computed in ``promote(dtype, float32)`` (float32 for
bf16/f16/f32, float64 for float64 under ``jax.enable_x64``); unsigned-integer images are
scaled to ``[0, 1]`` by their maximum (``uint8 / 255``), as ``skimage.img_as_float``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "D65_WHITE",
    "GAMUT_CRITERIA",
    "PRIOR_METHODS",
    "ab_gamut_bins",
    "ab_histogram",
    "ab_prior",
    "decode_ab_annealed_mean",
    "encode_ab_soft",
    "lab_to_lch",
    "lab_to_rgb",
    "lch_to_lab",
    "prior_from_histogram",
    "rebalancing_weights",
    "rgb_to_lab",
]

# sRGB (linear) -> XYZ, the matrix of skimage's ``xyz_from_rgb``. It is not normalised to
# the white point below, so sRGB white maps to Lab (100, -0.0025, 0.0047), not (100, 0, 0).
_XYZ_FROM_RGB = np.array([[0.412453, 0.357580, 0.180423],
                          [0.212671, 0.715160, 0.072169],
                          [0.019334, 0.119193, 0.950227]])
_RGB_FROM_XYZ = np.linalg.inv(_XYZ_FROM_RGB)      # skimage: ``linalg.inv(xyz_from_rgb)``
D65_WHITE = (0.95047, 1.0, 1.08883)               # skimage's ("D65", "2") tristimulus values

# The piecewise constants, exactly as skimage (they are mutually consistent only to ~1e-6:
# cbrt(0.008856) = 0.2068930 but the inverse switches at 0.2068966, and 0.04045 / 12.92 =
# 0.00313080 vs 0.0031308; a round trip through a value inside those ~1e-6-wide bands is
# off by ~1e-7 in skimage too).
_GAMMA_IN = 0.04045           # sRGB -> linear switches above this
_GAMMA_OUT = 0.0031308        # linear -> sRGB switches above this
_F_T = 0.008856               # f(t) = cbrt(t) above this, else 7.787 t + 16/116
_F_INV = 0.2068966            # f^-1(f) = f^3 above this, else (f - 16/116) / 7.787
_F_SLOPE = 7.787
_F_OFFSET = 16.0 / 116.0


# ------------------------------------------------------------------------------------------
# Shared element-wise pieces; ``xp`` is ``jnp`` (the public kernels) or ``np`` (the static
# float64 gamut tables of ``ab_gamut_bins``), so both use one formula.


def _srgb_to_linear(c, xp):
  """The sRGB decoding ``((c + 0.055) / 1.055)^2.4`` above 0.04045, else ``c / 12.92``."""
  m = c > _GAMMA_IN
  return xp.where(m, xp.power((xp.maximum(c, _GAMMA_IN) + 0.055) / 1.055, 2.4), c / 12.92)


def _linear_to_srgb(c, xp):
  """The sRGB encoding ``1.055 c^(1/2.4) - 0.055`` above 0.0031308, else ``12.92 c``."""
  m = c > _GAMMA_OUT
  return xp.where(m, 1.055 * xp.power(xp.maximum(c, _GAMMA_OUT), 1.0 / 2.4) - 0.055, 12.92 * c)


def _f(t, xp):
  """CIE ``f(t) = t^(1/3)`` above 0.008856, else the linear segment ``7.787 t + 16/116``."""
  m = t > _F_T
  return xp.where(m, xp.cbrt(xp.maximum(t, _F_T)), _F_SLOPE * t + _F_OFFSET)


def _f_inv(f, xp):
  """skimage's inverse of ``f``: ``f^3`` above 0.2068966, else ``(f - 16/116) / 7.787``."""
  return xp.where(f > _F_INV, f * f * f, (f - _F_OFFSET) / _F_SLOPE)


def _mat3(m: np.ndarray, x, xp):
  """``m @ x`` over the last axis, as explicit products and sums (no matmul, whose default
  precision on accelerators may be reduced)."""
  c = [x[..., j] for j in range(3)]
  return xp.stack([float(m[i, 0]) * c[0] + float(m[i, 1]) * c[1] + float(m[i, 2]) * c[2]
                   for i in range(3)], axis=-1)


def _rgb_to_lab(rgb, xp):
  xyz = _mat3(_XYZ_FROM_RGB, _srgb_to_linear(rgb, xp), xp)
  fx, fy, fz = (_f(xyz[..., i] / D65_WHITE[i], xp) for i in range(3))
  return xp.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def _lab_to_rgb(lab, clip: bool, xp):
  fy = (lab[..., 0] + 16.0) / 116.0
  fx = lab[..., 1] / 500.0 + fy
  fz = xp.maximum(fy - lab[..., 2] / 200.0, 0.0)        # skimage clips negative "z" to 0
  xyz = xp.stack([_f_inv(f, xp) * w for f, w in zip((fx, fy, fz), D65_WHITE)], axis=-1)
  rgb = _linear_to_srgb(_mat3(_RGB_FROM_XYZ, xyz, xp), xp)
  return xp.clip(rgb, 0.0, 1.0) if clip else rgb


# ------------------------------------------------------------------------------------------
# Input checks.


def _work_dtype(dtype):
  return jnp.result_type(dtype, jnp.float32)


def _colors(x, name: str, fn: str, *, scale_uint: bool = False) -> jax.Array:
  """``x`` as a float array with a last axis of 3."""
  x = jnp.asarray(x)
  if x.ndim < 1 or x.shape[-1] != 3:
    raise ValueError(f"{fn}: `{name}` must have shape (..., 3) (channel-last); "
                     f"found {x.shape}.")
  if jnp.issubdtype(x.dtype, jnp.floating):
    return x.astype(_work_dtype(x.dtype))
  if scale_uint and jnp.issubdtype(x.dtype, jnp.unsignedinteger):
    return x.astype(jnp.float32) / float(jnp.iinfo(x.dtype).max)
  expected = "a floating or unsigned-integer" if scale_uint else "a floating"
  raise TypeError(f"{fn}: `{name}` must have {expected} dtype; found {x.dtype}.")


def _float_array(x, name: str, fn: str) -> jax.Array:
  x = jnp.asarray(x)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    if jnp.issubdtype(x.dtype, jnp.integer):
      return x.astype(jnp.float32)
    raise TypeError(f"{fn}: `{name}` must be real; found dtype {x.dtype}.")
  return x.astype(_work_dtype(x.dtype))


def _ab(x, name: str, fn: str) -> jax.Array:
  x = _float_array(x, name, fn)
  if x.ndim < 1 or x.shape[-1] != 2:
    raise ValueError(f"{fn}: `{name}` must have shape (..., 2) (the a, b channels); "
                     f"found {x.shape}.")
  return x


def _bins(bins, fn: str) -> jax.Array:
  bins = _float_array(bins, "bins", fn)
  if bins.ndim != 2 or bins.shape[1] != 2 or bins.shape[0] < 1:
    raise ValueError(f"{fn}: `bins` must have shape (Q, 2) with Q >= 1 (e.g. from "
                     f"ab_gamut_bins); found {bins.shape}.")
  return bins


def _positive(x, name: str, fn: str, *, allow_zero: bool = False) -> float:
  try:
    v = float(x)
  except (TypeError, ValueError):
    raise ValueError(f"{fn}: `{name}` must be a number; found {x!r}.") from None
  if not (v >= 0 if allow_zero else v > 0) or not math.isfinite(v):
    bound = ">= 0" if allow_zero else "> 0"
    raise ValueError(f"{fn}: `{name}` must be a finite number {bound}; found {x!r}.")
  return v


# ------------------------------------------------------------------------------------------
# Colour spaces.


@jax.jit
def _rgb_to_lab_jit(rgb: jax.Array) -> jax.Array:
  return _rgb_to_lab(rgb, jnp)


@functools.partial(jax.jit, static_argnames="clip")
def _lab_to_rgb_jit(lab: jax.Array, clip: bool) -> jax.Array:
  return _lab_to_rgb(lab, clip, jnp)


@jax.jit
def _lab_to_lch_jit(lab: jax.Array) -> jax.Array:
  a, b = lab[..., 1], lab[..., 2]
  sq = a * a + b * b
  nz = sq > 0
  chroma = jnp.where(nz, jnp.sqrt(jnp.where(nz, sq, 1.0)), 0.0)
  hue = jnp.where(nz, jnp.arctan2(jnp.where(nz, b, 0.0), jnp.where(nz, a, 1.0)), 0.0)
  hue = jnp.where(hue < 0, hue + 2.0 * math.pi, hue)
  # atan2 just below 0 plus 2 pi may round to 2 pi itself; fold it back to 0.
  hue = jnp.where(hue >= 2.0 * math.pi, hue - 2.0 * math.pi, hue)
  return jnp.stack([lab[..., 0], chroma, hue], axis=-1)


@jax.jit
def _lch_to_lab_jit(lch: jax.Array) -> jax.Array:
  c, h = lch[..., 1], lch[..., 2]
  return jnp.stack([lch[..., 0], c * jnp.cos(h), c * jnp.sin(h)], axis=-1)


def rgb_to_lab(rgb: jax.Array) -> jax.Array:
  """sRGB -> CIE L*a*b* (D65, 2 degree), as ``skimage.color.rgb2lab`` (spec Sec. 2).

  1. Linearise: ``c_lin = ((c + 0.055) / 1.055)^2.4`` if ``c > 0.04045``, else ``c / 12.92``.
  2. ``XYZ = M c_lin`` with skimage's (un-normalised) sRGB matrix ``M``.
  3. ``t = XYZ / (0.95047, 1, 1.08883)``; ``f(t) = t^(1/3)`` if ``t > 0.008856``, else
     ``7.787 t + 16/116``.
  4. ``L = 116 f(Y) - 16``, ``a = 500 (f(X) - f(Y))``, ``b = 200 (f(Y) - f(Z))``.

  ``L`` is in ``[0, 100]``, ``a`` in about ``[-86.2, 98.2]`` and ``b`` in about
  ``[-107.9, 94.5]`` for sRGB inputs in ``[0, 1]``; white is ``(100, -0.0025, 0.0047)``.
  Inputs outside ``[0, 1]`` are not clipped (the linear gamma segment extends to
  negatives, as in skimage). The gradient is finite everywhere, black included: the power
  and the cube root see ``max(c, threshold)`` (the double-``where`` form).

  Args:
    rgb: ``(..., 3)`` sRGB, channel-last: floats in ``[0, 1]`` (any float dtype) or an
      unsigned-integer image (``uint8``/``uint16``), scaled by its dtype's maximum.

  Returns:
    ``(..., 3)`` Lab in ``promote(dtype, float32)`` (float32 for integer images).
  """
  return _rgb_to_lab_jit(_colors(rgb, "rgb", "rgb_to_lab", scale_uint=True))


def lab_to_rgb(lab: jax.Array, *, clip: bool = True) -> jax.Array:
  """CIE L*a*b* (D65, 2 degree) -> sRGB, as ``skimage.color.lab2rgb`` (spec Sec. 2).

  ``f_y = (L + 16) / 116``, ``f_x = a / 500 + f_y``, ``f_z = max(f_y - b / 200, 0)``
  (skimage clips a negative ``f_z`` to 0, with a warning there and silently here);
  ``t = f^3`` if ``f > 0.2068966``, else ``(f - 16/116) / 7.787``; ``XYZ = t * white``;
  ``c_lin = M^-1 XYZ``; ``c = 1.055 c_lin^(1/2.4) - 0.055`` if ``c_lin > 0.0031308``, else
  ``12.92 c_lin``.

  Out-of-gamut Lab values give sRGB outside ``[0, 1]``; with ``clip=True`` (the default,
  as skimage, which always clips) they are clipped to ``[0, 1]``, with a zero gradient in
  the clipped channels. ``clip=False`` returns the unclipped values (a colour is in the
  sRGB gamut iff they all lie in ``[0, 1]``). The gradient is finite everywhere.

  Args:
    lab: ``(..., 3)`` Lab, channel-last, any float dtype.
    clip: clip the result to ``[0, 1]`` (skimage's behaviour).

  Returns:
    ``(..., 3)`` sRGB in ``promote(dtype, float32)``.
  """
  return _lab_to_rgb_jit(_colors(lab, "lab", "lab_to_rgb"), bool(clip))


def lab_to_lch(lab: jax.Array) -> jax.Array:
  """CIE Lab -> LCh: ``C = sqrt(a^2 + b^2)``, ``h = atan2(b, a)`` in radians in ``[0, 2 pi)``.

  The hue is in **radians** in ``[0, 2 pi)``, as ``skimage.color.lab2lch``. At zero chroma
  (``a = b = 0``) the hue is defined as 0, and both ``C`` and ``h`` have a zero (not NaN)
  gradient there; ``C`` is the spec's ``C = ||(a, b)||_2`` of the chroma loss.

  Args:
    lab: ``(..., 3)``, channel-last, any float dtype.

  Returns:
    ``(..., 3)`` ``(L, C, h)`` in ``promote(dtype, float32)``.
  """
  return _lab_to_lch_jit(_colors(lab, "lab", "lab_to_lch"))


def lch_to_lab(lch: jax.Array) -> jax.Array:
  """CIE LCh -> Lab: ``a = C cos h``, ``b = C sin h`` (hue in radians, any range).

  The inverse of ``lab_to_lch`` (as ``skimage.color.lch2lab``); smooth everywhere.

  Args:
    lch: ``(..., 3)`` ``(L, C, h)``, channel-last, hue in radians.

  Returns:
    ``(..., 3)`` Lab in ``promote(dtype, float32)``.
  """
  return _lch_to_lab_jit(_colors(lch, "lch", "lch_to_lab"))


# ------------------------------------------------------------------------------------------
# The ab quantiser (Zhang et al. 2016, Sec. 2.1).

GAMUT_CRITERIA = ("centre", "cell")


@functools.lru_cache(maxsize=16)
def _gamut_bins_cached(grid: float, criterion: str, num_l: int, num_samples: int,
                       tol: float) -> np.ndarray:
  # Candidate centres k * grid covering the whole sRGB ab range (|a|, |b| < 110).
  kmax = int(math.ceil(120.0 / grid))
  ticks = grid * np.arange(-kmax, kmax + 1, dtype=np.float64)
  ga, gb = np.meshgrid(ticks, ticks, indexing="ij")        # a-major, then b ascending
  centres = np.stack([ga.ravel(), gb.ravel()], axis=-1)
  if criterion == "centre":
    keep = np.zeros(len(centres), bool)
    for lightness in np.linspace(0.0, 100.0, num_l):
      lab = np.concatenate([np.full((len(centres), 1), lightness), centres], axis=-1)
      rgb = _lab_to_rgb(lab, False, np)
      keep |= np.all((rgb >= -tol) & (rgb <= 1.0 + tol), axis=-1)
  else:
    # The ab projection of the gamut solid equals the projection of its surface, the six
    # faces of the sRGB cube: a cell is kept iff some face sample falls into it.
    s = np.linspace(0.0, 1.0, num_samples)
    u, v = (x.ravel() for x in np.meshgrid(s, s, indexing="ij"))
    hit = np.zeros((2 * kmax + 1, 2 * kmax + 1), bool)
    for axis in range(3):
      others = [i for i in range(3) if i != axis]
      for value in (0.0, 1.0):
        rgb = np.empty((u.size, 3))
        rgb[:, axis], rgb[:, others[0]], rgb[:, others[1]] = value, u, v
        k = np.round(_rgb_to_lab(rgb, np)[:, 1:] / grid).astype(np.int64) + kmax
        hit[k[:, 0], k[:, 1]] = True
    keep = hit.ravel()
  out = centres[keep]
  out.setflags(write=False)
  return out


def ab_gamut_bins(grid: float = 10.0, *, criterion: str = "centre", num_l: int = 1001,
                  num_samples: int = 1024, tol: float = 0.0) -> np.ndarray:
  """The in-gamut ab bin centres on a ``grid``-unit lattice (Zhang et al. 2016, Sec. 2.1).

  Candidates are the lattice points ``(a, b) = grid * (i, j)`` covering the sRGB ab range.

  * ``criterion="centre"`` (default): keep ``(a, b)`` iff some ``L`` in
    ``linspace(0, 100, num_l)`` makes ``lab_to_rgb((L, a, b), clip=False)`` lie in
    ``[-tol, 1 + tol]^3``, i.e. the bin *centre* is a displayable sRGB colour at some
    lightness. ``grid=10`` gives **229** bins (converged: 225 at ``num_l=101``, 229 from
    ``num_l=1001`` to ``10001``), the count in the spec and in the authors' notebook.
  * ``criterion="cell"``: keep the bins whose cell ``[a +- grid/2) x [b +- grid/2)``
    contains the ab of some sRGB colour (nearest-centre assignment of the Lab of
    ``num_samples^2`` samples on each face of the RGB cube; the ab projection of the gamut
    solid is that of its surface). ``grid=10`` gives **262** (261 with ``num_samples=256``,
    i.e. the 8-bit colours).

  Zhang et al.'s ``Q = 313`` bins (``pts_in_hull.npy``) cannot be regenerated from the sRGB
  gamut by either rule (313 > 262 cells that even touch it): their list is larger than the
  gamut. Ship their 313-point file as data if exact reproduction is needed; these tables
  are the reproducible alternative.

  This is a static NumPy float64 table (cached), not a traced JAX computation.

  Args:
    grid: the lattice spacing in ab units (Zhang: 10).
    criterion: ``"centre"`` or ``"cell"``, above.
    num_l: the number of lightness samples (``"centre"``).
    num_samples: the samples per cube-face edge (``"cell"``).
    tol: slack on the ``[0, 1]`` sRGB box (``"centre"``).

  Returns:
    A read-only float64 ``np.ndarray`` of shape ``(Q, 2)``, the ``(a, b)`` centres sorted by
    ``a`` then ``b`` (the order of Zhang's file).
  """
  fn = "ab_gamut_bins"
  grid = _positive(grid, "grid", fn)
  tol = _positive(tol, "tol", fn, allow_zero=True)
  if criterion not in GAMUT_CRITERIA:
    raise ValueError(f"{fn}: `criterion` must be one of {GAMUT_CRITERIA}; found {criterion!r}.")
  for name, n in (("num_l", num_l), ("num_samples", num_samples)):
    if not isinstance(n, (int, np.integer)) or n < 2:
      raise ValueError(f"{fn}: `{name}` must be an integer >= 2; found {n!r}.")
  return _gamut_bins_cached(grid, criterion, int(num_l), int(num_samples), tol)


def _sq_dists(ab: jax.Array, bins: jax.Array) -> jax.Array:
  """``||ab - bins_q||^2``: ``(..., 2), (Q, 2) -> (..., Q)`` (differences, not the expanded
  quadratic form, so there is no cancellation)."""
  d = ab[..., None, :] - bins
  return d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1]


def encode_ab_soft(ab: jax.Array, bins: jax.Array, *, sigma: float = 5.0,
                   k: int = 5) -> jax.Array:
  """Zhang et al.'s soft encoding ``Z = H_gt^-1(Y)`` of ab onto the bins (Sec. 2.1).

  Each ab value is spread over its ``k`` nearest bin centres with weights
  ``exp(-d^2 / (2 sigma^2))`` normalised to sum 1, and 0 elsewhere. The paper uses
  ``k = 5``, ``sigma = 5``; Zhang's released Caffe ``NNEncLayer`` (and ports of it) use
  ``k = 10``, ``sigma = 5``; the vibrant-colorization code's prior also uses 10. The
  weights are computed as a softmax of ``-d^2 / (2 sigma^2)`` over the ``k`` neighbours, so
  an ab value far from every bin still gets finite, normalised weights (exactly ``k``
  non-zeros unless a neighbour's weight underflows). Ties in distance go to the lower bin
  index (``lax.top_k``).

  Args:
    ab: ``(..., 2)`` ab values.
    bins: ``(Q, 2)`` bin centres (e.g. ``ab_gamut_bins()``).
    sigma: ``> 0``, the Gaussian width in ab units.
    k: ``1 <= k <= Q``, the number of neighbours.

  Returns:
    ``(..., Q)`` in ``promote(dtype, float32)``; each row sums to 1.
  """
  fn = "encode_ab_soft"
  ab, bins = _ab(ab, "ab", fn), _bins(bins, fn)
  sigma = _positive(sigma, "sigma", fn)
  q = bins.shape[0]
  if not isinstance(k, (int, np.integer)) or not 1 <= k <= q:
    raise ValueError(f"{fn}: `k` must be an integer in [1, Q = {q}]; found {k!r}.")
  dtype = jnp.result_type(ab.dtype, bins.dtype)
  return _encode_jit(ab.astype(dtype), bins.astype(dtype), sigma, int(k))


@functools.partial(jax.jit, static_argnames="k")
def _encode_jit(ab: jax.Array, bins: jax.Array, sigma: float, k: int) -> jax.Array:
  q = bins.shape[0]
  neg_d2, idx = jax.lax.top_k(-_sq_dists(ab, bins), k)               # (..., k), nearest first
  w = jax.nn.softmax(neg_d2 / (2.0 * sigma * sigma), axis=-1)
  lead = ab.shape[:-1]
  n = math.prod(lead)
  out = jnp.zeros((n, q), ab.dtype).at[jnp.arange(n)[:, None], idx.reshape(n, k)].set(
      w.reshape(n, k))
  return out.reshape(lead + (q,))


def decode_ab_annealed_mean(probs: jax.Array, bins: jax.Array, *, temperature: float = 0.38,
                            from_logits: bool = False) -> jax.Array:
  """Zhang et al.'s annealed mean ``H(Z) = E[f_T(Z)]``, eq. (5) of Zhang et al. 2016.

  ``f_T(z)_q = exp(log(z_q) / T) / sum_q' exp(log(z_q') / T)`` re-adjusts the temperature of
  the predicted distribution ``z``, and the result is its mean over the bin centres,
  ``sum_q f_T(z)_q bins_q``. ``T = 1`` is the plain mean of ``z``; ``T -> 0`` tends to the
  mode (the centre of ``argmax z``); Zhang's choice is ``T = 0.38``. Bins with ``z_q = 0``
  get weight 0 with a zero (not NaN) gradient. With ``from_logits=True``, ``probs`` holds
  logits ``s`` (``z = softmax(s)``), and ``f_T(z) = softmax(s / T)``, which is exact and
  stable for any logits.

  Args:
    probs: ``(..., Q)`` probabilities (non-negative, not all zero in a row; they need not
      be normalised), or logits with ``from_logits=True``.
    bins: ``(Q, 2)`` bin centres.
    temperature: ``T > 0``.
    from_logits: treat ``probs`` as logits.

  Returns:
    ``(..., 2)`` ab in ``promote(dtype, float32)``.
  """
  fn = "decode_ab_annealed_mean"
  probs, bins = _float_array(probs, "probs", fn), _bins(bins, fn)
  t = _positive(temperature, "temperature", fn)
  q = bins.shape[0]
  if probs.ndim < 1 or probs.shape[-1] != q:
    raise ValueError(f"{fn}: `probs` must have shape (..., Q) with Q = {q} (the number of "
                     f"bins); found {probs.shape}.")
  dtype = jnp.result_type(probs.dtype, bins.dtype)
  return _decode_jit(probs.astype(dtype), bins.astype(dtype), t, bool(from_logits))


@functools.partial(jax.jit, static_argnames="from_logits")
def _decode_jit(probs: jax.Array, bins: jax.Array, t: float, from_logits: bool) -> jax.Array:
  if from_logits:
    scores = probs / t
  else:
    pos = probs > 0
    scores = jnp.where(pos, jnp.log(jnp.where(pos, probs, 1.0)) / t, -jnp.inf)
  f_t = jax.nn.softmax(scores, axis=-1)
  return jnp.stack([jnp.sum(f_t * bins[:, 0], -1), jnp.sum(f_t * bins[:, 1], -1)], axis=-1)


def _chunked_sum(fn_chunk, ab: jax.Array, q: int, chunk: int) -> jax.Array:
  """``sum_i fn_chunk(ab_chunk, mask)`` over chunks of the flattened samples (bounded
  memory: one ``(chunk, Q)`` block at a time)."""
  flat = ab.reshape(-1, 2)
  n = flat.shape[0]
  if n == 0:
    return jnp.zeros((q,), ab.dtype)
  if n <= chunk:
    return fn_chunk(flat, jnp.ones((n,), bool))
  num = -(-n // chunk)
  pad = num * chunk - n
  flat = jnp.pad(flat, ((0, pad), (0, 0)))
  mask = jnp.arange(num * chunk) < n
  parts = jax.lax.map(lambda xs: fn_chunk(*xs), (flat.reshape(num, chunk, 2),
                                                 mask.reshape(num, chunk)))
  return jnp.sum(parts, axis=0)


def ab_histogram(ab: jax.Array, bins: jax.Array, *, soft: bool = False, sigma: float = 5.0,
                 k: int = 10, chunk: int = 16384) -> jax.Array:
  """Unnormalised bin counts of ab samples: the sufficient statistic of ``ab_prior``.

  ``soft=False``: each sample adds 1 to its nearest bin (ties to the lower index).
  ``soft=True``: each sample adds its soft encoding (``encode_ab_soft`` with ``sigma``,
  ``k``; the vibrant-colorization code's prior uses ``k = 10``, ``sigma = 5``). Counts from
  several batches add up; pass the total to ``prior_from_histogram``.

  Args:
    ab: ``(..., 2)`` ab samples (all leading axes are pooled).
    bins: ``(Q, 2)`` bin centres.
    soft: soft instead of nearest-bin assignment.
    sigma, k: the soft encoding's parameters (``soft=True`` only).
    chunk: samples per block (memory ``chunk * Q``).

  Returns:
    ``(Q,)`` in ``promote(dtype, float32)``; sums to the number of samples.
  """
  fn = "ab_histogram"
  ab, bins = _ab(ab, "ab", fn), _bins(bins, fn)
  dtype = jnp.result_type(ab.dtype, bins.dtype)
  ab, bins = ab.astype(dtype), bins.astype(dtype)
  if not isinstance(chunk, (int, np.integer)) or chunk < 1:
    raise ValueError(f"{fn}: `chunk` must be a positive integer; found {chunk!r}.")
  if soft:
    sigma = _positive(sigma, "sigma", fn)
    q = bins.shape[0]
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= q:
      raise ValueError(f"{fn}: `k` must be an integer in [1, Q = {q}]; found {k!r}.")
  return _histogram_jit(ab, bins, bool(soft), float(sigma), int(k), int(chunk))


@functools.partial(jax.jit, static_argnames=("soft", "k", "chunk"))
def _histogram_jit(ab: jax.Array, bins: jax.Array, soft: bool, sigma: float, k: int,
                   chunk: int) -> jax.Array:
  q = bins.shape[0]
  if soft:
    def count(x, m):
      return jnp.sum(_encode_jit(x, bins, sigma, k) * m[:, None], axis=0)
  else:
    def count(x, m):
      return jnp.zeros((q,), ab.dtype).at[jnp.argmin(_sq_dists(x, bins), -1)].add(
          m.astype(ab.dtype))
  return _chunked_sum(count, ab, q, chunk)


def prior_from_histogram(counts: jax.Array, bins: jax.Array, *,
                         sigma: float = 5.0) -> jax.Array:
  """The smoothed empirical prior ``p~`` of Zhang et al. 2016, Sec. 2.2 (eq. 4's ``p~``).

  ``p~_q = sum_q' G_sigma(||bins_q - bins_q'||) counts_q' / Z`` with
  ``G_sigma(d) = exp(-d^2 / (2 sigma^2))`` (Zhang: "smoothed with a Gaussian kernel
  ``G_sigma``", ``sigma = 5``): the histogram smoothed over the bin centres, normalised to
  sum 1. ``sigma = 0`` only normalises. On a 10-grid with ``sigma = 5`` a bin keeps weight 1
  and passes ``e^-2 = 0.135`` to each axis neighbour and ``e^-4`` to each diagonal one.
  (Zhang does not state on which grid the smoothing ran; this is the reading in ``Q``-space.)

  Args:
    counts: ``(Q,)`` non-negative counts (``ab_histogram``), not all zero.
    bins: ``(Q, 2)`` bin centres.
    sigma: ``>= 0``, in ab units.

  Returns:
    ``(Q,)`` summing to 1, in ``promote(dtype, float32)``.
  """
  fn = "prior_from_histogram"
  counts, bins = _float_array(counts, "counts", fn), _bins(bins, fn)
  sigma = _positive(sigma, "sigma", fn, allow_zero=True)
  q = bins.shape[0]
  if counts.shape != (q,):
    raise ValueError(f"{fn}: `counts` must have shape (Q,) = ({q},) like `bins`; "
                     f"found {counts.shape}.")
  dtype = jnp.result_type(counts.dtype, bins.dtype)
  return _smooth_jit(counts.astype(dtype), bins.astype(dtype), sigma)


@functools.partial(jax.jit, static_argnames="sigma")
def _smooth_jit(counts: jax.Array, bins: jax.Array, sigma: float) -> jax.Array:
  if sigma > 0:
    kernel = jnp.exp(-_sq_dists(bins, bins) / (2.0 * sigma * sigma))           # (Q, Q)
    counts = jnp.sum(kernel * counts[None, :], axis=-1)
  return counts / jnp.sum(counts)


PRIOR_METHODS = ("smooth", "soft")


def ab_prior(ab_samples: jax.Array, bins: jax.Array, *, sigma: float = 5.0,
             method: str = "smooth", k: int = 10, chunk: int = 16384) -> jax.Array:
  """The empirical ab prior ``p~`` over the bins (Zhang et al. 2016, Sec. 2.2).

  * ``method="smooth"`` (Zhang): the nearest-bin histogram of the samples, smoothed over
    the bin centres with a Gaussian of width ``sigma`` and normalised
    (``prior_from_histogram(ab_histogram(ab, bins), bins, sigma=sigma)``).
  * ``method="soft"`` (the vibrant-colorization code, ``dataset.py``): the sum of the
    samples' soft encodings (``k`` nearest bins, Gaussian ``sigma``), normalised; no
    further smoothing.

  For a dataset, accumulate ``ab_histogram`` over batches and call
  ``prior_from_histogram`` once.

  Args:
    ab_samples: ``(..., 2)`` ab values (all leading axes are pooled), at least one.
    bins: ``(Q, 2)`` bin centres.
    sigma: the Gaussian width in ab units (``>= 0`` for ``"smooth"``, ``> 0`` for
      ``"soft"``).
    method: ``"smooth"`` or ``"soft"``.
    k: the neighbours of the soft assignment (``"soft"`` only).
    chunk: samples per block.

  Returns:
    ``(Q,)`` non-negative, summing to 1, in ``promote(dtype, float32)``.
  """
  fn = "ab_prior"
  if method not in PRIOR_METHODS:
    raise ValueError(f"{fn}: `method` must be one of {PRIOR_METHODS}; found {method!r}.")
  ab = _ab(ab_samples, "ab_samples", fn)
  if ab.size == 0:
    raise ValueError(f"{fn}: `ab_samples` must hold at least one sample; found shape "
                     f"{ab.shape}.")
  if method == "soft":
    counts = ab_histogram(ab, bins, soft=True, sigma=sigma, k=k, chunk=chunk)
    return counts / jnp.sum(counts)
  return prior_from_histogram(ab_histogram(ab, bins, chunk=chunk), bins, sigma=sigma)


def rebalancing_weights(prior: jax.Array, *, lam: float = 0.5) -> jax.Array:
  """Zhang et al.'s class-rebalancing weights, eq. (4) of Zhang et al. 2016.

  ``w_q ∝ ((1 - lam) p~_q + lam / Q)^-1``, normalised so that ``E_p~[w] = sum_q p~_q w_q =
  1``; ``lam = 1/2`` in the paper. Rarer bins get larger weights (``w`` decreases with
  ``p~``); ``lam = 1`` gives all ones. ``prior`` is normalised to sum 1 first. Zhang's
  Caffe code (``PriorFactor``) mixes in the uniform distribution over the bins with
  ``p~ > 0`` instead of all ``Q``; the two agree whenever ``p~ > 0`` everywhere, which a
  Gaussian-smoothed prior is (up to underflow). With ``lam = 0`` a bin with ``p~_q = 0`` gets
  ``w_q = inf``.

  Args:
    prior: ``(Q,)`` non-negative, not all zero (e.g. ``ab_prior``).
    lam: ``lambda`` in ``[0, 1]``, the weight of the uniform distribution.

  Returns:
    ``(Q,)`` in ``promote(dtype, float32)``.
  """
  fn = "rebalancing_weights"
  prior = _float_array(prior, "prior", fn)
  if prior.ndim != 1 or prior.shape[0] < 1:
    raise ValueError(f"{fn}: `prior` must have shape (Q,) with Q >= 1; found {prior.shape}.")
  lam = _positive(lam, "lam", fn, allow_zero=True)
  if lam > 1:
    raise ValueError(f"{fn}: `lam` must be in [0, 1]; found {lam!r}.")
  return _rebalance_jit(prior, lam)


@jax.jit
def _rebalance_jit(prior: jax.Array, lam: float) -> jax.Array:
  p = prior / jnp.sum(prior)
  w = 1.0 / ((1.0 - lam) * p + lam / prior.shape[0])
  return w / jnp.sum(p * w)
