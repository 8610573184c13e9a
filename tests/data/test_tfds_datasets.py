"""The TFDS catalog path: clear errors without prepared data; preprocessing on records."""

import numpy as np
import pytest

from jaxvision.data import create_dataset, tfds_datasets


def test_missing_data_dir_names_dataset_and_how_to_prepare(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"cifar10.*not prepared.*tfds build cifar10"):
    create_dataset("cifar10", "train", data_dir=str(tmp_path))


def test_source_over_records_preprocesses_and_augments():
  rng = np.random.default_rng(0)
  records = [{"image": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), "label": i % 10}
             for i in range(6)]
  src = tfds_datasets.TfdsSource("cifar10", records, 10, tfds_datasets.cifar_image_fn,
                                 (32, 32, 3))
  batch = src.get(np.array([0, 3, 5]))
  assert batch["image"].shape == (3, 32, 32, 3) and batch["image"].dtype == np.float32
  assert list(batch["label"]) == [0, 3, 5]
  expected = (records[3]["image"] / 255.0 - np.array(tfds_datasets.CIFAR_MEAN)) / np.array(
      tfds_datasets.CIFAR_STD)
  np.testing.assert_allclose(batch["image"][1], expected, rtol=1e-5, atol=1e-6)
  augmented = src.get(np.array([0, 3, 5]), seeds=np.array([1, 2, 3], np.uint64))
  assert not np.array_equal(augmented["image"], batch["image"])


def test_imagenet_preprocessing_handles_grayscale_and_sizes():
  img = np.random.default_rng(0).integers(0, 256, (120, 90), dtype=np.uint8)
  out = tfds_datasets.imagenet_image_fn(img, None, size=64, resize_to=72)
  assert out.shape == (64, 64, 3) and out.dtype == np.float32
  out = tfds_datasets.imagenet_image_fn(img[..., None], np.random.default_rng(1), size=64,
                                        resize_to=72)
  assert out.shape == (64, 64, 3)


def test_random_access_source_names_the_tfrecord_fix():
  import types

  from jaxvision.data.tfds_datasets import random_access_source

  calls = []
  builder = types.SimpleNamespace(
      info=types.SimpleNamespace(file_format=types.SimpleNamespace(value="tfrecord")),
      data_dir="/data", as_data_source=lambda **kw: calls.append(kw))
  with pytest.raises(RuntimeError, match="stored as tfrecord.*--file_format array_record"):
    random_access_source(builder, "train", "COCO", "coco")
  assert not calls                                  # never reached TFDS
  builder.info.file_format.value = "array_record"
  random_access_source(builder, "train", "COCO", "coco")
  assert calls == [{"split": "train"}]
