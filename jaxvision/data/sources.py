"""Random-access data sources: the host-side half of every input pipeline.

A source is an indexable collection of examples. ``source.get(indices, seeds)``
returns a batch as a dict of numpy arrays, preprocessed and ready to stack:

* ``indices``: int ``(n,)`` example indices in ``[0, len(source))``.
* ``seeds``: ``None`` for evaluation preprocessing (deterministic), or uint64
  ``(n,)``, one seed per example, for training-time augmentation. Seeds are
  derived from the *global* position of an example in the training stream, so
  augmentation is identical whatever the number of hosts or devices.

Every source has ``info`` (:class:`DatasetInfo`) with the number of classes and
the shape of one preprocessed image.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Protocol

import numpy as np

Batch = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What a model needs to know about a dataset.

  Attributes:
    name: registry name of the dataset.
    num_classes: number of labels.
    image_shape: ``(height, width, channels)`` of one preprocessed image.
    num_examples: size of this split.
  """
  name: str
  num_classes: int
  image_shape: tuple[int, int, int]
  num_examples: int


class Source(Protocol):
  info: DatasetInfo

  def __len__(self) -> int:
    ...

  def get(self, indices: np.ndarray, seeds: np.ndarray | None = None) -> Batch:
    ...


def check_get_args(name: str, size: int, indices, seeds) -> tuple[np.ndarray, np.ndarray | None]:
  """``source.get``'s arguments validated: int64 ``(n,)`` indices in ``[0, size)`` and, when
  given, uint64 ``(n,)`` seeds (one per index). Raises naming dataset ``name``."""
  indices = np.asarray(indices, np.int64).reshape(-1)
  if indices.size and (indices.min() < 0 or indices.max() >= size):
    raise IndexError(f"{name}: indices must lie in [0, {size}); found range "
                     f"[{indices.min()}, {indices.max()}].")
  if seeds is not None:
    seeds = np.asarray(seeds, np.uint64).reshape(-1)
    if seeds.shape != indices.shape:
      raise ValueError(f"{name}: `seeds` must have one seed per index, shape "
                       f"{indices.shape}; found {seeds.shape}.")
  return indices, seeds


def check_data_dir(name: str, data_dir, layout: str, *, builders: str = "") -> str:
  """The user's local copy of dataset ``name``, ``~``-expanded; raises (naming the expected
  ``layout`` and, with ``builders``, the module whose TFDS builders can prepare it) when it
  is not given or not a directory. jaxvision never downloads these datasets."""
  if data_dir is None:
    where = f" ({builders})" if builders else ""
    raise ValueError(f"{name}: pass `data_dir`, the folder of your local copy ({layout}), or "
                     f"`tfds_data_dir`, a TFDS data_dir where it was prepared{where}. "
                     "jaxvision never downloads it.")
  data_dir = os.path.expanduser(os.fspath(data_dir))
  if not os.path.isdir(data_dir):
    raise FileNotFoundError(f"{name}: `data_dir` {data_dir!r} is not a directory; expected "
                            f"{layout}.")
  return data_dir


Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class ArraySource:
  """An in-memory source over preprocessed float32 images and int32 labels.

  Args:
    name: dataset name (for ``info`` and messages).
    images: float32 ``(N, H, W, C)``, already normalised.
    labels: int ``(N,)`` in ``[0, num_classes)``.
    num_classes: number of classes.
    augment: optional per-example training augmentation
      ``(image (H, W, C), rng) -> image (H, W, C)``; applied only when seeds are given.
  """

  def __init__(self, name: str, images: np.ndarray, labels: np.ndarray, num_classes: int,
               augment: Augment | None = None):
    if images.ndim != 4:
      raise ValueError(f"{name}: `images` must be (N, H, W, C); found shape {images.shape}.")
    if labels.shape != (images.shape[0],):
      raise ValueError(f"{name}: `labels` must have shape ({images.shape[0]},) to match the "
                       f"images; found {labels.shape}.")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
      raise ValueError(f"{name}: labels must lie in [0, {num_classes}); found range "
                       f"[{labels.min()}, {labels.max()}].")
    self.images = np.ascontiguousarray(images, dtype=np.float32)
    self.labels = labels.astype(np.int32)
    self.augment = augment
    self.info = DatasetInfo(name, int(num_classes), tuple(images.shape[1:]), len(labels))

  def __len__(self) -> int:
    return len(self.labels)

  def get(self, indices: np.ndarray, seeds: np.ndarray | None = None) -> Batch:
    images = self.images[indices]
    if seeds is not None and self.augment is not None:
      images = np.stack([self.augment(img, np.random.default_rng(int(s)))
                         for img, s in zip(images, seeds)])
    return {"image": images, "label": self.labels[indices]}


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def is_hdf5_file(path: str) -> bool:
  """Whether ``path`` is an HDF5 file (e.g. a MATLAB v7.3 .mat): the HDF5 signature at
  offset 0 or at a power-of-two userblock offset (MATLAB writes a 512-byte header)."""
  with open(path, "rb") as f:
    for offset in (0, 512, 1024, 2048):
      f.seek(offset)
      if f.read(8) == HDF5_SIGNATURE:
        return True
  return False

