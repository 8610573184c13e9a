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


GRATING_NOISE = 0.3


@register_dataset("gratings")
def gratings(split: str, num_examples: int = 2048, image_size: int = 16, channels: int = 3,
             num_classes: int = 10, noise: float = GRATING_NOISE, seed: int = 0) -> ArraySource:
  """Oriented sinusoidal gratings: class ``k`` has orientation ``k * pi / num_classes``.

  Each image is ``sin(2 pi f (x cos t + y sin t) + phase)`` with a random frequency
  ``f`` in [1.5, 4] cycles per image, a random phase, a random contrast per channel and
  Gaussian noise of std ``noise``: a small task whose features are strongly correlated
  across channels (the regime where a whitening layer's covariance is ill-conditioned),
  used by the SVD-conditioning reproduction (spec Sec. 4, substitute ii).
  """
  if num_examples <= 0 or image_size <= 1 or channels <= 0 or num_classes < 2:
    raise ValueError("gratings: need num_examples > 0, image_size > 1, channels > 0 and "
                     f"num_classes >= 2; found {num_examples}, {image_size}, {channels}, "
                     f"{num_classes}.")
  rng = np.random.default_rng([seed, SPLIT_SEED_OFFSET[split], 7])
  labels = rng.integers(0, num_classes, size=num_examples)
  theta = labels * np.pi / num_classes
  freq = rng.uniform(1.5, 4.0, size=num_examples)
  phase = rng.uniform(0, 2 * np.pi, size=num_examples)
  contrast = rng.uniform(0.5, 1.5, size=(num_examples, 1, 1, channels))
  coords = np.arange(image_size) / image_size
  yy, xx = np.meshgrid(coords, coords, indexing="ij")
  arg = (xx[None] * np.cos(theta)[:, None, None] + yy[None] * np.sin(theta)[:, None, None])
  wave = np.sin(2 * np.pi * freq[:, None, None] * arg + phase[:, None, None])
  images = wave[..., None] * contrast + noise * rng.normal(size=contrast.shape[:1] + (
      image_size, image_size, channels))
  return ArraySource("gratings", images.astype(np.float32), labels, num_classes)
