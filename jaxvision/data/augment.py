"""Per-example numpy image augmentations for host-side pipelines.

Each takes one image ``(H, W, C)`` and a ``numpy.random.Generator`` and returns
an image; they are pure functions of their inputs, so a pipeline that seeds the
generator from the example's position in the stream is deterministic.
"""

from __future__ import annotations

import numpy as np


def random_crop_flip(image: np.ndarray, rng: np.random.Generator, *, pad: int = 4,
                     flip: bool = True) -> np.ndarray:
  """Zero-pads by ``pad`` pixels, crops back to ``(H, W)`` at a random offset, and
  flips left-right with probability 1/2 if ``flip`` (the standard CIFAR recipe)."""
  h, w, _ = image.shape
  if pad:
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
    top, left = rng.integers(0, 2 * pad + 1, size=2)
    image = padded[top:top + h, left:left + w]
  if flip and rng.random() < 0.5:
    image = image[:, ::-1]
  return np.ascontiguousarray(image)


def _pil():
  try:
    from PIL import Image
  except ImportError as e:  # pragma: no cover - pillow is a core dependency
    raise ImportError("image resizing (digits upsampling, ImageNet crops) needs Pillow: "
                      "pip install pillow") from e
  return Image


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """Bilinear (antialiased) resize of a uint8 ``(H, W, C)`` image to ``size=(h, w)``."""
  Image = _pil()
  squeeze = image.shape[-1] == 1
  pil = Image.fromarray(image[..., 0] if squeeze else image)
  out = np.asarray(pil.resize((size[1], size[0]), Image.BILINEAR))
  return out[..., None] if squeeze else out


def random_resized_crop(image: np.ndarray, rng: np.random.Generator, *, size: int,
                        scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3),
                        attempts: int = 10) -> np.ndarray:
  """Inception-style crop: a random area fraction in ``scale`` and aspect ratio in
  ``ratio`` (log-uniform), resized to ``(size, size)``; falls back to a centre crop
  of the whole image after ``attempts`` failures (torchvision semantics)."""
  h, w = image.shape[:2]
  area = h * w
  for _ in range(attempts):
    target = area * rng.uniform(*scale)
    aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
    cw = int(round(np.sqrt(target * aspect)))
    ch = int(round(np.sqrt(target / aspect)))
    if 0 < cw <= w and 0 < ch <= h:
      top = int(rng.integers(0, h - ch + 1))
      left = int(rng.integers(0, w - cw + 1))
      return resize(image[top:top + ch, left:left + cw], (size, size))
  return center_crop(image, size=size, resize_to=size)


def center_crop(image: np.ndarray, *, size: int, resize_to: int) -> np.ndarray:
  """Resizes the shorter side to ``resize_to`` then takes the central ``size x size``."""
  h, w = image.shape[:2]
  s = resize_to / min(h, w)
  image = resize(image, (max(size, int(round(h * s))), max(size, int(round(w * s)))))
  h, w = image.shape[:2]
  top, left = (h - size) // 2, (w - size) // 2
  return image[top:top + size, left:left + size]


def flip_left_right(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Flips left-right with probability 1/2."""
  return np.ascontiguousarray(image[:, ::-1]) if rng.random() < 0.5 else image
