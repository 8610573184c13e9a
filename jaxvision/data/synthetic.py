"""Synthetic classification data for tests and offline smoke runs.

Each class has a fixed smooth random prototype image; an example is its class
prototype plus i.i.d. Gaussian noise of std ``noise``. With the default noise a
small network separates the classes in a few dozen steps, so tests can assert
that training makes progress without any download.
"""

from __future__ import annotations

import numpy as np

from jaxvision.data.registry import register_dataset
from jaxvision.data.sources import ArraySource

PROTOTYPE_SEED = 1234
SPLIT_SEED_OFFSET = {"train": 0, "test": 1}


@register_dataset("synthetic")
def synthetic(split: str, num_examples: int = 256, image_size: int = 16, channels: int = 3,
              num_classes: int = 10, noise: float = 0.5, seed: int = 0) -> ArraySource:
  """A learnable synthetic classification split (see module docstring)."""
  if num_examples <= 0 or image_size <= 0 or channels <= 0 or num_classes < 2:
    raise ValueError("synthetic: need num_examples > 0, image_size > 0, channels > 0 and "
                     f"num_classes >= 2; found {num_examples}, {image_size}, {channels}, "
                     f"{num_classes}.")
  proto_rng = np.random.default_rng(PROTOTYPE_SEED)
  coarse = proto_rng.normal(size=(num_classes, 4, 4, channels))
  reps = -(-image_size // 4)
  prototypes = np.repeat(np.repeat(coarse, reps, axis=1), reps, axis=2)[:, :image_size,
                                                                         :image_size]
  rng = np.random.default_rng([seed, SPLIT_SEED_OFFSET[split]])
  labels = rng.integers(0, num_classes, size=num_examples)
  images = prototypes[labels] + noise * rng.normal(size=(num_examples, image_size, image_size,
                                                         channels))
  return ArraySource("synthetic", images.astype(np.float32), labels, num_classes)
