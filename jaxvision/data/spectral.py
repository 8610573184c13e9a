r"""Spectral-reconstruction datasets: an RGB image as input, its 31-band cube as target.

Every source here yields ``{"rgb": float32 (H, W, 3), "cube": float32 (H, W, 31)}``: the
RGB image scaled to ``[0, 1]`` (by default MST++'s per-image min-max normalisation, below)
and the hyperspectral cube at 400, 410, ..., 700 nm (:data:`WAVELENGTHS`), in the
dataset's own ``[0, 1]`` units. ``info.num_classes`` is 0 (regression) and
``info.image_shape`` is ``(H, W, 3)``, the model's input (spec ``spectral-transformer-ising``
Sec. 3-4).

Registered:

* ``synthetic_hsi``: the embedded default. Piecewise-constant scenes whose reflectances
  are **measured** spectra shipped with colour-science (ColorChecker, preferred-memory-colour
  chart, CIE and NIST CQS Munsell samples), lit by measured CIE illuminants, shaded
  smoothly, and rendered to RGB through a **measured** camera response (Nikon D5100, NPL)
  or the CIE 1931 observer (:func:`synthetic_hsi`). The spectra are extracted once into
  ``assets/spectral_measured.npz`` (:mod:`jaxvision.data.make_spectral_assets`); colour is
  not needed at run time. Nothing is downloaded.
* ``ntire2022``: ARAD_1K (NTIRE 2022, 482x512), 900 train / 50 validation scenes.
* ``ntire2020``: ARAD (NTIRE 2020, 482x512), clean or real-world track.
* ``cave``: CAVE (Columbia, 32 scenes of 512x512), a seeded random 20/12 train/test split.

None of the real datasets is in the TFDS catalog and jaxvision never downloads; the readers
take a user's local copy (``data_dir``) or a TFDS ``tfds_data_dir`` prepared from it by
:mod:`jaxvision.data.spectral_tfds` (manual download, prepared without TensorFlow).

Preprocessing as MST++ (``train_code/hsi_dataset.py``):

* RGB: 8-bit values as float32, then ``rgb_norm="minmax"`` (the ``-norm`` flag, MST++'s
  default): ``(x - min) / (max - min)`` with the min and max over the **whole image**
  (every pixel and channel, before any crop); ``rgb_norm="none"``: ``x / 255``. Files are
  read by Pillow in RGB order, which is MST++'s ``bgr2rgb=True`` (its training default);
  ``bgr=True`` reverses the channels for checkpoints trained on OpenCV's BGR order.
* Cubes: MATLAB .mat files, key ``'cube'``. A v7.3 (HDF5) file read with h5py holds the
  MATLAB ``(H, W, bands)`` array reversed, ``(bands, W, H)``; MST++ transposes it with
  ``[0, 2, 1]`` to ``(bands, H, W)``, and here it is transposed to channel-last
  ``(H, W, bands)`` (:func:`read_mat_cube`). v5 files (scipy) are already ``(H, W, bands)``.
* Training crops (``patch_size``, train split only): MST++'s enumeration of
  ``patch_size`` crops at ``stride`` (8) over every scene, example ``i`` = scene ``i // P``,
  patch ``i % P``. The evaluation splits are whole scenes whatever ``patch_size`` (one
  config serves both; :func:`scene_source` builds patched sources of any split).
  Augmentation (``augment=True`` *and* ``get`` given seeds, i.e. the training stream):
  MST++'s ``rot90 x {0..3}``, then a flip of the width axis and a flip of the height axis,
  each with probability 1/2 (:func:`mst_augment`), drawn from the example's seed.
* Evaluation: whole images (``patch_size=None``); MST++ computes its metrics on the
  ``[128:-128, 128:-128]`` centre of the output and target
  (:func:`jaxvision.metrics.crop_border`), not on a cropped input.
"""

from __future__ import annotations

import collections
import functools
import glob
import importlib.resources
import logging
import os
import threading
from typing import Any, Callable, Sequence

import numpy as np

from jaxvision.data.registry import register_dataset
from jaxvision.data.sources import (Batch, DatasetInfo, check_data_dir, check_get_args,
                                    is_hdf5_file)

BUILDERS_MODULE = "jaxvision.data.spectral_tfds"  # its TFDS builders prepare the real datasets

log = logging.getLogger(__name__)

WAVELENGTHS = np.arange(400, 701, 10)  # nm: the 31 bands of NTIRE / CAVE
NUM_BANDS = len(WAVELENGTHS)
SPECTRAL_SPLITS = ("train", "validation", "test")
_SPLIT_CODE = {"train": 0, "validation": 1, "test": 2}
RGB_NORMS = ("minmax", "none")
ASSET = "assets/spectral_measured.npz"

# A scene loader: scene index -> (rgb float32 (H, W, 3) normalised, cube float32 (H, W, 31)).
SceneFn = Callable[[int], tuple[np.ndarray, np.ndarray]]


def _check_split(name: str, split: str, splits: Sequence[str] = SPECTRAL_SPLITS):
  if split not in splits:
    raise ValueError(f"{name}: `split` must be one of {tuple(splits)}; found {split!r}.")


def _check_choice(name: str, arg: str, value, choices) -> str:
  if value not in choices:
    raise ValueError(f"{name}: `{arg}` must be one of {tuple(choices)}; found {value!r}.")
  return value


def _check_int(name: str, arg: str, value, low: int, high: int | None = None) -> int:
  ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= low
  if ok and high is not None:
    ok = value <= high
  if not ok:
    bound = f">= {low}" if high is None else f"in [{low}, {high}]"
    raise ValueError(f"{name}: `{arg}` must be an int {bound}; found {value!r}.")
  return int(value)


# ------------------------------------------------------------------------------------------
# Measured spectra (colour-science, via the committed asset) and camera responses.


@functools.lru_cache(maxsize=None)
def measured_spectra() -> dict[str, np.ndarray]:
  """The committed asset ``assets/spectral_measured.npz`` (read-only arrays).

  Keys (see :mod:`jaxvision.data.make_spectral_assets` for the provenance):
  ``wavelengths (31,)``, ``reflectances (83, 31)`` with ``reflectance_names`` and
  ``reflectance_sets``, ``illuminants (9, 31)`` (each max 1) with ``illuminant_names``,
  ``camera_nikon_d5100 (31, 3)``, ``cmfs_cie1931 (31, 3)``, ``xyz_to_linear_srgb (3, 3)``,
  and ``provenance`` (a JSON string).
  """
  with importlib.resources.files("jaxvision.data").joinpath(ASSET).open("rb") as f:
    with np.load(f, allow_pickle=False) as raw:
      out = {k: raw[k] for k in raw.files}
  for v in out.values():
    v.setflags(write=False)
  return out


CAMERAS = ("nikon_d5100", "cie1931", "gaussian")
# The spec's idealised camera (Sec. 4): three Gaussians, red / green / blue.
GAUSSIAN_CAMERA = {"mu": (610.0, 540.0, 460.0), "sigma": (40.0, 35.0, 30.0)}


@functools.lru_cache(maxsize=None)
def _camera(camera: str) -> np.ndarray:
  if camera == "nikon_d5100":
    r = measured_spectra()["camera_nikon_d5100"]
  elif camera == "cie1931":
    spectra = measured_spectra()
    r = spectra["cmfs_cie1931"] @ spectra["xyz_to_linear_srgb"].T
  else:
    lam = WAVELENGTHS.astype(np.float64)[:, None]
    mu, sigma = (np.array(GAUSSIAN_CAMERA[k])[None] for k in ("mu", "sigma"))
    r = np.exp(-0.5 * ((lam - mu) / sigma) ** 2)
  r = (r / r.sum(axis=0, keepdims=True)).astype(np.float32)
  r.setflags(write=False)
  return r


def camera_response(camera: str = "nikon_d5100") -> np.ndarray:
  """The ``(31, 3)`` linear map from a cube to RGB: ``rgb = cube @ R`` (per pixel).

  * ``"nikon_d5100"``: the measured red, green, blue sensitivities of a Nikon D5100 (NPL,
    Darrodi et al. 2015, shipped with colour-science);
  * ``"cie1931"``: the CIE 1931 2-degree colour-matching functions followed by CIE XYZ ->
    linear sRGB (IEC 61966-2-1); it has small negative lobes, so saturated spectra can give
    slightly negative RGB;
  * ``"gaussian"``: the spec's idealised camera, Gaussians at 610 / 540 / 460 nm with
    sigma 40 / 35 / 30 nm.

  Every column is divided by its sum, so a flat spectrum of value ``v`` renders as
  ``(v, v, v)`` (white balance to the equal-energy illuminant) and, for the non-negative
  cameras, a cube in ``[0, 1]`` renders into ``[0, 1]``.

  Returns:
    float32 ``(31, 3)``, read-only.
  """
  _check_choice("camera_response", "camera", camera, CAMERAS)
  return _camera(camera)


def illuminant_spectrum(name: str = "D65") -> np.ndarray:
  """A measured CIE illuminant of the asset (``A``, ``D50``, ``D65``, ``D75``, ``FL2``,
  ``FL7``, ``FL11``, ``LED-B3``, ``LED-V1``), float32 ``(31,)``, maximum 1; ``"E"`` is the
  equal-energy illuminant (all ones)."""
  names = illuminant_names()
  if name == "E":
    return np.ones(NUM_BANDS, np.float32)
  _check_choice("illuminant_spectrum", "name", name, names + ("E",))
  return measured_spectra()["illuminants"][names.index(name)].astype(np.float32)


def illuminant_names() -> tuple[str, ...]:
  """The measured illuminants of the asset."""
  return tuple(str(s) for s in measured_spectra()["illuminant_names"])


def render_rgb(cube: np.ndarray, camera: str | np.ndarray = "nikon_d5100") -> np.ndarray:
  """Linear RGB of a cube through a camera response: ``cube @ R``.

  Args:
    cube: float ``(..., 31)``.
    camera: a name of :data:`CAMERAS` or a ``(31, 3)`` response.

  Returns:
    float32 ``(..., 3)``.
  """
  r = camera_response(camera) if isinstance(camera, str) else np.asarray(camera, np.float32)
  cube = np.asarray(cube)
  if cube.shape[-1] != r.shape[0] or r.shape != (NUM_BANDS, 3):
    raise ValueError(f"render_rgb: expected a cube (..., {NUM_BANDS}) and a ({NUM_BANDS}, 3) "
                     f"camera; found {cube.shape} and {r.shape}.")
  return np.asarray(cube, np.float32) @ r


def normalize_rgb(rgb: np.ndarray, mode: str = "minmax", *, scale: float = 1.0) -> np.ndarray:
  """MST++'s RGB scaling of one image, float32 ``(H, W, 3)``.

  ``"minmax"``: ``(x - min) / (max - min)``, min and max over the whole image (all pixels
  and channels; a constant image gives zeros instead of MST++'s NaN); ``"none"``:
  ``x / scale`` clipped to ``[0, 1]`` (``scale=255`` for 8-bit files; for rendered RGB the
  clip only acts on the CIE camera's negative lobes).
  """
  _check_choice("normalize_rgb", "mode", mode, RGB_NORMS)
  x = np.asarray(rgb, np.float32)
  if mode == "none":
    return np.clip(x / np.float32(scale), 0.0, 1.0)
  lo, hi = x.min(), x.max()
  if hi <= lo:
    return np.zeros_like(x)
  return (x - lo) / (hi - lo)


def mst_augment(arrays: Sequence[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
  """MST++'s training augmentation, the same for every array of one example.

  ``rot = rng.integers(0, 4)``, ``v = rng.integers(0, 2)``, ``h = rng.integers(0, 2)``
  (MST++'s ``random.randint(0, 3)``, ``(0, 1)``, ``(0, 1)``, drawn in that order), then
  ``rot`` quarter turns (``np.rot90`` over the spatial axes), a flip of the width axis if
  ``v`` and a flip of the height axis if ``h`` (MST++'s ``arguement`` on CHW arrays:
  ``rot90(axes=(1, 2))``, ``[:, :, ::-1]``, ``[:, ::-1, :]``). The 16 outcomes cover the
  8 symmetries of the square twice.

  Args:
    arrays: channel-last ``(H, W, C)`` arrays of one example (e.g. its RGB and cube).
    rng: the example's generator.

  Returns:
    The transformed arrays (contiguous copies).
  """
  rot, v, h = int(rng.integers(0, 4)), int(rng.integers(0, 2)), int(rng.integers(0, 2))
  out = []
  for a in arrays:
    a = np.rot90(a, rot, axes=(0, 1))
    if v:
      a = a[:, ::-1]
    if h:
      a = a[::-1]
    out.append(np.ascontiguousarray(a))
  return out


class SpectralSource:
  """A :class:`~jaxvision.data.sources.Source` of ``{"rgb", "cube"}`` examples.

  Args:
    name: registry name (for ``info`` and messages).
    num_examples: the size ``N`` of the split.
    image_shape: ``(H, W, 3)`` of one RGB input.
    load: ``(indices int (n,), seeds uint64 (n,) or None) -> {"rgb": float32 (n, H, W, 3),
      "cube": float32 (n, H, W, 31)}``; ``seeds`` is None for the deterministic view.
    camera: the ``(31, 3)`` response the RGB was rendered with, when known (synthetic,
      CAVE rendered), else None.
  """

  def __init__(self, name: str, num_examples: int, image_shape: tuple[int, int, int],
               load: Callable[[np.ndarray, np.ndarray | None], Batch],
               camera: np.ndarray | None = None):
    self._load = load
    self.camera = camera
    self.wavelengths = WAVELENGTHS
    self.info = DatasetInfo(name, 0, tuple(int(s) for s in image_shape), int(num_examples))

  def __len__(self) -> int:
    return self.info.num_examples

  def get(self, indices: np.ndarray, seeds: np.ndarray | None = None) -> Batch:
    indices, seeds = check_get_args(self.info.name, len(self), indices, seeds)
    return self._load(indices, seeds)


# ------------------------------------------------------------------------------------------
# synthetic_hsi: measured reflectances x illuminant x shading, through a measured camera.

SPECTRA = ("measured", "parametric", "mixed")
LAYOUTS = ("voronoi", "rectangles")
SYNTHETIC_NUM_EXAMPLES = {"train": 1024, "validation": 128, "test": 128}
MIN_REGIONS, MAX_REGIONS = 4, 12     # regions per scene, uniform
SHADING_RANGE = (0.3, 1.0)           # the smooth shading field spans exactly this range
PARAMETRIC_FLOOR = 0.01              # the spec's clip(..., 0.01, 1)


def parametric_reflectances(rng: np.random.Generator, n: int) -> np.ndarray:
  """The spec's (Sec. 4) parametric reflectances, float64 ``(n, 31)``.

  ``r(λ) = clip(b + sum_{k <= m} a_k exp(-(λ - μ_k)^2 / (2 s_k^2)), 0.01, 1)`` with
  ``m ~ U{1, 2, 3}`` bumps, ``μ_k ~ U[400, 700]`` nm, ``s_k ~ U[20, 80]`` nm, and (not
  given by the spec) ``b ~ U[0, 0.4]``, ``a_k ~ U[0.1, 0.8]``.
  """
  lam = WAVELENGTHS.astype(np.float64)
  out = np.empty((n, NUM_BANDS))
  for i in range(n):
    m = int(rng.integers(1, 4))
    b = rng.uniform(0.0, 0.4)
    a = rng.uniform(0.1, 0.8, m)
    mu = rng.uniform(400.0, 700.0, m)
    s = rng.uniform(20.0, 80.0, m)
    bumps = a[:, None] * np.exp(-0.5 * ((lam[None] - mu[:, None]) / s[:, None]) ** 2)
    out[i] = np.clip(b + bumps.sum(0), PARAMETRIC_FLOOR, 1.0)
  return out


def _layout(rng: np.random.Generator, size: int, n: int, layout: str) -> np.ndarray:
  """Region labels ``int (size, size)`` in ``[0, n)``."""
  if layout == "voronoi":
    sites = rng.uniform(0.0, size, (n, 2))
    c = np.arange(size, dtype=np.float32) + 0.5
    d = ((c[:, None, None] - sites[None, None, :, 0].astype(np.float32)) ** 2
         + (c[None, :, None] - sites[None, None, :, 1].astype(np.float32)) ** 2)
    return np.argmin(d, axis=-1)
  labels = np.zeros((size, size), np.int64)  # rectangles painted over a background region
  for r in range(1, n):
    h, w = rng.integers(max(1, size // 8), max(2, size // 2) + 1, 2)
    top, left = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
    labels[top:top + h, left:left + w] = r
  return labels


def _shading(rng: np.random.Generator, size: int) -> np.ndarray:
  """A smooth field spanning exactly :data:`SHADING_RANGE`, float32 ``(size, size)``: three
  random plane waves of at most 1.5 cycles per image, min-max mapped."""
  t = (np.arange(size, dtype=np.float64) + 0.5) / size
  f = np.zeros((size, size), np.float32)
  for _ in range(3):
    freq = rng.uniform(-1.5, 1.5, 2)
    phase = rng.uniform(0.0, 2 * np.pi)
    amp = rng.uniform(0.5, 1.0)
    # amp cos(u + v) with u = 2 pi f_0 t_row + phase, v = 2 pi f_1 t_col: separable.
    u, v = 2 * np.pi * freq[0] * t + phase, 2 * np.pi * freq[1] * t
    f += np.outer(amp * np.cos(u), np.cos(v)).astype(np.float32)
    f -= np.outer(amp * np.sin(u), np.sin(v)).astype(np.float32)
  lo, hi = SHADING_RANGE
  span = f.max() - f.min()
  if span < 1e-9:
    return np.full((size, size), hi, np.float32)
  return (lo + (hi - lo) * (f - f.min()) / span).astype(np.float32)


def synthetic_scene(rng: np.random.Generator, size: int, *, illuminant: str = "D65",
                    spectra: str = "measured", layout: str = "voronoi"
                    ) -> tuple[np.ndarray, dict[str, Any]]:
  """One synthetic radiance cube, float32 ``(size, size, 31)`` with maximum exactly 1.

  1. ``K ~ U{4..12}`` regions: Voronoi cells of uniform sites, or rectangles (sides
     ``U[size/8, size/2]``) painted over a background.
  2. Each region's reflectance: ``"measured"``: ``w s_i + (1 - w) s_j``, a convex mixture
     (the linear mixing model) of two measured spectra of the asset drawn uniformly,
     ``w ~ U(0, 1)``; ``"parametric"``: :func:`parametric_reflectances`; ``"mixed"``: one or
     the other with probability 1/2.
  3. Times a smooth shading field spanning ``[0.3, 1]`` (:func:`_shading`) and the
     illuminant's spectrum (``illuminant`` a name of :func:`illuminant_names`, ``"E"``, or
     ``"random"``: one of the measured illuminants per scene, uniformly).
  4. Divided by its maximum, so the radiance lies in ``(0, 1]`` (every measured reflectance
     is >= 0.016 and every illuminant > 0 over 400..700 nm, so MRAE is defined).

  Returns:
    ``(cube, params)``, ``params`` = ``{"labels": int (size, size), "reflectances":
    (K, 31), "illuminant": str}``.
  """
  spectra_lib = measured_spectra()["reflectances"]
  k = int(rng.integers(MIN_REGIONS, MAX_REGIONS + 1))
  labels = _layout(rng, size, k, layout)
  refl = np.empty((k, NUM_BANDS))
  use_measured = np.ones(k, bool) if spectra == "measured" else (
      np.zeros(k, bool) if spectra == "parametric" else rng.random(k) < 0.5)
  for r in range(k):
    if use_measured[r]:
      i, j = rng.integers(0, len(spectra_lib), 2)
      w = rng.uniform()
      refl[r] = w * spectra_lib[i] + (1 - w) * spectra_lib[j]
    else:
      refl[r] = parametric_reflectances(rng, 1)[0]
  shading = _shading(rng, size)
  if illuminant == "random":
    names = illuminant_names()
    illuminant = names[int(rng.integers(0, len(names)))]
  light = illuminant_spectrum(illuminant)
  cube = refl.astype(np.float32)[labels] * shading[..., None] * light
  cube /= cube.max()
  return cube, {"labels": labels, "reflectances": refl, "illuminant": illuminant}


@register_dataset("synthetic_hsi", splits=SPECTRAL_SPLITS)
def synthetic_hsi(split: str, image_size: int = 64, num_examples: int | None = None,
                  seed: int = 0, camera: str = "nikon_d5100", illuminant: str = "D65",
                  spectra: str = "measured", layout: str = "voronoi",
                  rgb_norm: str = "minmax", augment: bool = True) -> SpectralSource:
  """Synthetic hyperspectral scenes from measured spectra (no download), spec Sec. 4.

  Example ``i`` of a split is :func:`synthetic_scene` drawn by a generator seeded by
  ``(seed, split, i)`` alone (the splits are disjoint streams; an example does not depend
  on ``num_examples``), rendered to linear RGB through the camera response
  (:func:`camera_response`: ``rgb = cube @ R``, exactly linear) and scaled by
  :func:`normalize_rgb` (``"minmax"``: MST++'s per-image min-max, an affine map per image;
  ``"none"``: the linear RGB itself, in ``[0, 1]`` for the non-negative cameras). Scenes are
  generated on demand (16 of 64x64 take a few milliseconds), nothing is stored. With
  ``augment=True`` and seeds (training), :func:`mst_augment` is applied to the pair.

  The RGB -> cube problem has a known non-zero floor: metamers (31 bands through 3 channels)
  make it ill-posed, and ridge regression on the pixels
  (:mod:`jaxvision.models.spectral_ridge`) is the linear baseline; ``source.camera`` is the
  ``(31, 3)`` response.

  Args:
    split: ``"train"``, ``"validation"`` or ``"test"``.
    image_size: side ``S`` of the square scenes (8..1024).
    num_examples: the split's size (default 1024 train, 128 validation and test).
    seed: dataset seed.
    camera: ``"nikon_d5100"`` (measured, default), ``"cie1931"`` or ``"gaussian"``.
    illuminant: a measured illuminant name (default ``"D65"``), ``"E"`` or ``"random"``.
    spectra: ``"measured"`` (default), ``"parametric"`` (the spec's Gaussian bumps) or
      ``"mixed"``.
    layout: ``"voronoi"`` or ``"rectangles"``.
    rgb_norm: ``"minmax"`` (MST++) or ``"none"``.
    augment: MST++'s rotations and flips when ``get`` is given seeds.

  Returns:
    A :class:`SpectralSource` of ``{"rgb": float32 (S, S, 3), "cube": float32 (S, S, 31)}``,
    with ``camera`` (31, 3) and ``wavelengths`` (31,).
  """
  name = "synthetic_hsi"
  _check_split(name, split)
  size = _check_int(name, "image_size", image_size, 8, 1024)
  if num_examples is None:
    num_examples = SYNTHETIC_NUM_EXAMPLES[split]
  num_examples = _check_int(name, "num_examples", num_examples, 1)
  seed = _check_int(name, "seed", seed, 0)
  _check_choice(name, "camera", camera, CAMERAS)
  _check_choice(name, "illuminant", illuminant, illuminant_names() + ("E", "random"))
  _check_choice(name, "spectra", spectra, SPECTRA)
  _check_choice(name, "layout", layout, LAYOUTS)
  _check_choice(name, "rgb_norm", rgb_norm, RGB_NORMS)
  r = camera_response(camera)
  code = _SPLIT_CODE[split]
  do_augment = bool(augment)

  def load(indices: np.ndarray, seeds: np.ndarray | None) -> Batch:
    rgb = np.empty((len(indices), size, size, 3), np.float32)
    cube = np.empty((len(indices), size, size, NUM_BANDS), np.float32)
    for j, i in enumerate(indices):
      c, _ = synthetic_scene(np.random.default_rng([seed, code, int(i)]), size,
                             illuminant=illuminant, spectra=spectra, layout=layout)
      x = normalize_rgb(c @ r, rgb_norm)
      if seeds is not None and do_augment:
        x, c = mst_augment((x, c), np.random.default_rng(int(seeds[j])))
      rgb[j], cube[j] = x, c
    return {"rgb": rgb, "cube": cube}

  return SpectralSource(name, num_examples, (size, size, 3), load, camera=r)


# ------------------------------------------------------------------------------------------
# File readers shared by the real datasets.


def _h5py(what: str):
  try:
    import h5py
  except ImportError as e:
    raise ImportError(f"{what} is a MATLAB v7.3 (HDF5) file: reading it needs h5py: "
                      "pip install 'jaxvision[spectral]' (or pip install h5py)") from e
  return h5py


def read_mat_cube(path: str, key: str = "cube") -> np.ndarray:
  """A hyperspectral cube from a MATLAB .mat file, float32 ``(H, W, bands)``.

  v7.3 (HDF5, NTIRE 2022) files are read with h5py: the stored array is MATLAB's
  ``(H, W, bands)`` in column-major order, which h5py returns reversed as ``(bands, W, H)``;
  it is transposed back (MST++'s ``transpose([0, 2, 1])`` followed by channel-last).
  Older (v5, NTIRE 2020) files are read with ``scipy.io.loadmat`` and are already
  ``(H, W, bands)``.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"cube file {path} is missing.")
  if is_hdf5_file(path):
    h5py = _h5py(path)
    with h5py.File(path, "r") as f:
      if key not in f:
        raise ValueError(f"{path}: expected a variable {key!r}; found {sorted(f.keys())}.")
      data = np.asarray(f[key][()], np.float32)
    if data.ndim != 3:
      raise ValueError(f"{path}: {key!r} must be a 3-D cube; found shape {data.shape}.")
    data = np.ascontiguousarray(data.transpose(2, 1, 0))
  else:
    try:
      import scipy.io
    except ImportError as e:
      raise ImportError(f"{path} is a MATLAB v5 file: reading it needs scipy: pip install "
                        "scipy") from e
    mat = scipy.io.loadmat(path)
    if key not in mat:
      found = sorted(k for k in mat if not k.startswith("__"))
      raise ValueError(f"{path}: expected a variable {key!r}; found {found}.")
    data = np.asarray(mat[key], np.float32)
    if data.ndim != 3:
      raise ValueError(f"{path}: {key!r} must be a 3-D cube; found shape {data.shape}.")
  if data.shape[-1] != NUM_BANDS:
    raise ValueError(f"{path}: {key!r} must have {NUM_BANDS} bands (400..700 nm); found "
                     f"shape {data.shape} (as (H, W, bands)).")
  return data


def read_rgb_file(path: str) -> np.ndarray:
  """An 8-bit RGB image file (JPEG, PNG, BMP) as uint8 ``(H, W, 3)``, RGB order."""
  from PIL import Image
  if not os.path.isfile(path):
    raise FileNotFoundError(f"RGB file {path} is missing.")
  with Image.open(path) as im:
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _prepare_rgb(rgb: np.ndarray, rgb_norm: str, bgr: bool) -> np.ndarray:
  """uint8 or float RGB -> normalised float32; 8-bit data is scaled by 1/255 for "none"."""
  scale = 255.0 if rgb.dtype == np.uint8 else 1.0
  x = normalize_rgb(rgb, rgb_norm, scale=scale)
  return np.ascontiguousarray(x[..., ::-1]) if bgr else x


class _SceneCache:
  """A thread-safe LRU cache of decoded scenes."""

  def __init__(self, read: SceneFn, size: int):
    self._read, self._size = read, size
    self._items: collections.OrderedDict[int, tuple[np.ndarray, np.ndarray]] = (
        collections.OrderedDict())
    self._lock = threading.Lock()

  def __call__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
    if self._size <= 0:
      return self._read(i)
    with self._lock:
      if i in self._items:
        self._items.move_to_end(i)
        return self._items[i]
    item = self._read(i)
    with self._lock:
      self._items[i] = item
      while len(self._items) > self._size:
        self._items.popitem(last=False)
    return item


def scene_source(name: str, scene_names: Sequence[str], read_scene: SceneFn,
                 scene_shape: tuple[int, int], *, patch_size: int | None = None,
                 stride: int = 8, augment: bool = True, cache_size: int = 8,
                 camera: np.ndarray | None = None) -> SpectralSource:
  """A :class:`SpectralSource` over whole scenes or MST++'s stride patches of them.

  Args:
    name: dataset name.
    scene_names: one name per scene (kept as ``source.scene_names``).
    read_scene: scene index -> ``(rgb float32 (H, W, 3) normalised, cube float32
      (H, W, 31))``; every scene must have ``scene_shape``.
    scene_shape: ``(H, W)``.
    patch_size: ``None``: one example per scene (evaluation); ``p``: MST++'s
      ``((H - p) // stride + 1) * ((W - p) // stride + 1)`` patches per scene, example ``i``
      = scene ``i // P``, patch ``i % P`` (row-major).
    stride: patch stride (MST++: 8).
    augment: :func:`mst_augment` when ``get`` is given seeds (square examples only).
    cache_size: decoded scenes kept in memory (LRU; 0: none). MST++ holds every scene;
      a full ARAD scene is 30 MB.
    camera: the response that rendered the RGB, if known.
  """
  h, w = (int(s) for s in scene_shape)
  names = list(scene_names)
  if patch_size is None:
    per_line = per_col = 1
    ph, pw = h, w
  else:
    p = _check_int(name, "patch_size", patch_size, 1)
    stride = _check_int(name, "stride", stride, 1)
    if p > min(h, w):
      raise ValueError(f"{name}: `patch_size` {p} exceeds the scenes' size {(h, w)}.")
    per_line, per_col = (w - p) // stride + 1, (h - p) // stride + 1
    ph = pw = p
  per_scene = per_line * per_col
  if augment and ph != pw:
    raise ValueError(f"{name}: `augment` (MST++'s quarter turns) needs square examples; the "
                     f"scenes are {h}x{w}: set `patch_size` or augment=False.")
  cache_size = _check_int(name, "cache_size", cache_size, 0)
  scenes = _SceneCache(read_scene, cache_size)
  do_augment = bool(augment)

  def load(indices: np.ndarray, seeds: np.ndarray | None) -> Batch:
    rgb = np.empty((len(indices), ph, pw, 3), np.float32)
    cube = np.empty((len(indices), ph, pw, NUM_BANDS), np.float32)
    for j, i in enumerate(indices):
      s, patch = divmod(int(i), per_scene)
      x, c = scenes(s)
      if x.shape[:2] != (h, w) or c.shape[:2] != (h, w):
        raise ValueError(f"{name}: scene {names[s]!r} has RGB {x.shape} and cube {c.shape}; "
                         f"expected ({h}, {w}, 3) and ({h}, {w}, {NUM_BANDS}) like the "
                         "others.")
      if patch_size is not None:
        top, left = (patch // per_line) * stride, (patch % per_line) * stride
        x, c = x[top:top + ph, left:left + pw], c[top:top + ph, left:left + pw]
      if seeds is not None and do_augment:
        x, c = mst_augment((x, c), np.random.default_rng(int(seeds[j])))
      rgb[j], cube[j] = x, c
    return {"rgb": rgb, "cube": cube}

  source = SpectralSource(name, len(names) * per_scene, (ph, pw, 3), load, camera=camera)
  source.scene_names = names
  source.patches_per_scene = per_scene
  return source


def _check_files(name: str, paths: Sequence[str], layout: str):
  missing = [p for p in paths if not os.path.isfile(p)]
  if missing:
    raise FileNotFoundError(f"{name}: {len(missing)} of {len(paths)} files are missing, e.g. "
                            f"{missing[:3]}; expected {layout}.")


def _probe_shape(cube_path: str) -> tuple[int, int]:
  """``(H, W)`` of a .mat cube without reading it (h5py) or by reading it (v5)."""
  try:
    import h5py
    if h5py.is_hdf5(cube_path):
      with h5py.File(cube_path, "r") as f:
        if "cube" in f and f["cube"].ndim == 3:
          _, w, h = f["cube"].shape
          return int(h), int(w)
  except ImportError:
    pass
  return read_mat_cube(cube_path).shape[:2]


def _tfds_source(name: str, tfds_name: str, split: str, tfds_data_dir: str, *,
                 rows: Sequence[int] | None = None, rgb_fn=None, **kw) -> SpectralSource:
  """A scene source over a TFDS dataset prepared by :mod:`jaxvision.data.spectral_tfds`."""
  from jaxvision.data import spectral_tfds
  records, stored, _ = spectral_tfds.open_records(tfds_name, split, tfds_data_dir)
  if rows is None:  # every scene of the split, sorted by name (as the file readers)
    rows = sorted(range(len(stored)), key=stored.__getitem__)
  rows = [int(r) for r in rows]
  names = [stored[r] for r in rows]
  rgb_norm, bgr = kw.pop("rgb_norm"), kw.pop("bgr")

  def read(i: int):
    ex = records[rows[i]]
    cube = np.asarray(ex["cube"], np.float32)
    rgb = rgb_fn(ex, cube) if rgb_fn is not None else np.asarray(ex["rgb"])
    return _prepare_rgb(rgb, rgb_norm, bgr), cube

  shape = read(0)[1].shape[:2] if rows else (1, 1)
  return scene_source(name, names, read, shape, **kw)


def _train_patch(split: str, patch_size: int | None) -> int | None:
  """MST++ trains on stride patches and evaluates whole scenes: the patch size of a split."""
  return patch_size if split == "train" else None


def _check_common(name: str, rgb_norm: str, patch_size, stride, cache_size):
  _check_choice(name, "rgb_norm", rgb_norm, RGB_NORMS)
  if patch_size is not None:
    _check_int(name, "patch_size", patch_size, 1)
  _check_int(name, "stride", stride, 1)
  _check_int(name, "cache_size", cache_size, 0)


def _one_of(name: str, data_dir, tfds_data_dir):
  if data_dir is not None and tfds_data_dir is not None:
    raise ValueError(f"{name}: pass `data_dir` (raw files) or `tfds_data_dir` (prepared TFDS), "
                     f"not both; found {data_dir!r} and {tfds_data_dir!r}.")


# ------------------------------------------------------------------------------------------
# NTIRE 2022 (ARAD_1K).

NTIRE2022_SPLITS = ("train", "validation")
NTIRE2022_SCENES = {"train": range(1, 901), "validation": range(901, 951)}  # MST++ split_txt
NTIRE2022_SHAPE = (482, 512)
NTIRE2022_LAYOUT = ("<data_dir>/Train_Spec/ARAD_1K_0001.mat .. and <data_dir>/Train_RGB/"
                    "ARAD_1K_0001.jpg .. (MST++'s layout, all 950 scenes there), or the "
                    "official Train_Spec + Valid_Spec and Train_RGB + Valid_RGB folders; "
                    "from the NTIRE 2022 spectral recovery challenge (ARAD_1K, CodaLab)")


def ntire2022_files(data_dir: str, split: str) -> tuple[list[str], list[str], list[str]]:
  """Scene names, cube paths and RGB paths of an ARAD_1K split.

  The split is MST++'s ``split_txt``: ``ARAD_1K_0001`` .. ``0900`` train, ``0901`` .. ``0950``
  validation (the official validation scenes; the test cubes are not public). Each file is
  looked for in ``Train_Spec`` / ``Train_RGB`` (MST++ puts all 950 there) and then in the
  official ``Valid_Spec`` / ``Valid_RGB``.
  """
  names, cubes, rgbs = [], [], []
  for k in NTIRE2022_SCENES[split]:
    scene = f"ARAD_1K_{k:04d}"
    names.append(scene)
    for spec, rgb in (("Train_Spec", "Train_RGB"), ("Valid_Spec", "Valid_RGB")):
      cube_path = os.path.join(data_dir, spec, scene + ".mat")
      if os.path.isfile(cube_path):
        break
    else:
      cube_path = os.path.join(data_dir, "Train_Spec", scene + ".mat")
    rgb_path = os.path.join(data_dir, rgb, scene + ".jpg")
    if not os.path.isfile(rgb_path):
      rgb_path = os.path.join(data_dir, "Train_RGB", scene + ".jpg")
    cubes.append(cube_path)
    rgbs.append(rgb_path)
  return names, cubes, rgbs


@register_dataset("ntire2022", splits=NTIRE2022_SPLITS)
def ntire2022(split: str, data_dir: str | None = None, patch_size: int | None = None,
              stride: int = 8, augment: bool = True, rgb_norm: str = "minmax",
              bgr: bool = False, cache_size: int = 8,
              tfds_data_dir: str | None = None) -> SpectralSource:
  """NTIRE 2022 spectral recovery (ARAD_1K; Arad et al., CVPRW 2022), the MST++ protocol.

  950 public scenes of 482x512 with 31 bands (400..700 nm): 900 ``"train"`` and 50
  ``"validation"`` (:func:`ntire2022_files`; the paper's and MST++'s reported numbers are
  on the validation set, whose metrics MST++ computes on the ``[128:-128, 128:-128]``
  centre). Cubes are the v7.3 .mat files' ``'cube'`` (:func:`read_mat_cube`); RGB is the
  release's JPEG (:func:`normalize_rgb`, module docstring).

  Args:
    split: ``"train"`` or ``"validation"``.
    data_dir: the local copy (layout: :data:`NTIRE2022_LAYOUT`). Exactly one of
      ``data_dir`` / ``tfds_data_dir``.
    patch_size: ``None`` whole scenes; ``p`` MST++'s stride patches of the **train** split
      (MST++: 128); the evaluation splits are always whole scenes, as MST++ validates.
    stride: patch stride (8).
    augment: MST++'s rotations and flips when ``get`` is given seeds (needs ``patch_size``:
      whole scenes are not square).
    rgb_norm: ``"minmax"`` (MST++) or ``"none"`` (``/255``).
    bgr: give the RGB in BGR order (OpenCV's, for MST++ models trained without
      ``bgr2rgb``).
    cache_size: decoded scenes kept in memory.
    tfds_data_dir: read the ``ntire2022`` TFDS dataset prepared there instead.

  Returns:
    A :class:`SpectralSource` of ``{"rgb": (H, W, 3), "cube": (H, W, 31)}`` float32, with
    ``scene_names``.
  """
  name = "ntire2022"
  _check_split(name, split, NTIRE2022_SPLITS)
  _check_common(name, rgb_norm, patch_size, stride, cache_size)
  _one_of(name, data_dir, tfds_data_dir)
  patch = _train_patch(split, patch_size)
  kw = dict(patch_size=patch, stride=stride, augment=augment and patch is not None,
            cache_size=cache_size)
  if tfds_data_dir is not None:
    return _tfds_source(name, "ntire2022", split, tfds_data_dir, rgb_norm=rgb_norm, bgr=bgr,
                        **kw)
  data_dir = check_data_dir(name, data_dir, NTIRE2022_LAYOUT, builders=BUILDERS_MODULE)
  names, cubes, rgbs = ntire2022_files(data_dir, split)
  _check_files(name, cubes + rgbs, NTIRE2022_LAYOUT)

  def read(i: int):
    return _prepare_rgb(read_rgb_file(rgbs[i]), rgb_norm, bgr), read_mat_cube(cubes[i])

  return scene_source(name, names, read, _probe_shape(cubes[0]), **kw)


# ------------------------------------------------------------------------------------------
# NTIRE 2020 (ARAD).

NTIRE2020_SPLITS = ("train", "validation")
NTIRE2020_TRACKS = {"clean": ("Clean", "_clean.png"), "real_world": ("RealWorld",
                                                                      "_RealWorld.jpg")}
NTIRE2020_FOLDER = {"train": "Train", "validation": "Validation"}
NTIRE2020_LAYOUT = ("<data_dir>/NTIRE2020_Train_Spectral/ARAD_HS_0001.mat .. with "
                    "<data_dir>/NTIRE2020_Train_Clean/ARAD_HS_0001_clean.png .. (or "
                    "NTIRE2020_Train_RealWorld/ARAD_HS_0001_RealWorld.jpg), and the same for "
                    "Validation; from the NTIRE 2020 spectral reconstruction challenge "
                    "(CodaLab, tracks Clean and Real World)")


def ntire2020_files(data_dir: str, split: str, track: str = "clean"
                    ) -> tuple[list[str], list[str], list[str]]:
  """Scene names, cube paths and RGB paths of an NTIRE 2020 split.

  The official release's folders (as the challenge's code and e.g. HRNet/AWAN read them):
  ``NTIRE2020_{Train,Validation}_Spectral/ARAD_HS_XXXX.mat`` (v5 .mat, ``'cube'``
  ``(482, 512, 31)``), ``NTIRE2020_{Train,Validation}_Clean/ARAD_HS_XXXX_clean.png`` and
  ``NTIRE2020_{Train,Validation}_RealWorld/ARAD_HS_XXXX_RealWorld.jpg``. The scenes are
  whatever .mat files the spectral folder holds (450 train, 10 validation in the
  release), sorted.
  """
  folder, suffix = NTIRE2020_TRACKS[track]
  part = NTIRE2020_FOLDER[split]
  spec_dir = os.path.join(data_dir, f"NTIRE2020_{part}_Spectral")
  if not os.path.isdir(spec_dir):
    raise FileNotFoundError(f"ntire2020: {spec_dir} is missing; expected {NTIRE2020_LAYOUT}.")
  cubes = sorted(glob.glob(os.path.join(spec_dir, "ARAD_HS_*.mat")))
  if not cubes:
    raise FileNotFoundError(f"ntire2020: no ARAD_HS_*.mat in {spec_dir}; expected "
                            f"{NTIRE2020_LAYOUT}.")
  names = [os.path.splitext(os.path.basename(p))[0] for p in cubes]
  rgb_dir = os.path.join(data_dir, f"NTIRE2020_{part}_{folder}")
  return names, cubes, [os.path.join(rgb_dir, n + suffix) for n in names]


@register_dataset("ntire2020", splits=NTIRE2020_SPLITS)
def ntire2020(split: str, data_dir: str | None = None, track: str = "clean",
              patch_size: int | None = None, stride: int = 8, augment: bool = True,
              rgb_norm: str = "minmax", bgr: bool = False, cache_size: int = 8,
              tfds_data_dir: str | None = None) -> SpectralSource:
  """NTIRE 2020 spectral reconstruction (ARAD; Arad et al., CVPRW 2020), 482x512, 31 bands.

  Tracks: ``"clean"`` (uncompressed 8-bit PNG rendered with a known camera response) and
  ``"real_world"`` (JPEG, with noise and an unknown response). Splits ``"train"`` and
  ``"validation"`` are the release's folders (:func:`ntire2020_files`); the test cubes
  are not public.

  Args:
    split: ``"train"`` or ``"validation"``.
    data_dir: the local copy (layout: :data:`NTIRE2020_LAYOUT`). Exactly one of
      ``data_dir`` / ``tfds_data_dir``.
    track: ``"clean"`` or ``"real_world"``.
    patch_size, stride, augment, rgb_norm, bgr, cache_size: as :func:`ntire2022`.
    tfds_data_dir: read the ``ntire2020/<track>`` TFDS dataset prepared there instead.

  Returns:
    A :class:`SpectralSource` of ``{"rgb", "cube"}`` with ``scene_names``.
  """
  name = "ntire2020"
  _check_split(name, split, NTIRE2020_SPLITS)
  _check_choice(name, "track", track, tuple(NTIRE2020_TRACKS))
  _check_common(name, rgb_norm, patch_size, stride, cache_size)
  _one_of(name, data_dir, tfds_data_dir)
  patch = _train_patch(split, patch_size)
  kw = dict(patch_size=patch, stride=stride, augment=augment and patch is not None,
            cache_size=cache_size)
  if tfds_data_dir is not None:
    return _tfds_source(name, f"ntire2020/{track}", split, tfds_data_dir, rgb_norm=rgb_norm,
                        bgr=bgr, **kw)
  data_dir = check_data_dir(name, data_dir, NTIRE2020_LAYOUT, builders=BUILDERS_MODULE)
  names, cubes, rgbs = ntire2020_files(data_dir, split, track)
  _check_files(name, rgbs, NTIRE2020_LAYOUT)

  def read(i: int):
    return _prepare_rgb(read_rgb_file(rgbs[i]), rgb_norm, bgr), read_mat_cube(cubes[i])

  return scene_source(name, names, read, _probe_shape(cubes[0]), **kw)


# ------------------------------------------------------------------------------------------
# CAVE (Columbia multispectral image database).

CAVE_SCENES = (
    "balloons", "beads", "cd", "chart_and_stuffed_toy", "clay", "cloth", "egyptian_statue",
    "face", "fake_and_real_beers", "fake_and_real_food", "fake_and_real_lemon_slices",
    "fake_and_real_lemons", "fake_and_real_peppers", "fake_and_real_strawberries",
    "fake_and_real_sushi", "fake_and_real_tomatoes", "feathers", "flowers", "glass_tiles",
    "hairs", "jelly_beans", "oil_painting", "paints", "photo_and_face", "pompoms",
    "real_and_fake_apples", "real_and_fake_peppers", "sponges", "stuffed_toys", "superballs",
    "thread_spools", "watercolors")
CAVE_SPLITS = ("train", "test")
CAVE_SPLIT_SEED = 2024   # the paper's random 20/12 split has no seed: this one is ours
CAVE_NUM_TRAIN = 20
CAVE_RGB = ("auto", "file", "render")
CAVE_LAYOUT = ("<data_dir>/<scene>_ms/<scene>_ms/<scene>_ms_01.png .. _31.png (16-bit band "
               "PNGs, 400..700 nm) and <scene>_RGB.bmp beside them (the complete_ms_data "
               "release of https://www.cs.columbia.edu/CAVE/databases/multispectral/; a "
               "single <scene>_ms/ level also works)")


def cave_split(scenes: Sequence[str] = CAVE_SCENES, split_seed: int = CAVE_SPLIT_SEED,
               num_train: int = CAVE_NUM_TRAIN) -> dict[str, tuple[str, ...]]:
  """The random train/test split of the CAVE scenes: ``{"train": ..., "test": ...}``.

  ``np.random.default_rng(split_seed).permutation`` of the sorted scene names; the first
  ``num_train`` (20 of 32, as the paper) are train, the rest test, each sorted. The paper
  gives no seed or list, so its split cannot be reproduced; :data:`CAVE_SPLIT_SEED` fixes
  ours.
  """
  scenes = sorted(scenes)
  order = np.random.default_rng(split_seed).permutation(len(scenes))
  train = tuple(sorted(scenes[i] for i in order[:num_train]))
  test = tuple(sorted(scenes[i] for i in order[num_train:]))
  return {"train": train, "test": test}


def cave_scene_dir(data_dir: str, scene: str) -> str:
  """The folder holding ``<scene>_ms_01.png`` ..: ``<scene>_ms/<scene>_ms`` or
  ``<scene>_ms``."""
  for d in (os.path.join(data_dir, f"{scene}_ms", f"{scene}_ms"),
            os.path.join(data_dir, f"{scene}_ms")):
    if os.path.isfile(os.path.join(d, f"{scene}_ms_01.png")):
      return d
  raise FileNotFoundError(f"cave: scene {scene!r} not found in {data_dir}: expected "
                          f"{scene}_ms/{scene}_ms/{scene}_ms_01.png .. _31.png; layout "
                          f"{CAVE_LAYOUT}.")


def read_band_png(path: str) -> np.ndarray:
  """One CAVE band, float32 ``(H, W)`` in ``[0, 1]``: 16-bit values / 65535, 8-bit / 255.

  Handles the release's quirks: most bands are 16-bit greyscale, a few scenes store 8-bit
  or RGB(A) PNGs (the grey value repeated; the first channel is used).
  """
  from PIL import Image
  if not os.path.isfile(path):
    raise FileNotFoundError(f"cave: band file {path} is missing.")
  with Image.open(path) as im:
    mode = im.mode
    a = np.asarray(im)
  if a.ndim == 3:
    a = a[..., 0]
  if a.dtype == np.uint8 and mode not in ("I", "I;16", "I;16B"):
    return a.astype(np.float32) / np.float32(255.0)
  if a.dtype.kind in "ui" or mode.startswith("I"):
    return a.astype(np.float32) / np.float32(65535.0)
  raise ValueError(f"cave: {path} has unsupported pixel type {a.dtype} (mode {mode}); "
                   "expected 8- or 16-bit integers.")


def cave_rgb_file(data_dir: str, scene: str) -> str | None:
  """The path of a CAVE scene's ``<scene>_RGB.bmp`` (beside its bands or one folder up),
  or None."""
  d = cave_scene_dir(data_dir, scene)
  for path in (os.path.join(d, f"{scene}_RGB.bmp"),
               os.path.join(os.path.dirname(d), f"{scene}_RGB.bmp")):
    if os.path.isfile(path):
      return path
  return None


def read_cave_scene(data_dir: str, scene: str) -> tuple[np.ndarray, str | None]:
  """A CAVE scene's cube float32 ``(H, W, 31)`` and the path of its ``_RGB.bmp`` (or None)."""
  d = cave_scene_dir(data_dir, scene)
  bands = [read_band_png(os.path.join(d, f"{scene}_ms_{b:02d}.png"))
           for b in range(1, NUM_BANDS + 1)]
  shapes = {b.shape for b in bands}
  if len(shapes) != 1:
    raise ValueError(f"cave: the bands of {scene!r} in {d} differ in size: {sorted(shapes)}.")
  return np.stack(bands, axis=-1), cave_rgb_file(data_dir, scene)


@register_dataset("cave", splits=CAVE_SPLITS)
def cave(split: str, data_dir: str | None = None, scenes: Sequence[str] | None = None,
         split_seed: int = CAVE_SPLIT_SEED, num_train: int = CAVE_NUM_TRAIN,
         rgb: str = "auto", camera: str = "nikon_d5100", patch_size: int | None = None,
         stride: int = 8, augment: bool = True, rgb_norm: str = "minmax", bgr: bool = False,
         cache_size: int = 8, tfds_data_dir: str | None = None) -> SpectralSource:
  """CAVE (Yasuma et al., TIP 2010): 32 scenes of 512x512, 31 bands 400..700 nm.

  Split: :func:`cave_split` of ``scenes`` (default the 32 :data:`CAVE_SCENES`): a random
  20 train / 12 test, seeded by ``split_seed`` (the paper's split has no seed).

  Cube: the band PNGs / 65535 (:func:`read_band_png`). RGB (``rgb``): ``"file"`` the
  release's ``<scene>_RGB.bmp`` (an sRGB rendering); ``"render"`` the cube through
  :func:`camera_response` (``camera``), linear, as most spectral-recovery papers do on
  CAVE; ``"auto"`` (default) the files when every scene of the split has one, else rendered
  for all (logged), never a mix. Then :func:`normalize_rgb`.

  Args:
    split: ``"train"`` or ``"test"``.
    data_dir: the local copy (layout :data:`CAVE_LAYOUT`). Exactly one of ``data_dir`` /
      ``tfds_data_dir``.
    scenes: the scene list to split (default all 32).
    split_seed: seed of the split.
    num_train: scenes in train (20).
    rgb: ``"auto"``, ``"file"`` or ``"render"``.
    camera: the response for ``"render"`` (:data:`CAMERAS`).
    patch_size, stride, augment, rgb_norm, bgr, cache_size: as :func:`ntire2022` (CAVE
      scenes are square, so ``augment`` also applies to whole scenes).
    tfds_data_dir: read the ``cave`` TFDS dataset prepared there instead.

  Returns:
    A :class:`SpectralSource` of ``{"rgb", "cube"}`` with ``scene_names`` and ``camera``
    (the response when rendered, else None).
  """
  name = "cave"
  _check_split(name, split, CAVE_SPLITS)
  _check_choice(name, "rgb", rgb, CAVE_RGB)
  _check_choice(name, "camera", camera, CAMERAS)
  _check_common(name, rgb_norm, patch_size, stride, cache_size)
  _one_of(name, data_dir, tfds_data_dir)
  scenes = tuple(CAVE_SCENES if scenes is None else scenes)
  if not scenes or len(set(scenes)) != len(scenes):
    raise ValueError(f"{name}: `scenes` must be distinct scene names; found {scenes!r}.")
  num_train = _check_int(name, "num_train", num_train, 0, len(scenes))
  split_seed = _check_int(name, "split_seed", split_seed, 0)
  chosen = cave_split(scenes, split_seed, num_train)[split]
  if not chosen:
    raise ValueError(f"{name}: split {split!r} is empty ({num_train} of {len(scenes)} scenes "
                     "in train).")
  r = camera_response(camera)
  kw = dict(patch_size=_train_patch(split, patch_size), stride=stride, augment=augment,
            cache_size=cache_size)

  if tfds_data_dir is not None:
    from jaxvision.data import spectral_tfds
    _, stored, meta = spectral_tfds.open_records("cave", "full", tfds_data_dir)
    where = {s: i for i, s in enumerate(stored)}
    missing = [s for s in chosen if s not in where]
    if missing:
      raise FileNotFoundError(f"{name}: the TFDS data in {tfds_data_dir} lacks scenes "
                              f"{missing[:3]}.")
    has_file = all(meta["has_rgb"][where[s]] for s in chosen)
    render = _cave_render(name, rgb, has_file)

    def rgb_fn(ex, cube):
      return cube @ r if render else np.asarray(ex["rgb"])

    source = _tfds_source(name, "cave", "full", tfds_data_dir, rows=[where[s] for s in chosen],
                          rgb_fn=rgb_fn, rgb_norm=rgb_norm, bgr=bgr, **kw)
    source.camera = r if render else None
    return source

  data_dir = check_data_dir(name, data_dir, CAVE_LAYOUT, builders=BUILDERS_MODULE)
  dirs = [cave_scene_dir(data_dir, s) for s in chosen]
  render = _cave_render(name, rgb, all(cave_rgb_file(data_dir, s) is not None for s in chosen))

  def read(i: int):
    cube, bmp = read_cave_scene(data_dir, chosen[i])
    x = cube @ r if render else read_rgb_file(bmp)
    return _prepare_rgb(x, rgb_norm, bgr), cube

  first = read_band_png(os.path.join(dirs[0], f"{chosen[0]}_ms_01.png")).shape
  return scene_source(name, chosen, read, first, camera=r if render else None, **kw)


def _cave_render(name: str, rgb: str, have_files: bool) -> bool:
  if rgb == "file" and not have_files:
    raise FileNotFoundError(f"{name}: rgb='file' but some scenes have no <scene>_RGB.bmp; use "
                            "rgb='render' (through `camera`) or rgb='auto'.")
  if rgb == "auto" and not have_files:
    log.info("%s: some scenes have no _RGB.bmp: rendering every RGB through the camera", name)
  return rgb == "render" or not have_files


__all__ = ["CAMERAS", "CAVE_SCENES", "CAVE_SPLIT_SEED", "NUM_BANDS", "SpectralSource",
           "WAVELENGTHS", "camera_response", "cave", "cave_split", "illuminant_names",
           "illuminant_spectrum", "measured_spectra", "mst_augment", "normalize_rgb",
           "ntire2020", "ntire2022", "parametric_reflectances", "read_band_png",
           "cave_rgb_file", "read_cave_scene", "read_mat_cube", "read_rgb_file", "render_rgb", "scene_source",
           "synthetic_hsi", "synthetic_scene"]
