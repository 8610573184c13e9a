r"""Colorization datasets: the lightness ``L`` as input, the ab channels as target.

Every source here yields ``{"L": float32 (S, S, 1), "ab": float32 (S, S, 2), "rgb": float32
(S, S, 3)}``: the CIE Lab lightness in ``[0, 100]``, the a, b channels in Lab units (about
``[-86, 98] x [-108, 95]`` for sRGB) and the sRGB image in ``[0, 1]`` they come from, with
``(L, ab) = rgb_to_lab(rgb)`` (:func:`jaxvision.ops.rgb_to_lab`, = ``skimage.color.rgb2lab``;
spec ``vibrant-colorization`` Sec. 2), so ``lab_to_rgb(L, ab) = rgb`` to float32 rounding.
``info.num_classes`` is 0 and ``info.image_shape`` is ``(S, S, 1)``, the model's input.
Splits are ``"train"``, ``"validation"`` and ``"test"``.

Registered:

* ``embedded_colorization``: crops of the colour photographs shipped inside the
  scikit-image wheel (:data:`jaxvision.data.iqa.SKIMAGE_PHOTOS`, read by
  :func:`jaxvision.data.iqa.load_photo`; spec Sec. 4's offline substitute (i)), split by
  photograph. Nothing is downloaded.
* ``coco_colorization``: COCO 2017 (the paper's data; spec Sec. 3-4) from a user's
  prepared TFDS ``data_dir`` (``coco/2017``), never downloaded.
"""

from __future__ import annotations

import functools
import io
import logging
import os
from typing import Any, Callable

import jax
import numpy as np

from jaxvision import ops
from jaxvision.data import augment as augment_lib
from jaxvision.data.iqa import SKIMAGE_PHOTOS, load_photo
from jaxvision.data.registry import register_dataset
from jaxvision.data.sources import Batch, DatasetInfo, check_get_args
from jaxvision.data.tfds_datasets import _load_tfds, random_access_source

log = logging.getLogger(__name__)

COLORIZATION_SPLITS = ("train", "validation", "test")
_SPLIT_CODE = {"train": 0, "validation": 1, "test": 2}


def _check_split(name: str, split: str):
  if split not in COLORIZATION_SPLITS:
    raise ValueError(f"{name}: `split` must be one of {COLORIZATION_SPLITS}; found {split!r}.")


def _host_device():
  """The first CPU device: the input pipeline's colour conversion stays off the
  accelerator (and off the train step's stream)."""
  try:
    return jax.local_devices(backend="cpu")[0]
  except RuntimeError:  # no CPU backend registered (unusual): use the default device
    return None


def lab_planes(rgb: np.ndarray) -> Batch:
  """``{"L", "ab", "rgb"}`` of uint8 sRGB images, through :func:`jaxvision.ops.rgb_to_lab`.

  Args:
    rgb: uint8 ``(..., H, W, 3)`` sRGB.

  Returns:
    ``{"L": float32 (..., H, W, 1) in [0, 100], "ab": float32 (..., H, W, 2),
    "rgb": float32 (..., H, W, 3) = rgb / 255}`` (numpy, on the host).
  """
  rgb = np.asarray(rgb)
  if rgb.dtype != np.uint8 or rgb.ndim < 3 or rgb.shape[-1] != 3:
    raise ValueError(f"lab_planes: `rgb` must be uint8 (..., H, W, 3); found {rgb.dtype} "
                     f"{rgb.shape}.")
  device = _host_device()
  if device is None:
    lab = np.asarray(ops.rgb_to_lab(rgb), np.float32)
  else:
    with jax.default_device(device):
      lab = np.asarray(ops.rgb_to_lab(rgb), np.float32)
  # L is clipped to [0, 100]: black comes out as -6e-8 in float32.
  return {"L": np.clip(lab[..., :1], 0.0, 100.0), "ab": np.ascontiguousarray(lab[..., 1:]),
          "rgb": rgb.astype(np.float32) / np.float32(255.0)}


class ColorizationSource:
  """A :class:`~jaxvision.data.sources.Source` of ``{"L", "ab", "rgb"}`` examples.

  Args:
    name: registry name (for ``info`` and messages).
    num_examples: the size ``N`` of the split.
    image_size: the side ``S`` of every example.
    load: ``(indices int (n,), seeds uint64 (n,) or None) -> uint8 (n, S, S, 3)`` sRGB
      crops (or directly a ``{"L", "ab", "rgb"}`` batch of float32 arrays): the crop,
      resize and augmentation policy of the dataset; ``seeds`` is ``None`` for the
      deterministic (evaluation) view.
  """

  def __init__(self, name: str, num_examples: int, image_size: int,
               load: Callable[[np.ndarray, np.ndarray | None], Any]):
    self._load = load
    self.image_size = int(image_size)
    self.info = DatasetInfo(name, 0, (self.image_size, self.image_size, 1), int(num_examples))

  def __len__(self) -> int:
    return self.info.num_examples

  def get(self, indices: np.ndarray, seeds: np.ndarray | None = None) -> Batch:
    indices, seeds = check_get_args(self.info.name, len(self), indices, seeds)
    out = self._load(indices, seeds)
    return out if isinstance(out, dict) else lab_planes(out)


# ------------------------------------------------------------------------------------------
# embedded_colorization: crops of the photographs shipped with scikit-image.

# Content-disjoint splits (no photograph, and no scene: the motorcycle stereo pair stays
# together, in two splits); each evaluation split has one natural photograph and one
# scientific image. The hubble deep field (mostly black sky) is in training only.
EMBEDDED_SPLIT_PHOTOS = {
    "train": ("astronaut", "rocket", "motorcycle_left", "motorcycle_right",
              "hubble_deep_field"),
    "validation": ("coffee", "immunohistochemistry"),
    "test": ("chelsea", "retina"),
}
# Examples per photograph by default: 5 x 200 = 1000 train, 2 x 64 = 128 validation / test.
EMBEDDED_NUM_PER_IMAGE = {"train": 200, "validation": 64, "test": 64}
# Each photograph is first resized (never upsampled) to a shorter side of this many crops.
EMBEDDED_REFERENCE_SCALE = 4
_MIN_SIZE, _MAX_SIZE = 8, 300  # the shortest photograph (chelsea) has 300 rows


@functools.lru_cache(maxsize=None)
def embedded_reference(name: str, short_side: int | None) -> Batch:
  """The planes of photograph ``name`` resized (bilinear, antialiased; never upsampled)
  to shorter side ``short_side`` (``None``: native), computed once (cached, read-only).

  Returns:
    ``{"L": (H, W, 1), "ab": (H, W, 2), "rgb": (H, W, 3)}`` float32.
  """
  photo = load_photo(name)
  h, w = photo.shape[:2]
  if short_side is not None and short_side < min(h, w):
    scale = short_side / min(h, w)
    photo = augment_lib.resize(photo, (max(short_side, int(round(h * scale))),
                                       max(short_side, int(round(w * scale)))))
  planes = lab_planes(photo)
  for v in planes.values():
    v.setflags(write=False)
  return planes


def embedded_ab_samples(split: str = "train", stride: int = 2) -> np.ndarray:
  """The ab values of the native-resolution photographs of an embedded split, every
  ``stride``-th pixel along each axis: float32 ``(M, 2)`` (e.g. for ``ops.ab_prior``; the
  ``"train"`` split at ``stride=2`` has about 0.55M samples)."""
  _check_split("embedded_ab_samples", split)
  if not isinstance(stride, (int, np.integer)) or stride < 1:
    raise ValueError(f"embedded_ab_samples: `stride` must be a positive int; found {stride!r}.")
  return np.concatenate([embedded_reference(n, None)["ab"][::stride, ::stride].reshape(-1, 2)
                         for n in EMBEDDED_SPLIT_PHOTOS[split]])


@functools.lru_cache(maxsize=16)
def _embedded_positions(split: str, image_size: int, num_per_image: int, seed: int,
                        short_side: int) -> tuple[np.ndarray, np.ndarray]:
  """The deterministic crops: photo index into the split's photos ``(N,)`` and
  ``(top, left)`` ``(N, 2)``; example ``k`` of photo ``p`` draws from a generator seeded by
  ``(seed, split, photo, k)`` alone."""
  names = list(SKIMAGE_PHOTOS)
  photos = EMBEDDED_SPLIT_PHOTOS[split]
  n = len(photos) * num_per_image
  photo = np.repeat(np.arange(len(photos), dtype=np.int32), num_per_image)
  pos = np.empty((n, 2), np.int32)
  for p, name in enumerate(photos):
    h, w = embedded_reference(name, short_side)["L"].shape[:2]
    for k in range(num_per_image):
      rng = np.random.default_rng([seed, _SPLIT_CODE[split], names.index(name), k])
      pos[p * num_per_image + k] = rng.integers(0, h - image_size + 1), rng.integers(
          0, w - image_size + 1)
  photo.setflags(write=False)
  pos.setflags(write=False)
  return photo, pos


@register_dataset("embedded_colorization", splits=COLORIZATION_SPLITS)
def embedded_colorization(split: str, image_size: int = 64, num_per_image: int | None = None,
                          seed: int = 0, augment: bool = True,
                          reference_scale: int = EMBEDDED_REFERENCE_SCALE
                          ) -> ColorizationSource:
  """Colorization on crops of the photographs shipped with scikit-image (no download).

  Content: the colour photographs of :data:`jaxvision.data.iqa.SKIMAGE_PHOTOS` (loaded by
  :func:`~jaxvision.data.iqa.load_photo`), split by photograph
  (:data:`EMBEDDED_SPLIT_PHOTOS`; content-disjoint): train = astronaut, rocket, the
  motorcycle stereo pair, hubble_deep_field; validation = coffee, immunohistochemistry;
  test = chelsea, retina. Each photograph is resized (bilinear, antialiased, never
  upsampled) to shorter side ``reference_scale * image_size`` and converted to Lab once
  (:func:`embedded_reference`, cached); crops are slices of those planes (the colour
  conversion is per pixel, so cropping and flipping commute with it).

  Example ``k`` of photo ``p`` (index ``p * num_per_image + k``) is, in the deterministic
  view (``get`` without seeds, i.e. evaluation, or ``augment=False``), the ``S x S`` crop at
  a position drawn uniformly by a generator seeded by ``(seed, split, photo, k)`` alone.
  With ``augment=True`` and seeds (training), the example's seed draws a fresh uniform
  crop of the same photograph and a horizontal flip with probability 1/2, so the training
  stream sees new crops every epoch.

  Args:
    split: ``"train"``, ``"validation"`` or ``"test"``.
    image_size: crop side ``S`` (8..300; the networks need a multiple of 8).
    num_per_image: examples per photograph (default 200 for train, 64 otherwise).
    seed: dataset seed (the deterministic crop positions).
    augment: random crops and flips when ``get`` is given seeds.
    reference_scale: the photographs' shorter side in crops (``>= 1``).

  Returns:
    A :class:`ColorizationSource` of ``{"L", "ab", "rgb"}`` (module docstring); it also
    has ``photo_names`` (the split's photographs), ``photo_index`` ``(N,)`` (into
    ``photo_names``) and ``positions`` ``(N, 2)`` (the deterministic ``(top, left)``).
  """
  name = "embedded_colorization"
  _check_split(name, split)
  if not isinstance(image_size, (int, np.integer)) or not _MIN_SIZE <= image_size <= _MAX_SIZE:
    raise ValueError(f"{name}: `image_size` must be an int in [{_MIN_SIZE}, {_MAX_SIZE}] (the "
                     f"shortest photograph has 300 rows); found {image_size!r}.")
  if num_per_image is None:
    num_per_image = EMBEDDED_NUM_PER_IMAGE[split]
  if not isinstance(num_per_image, (int, np.integer)) or num_per_image < 1:
    raise ValueError(f"{name}: `num_per_image` must be a positive int; found "
                     f"{num_per_image!r}.")
  if not isinstance(seed, (int, np.integer)) or seed < 0:
    raise ValueError(f"{name}: `seed` must be an int >= 0; found {seed!r}.")
  if not isinstance(reference_scale, (int, np.integer)) or reference_scale < 1:
    raise ValueError(f"{name}: `reference_scale` must be an int >= 1; found "
                     f"{reference_scale!r}.")
  s = int(image_size)
  short_side = int(reference_scale) * s
  photos = EMBEDDED_SPLIT_PHOTOS[split]
  photo_index, positions = _embedded_positions(split, s, int(num_per_image), int(seed),
                                               short_side)
  refs = [embedded_reference(p, short_side) for p in photos]
  do_augment = bool(augment)

  def load(indices: np.ndarray, seeds: np.ndarray | None) -> Batch:
    out = {k: np.empty((len(indices), s, s, c), np.float32)
           for k, c in (("L", 1), ("ab", 2), ("rgb", 3))}
    for j, i in enumerate(indices):
      ref = refs[photo_index[i]]
      top, left = positions[i]
      flip = False
      if seeds is not None and do_augment:
        rng = np.random.default_rng(int(seeds[j]))
        h, w = ref["L"].shape[:2]
        top, left = rng.integers(0, h - s + 1), rng.integers(0, w - s + 1)
        flip = rng.random() < 0.5
      for k, v in out.items():
        crop = ref[k][top:top + s, left:left + s]
        v[j] = crop[:, ::-1] if flip else crop
    return out

  source = ColorizationSource(name, len(photo_index), s, load)
  source.photo_names = photos
  source.photo_index = photo_index
  source.positions = positions
  return source


# ------------------------------------------------------------------------------------------
# coco_colorization: COCO 2017 from a prepared TFDS data_dir.

COCO_TFDS_NAME = "coco/2017"
COCO_RESIZE = ("crop", "stretch")
COCO_GRAYSCALE = ("drop", "keep")
_INTERPOLATION = {"bicubic": 3, "bilinear": 2, "lanczos": 1, "nearest": 0}  # PIL filters
# Decoded-JPEG modes with one colour band: the "non-RGB" (mode "L") images the authors
# pruned (KolinGuo/Colorization ``notebook/Prune_Grayscale_Images.ipynb``: 227 of
# train2017's 118,287).
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")
_PREPARE = (f"prepare it once with `tfds build {COCO_TFDS_NAME} --data_dir DATA_DIR "
            "--file_format array_record` (needs tensorflow and network) and pass "
            "--config.data.kwargs.data_dir=DATA_DIR")


def _coco_builder(data_dir: str):
  """The prepared ``coco/2017`` as a read-only builder, from its files alone.

  ``tfds.builder("coco/2017")`` imports TensorFlow to build the dataset's metadata (tfds
  4.9.10), so the prepared files are opened with ``builder_from_files`` instead: reading
  needs neither TensorFlow nor network.
  """
  tfds = _load_tfds()
  from tensorflow_datasets.core import read_only_builder
  try:
    return read_only_builder.builder_from_files(COCO_TFDS_NAME, data_dir=data_dir)
  except (tfds.core.registered.DatasetNotFoundError, FileNotFoundError) as e:
    where = os.path.join(data_dir, COCO_TFDS_NAME)
    raise FileNotFoundError(
        f"coco_colorization: TFDS dataset {COCO_TFDS_NAME!r} is not prepared under "
        f"data_dir={data_dir!r} (looked in {where}). jaxvision never downloads at run time: "
        f"{_PREPARE}. ({type(e).__name__}: {str(e).splitlines()[0]})") from None


def _coco_records(split: str, data_dir: str | None) -> tuple[Any, Any]:
  """The decoded and the undecoded (image bytes) views of one prepared COCO split."""
  if data_dir is None:
    raise ValueError("coco_colorization: pass `data_dir` (config field data.kwargs.data_dir), "
                     f"a TFDS data_dir where {COCO_TFDS_NAME} was prepared; jaxvision never "
                     f"downloads it: {_PREPARE}.")
  data_dir = os.path.expanduser(os.fspath(data_dir))
  if not os.path.isdir(data_dir):
    raise FileNotFoundError(f"coco_colorization: `data_dir` {data_dir!r} is not a directory; "
                            f"expected a TFDS data_dir holding {COCO_TFDS_NAME}: {_PREPARE}.")
  builder = _coco_builder(data_dir)
  if split not in builder.info.splits:
    raise ValueError(f"coco_colorization: the prepared {COCO_TFDS_NAME} in {data_dir} has "
                     f"splits {sorted(builder.info.splits)}; found request for {split!r}.")
  tfds = _load_tfds()
  records = random_access_source(builder, split, "coco_colorization", COCO_TFDS_NAME)
  undecoded = random_access_source(builder, split, "coco_colorization", COCO_TFDS_NAME,
                                   decoders={"image": tfds.decode.SkipDecoding()})
  return records, undecoded


def _get_records(records, rows) -> list:
  rows = [int(r) for r in rows]
  getitems = getattr(records, "__getitems__", None)
  return getitems(rows) if getitems else [records[r] for r in rows]


def is_grayscale_image(encoded: bytes) -> bool:
  """Whether an encoded image (JPEG/PNG bytes) has a single colour band (PIL mode ``L``,
  ``1``, ``LA``, ``I``, ``F``); only its header is read."""
  from PIL import Image
  with Image.open(io.BytesIO(encoded)) as im:
    return im.mode in _GRAY_MODES


def _scan_colour_rows(undecoded, chunk: int = 256) -> np.ndarray:
  n = len(undecoded)
  keep = np.ones(n, bool)
  for start in range(0, n, chunk):
    for j, ex in enumerate(_get_records(undecoded, range(start, min(n, start + chunk)))):
      keep[start + j] = not is_grayscale_image(bytes(ex["image"]))
  return np.flatnonzero(keep)


@functools.lru_cache(maxsize=8)
def _colour_rows(data_dir: str, split: str, cache_dir: str | None) -> np.ndarray:
  """The rows of the split whose JPEG is colour: read from ``cache_dir`` if it holds them,
  else scanned (every image header, once) and written there."""
  path = None
  if cache_dir is not None:
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(cache_dir, f"coco2017_{split}_colour_rows.npy")
    if os.path.isfile(path):
      return np.load(path)
  _, undecoded = _coco_records(split, data_dir)
  log.info("coco_colorization: scanning %d %s images for grayscale ones (once)",
           len(undecoded), split)
  rows = _scan_colour_rows(undecoded)
  log.info("coco_colorization: %d of %d %s images are grayscale and dropped",
           len(undecoded) - len(rows), len(undecoded), split)
  if path is not None:
    tmp = path + ".tmp.npy"
    np.save(tmp, rows)
    os.replace(tmp, path)
  return rows


def _pil_resize(image: np.ndarray, size: tuple[int, int], resample: int) -> np.ndarray:
  from PIL import Image
  return np.asarray(Image.fromarray(image).resize((size[1], size[0]), resample))


def coco_image(image: np.ndarray, rng: np.random.Generator | None, *, image_size: int,
               resize: str = "crop", interpolation: str = "bicubic") -> np.ndarray:
  """One COCO image -> uint8 ``(S, S, 3)`` sRGB.

  * ``resize="crop"``: the shorter side is resized to ``S`` (aspect kept), then the centre
    ``S x S`` crop (``rng=None``) or a uniformly placed one with a horizontal flip of
    probability 1/2 (training augmentation, ``rng`` given).
  * ``resize="stretch"``: resized to ``S x S`` directly (aspect not kept), as the authors'
    code (``torchvision.transforms.Resize((S, S), interpolation=3)``, bicubic); with
    ``rng``, a horizontal flip of probability 1/2.

  A single-channel image is repeated to 3 channels (its ab is then ~0).
  """
  image = np.asarray(image, np.uint8)
  if image.ndim == 2:
    image = image[..., None]
  if image.shape[-1] == 1:
    image = np.repeat(image, 3, axis=-1)
  s = image_size
  filt = _INTERPOLATION[interpolation]
  h, w = image.shape[:2]
  if resize == "stretch":
    out = image if (h, w) == (s, s) else _pil_resize(image, (s, s), filt)
  else:
    scale = s / min(h, w)
    size = (max(s, int(round(h * scale))), max(s, int(round(w * scale))))
    if size != (h, w):
      image = _pil_resize(image, size, filt)
    h, w = image.shape[:2]
    if rng is None:
      top, left = (h - s) // 2, (w - s) // 2
    else:
      top, left = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
    out = image[top:top + s, left:left + s]
  if rng is not None and rng.random() < 0.5:
    out = out[:, ::-1]
  return np.ascontiguousarray(out)


def colorization_source_over_records(name: str, records, rows: np.ndarray, image_size: int,
                                     *, resize: str = "crop", interpolation: str = "bicubic",
                                     augment: bool = False) -> ColorizationSource:
  """A :class:`ColorizationSource` over ``records[rows]`` (any random-access sequence of
  ``{"image": uint8 (H, W, 3)}`` dicts, e.g. a ``tfds`` data source), preprocessed by
  :func:`coco_image`; augmentation only with ``augment`` and seeds."""
  rows = np.asarray(rows, np.int64)
  prepare = functools.partial(coco_image, image_size=int(image_size), resize=resize,
                              interpolation=interpolation)

  def load(indices: np.ndarray, seeds: np.ndarray | None) -> np.ndarray:
    examples = _get_records(records, rows[indices])
    images = []
    for j, ex in enumerate(examples):
      rng = None if seeds is None or not augment else np.random.default_rng(int(seeds[j]))
      images.append(prepare(np.asarray(ex["image"]), rng))
    return np.stack(images) if images else np.zeros((0, image_size, image_size, 3), np.uint8)

  return ColorizationSource(name, len(rows), image_size, load)


@register_dataset("coco_colorization", splits=COLORIZATION_SPLITS)
def coco_colorization(split: str, data_dir: str | None = None, image_size: int = 256,
                      resize: str = "crop", interpolation: str = "bicubic",
                      grayscale: str = "drop", cache_dir: str | None = None,
                      augment: bool = False) -> ColorizationSource:
  """COCO 2017 images for colorization (the paper's data, spec Sec. 3-4), from a prepared
  TFDS ``data_dir`` (``coco/2017``; jaxvision never downloads it).

  Prepare once: ``tfds build coco/2017 --data_dir DATA_DIR --file_format array_record``
  (needs TensorFlow and network); reading needs neither. Splits: ``train`` = train2017
  (118,287 images), ``validation`` = val2017 (5,000; the paper's evaluation set),
  ``test`` = test2017 (40,670; images without annotations, which colorization does not
  need). Only the images are used.

  Grayscale images (a single-band JPEG; TFDS decodes them to 3 equal channels, so their ab
  is ~0): ``grayscale="drop"`` (default) removes them, as the authors pruned the 227
  "non-RGB" images of train2017 (``Prune_Grayscale_Images.ipynb``). This needs one pass
  over the split's image headers (JPEG bytes, no decoding) the first time a split is
  built in a process, or never again with ``cache_dir`` (the kept rows are stored there as
  ``coco2017_<split>_colour_rows.npy``). ``"keep"`` keeps every image. A colour JPEG whose
  three channels happen to be equal is kept either way.

  Preprocessing (:func:`coco_image`): ``resize="crop"`` (default) resizes the shorter side
  to ``image_size`` and takes the centre crop (a random crop and flip when ``augment`` and
  seeds are given); ``resize="stretch"`` resizes to ``image_size`` squared directly, as the
  authors' code (with ``interpolation="bicubic"``, their PIL filter 3). The paper trains at
  128 without augmentation (configs/colorization/coco.py).

  Args:
    split: ``"train"``, ``"validation"`` or ``"test"``.
    data_dir: the TFDS data_dir holding the prepared ``coco/2017``.
    image_size: the side ``S`` of the examples (the paper: 128).
    resize: ``"crop"`` or ``"stretch"``, above.
    interpolation: ``"bicubic"``, ``"bilinear"``, ``"lanczos"`` or ``"nearest"`` (PIL).
    grayscale: ``"drop"`` or ``"keep"``, above.
    cache_dir: optional folder for the grayscale scan's result.
    augment: random crops (``"crop"``) and flips when ``get`` is given seeds.

  Returns:
    A :class:`ColorizationSource` of ``{"L", "ab", "rgb"}`` (module docstring); ``rows``
    holds the TFDS record index of each example.
  """
  name = "coco_colorization"
  _check_split(name, split)
  if not isinstance(image_size, (int, np.integer)) or image_size < 1:
    raise ValueError(f"{name}: `image_size` must be a positive int; found {image_size!r}.")
  for arg, value, allowed in (("resize", resize, COCO_RESIZE),
                              ("interpolation", interpolation, tuple(_INTERPOLATION)),
                              ("grayscale", grayscale, COCO_GRAYSCALE)):
    if value not in allowed:
      raise ValueError(f"{name}: `{arg}` must be one of {allowed}; found {value!r}.")
  records, _ = _coco_records(split, data_dir)
  data_dir = os.path.expanduser(os.fspath(data_dir))
  if grayscale == "drop":
    cache = None if cache_dir is None else os.path.expanduser(os.fspath(cache_dir))
    rows = _colour_rows(os.path.abspath(data_dir), split, cache)
  else:
    rows = np.arange(len(records))
  source = colorization_source_over_records(name, records, rows, int(image_size),
                                            resize=resize, interpolation=interpolation,
                                            augment=bool(augment))
  source.rows = rows
  return source
