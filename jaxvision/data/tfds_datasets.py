"""TFDS catalog datasets read from a user's prepared ``data_dir`` (never downloaded).

jaxvision reads prepared TFDS datasets through ``tfds.data_source`` (random
access, deterministic, no TensorFlow at run time). That needs the dataset
prepared in the ``array_record`` file format, once, on a machine with network::

  tfds build cifar10 --data_dir DATA_DIR --file_format array_record

(``tfds build`` itself needs TensorFlow; training does not). Missing or
TFRecord-only data raises an error that says exactly this.

Registered: ``cifar10``, ``cifar100`` (random crop with 4-pixel zero padding
and flips), ``imagenet2012`` (Inception crop to 224 + flip for training; resize
256 / centre crop 224 for evaluation; the ``test`` split reads TFDS's
``validation``). Images are scaled to [0, 1] and standardised per channel.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable

import numpy as np

from jaxvision.data import augment
from jaxvision.data.registry import register_dataset
from jaxvision.data.sources import Batch, DatasetInfo

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_UINT8 = 255.0

ImageFn = Callable[[np.ndarray, np.random.Generator | None], np.ndarray]


def _load_tfds():
  try:
    import tensorflow_datasets as tfds
  except ImportError as e:
    raise ImportError("catalog datasets need tensorflow-datasets: pip install "
                      "tensorflow-datasets") from e
  return tfds


def open_data_source(name: str, split: str, data_dir: str | None) -> Any:
  """Opens ``tfds.data_source(name, split)`` from ``data_dir`` with clear errors."""
  tfds = _load_tfds()
  data_dir = os.path.expanduser(data_dir) if data_dir else None
  builder = tfds.builder(name, data_dir=data_dir)
  where = builder.data_dir
  if not builder.info.splits:
    raise FileNotFoundError(
        f"TFDS dataset {name!r} is not prepared under data_dir={data_dir or '(tfds default)'} "
        f"(looked in {where}). jaxvision never downloads at run time: prepare it once with "
        f"`tfds build {name} --data_dir DATA_DIR --file_format array_record` (needs tensorflow "
        f"and network) and pass --config.data.kwargs.data_dir=DATA_DIR.")
  if split not in builder.info.splits:
    raise ValueError(f"TFDS dataset {name!r} has splits {sorted(builder.info.splits)}; "
                     f"found request for {split!r}.")
  return random_access_source(builder, split, f"TFDS dataset {name!r}", name)


def random_access_source(builder, split: str, what: str, tfds_name: str, **kwargs):
  """``builder.as_data_source(split, **kwargs)``, after checking that the prepared dataset
  has random access: one stored as TFRecord gets an error saying how to re-prepare it as
  array_record (TFDS itself would fail with a bare error from inside ``as_data_source``)."""
  file_format = getattr(builder.info, "file_format", None)
  fmt = getattr(file_format, "value", file_format)
  if fmt is not None and str(fmt) != "array_record":
    raise RuntimeError(
        f"{what}: {tfds_name!r} in {builder.data_dir} is stored as {fmt}, which has no "
        f"random access. Re-prepare it with file_format='array_record' (e.g. `tfds build "
        f"{tfds_name} --data_dir DATA_DIR --file_format array_record`).")
  return builder.as_data_source(split=split, **kwargs)


class TfdsSource:
  """A :class:`~jaxvision.data.sources.Source` over a TFDS random-access data source.

  Args:
    name: registry name (for ``info``).
    records: a ``tfds.data_source`` (or any sequence of ``{"image", "label"}`` dicts).
    num_classes: number of labels.
    image_fn: ``(uint8 image, rng or None) -> float32 image`` preprocessing; ``rng`` is
      ``None`` at evaluation.
    image_shape: shape ``image_fn`` returns.
  """

  def __init__(self, name: str, records: Any, num_classes: int, image_fn: ImageFn,
               image_shape: tuple[int, int, int]):
    self.records = records
    self.image_fn = image_fn
    self.info = DatasetInfo(name, num_classes, tuple(image_shape), len(records))

  def __len__(self) -> int:
    return len(self.records)

  def get(self, indices: np.ndarray, seeds: np.ndarray | None = None) -> Batch:
    idx = [int(i) for i in indices]
    getitems = getattr(self.records, "__getitems__", None)
    examples = getitems(idx) if getitems else [self.records[i] for i in idx]
    images, labels = [], []
    for k, ex in enumerate(examples):
      rng = None if seeds is None else np.random.default_rng(int(seeds[k]))
      images.append(self.image_fn(np.asarray(ex["image"]), rng))
      labels.append(ex["label"])
    return {"image": np.stack(images).astype(np.float32),
            "label": np.asarray(labels, dtype=np.int32)}


def normalize(image: np.ndarray, mean, std) -> np.ndarray:
  """uint8 -> float32 in [0, 1], then per-channel ``(x - mean) / std``."""
  return (image.astype(np.float32) / MAX_UINT8 - np.asarray(mean, np.float32)) / np.asarray(
      std, np.float32)


def cifar_image_fn(image: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
  x = normalize(image, CIFAR_MEAN, CIFAR_STD)
  return x if rng is None else augment.random_crop_flip(x, rng, pad=4, flip=True)


def imagenet_image_fn(image: np.ndarray, rng: np.random.Generator | None, *, size: int,
                      resize_to: int) -> np.ndarray:
  if image.ndim == 2:
    image = image[..., None]
  if image.shape[-1] == 1:
    image = np.repeat(image, 3, axis=-1)
  if rng is None:
    image = augment.center_crop(image, size=size, resize_to=resize_to)
  else:
    image = augment.flip_left_right(augment.random_resized_crop(image, rng, size=size), rng)
  return normalize(image, IMAGENET_MEAN, IMAGENET_STD)


def _cifar(name: str, num_classes: int, split: str, data_dir: str | None) -> TfdsSource:
  records = open_data_source(name, split, data_dir)
  return TfdsSource(name, records, num_classes, cifar_image_fn, (32, 32, 3))


@register_dataset("cifar10")
def cifar10(split: str, data_dir: str | None = None) -> TfdsSource:
  """CIFAR-10 from a prepared TFDS ``data_dir`` (50k train / 10k test, 10 classes)."""
  return _cifar("cifar10", 10, split, data_dir)


@register_dataset("cifar100")
def cifar100(split: str, data_dir: str | None = None) -> TfdsSource:
  """CIFAR-100 from a prepared TFDS ``data_dir`` (50k train / 10k test, 100 classes)."""
  return _cifar("cifar100", 100, split, data_dir)


@register_dataset("imagenet2012")
def imagenet2012(split: str, data_dir: str | None = None, image_size: int = 224,
                 resize_to: int = 256) -> TfdsSource:
  """ImageNet-1k from a prepared TFDS ``data_dir`` (manual download); ``test`` = validation."""
  records = open_data_source("imagenet2012", "validation" if split == "test" else split, data_dir)
  image_fn = functools.partial(imagenet_image_fn, size=image_size, resize_to=resize_to)
  return TfdsSource("imagenet2012", records, 1000, image_fn, (image_size, image_size, 3))
