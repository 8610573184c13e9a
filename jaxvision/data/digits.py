"""The embedded quickstart dataset: handwritten digits, upsampled to 32x32.

The 1,797 8x8 grey-level digits (values 0..16) of the UCI "Optical Recognition
of Handwritten Digits" test set, as distributed with scikit-learn
(``sklearn.datasets.load_digits``), are shipped in ``assets/digits.npz``
(45 kB), so the quickstart needs no download and no scikit-learn.

Split: a fixed permutation (seed 0) puts 360 images (20%) in ``test`` and 1,437
in ``train``. Images are bilinearly upsampled to ``image_size`` (default 32),
scaled to [0, 1] and standardised with the train split's mean and std.
Training augmentation: random translation by up to ``shift`` pixels (no flips:
digits are not mirror-symmetric).
"""

from __future__ import annotations

import functools
import importlib.resources

import numpy as np

from jaxvision.data import augment
from jaxvision.data.registry import register_dataset
from jaxvision.data.sources import ArraySource

NUM_CLASSES = 10
NUM_TEST = 360
SPLIT_SEED = 0
MAX_PIXEL = 16


@functools.lru_cache(maxsize=4)
def load_digits_arrays(image_size: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Returns ``{"train": (images, labels), "test": (...)}``, images float32 ``(N, S, S, 1)``."""
  with importlib.resources.files("jaxvision.data").joinpath("assets/digits.npz").open("rb") as f:
    raw = np.load(f)
    images, labels = raw["images"], raw["labels"].astype(np.int32)
  images = np.round(images.astype(np.float32) * (255 / MAX_PIXEL)).astype(np.uint8)[..., None]
  if image_size != images.shape[1]:
    images = np.stack([augment.resize(img, (image_size, image_size)) for img in images])
  images = images.astype(np.float32) / 255.0
  order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
  test, train = order[:NUM_TEST], order[NUM_TEST:]
  mean, std = images[train].mean(), images[train].std()
  images = (images - mean) / std
  return {"train": (images[train], labels[train]), "test": (images[test], labels[test])}


@register_dataset("digits")
def digits(split: str, image_size: int = 32, shift: int = 2) -> ArraySource:
  """The digits source for ``split``; ``shift`` is the training translation range (pixels)."""
  if image_size < 8:
    raise ValueError(f"digits `image_size` must be >= 8; found {image_size}.")
  images, labels = load_digits_arrays(image_size)[split]
  aug = functools.partial(augment.random_crop_flip, pad=shift, flip=False) if shift else None
  return ArraySource("digits", images, labels, NUM_CLASSES, augment=aug)
