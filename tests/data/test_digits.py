"""The embedded digits dataset: sizes, split, normalisation, augmentation."""

import numpy as np

from jaxvision.data import create_dataset


def test_splits_sizes_and_disjointness():
  train, test = create_dataset("digits", "train"), create_dataset("digits", "test")
  assert len(train) == 1437 and len(test) == 360
  assert train.info.image_shape == (32, 32, 1) and train.info.num_classes == 10
  # Every class is present in both splits in roughly equal numbers.
  assert np.bincount(train.labels, minlength=10).min() > 120
  assert np.bincount(test.labels, minlength=10).min() > 20
  # No test image appears in the training split.
  train_rows = {img.tobytes() for img in train.images}
  assert sum(img.tobytes() in train_rows for img in test.images) == 0


def test_standardised_with_train_statistics():
  train = create_dataset("digits", "train")
  assert abs(float(train.images.mean())) < 1e-4
  assert abs(float(train.images.std()) - 1) < 1e-3


def test_image_size_and_translation_augmentation():
  small = create_dataset("digits", "train", image_size=8, shift=0)
  assert small.info.image_shape == (8, 8, 1) and small.augment is None
  src = create_dataset("digits", "train", shift=2)
  idx = np.arange(16)
  plain = src.get(idx)["image"]
  augmented = src.get(idx, seeds=np.arange(16, dtype=np.uint64))["image"]
  assert augmented.shape == plain.shape and not np.array_equal(augmented, plain)
