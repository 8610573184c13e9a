"""Image quality assessment (IQA) datasets: images with a mean opinion score (MOS).

Every source here yields ``{"image": float32 (H, W, 3), "score": float32 ()}``: the image
scaled to [0, 1] and standardised with the ImageNet mean and std (as LinearityIQA, the
Norm-in-Norm paper's code), and its MOS. ``info.num_classes`` is 0 (regression) and every
source also exposes ``scores``, float32 ``(N,)``, so the least-squares mapping from
predictions to MOS can be fitted on the whole training set without reading an image.
Splits are ``"train"``, ``"validation"`` and ``"test"``.

Registered:

* ``synthetic_iqa``: the embedded default. Crops of the colour photographs shipped inside
  the scikit-image wheel, degraded by graded blur, noise, JPEG and contrast reduction, with
  a documented monotone score (:func:`quality_score`). Nothing is downloaded.
* ``koniq10k``: KonIQ-10k (10,073 in-the-wild images, owner split 7058/1000/2015) from a
  user's local copy of the official release, or from a prepared TFDS ``data_dir``.
* ``clive``: LIVE In the Wild Image Quality Challenge (CLIVE, 1,162 images), the paper's
  cross-dataset test set, from a local copy or a prepared TFDS ``data_dir``.

Neither real dataset is in the TFDS catalog and neither can be downloaded at run time
(jaxvision never downloads). :mod:`jaxvision.data.iqa_tfds` has manual-download TFDS
builders for both; they prepare without TensorFlow (``file_format="array_record"``).

Training augmentation (a horizontal flip with probability 1/2) is applied only when the
source was built with ``augment=True`` *and* ``get`` receives seeds; the paper trains
without augmentation, so ``augment`` defaults to False everywhere.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import io
import math
import os
from typing import Any, Callable, Sequence

import numpy as np

from jaxvision.data import augment as augment_lib
from jaxvision.data.registry import register_dataset
from jaxvision.data.sources import Batch, DatasetInfo, check_data_dir, is_hdf5_file
from jaxvision.data.tfds_datasets import IMAGENET_MEAN, IMAGENET_STD, normalize

IQA_SPLITS = ("train", "validation", "test")

LoadFn = Callable[[np.ndarray], np.ndarray]


class IQASource:
  """A :class:`~jaxvision.data.sources.Source` of ``{"image", "score"}`` IQA examples.

  Args:
    name: registry name (for ``info`` and messages).
    scores: float ``(N,)`` MOS of every example.
    image_shape: ``(H, W, 3)`` of one preprocessed image.
    load: ``indices int (n,) -> uint8 (n, H, W, 3)``, the images before normalisation.
    augment: flip left-right with probability 1/2 when ``get`` is given seeds.
    params: optional per-example metadata (each value has leading dimension ``N``).
  """

  def __init__(self, name: str, scores: np.ndarray, image_shape: tuple[int, int, int],
               load: LoadFn, augment: bool = False, params: dict[str, np.ndarray] | None = None):
    scores = np.asarray(scores, np.float32)
    if scores.ndim != 1:
      raise ValueError(f"{name}: `scores` must be (N,); found shape {scores.shape}.")
    if not np.all(np.isfinite(scores)):
      bad = int(np.flatnonzero(~np.isfinite(scores))[0])
      raise ValueError(f"{name}: every score must be finite; example {bad} has {scores[bad]}.")
    self.scores = scores
    self._load = load
    self.augment = bool(augment)
    self.params = params or {}
    self.info = DatasetInfo(name, 0, tuple(int(s) for s in image_shape), len(scores))

  def __len__(self) -> int:
    return len(self.scores)

  def get(self, indices: np.ndarray, seeds: np.ndarray | None = None) -> Batch:
    indices = np.asarray(indices, np.int64)
    images = self._load(indices)
    if seeds is not None and self.augment:
      images = np.stack([augment_lib.flip_left_right(img, np.random.default_rng(int(s)))
                         for img, s in zip(images, seeds)])
    return {"image": normalize(images, IMAGENET_MEAN, IMAGENET_STD),
            "score": self.scores[indices]}


def _check_split(name: str, split: str):
  if split not in IQA_SPLITS:
    raise ValueError(f"{name}: `split` must be one of {IQA_SPLITS}; found {split!r}.")


def _check_size(name: str, image_size) -> tuple[int, int] | None:
  """``None``, an int ``s`` (-> ``(s, s)``) or ``(h, w)`` -> ``(h, w)`` or ``None``."""
  if image_size is None:
    return None
  if isinstance(image_size, (int, np.integer)):
    image_size = (image_size, image_size)
  try:
    h, w = (int(s) for s in image_size)
  except (TypeError, ValueError):
    raise ValueError(f"{name}: `image_size` must be None, an int or (height, width); "
                     f"found {image_size!r}.") from None
  if h < 1 or w < 1:
    raise ValueError(f"{name}: `image_size` must be positive; found {(h, w)}.")
  return h, w


def _pil():
  from PIL import Image  # pillow is a core dependency
  return Image


def _to_rgb_uint8(pil_image) -> np.ndarray:
  return np.asarray(pil_image.convert("RGB"), dtype=np.uint8)


# ------------------------------------------------------------------------------------------
# synthetic_iqa: graded synthetic distortions of the photographs shipped with scikit-image.

# Colour photographs inside the scikit-image wheel (``skimage/data/``), read with Pillow from
# the installed package: no pooch, no network (the datasets scikit-image fetches are not
# used). name -> file.
SKIMAGE_PHOTOS = {
    "astronaut": "astronaut.png",            # 512x512, portrait (NASA)
    "coffee": "coffee.png",                  # 400x600, cup on a table
    "rocket": "rocket.jpg",                  # 427x640, launch pad at dusk
    "motorcycle_left": "motorcycle_left.png",    # 500x741, Middlebury stereo pair (left)
    "motorcycle_right": "motorcycle_right.png",  # 500x741, ... (right: same scene)
    "chelsea": "chelsea.png",                # 300x451, a cat
    "retina": "retina.jpg",                  # 1411x1411, fundus photograph
    "immunohistochemistry": "ihc.png",       # 512x512, stained tissue micrograph
    "hubble_deep_field": "hubble_deep_field.jpg",  # 872x1000, galaxies
}
# Content-disjoint splits: no photograph (and no scene: the stereo pair stays together) is
# in two splits. scikit-image's colour wheel (color.png) is not used: it is smooth almost
# everywhere, so blur is invisible in most of its crops and the score would be unlearnable.
SYNTHETIC_SPLIT_PHOTOS = {
    "train": ("astronaut", "coffee", "rocket", "motorcycle_left", "motorcycle_right"),
    "validation": ("chelsea", "retina"),
    "test": ("immunohistochemistry", "hubble_deep_field"),
}
# Examples per photograph by default: 5 x 400 = 2000 train, 2 x 256 = 512 validation/test.
SYNTHETIC_NUM_PER_IMAGE = {"train": 400, "validation": 256, "test": 256}
SYNTHETIC_SPLIT_CODE = {"train": 0, "validation": 1, "test": 2}
_AFFINE_CODE = 1_000

DISTORTIONS = ("blur", "noise", "jpeg", "contrast")
MAX_BLUR_SIGMA = 2.5     # Gaussian blur std (pixels of the crop) at the top grade
MAX_NOISE_SIGMA = 0.1    # additive Gaussian noise std (intensities in [0, 1]) at the top grade
MIN_JPEG_QUALITY = 10    # Pillow JPEG quality at the top grade; grade 0 is not compressed
MIN_CONTRAST = 0.4       # contrast factor at the top grade
# MOS points lost at the top grade of each distortion (they sum to 100).
SCORE_WEIGHTS = {"blur": 50.0, "noise": 30.0, "jpeg": 10.0, "contrast": 10.0}
REFERENCE_SCALE = 3      # a photo is first resized so that its shorter side is 3 crops
TEXTURE_QUANTILE = 0.5   # crops are drawn from the more textured half of the positions


def quality_score(blur_sigma, noise_sigma, jpeg_level, contrast_level) -> np.ndarray:
  """The noise-free synthetic MOS (spec Sec. 4's substitute, extended to four distortions).

  ``MOS = 100 - 20 sigma_b - 300 sigma_n - 10 d_jpeg - 10 d_contrast``, i.e. ``100 - 50 d_b
  - 30 d_n - 10 d_j - 10 d_c`` in terms of the grades ``d in [0, 1]`` (``sigma_b = 2.5 d_b``,
  ``sigma_n = 0.1 d_n``). It lies in [0, 100] and is strictly decreasing in every
  distortion. Blur and noise keep spec Sec. 4's coefficients (20 per pixel of blur std,
  300 per unit of noise std on [0, 1] intensities).

  Args:
    blur_sigma: Gaussian blur std in pixels, ``[0, 2.5]``.
    noise_sigma: additive noise std on [0, 1] intensities, ``[0, 0.1]``.
    jpeg_level: normalised JPEG grade ``d_j in [0, 1]``: quality ``round(100 - 90 d_j)``,
      ``d_j = 0``: not compressed.
    contrast_level: normalised contrast grade ``d_c in [0, 1]``: contrast factor
      ``1 - 0.6 d_c``.

  Returns:
    float64 array broadcast over the arguments.
  """
  return (100.0 - SCORE_WEIGHTS["blur"] / MAX_BLUR_SIGMA * np.asarray(blur_sigma, np.float64)
          - SCORE_WEIGHTS["noise"] / MAX_NOISE_SIGMA * np.asarray(noise_sigma, np.float64)
          - SCORE_WEIGHTS["jpeg"] * np.asarray(jpeg_level, np.float64)
          - SCORE_WEIGHTS["contrast"] * np.asarray(contrast_level, np.float64))


def jpeg_quality_for(level: float) -> int:
  """Pillow JPEG quality of JPEG grade ``level`` in (0, 1]: ``round(100 - 90 level)``."""
  return int(round(100 - (100 - MIN_JPEG_QUALITY) * level))


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
  """Separable Gaussian blur of float ``(n, H, W, C)`` images, reflect boundary.

  The kernel is the sampled Gaussian of std ``sigma`` pixels on ``[-r, r]``,
  ``r = ceil(3 sigma)``, normalised to sum 1; ``sigma <= 0`` returns the input.
  Needs ``H, W > r``.
  """
  if sigma <= 0:
    return images
  r = max(1, int(math.ceil(3 * sigma)))
  t = np.arange(-r, r + 1, dtype=np.float64)
  kernel = np.exp(-0.5 * (t / sigma) ** 2)
  kernel = (kernel / kernel.sum()).astype(np.float32)
  h, w = images.shape[1:3]
  padded = np.pad(images, ((0, 0), (r, r), (0, 0), (0, 0)), mode="reflect")
  out = sum(k * padded[:, i:i + h] for i, k in enumerate(kernel))
  padded = np.pad(out, ((0, 0), (0, 0), (r, r), (0, 0)), mode="reflect")
  return sum(k * padded[:, :, i:i + w] for i, k in enumerate(kernel)).astype(np.float32)


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
  """Encodes a uint8 ``(H, W, 3)`` image as JPEG with Pillow at ``quality`` and decodes it."""
  Image = _pil()
  buf = io.BytesIO()
  Image.fromarray(image).save(buf, format="JPEG", quality=int(quality))
  buf.seek(0)
  with Image.open(buf) as im:
    return _to_rgb_uint8(im)


def _skimage_data_dir() -> str:
  spec = importlib.util.find_spec("skimage")
  if spec is None or not spec.submodule_search_locations:
    raise ImportError("synthetic_iqa uses the photographs shipped inside the scikit-image "
                      "wheel: pip install 'scikit-image>=0.22'")
  return os.path.join(list(spec.submodule_search_locations)[0], "data")


@functools.lru_cache(maxsize=None)
def load_photo(name: str) -> np.ndarray:
  """The scikit-image photograph ``name`` (a key of :data:`SKIMAGE_PHOTOS`), uint8 RGB."""
  if name not in SKIMAGE_PHOTOS:
    raise ValueError(f"unknown photograph {name!r}; expected one of {sorted(SKIMAGE_PHOTOS)}.")
  path = os.path.join(_skimage_data_dir(), SKIMAGE_PHOTOS[name])
  if not os.path.isfile(path):
    raise FileNotFoundError(f"synthetic_iqa: scikit-image's photograph {path} is missing; "
                            "reinstall scikit-image (>=0.22).")
  with _pil().open(path) as im:
    return _to_rgb_uint8(im)


@functools.lru_cache(maxsize=None)
def _reference(name: str, image_size: int) -> tuple[np.ndarray, np.ndarray]:
  """The photo resized (never upsampled) to shorter side ``3 * image_size``, and the
  ``(top, left)`` crop positions of its more textured half, float32 / int64 ``(P, 2)``."""
  photo = load_photo(name)
  h, w = photo.shape[:2]
  scale = min(1.0, REFERENCE_SCALE * image_size / min(h, w))
  if scale < 1.0:
    photo = augment_lib.resize(photo, (int(round(h * scale)), int(round(w * scale))))
  h, w = photo.shape[:2]
  grey = photo.astype(np.float32).mean(-1) / 255.0
  grad = np.zeros_like(grey)
  grad[:, :-1] += np.abs(np.diff(grey, axis=1))
  grad[:-1] += np.abs(np.diff(grey, axis=0))
  integral = np.pad(grad.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
  stride = max(1, image_size // 8)
  tops, lefts = np.meshgrid(np.arange(0, h - image_size + 1, stride),
                            np.arange(0, w - image_size + 1, stride), indexing="ij")
  tops, lefts = tops.ravel(), lefts.ravel()
  s = image_size
  texture = (integral[tops + s, lefts + s] - integral[tops, lefts + s]
             - integral[tops + s, lefts] + integral[tops, lefts])
  keep = texture >= np.quantile(texture, TEXTURE_QUANTILE)
  return photo, np.stack([tops[keep], lefts[keep]], axis=1)


def _check_distortions(distortions) -> tuple[str, ...]:
  if isinstance(distortions, str):
    distortions = (distortions,)
  distortions = tuple(distortions)
  unknown = [d for d in distortions if d not in DISTORTIONS]
  if unknown or not distortions:
    raise ValueError(f"synthetic_iqa: `distortions` must be a non-empty subset of "
                     f"{DISTORTIONS}; found {distortions!r}.")
  return tuple(d for d in DISTORTIONS if d in distortions)


@functools.lru_cache(maxsize=16)
def build_synthetic_iqa(split: str, image_size: int, num_per_image: int, levels: int,
                        seed: int, distortions: tuple[str, ...], rater_noise: float,
                        affine: bool) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
  """The degraded images, scores and per-example parameters of one synthetic split.

  Cached per options: the arguments of :func:`synthetic_iqa` (validated there).

  Returns:
    ``(images uint8 (N, S, S, 3), scores float32 (N,), params)``; see :func:`synthetic_iqa`.
  """
  photos = SYNTHETIC_SPLIT_PHOTOS[split]
  n = len(photos) * num_per_image
  grades = np.linspace(0.0, 1.0, levels)
  active = np.array([d in distortions for d in DISTORTIONS])
  s = image_size
  crops = np.empty((n, s, s, 3), np.float32)
  names = list(SKIMAGE_PHOTOS)
  photo_idx = np.empty(n, np.int32)
  pos = np.empty((n, 2), np.int32)
  grade_idx = np.empty((n, len(DISTORTIONS)), np.int32)
  rater = np.empty(n, np.float64)
  rngs = []
  for p, name in enumerate(photos):
    ref, candidates = _reference(name, s)
    for k in range(num_per_image):
      i = p * num_per_image + k
      # Every random choice of example i comes from its own generator: a function of
      # (seed, split, photo, k) only, whatever the other examples or options.
      rng = np.random.default_rng([seed, SYNTHETIC_SPLIT_CODE[split], names.index(name), k])
      top, left = candidates[rng.integers(len(candidates))]
      grade_idx[i] = rng.integers(0, levels, size=len(DISTORTIONS)) * active
      rater[i] = rng.normal() * rater_noise
      crops[i] = ref[top:top + s, left:left + s]
      photo_idx[i] = names.index(name)
      pos[i] = top, left
      rngs.append(rng)
  d = grades[grade_idx]  # (N, 4) grades in [0, 1]
  blur_sigma = MAX_BLUR_SIGMA * d[:, 0]
  noise_sigma = MAX_NOISE_SIGMA * d[:, 1]
  contrast = 1.0 - (1.0 - MIN_CONTRAST) * d[:, 3]
  quality = np.array([jpeg_quality_for(x) if x > 0 else 0 for x in d[:, 2]], np.int32)

  # Camera-like order: contrast, optical blur, sensor noise, 8-bit quantisation, JPEG.
  x = crops / 255.0
  mean = x.mean(axis=(1, 2, 3), keepdims=True)
  x = mean + contrast[:, None, None, None].astype(np.float32) * (x - mean)
  for sigma in np.unique(blur_sigma):
    sel = blur_sigma == sigma
    x[sel] = gaussian_blur(x[sel], float(sigma))
  for i in np.flatnonzero(noise_sigma > 0):
    x[i] += noise_sigma[i] * rngs[i].standard_normal((s, s, 3), dtype=np.float32)
  images = np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)
  for i in np.flatnonzero(quality):
    images[i] = jpeg_roundtrip(images[i], quality[i])

  clean = quality_score(blur_sigma, noise_sigma, d[:, 2], d[:, 3])
  scores = clean + rater
  a, b = 1.0, 0.0
  if affine:
    arng = np.random.default_rng([seed, _AFFINE_CODE])
    a, b = arng.uniform(0.25, 2.0), arng.uniform(-25.0, 25.0)
    scores = a * scores + b
  params = {
      "photo": photo_idx, "top": pos[:, 0], "left": pos[:, 1],
      "blur_grade": grade_idx[:, 0], "noise_grade": grade_idx[:, 1],
      "jpeg_grade": grade_idx[:, 2], "contrast_grade": grade_idx[:, 3],
      "blur_sigma": blur_sigma.astype(np.float32), "noise_sigma": noise_sigma.astype(np.float32),
      "jpeg_quality": quality, "contrast": contrast.astype(np.float32),
      "mos_clean": clean.astype(np.float32), "rater_noise": rater.astype(np.float32),
      "affine": np.array([a, b], np.float64),
  }
  for v in params.values():
    v.setflags(write=False)
  images.setflags(write=False)
  scores = scores.astype(np.float32)
  scores.setflags(write=False)
  return images, scores, params


@register_dataset("synthetic_iqa", splits=IQA_SPLITS)
def synthetic_iqa(split: str, image_size: int = 64, num_per_image: int | None = None,
                  levels: int = 5, seed: int = 0, distortions: Sequence[str] = DISTORTIONS,
                  rater_noise: float = 2.0, affine: bool = False,
                  augment: bool = False) -> IQASource:
  """Synthetic IQA on the photographs shipped with scikit-image (no download).

  Content: the colour photographs of :data:`SKIMAGE_PHOTOS`, split by photograph so that
  the splits share no content (:data:`SYNTHETIC_SPLIT_PHOTOS`): train = astronaut, coffee,
  rocket and the motorcycle stereo pair; validation = chelsea, retina; test =
  immunohistochemistry, hubble_deep_field. Each photo is first resized (bilinear,
  antialiased, never upsampled) to shorter side ``3 * image_size``, which also removes the
  artefacts of its own compression; ``image_size`` crops are taken at positions on an
  ``image_size // 8`` grid, among the more textured half (mean absolute gradient) so that
  blur is visible in every crop.

  Example ``k`` of photo ``p`` (index ``p * num_per_image + k``) draws, from a generator
  seeded by ``(seed, split, photo, k)`` alone: its crop position, a grade
  ``g in {0, .., levels - 1}`` per distortion (uniform, independent; distortions not in
  ``distortions`` stay at grade 0) and its rater noise. With ``d = g / (levels - 1)``:

  1. contrast: ``x <- m + (1 - 0.6 d_c)(x - m)``, ``m`` the crop's mean intensity;
  2. Gaussian blur of std ``sigma_b = 2.5 d_b`` pixels (:func:`gaussian_blur`);
  3. additive Gaussian noise of std ``sigma_n = 0.1 d_n`` (intensities in [0, 1]), clip,
     round to uint8;
  4. JPEG (Pillow) at quality ``round(100 - 90 d_j)`` when ``d_j > 0``.

  Score: ``quality_score(sigma_b, sigma_n, d_j, d_c) + N(0, rater_noise^2)``, i.e.
  ``100 - 20 sigma_b - 300 sigma_n - 10 d_j - 10 d_c`` plus rater noise (spec Sec. 4), and,
  if ``affine``, mapped by ``a * mos + b`` with ``a ~ U(0.25, 2)``, ``b ~ U(-25, 25)`` drawn
  from ``seed`` alone (one monotone map per synthetic "dataset", shared by its splits).
  The score is a deterministic function of the options and the index.

  The split is built once per options (cached) and held in memory as uint8; defaults give
  2000 / 512 / 512 examples of 64x64 in a few seconds.

  Args:
    split: ``"train"``, ``"validation"`` or ``"test"``.
    image_size: crop side ``S`` (16..300).
    num_per_image: examples per photograph (default 400 for train, 256 otherwise).
    levels: grades per distortion (>= 2).
    seed: dataset seed (crops, grades, noise, rater noise, affine map).
    distortions: which of ``("blur", "noise", "jpeg", "contrast")`` are applied.
    rater_noise: std of the Gaussian rater noise added to the score (MOS points).
    affine: apply the per-dataset random monotone affine map to the scores.
    augment: random horizontal flips when ``get`` is given seeds.

  Returns:
    An :class:`IQASource` of ``{"image": float32 (S, S, 3), "score": float32 ()}``. Its
    ``params`` dict holds, per example: ``photo`` (index into ``list(SKIMAGE_PHOTOS)``),
    ``top``, ``left`` (crop position in the resized photo), the integer grades
    ``blur_grade``, ``noise_grade``, ``jpeg_grade``, ``contrast_grade`` (``g``), ``blur_sigma``,
    ``noise_sigma``, ``jpeg_quality`` (0 = not compressed), ``contrast`` (factor),
    ``mos_clean`` (:func:`quality_score`, before rater noise and affine map),
    ``rater_noise``; and ``affine`` = ``(a, b)`` (``(1, 0)`` without the map).
  """
  _check_split("synthetic_iqa", split)
  if not isinstance(image_size, (int, np.integer)) or not 16 <= image_size <= 300:
    raise ValueError(f"synthetic_iqa: `image_size` must be an int in [16, 300] (the shortest "
                     f"photograph has 300 rows); found {image_size!r}.")
  if num_per_image is None:
    num_per_image = SYNTHETIC_NUM_PER_IMAGE[split]
  if not isinstance(num_per_image, (int, np.integer)) or num_per_image < 1:
    raise ValueError(f"synthetic_iqa: `num_per_image` must be a positive int; found "
                     f"{num_per_image!r}.")
  if not isinstance(levels, (int, np.integer)) or levels < 2:
    raise ValueError(f"synthetic_iqa: `levels` must be an int >= 2; found {levels!r}.")
  if not isinstance(seed, (int, np.integer)) or seed < 0:
    raise ValueError(f"synthetic_iqa: `seed` must be an int >= 0; found {seed!r}.")
  if not rater_noise >= 0:
    raise ValueError(f"synthetic_iqa: `rater_noise` must be >= 0; found {rater_noise!r}.")
  images, scores, params = build_synthetic_iqa(
      split, int(image_size), int(num_per_image), int(levels), int(seed),
      _check_distortions(distortions), float(rater_noise), bool(affine))
  source = IQASource("synthetic_iqa", scores, images.shape[1:], lambda idx: images[idx],
                     augment=augment, params=params)
  source.images = images
  source.photo_names = tuple(SKIMAGE_PHOTOS)
  return source


# ------------------------------------------------------------------------------------------
# Helpers shared by the file readers.


def _loadmat(path: str, what: str) -> dict[str, Any]:
  """``scipy.io.loadmat`` (MATLAB v5); MATLAB v7.3 (HDF5) files through h5py."""
  if not is_hdf5_file(path):
    try:
      import scipy.io
    except ImportError as e:
      raise ImportError(f"reading {what} ({path}) needs scipy: pip install scipy") from e
    return scipy.io.loadmat(path)
  try:
    import h5py
  except ImportError as e:
    raise ImportError(f"{path} is a MATLAB v7.3 (HDF5) file: reading {what} needs h5py: "
                      "pip install h5py") from e
  out = {}
  with h5py.File(path, "r") as f:
    for key, value in f.items():
      if not isinstance(value, h5py.Dataset):
        continue
      data = value[()]
      if data.dtype == object:  # a cell array: references to char arrays (uint16)
        data = np.array([[_h5_string(f[ref]) for ref in row] for row in data], dtype=object)
      out[key] = data
  return out


def _h5_string(dataset) -> str:
  data = np.asarray(dataset[()])
  return data.astype(np.uint16).ravel(order="F").tobytes().decode("utf-16-le").rstrip("\x00")


def _mat_strings(value) -> list[str]:
  """A MATLAB cell array of strings (any nesting scipy or h5py gives) -> list of str."""
  out = []

  def walk(v):
    if isinstance(v, (str, np.str_)):
      out.append(str(v).strip())
    elif isinstance(v, bytes):
      out.append(v.decode().strip())
    elif isinstance(v, np.ndarray) and v.dtype.kind in "US":
      if v.size == 1:
        out.append(str(v.ravel()[0]).strip())
      else:
        for x in v.ravel():
          walk(x)
    else:
      for x in np.asarray(v, dtype=object).ravel():
        walk(x)

  walk(value)
  return out


def _mat_field(mat: dict, key: str, path: str):
  if key not in mat:
    found = sorted(k for k in mat if not k.startswith("__"))
    raise ValueError(f"{path}: expected a variable {key!r}; found {found}.")
  return mat[key]


def _resize_rgb(image: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
  if size is None or image.shape[:2] == tuple(size):
    return image
  return augment_lib.resize(image, size)


def _read_image(path: str) -> np.ndarray:
  try:
    with _pil().open(path) as im:
      return _to_rgb_uint8(im)
  except FileNotFoundError:
    raise FileNotFoundError(f"image file {path} is missing.") from None


def _missing_files(paths: Sequence[str]) -> list[str]:
  return [p for p in paths if not os.path.isfile(p)]


def _check_files(name: str, paths: Sequence[str]):
  missing = _missing_files(paths)
  if missing:
    raise FileNotFoundError(f"{name}: {len(missing)} of {len(paths)} image files are missing, "
                            f"e.g. {missing[:3]}.")


def _split_by_fractions(name: str, n: int, split: str, fractions, split_seed: int
                        ) -> np.ndarray:
  try:
    fractions = tuple(float(f) for f in fractions)
  except (TypeError, ValueError):
    raise ValueError(f"{name}: `split_fractions` must be (train, validation, test) "
                     f"fractions; found {fractions!r}.") from None
  if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
    raise ValueError(f"{name}: `split_fractions` must be 3 non-negative fractions "
                     f"(train, validation, test) summing to 1; found {fractions!r}.")
  order = np.random.default_rng(split_seed).permutation(n)
  cuts = np.round(np.cumsum(fractions) * n).astype(int)
  start = {"train": 0, "validation": cuts[0], "test": cuts[1]}[split]
  stop = {"train": cuts[0], "validation": cuts[1], "test": n}[split]
  return np.sort(order[start:stop])


def _file_loader(paths: Sequence[str], prepare: Callable[[np.ndarray], np.ndarray]) -> LoadFn:
  paths = list(paths)

  def load(indices: np.ndarray) -> np.ndarray:
    return np.stack([prepare(_read_image(paths[int(i)])) for i in indices])

  return load


def _tfds_records(name: str, split: str, tfds_data_dir: str) -> tuple[Any, Any]:
  """The prepared TFDS split, and a second view of it that leaves the images undecoded."""
  from jaxvision.data import iqa_tfds  # registers the builders; imports tensorflow_datasets
  from jaxvision.data.tfds_datasets import _load_tfds, open_data_source
  del iqa_tfds
  tfds = _load_tfds()
  try:
    records = open_data_source(name, split, tfds_data_dir)
  except FileNotFoundError:
    raise FileNotFoundError(
        f"{name}: no prepared TFDS dataset {name!r} under `tfds_data_dir` {tfds_data_dir!r}. "
        f"Prepare it once from your local copy (no network, no TensorFlow): "
        f"`from jaxvision.data import iqa_tfds; iqa_tfds.prepare({name!r}, manual_dir=COPY, "
        f"data_dir={tfds_data_dir!r})`, or pass `data_dir=COPY` to read the files "
        "directly.") from None
  undecoded = tfds.data_source(name, split=split, data_dir=os.path.expanduser(tfds_data_dir),
                               download=False, decoders={"image": tfds.decode.SkipDecoding()})
  return records, undecoded


def _records_loader(records, prepare: Callable[[np.ndarray], np.ndarray]) -> LoadFn:

  def load(indices: np.ndarray) -> np.ndarray:
    idx = [int(i) for i in indices]
    getitems = getattr(records, "__getitems__", None)
    examples = getitems(idx) if getitems else [records[i] for i in idx]
    images = []
    for ex in examples:
      img = np.asarray(ex["image"])
      if img.ndim == 2:
        img = img[..., None]
      if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
      images.append(prepare(img))
    return np.stack(images)

  return load


def _records_column(records, key: str, chunk: int = 256) -> np.ndarray:
  """One scalar feature of every record, read in chunks at construction (pass records whose
  images are left undecoded: this reads the whole split once)."""
  out = []
  for start in range(0, len(records), chunk):
    idx = list(range(start, min(start + chunk, len(records))))
    getitems = getattr(records, "__getitems__", None)
    examples = getitems(idx) if getitems else [records[i] for i in idx]
    out.extend(float(ex[key]) for ex in examples)
  return np.array(out, np.float64)


# ------------------------------------------------------------------------------------------
# KonIQ-10k.

KONIQ_SETS_CSV = "koniq10k_distributions_sets.csv"
KONIQ_SCORES_CSV = "koniq10k_scores_and_distributions.csv"
KONIQ_INFO_MAT = "KonIQ-10kinfo.mat"   # LinearityIQA's data/KonIQ-10kinfo.mat
KONIQ_RESOLUTIONS = {"1024x768": (768, 1024), "512x384": (384, 512)}
KONIQ_SPLIT_SIZES = {"train": 7058, "validation": 1000, "test": 2015}
KONIQ_SET_NAMES = {"training": "train", "train": "train", "validation": "validation",
                   "val": "validation", "test": "test"}
KONIQ_LAYOUT = (f"<data_dir>/{KONIQ_SETS_CSV} (or {KONIQ_SCORES_CSV} with LinearityIQA's "
                f"{KONIQ_INFO_MAT}) and the images in <data_dir>/1024x768/ or "
                "<data_dir>/512x384/")


def _read_csv(path: str) -> dict[str, list[str]]:
  with open(path, newline="", encoding="utf-8-sig") as f:
    rows = list(csv.reader(f))
  if not rows:
    raise ValueError(f"{path} is empty; expected a header row and one row per image.")
  header = [h.strip() for h in rows[0]]
  table = {h: [] for h in header}
  for r, row in enumerate(rows[1:], start=2):
    if not row:
      continue
    if len(row) != len(header):
      raise ValueError(f"{path}, line {r}: expected {len(header)} fields like the header "
                       f"{header}; found {len(row)}.")
    for h, v in zip(header, row):
      table[h].append(v.strip())
  return table


def _koniq_split_from_mat(path: str, exp_id: int
                          ) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
  """LinearityIQA's split: images ``index[:, exp_id]`` in order; 7058 / 1000 / rest.

  Returns the .mat's image names, the split of each (``"train"`` ... as a str array) and its
  numeric per-image columns (``subjective_scores``, ``subjective_scoresSTD``).
  """
  mat = _loadmat(path, "LinearityIQA's KonIQ-10k split")
  mat_names = _mat_strings(_mat_field(mat, "im_names", path))
  n = len(mat_names)
  ref_ids = np.asarray(_mat_field(mat, "ref_ids", path)).ravel()
  index = np.asarray(_mat_field(mat, "index", path))
  if ref_ids.size != n:
    raise ValueError(f"{path}: `ref_ids` has {ref_ids.size} entries for {n} image names.")
  if index.ndim == 1:
    index = index[:, None]
  if index.ndim != 2 or n not in index.shape:
    raise ValueError(f"{path}: `index` must be a 2-D (experiments x {n}) permutation "
                     f"table; found shape {index.shape}.")
  # h5py reads MATLAB arrays transposed: the axis of length n is the permutation.
  perms = index if index.shape[0] == n else index.T
  perm = perms[:, exp_id % perms.shape[1]]
  cut1 = int(KONIQ_SPLIT_SIZES["train"] / sum(KONIQ_SPLIT_SIZES.values()) * n)
  cut2 = int((KONIQ_SPLIT_SIZES["train"] + KONIQ_SPLIT_SIZES["validation"])
             / sum(KONIQ_SPLIT_SIZES.values()) * n)
  splits = np.empty(n, dtype=object)
  for part, ids in (("train", perm[:cut1]), ("validation", perm[cut1:cut2]),
                    ("test", perm[cut2:])):
    splits[np.isin(ref_ids, ids)] = part
  columns = {}
  for key in ("subjective_scores", "subjective_scoresSTD"):
    if key in mat:
      columns[key] = np.asarray(mat[key], np.float64).ravel()
  return mat_names, splits, columns


def read_koniq_table(data_dir: str, exp_id: int = 0) -> dict[str, Any]:
  """Reads the KonIQ-10k labels and split of a local copy.

  The split is the owner's (the ``set`` column of ``koniq10k_distributions_sets.csv``:
  ``training`` / ``validation`` / ``test`` = 7058 / 1000 / 2015). Without that column the
  split comes from LinearityIQA's ``KonIQ-10kinfo.mat`` in ``data_dir`` (images
  ``index[:, exp_id]``: the first 7058 train, the next 1000 validation, the rest test; for
  ``exp_id = 0`` this is the split the paper used), matched to the CSV rows by image name.

  Returns:
    ``{"image_name": list of str, "split": str array, "columns": {name: float64 (N,)}}``:
    every numeric column of the CSV (``MOS``, ``SD``, ``MOS_zscore``, ``c1`` ...) and, with
    the .mat, ``subjective_scores`` and ``subjective_scoresSTD``.
  """
  sets_csv = os.path.join(data_dir, KONIQ_SETS_CSV)
  scores_csv = os.path.join(data_dir, KONIQ_SCORES_CSV)
  mat_path = os.path.join(data_dir, KONIQ_INFO_MAT)
  csv_path = next((p for p in (sets_csv, scores_csv) if os.path.isfile(p)), None)
  if csv_path is None and not os.path.isfile(mat_path):
    raise FileNotFoundError(f"koniq10k: no label file in {data_dir}: expected {KONIQ_SETS_CSV} "
                            f"or {KONIQ_SCORES_CSV} (or LinearityIQA's {KONIQ_INFO_MAT}); "
                            f"found {sorted(os.listdir(data_dir))[:10]}.")
  columns: dict[str, np.ndarray] = {}
  names = None
  split = None
  if csv_path is not None:
    raw = _read_csv(csv_path)
    if "image_name" not in raw:
      raise ValueError(f"{csv_path}: expected an `image_name` column; found {list(raw)}.")
    names = raw.pop("image_name")
    set_column = raw.pop("set", None)
    for key, values in raw.items():
      try:
        columns[key] = np.array([float(v) for v in values], np.float64)
      except ValueError:
        pass  # non-numeric column
    if set_column is not None:
      bad = sorted({s for s in set_column if s.lower() not in KONIQ_SET_NAMES})
      if bad:
        raise ValueError(f"{csv_path}: the `set` column must hold training/validation/test; "
                         f"found {bad[:5]}.")
      split = np.array([KONIQ_SET_NAMES[s.lower()] for s in set_column], dtype=object)
  if split is None:
    if not os.path.isfile(mat_path):
      raise FileNotFoundError(f"koniq10k: {csv_path} has no `set` column, so the split must "
                              f"come from LinearityIQA's {KONIQ_INFO_MAT}, which is not in "
                              f"{data_dir} (or use {KONIQ_SETS_CSV}, which has the owner's "
                              "split).")
    mat_names, mat_split, mat_columns = _koniq_split_from_mat(mat_path, exp_id)
    if names is None:
      names, split, columns = mat_names, mat_split, mat_columns
    else:
      where = {n: i for i, n in enumerate(mat_names)}
      missing = [n for n in names if n not in where]
      if missing:
        raise ValueError(f"{mat_path} lacks {len(missing)} images of {csv_path}, e.g. "
                         f"{missing[:3]}.")
      rows = np.array([where[n] for n in names])
      split = mat_split[rows]
      columns.update({k: v[rows] for k, v in mat_columns.items()})
  if any(s is None for s in split):
    raise ValueError(f"koniq10k: some images of {data_dir} are in no split.")
  return {"image_name": list(names), "split": np.asarray(split, dtype=str), "columns": columns}


def _koniq_image_dir(data_dir: str, resolution: str | None) -> tuple[str, tuple[int, int]]:
  if resolution is not None and resolution not in KONIQ_RESOLUTIONS:
    raise ValueError(f"koniq10k: `resolution` must be None or one of "
                     f"{sorted(KONIQ_RESOLUTIONS)}; found {resolution!r}.")
  for res in ([resolution] if resolution else list(KONIQ_RESOLUTIONS)):
    folder = os.path.join(data_dir, res)
    if os.path.isdir(folder):
      return folder, KONIQ_RESOLUTIONS[res]
  wanted = resolution or " or ".join(KONIQ_RESOLUTIONS)
  raise FileNotFoundError(f"koniq10k: no image folder {wanted} in {data_dir}; expected "
                          f"{KONIQ_LAYOUT}.")


@register_dataset("koniq10k", splits=IQA_SPLITS)
def koniq10k(split: str, data_dir: str | None = None, image_size=(498, 664),
             score_column: str = "MOS", resolution: str | None = None, exp_id: int = 0,
             augment: bool = False, tfds_data_dir: str | None = None) -> IQASource:
  """KonIQ-10k (Hosu et al., TIP 2020) from a local copy of the official release.

  Layout: ``<data_dir>/koniq10k_distributions_sets.csv`` (columns ``image_name``, ``c1`` ..
  ``c5``, ``c_total``, ``MOS``, ``SD``, ..., ``set``) or
  ``koniq10k_scores_and_distributions.csv`` plus LinearityIQA's ``KonIQ-10kinfo.mat``, and
  the JPEGs in ``<data_dir>/1024x768/`` (or ``512x384/``). The split is the owner's
  (train / validation / test = 7058 / 1000 / 2015; :func:`read_koniq_table`).

  Label: the CSV column ``score_column``. The default ``"MOS"`` is the official mean of the
  1..5 ACR ratings; ``"MOS_zscore"`` is the release's 0..100 rescaling and
  ``"subjective_scores"`` LinearityIQA's label (from the .mat). SROCC and PLCC do not depend
  on the choice; RMSE is in the units of the chosen column.

  Images are read lazily with Pillow at each ``get``, converted to RGB, resized
  (bilinear, antialiased: the paper's ``--resize``) to ``image_size`` (h, w) and
  normalised; ``image_size=None`` keeps the native 768x1024 (or 384x512).

  Args:
    split: ``"train"``, ``"validation"`` or ``"test"``.
    data_dir: the local copy (see layout). Exactly one of ``data_dir`` / ``tfds_data_dir``.
    image_size: ``(h, w)`` (default 498x664, the paper's), an int for a square, or None.
    score_column: label column (see above).
    resolution: ``"1024x768"`` or ``"512x384"``; None takes the first folder present.
    exp_id: LinearityIQA split column when the split comes from the .mat.
    augment: random horizontal flips when ``get`` is given seeds.
    tfds_data_dir: read the ``koniq10k`` TFDS dataset prepared there instead
      (:mod:`jaxvision.data.iqa_tfds`; its ``score`` is MOS, ``mos_zscore`` the 0..100
      score); ``resolution`` and ``exp_id`` were fixed at preparation.

  Returns:
    An :class:`IQASource` of ``{"image": float32 (h, w, 3), "score": float32 ()}``.
  """
  _check_split("koniq10k", split)
  size = _check_size("koniq10k", image_size)
  if tfds_data_dir is not None:
    if data_dir is not None:
      raise ValueError("koniq10k: pass `data_dir` (raw files) or `tfds_data_dir` (prepared "
                       f"TFDS), not both; found {data_dir!r} and {tfds_data_dir!r}.")
    records, undecoded = _tfds_records("koniq10k", split, tfds_data_dir)
    key = {"MOS": "score", "MOS_zscore": "mos_zscore", "SD": "score_std"}.get(score_column)
    if key is None:
      raise ValueError(f"koniq10k: with `tfds_data_dir`, `score_column` must be one of "
                       f"['MOS', 'MOS_zscore', 'SD']; found {score_column!r}.")
    scores = _records_column(undecoded, key)
    if len(scores) and not np.all(np.isfinite(scores)):
      raise ValueError(f"koniq10k: the TFDS data in {tfds_data_dir} has no {score_column} "
                       "(its CSV lacked that column).")
    if size is None:  # native: every KonIQ image of one release folder has the same size
      size = tuple(np.asarray(records[0]["image"]).shape[:2]) if len(records) else (768, 1024)
    prepare = functools.partial(_resize_rgb, size=size)
    return IQASource("koniq10k", scores, size + (3,), _records_loader(records, prepare),
                     augment=augment)
  data_dir = check_data_dir("koniq10k", data_dir, KONIQ_LAYOUT)
  if not isinstance(exp_id, (int, np.integer)) or exp_id < 0:
    raise ValueError(f"koniq10k: `exp_id` must be an int >= 0; found {exp_id!r}.")
  image_dir, native = _koniq_image_dir(data_dir, resolution)
  table = read_koniq_table(data_dir, int(exp_id))
  if score_column not in table["columns"]:
    raise ValueError(f"koniq10k: `score_column` {score_column!r} is not a numeric column of "
                     f"the labels in {data_dir}; found {sorted(table['columns'])}.")
  rows = np.flatnonzero(table["split"] == split)
  paths = [os.path.join(image_dir, table["image_name"][i]) for i in rows]
  _check_files("koniq10k", paths)
  size = size or native
  source = IQASource("koniq10k", table["columns"][score_column][rows], size + (3,),
                     _file_loader(paths, functools.partial(_resize_rgb, size=size)),
                     augment=augment)
  source.image_names = [table["image_name"][i] for i in rows]
  return source


# ------------------------------------------------------------------------------------------
# CLIVE (LIVE In the Wild Image Quality Challenge).

CLIVE_IMAGES_MAT = os.path.join("Data", "AllImages_release.mat")
CLIVE_MOS_MAT = os.path.join("Data", "AllMOS_release.mat")
CLIVE_NUM_TRAINING_IMAGES = 7  # t1.bmp .. t7.bmp, the first entries, in Images/trainingImages
CLIVE_PRE_SIZE = (500, 500)
CLIVE_LAYOUT = (f"<data_dir>/{CLIVE_IMAGES_MAT}, <data_dir>/{CLIVE_MOS_MAT} and the images in "
                "<data_dir>/Images/ (the ChallengeDB_release folder)")


def read_clive_table(data_dir: str, include_training_images: bool = False
                     ) -> tuple[list[str], np.ndarray]:
  """Image paths and MOS (0..100) of a local CLIVE copy.

  ``AllImages_release`` (1,169 names) and ``AllMOS_release`` (1,169 MOS) start with the
  challenge's 7 training images ``t1.bmp`` .. ``t7.bmp`` (kept in ``Images/trainingImages``);
  the 1,162 test images follow. As in the paper (and DBCNN, pyiqa), the 7 are dropped
  unless ``include_training_images``.
  """
  names_path = os.path.join(data_dir, CLIVE_IMAGES_MAT)
  mos_path = os.path.join(data_dir, CLIVE_MOS_MAT)
  for path in (names_path, mos_path):
    if not os.path.isfile(path):
      raise FileNotFoundError(f"clive: {path} is missing; expected {CLIVE_LAYOUT}.")
  names = _mat_strings(_mat_field(_loadmat(names_path, "CLIVE"), "AllImages_release",
                                  names_path))
  mos = np.asarray(_mat_field(_loadmat(mos_path, "CLIVE"), "AllMOS_release", mos_path),
                   np.float64).ravel()
  if len(names) != len(mos):
    raise ValueError(f"clive: {names_path} lists {len(names)} images but {mos_path} has "
                     f"{len(mos)} scores.")
  if len(names) <= CLIVE_NUM_TRAINING_IMAGES:
    raise ValueError(f"clive: {names_path} lists {len(names)} images; expected the "
                     f"{CLIVE_NUM_TRAINING_IMAGES} training images followed by the test "
                     "images (1,169 in all).")
  start = 0 if include_training_images else CLIVE_NUM_TRAINING_IMAGES
  images = os.path.join(data_dir, "Images")
  paths = []
  for i, name in enumerate(names[start:], start=start):
    path = os.path.join(images, name)
    if i < CLIVE_NUM_TRAINING_IMAGES and not os.path.isfile(path):
      path = os.path.join(images, "trainingImages", name)
    paths.append(path)
  return paths, mos[start:]


def _clive_prepare(image: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
  # LinearityIQA: resize to 500x500 when not already, then to the training size.
  return _resize_rgb(_resize_rgb(image, CLIVE_PRE_SIZE), size)


@register_dataset("clive", splits=IQA_SPLITS)
def clive(split: str, data_dir: str | None = None, image_size=(498, 664),
          split_fractions: Sequence[float] | None = None, split_seed: int = 0,
          include_training_images: bool = False, augment: bool = False,
          tfds_data_dir: str | None = None) -> IQASource:
  """CLIVE (Ghadiyaram & Bovik, TIP 2016): 1,162 in-the-wild photos, MOS 0..100.

  Layout: ``<data_dir>/Data/AllImages_release.mat``, ``<data_dir>/Data/AllMOS_release.mat``
  and ``<data_dir>/Images/`` (the ``ChallengeDB_release`` folder); see
  :func:`read_clive_table`.

  Split: the paper uses CLIVE for cross-dataset testing only, so by default *every*
  split (``train``, ``validation``, ``test``) is the whole 1,162-image set. Pass
  ``split_fractions=(train, validation, test)`` (summing to 1) for a random split seeded by
  ``split_seed``, e.g. ``(0.6, 0.2, 0.2)`` for intra-dataset experiments.

  Preprocessing: resize to 500x500 when not already (LinearityIQA), then to
  ``image_size`` (default 498x664 as for KonIQ; None keeps 500x500), bilinear, antialiased;
  ImageNet normalisation.

  Args:
    split: ``"train"``, ``"validation"`` or ``"test"``.
    data_dir: the local copy. Exactly one of ``data_dir`` / ``tfds_data_dir``.
    image_size: ``(h, w)``, an int for a square, or None (500x500).
    split_fractions: optional ``(train, validation, test)`` fractions.
    split_seed: seed of the permutation used with ``split_fractions``.
    include_training_images: keep the challenge's 7 training images (1,169 in all).
    augment: random horizontal flips when ``get`` is given seeds.
    tfds_data_dir: read the ``clive`` TFDS dataset prepared there instead (its only split,
      ``test``, is the 1,162 images).

  Returns:
    An :class:`IQASource` of ``{"image": float32 (h, w, 3), "score": float32 ()}``.
  """
  _check_split("clive", split)
  size = _check_size("clive", image_size)
  prepare = functools.partial(_clive_prepare, size=size)
  shape = (size or CLIVE_PRE_SIZE) + (3,)
  if tfds_data_dir is not None:
    if data_dir is not None:
      raise ValueError("clive: pass `data_dir` (raw files) or `tfds_data_dir` (prepared "
                       f"TFDS), not both; found {data_dir!r} and {tfds_data_dir!r}.")
    if include_training_images:
      raise ValueError("clive: the TFDS dataset holds the 1,162 test images only; "
                       "`include_training_images` needs `data_dir`.")
    records, undecoded = _tfds_records("clive", "test", tfds_data_dir)
    scores = _records_column(undecoded, "score")
    load = _records_loader(records, prepare)
    rows = np.arange(len(scores))
    if split_fractions is not None:
      rows = _split_by_fractions("clive", len(scores), split, split_fractions, split_seed)
    return IQASource("clive", scores[rows], shape, lambda idx: load(rows[idx]), augment=augment)
  data_dir = check_data_dir("clive", data_dir, CLIVE_LAYOUT)
  paths, mos = read_clive_table(data_dir, include_training_images)
  if split_fractions is not None:
    rows = _split_by_fractions("clive", len(mos), split, split_fractions, split_seed)
    paths, mos = [paths[i] for i in rows], mos[rows]
  _check_files("clive", paths)
  source = IQASource("clive", mos, shape, _file_loader(paths, prepare), augment=augment)
  source.image_names = [os.path.basename(p) for p in paths]
  return source
