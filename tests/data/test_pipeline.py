"""The input pipeline: determinism in the step, epoch coverage, host slicing,
layout-independent augmentation, prefetching and padded evaluation."""

import jax
import numpy as np
import pytest

from jaxvision.data import (ArraySource, TrainIterator, augment, create_dataset, eval_batches,
                            splitmix64, to_global_array)
from jaxvision.train import sharding as sharding_lib


def _source(n=10, augmented=True):
  images = np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((1, 4, 4, 1), np.float32)
  aug = (lambda img, rng: img + rng.integers(0, 1000)) if augmented else None
  return ArraySource("toy", images, np.arange(n) % 3, 3, augment=aug)


def test_batches_are_a_pure_function_of_seed_and_step():
  a = TrainIterator(_source(), 4, seed=1, process_index=0, process_count=1, prefetch=0)
  b = TrainIterator(_source(), 4, seed=1, process_index=0, process_count=1, start_step=7,
                    prefetch=0)
  first = [next(a) for _ in range(9)]
  np.testing.assert_array_equal(next(b)["image"], first[7]["image"])
  np.testing.assert_array_equal(next(b)["image"], first[8]["image"])
  c = TrainIterator(_source(), 4, seed=2, process_index=0, process_count=1, prefetch=0)
  assert not np.array_equal(next(c)["image"], first[0]["image"])


def test_each_epoch_visits_every_example_once_in_a_new_order():
  it = TrainIterator(_source(12, augmented=False), 4, seed=0, process_index=0, process_count=1)
  epochs = [np.concatenate([it.indices(s) for s in range(3 * e, 3 * e + 3)]) for e in range(3)]
  for order in epochs:
    assert sorted(order) == list(range(12))
  assert not np.array_equal(epochs[0], epochs[1])
  # A batch that straddles an epoch boundary (10 examples, batch 4).
  it = TrainIterator(_source(10, augmented=False), 4, seed=0, process_index=0, process_count=1)
  stream = np.concatenate([it.indices(s) for s in range(5)])
  assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:20]) == list(range(10))


def test_process_slices_assemble_the_single_process_batch():
  full = TrainIterator(_source(), 8, seed=3, process_index=0, process_count=1, prefetch=0)
  parts = [TrainIterator(_source(), 8, seed=3, process_index=i, process_count=4, prefetch=0)
           for i in range(4)]
  for step in range(3):
    whole = full.batch_at(step)
    pieces = [p.batch_at(step) for p in parts]
    for key in ("image", "label"):
      np.testing.assert_array_equal(np.concatenate([p[key] for p in pieces]), whole[key])
  with pytest.raises(ValueError, match="divisible"):
    TrainIterator(_source(), 6, seed=0, process_index=0, process_count=4)


def test_prefetch_thread_yields_the_same_stream_and_surfaces_errors():
  direct = TrainIterator(_source(), 4, seed=5, process_index=0, process_count=1, prefetch=0)
  threaded = TrainIterator(_source(), 4, seed=5, process_index=0, process_count=1, prefetch=3)
  for _ in range(6):
    np.testing.assert_array_equal(next(direct)["image"], next(threaded)["image"])
  threaded.close()

  class Broken(ArraySource):
    def get(self, indices, seeds=None):
      raise OSError("disk on fire")

  broken = TrainIterator(Broken("b", np.zeros((4, 2, 2, 1)), np.zeros(4, int), 2), 2, seed=0,
                         process_index=0, process_count=1, prefetch=2)
  with pytest.raises(RuntimeError, match="input pipeline failed at step 0"):
    next(broken)
  broken.close()


def test_eval_batches_pad_and_mask_exactly_once():
  src = _source(10, augmented=False)
  batches = list(eval_batches(src, 4, process_index=0, process_count=1))
  assert [b["image"].shape[0] for b in batches] == [4, 4, 4]
  mask = np.concatenate([b["mask"] for b in batches])
  labels = np.concatenate([b["label"] for b in batches])
  assert mask.sum() == 10 and list(mask[10:]) == [0, 0]
  np.testing.assert_array_equal(labels[:10], src.labels)


def test_to_global_array_shards_the_batch_axis():
  mesh = sharding_lib.make_mesh()
  batch = {"image": np.ones((16, 4, 4, 1), np.float32), "label": np.arange(16)}
  out = to_global_array(batch, sharding_lib.batch_sharding(mesh))
  assert out["image"].shape == (16, 4, 4, 1)
  assert len(out["label"].sharding.device_set) == jax.device_count()
  np.testing.assert_array_equal(np.asarray(out["label"]), np.arange(16))


def test_splitmix64_is_a_bijection_sample():
  x = np.arange(100_000, dtype=np.uint64)
  assert len(np.unique(splitmix64(x))) == x.size


def test_random_crop_flip_preserves_content():
  rng = np.random.default_rng(0)
  img = rng.normal(size=(8, 8, 2)).astype(np.float32)
  out = augment.random_crop_flip(img, np.random.default_rng(1), pad=0, flip=True)
  assert np.array_equal(out, img) or np.array_equal(out, img[:, ::-1])
  shifted = augment.random_crop_flip(img, np.random.default_rng(2), pad=2, flip=False)
  assert shifted.shape == img.shape
  # Every non-zero pixel of the crop comes from the image at one common offset.
  found = any(np.array_equal(shifted, np.pad(img, ((2, 2), (2, 2), (0, 0)))[t:t + 8, l:l + 8])
              for t in range(5) for l in range(5))
  assert found


def test_imagenet_crops_have_the_requested_size():
  img = np.random.default_rng(0).integers(0, 255, size=(300, 200, 3), dtype=np.uint8)
  assert augment.random_resized_crop(img, np.random.default_rng(0), size=64).shape == (64, 64, 3)
  assert augment.center_crop(img, size=56, resize_to=64).shape == (56, 56, 3)


def test_synthetic_dataset_is_deterministic_and_validated():
  a, b = create_dataset("synthetic", "train"), create_dataset("synthetic", "train")
  np.testing.assert_array_equal(a.images, b.images)
  assert a.info.num_classes == 10 and a.info.image_shape == (16, 16, 3)
  with pytest.raises(ValueError, match="num_classes"):
    create_dataset("synthetic", "train", num_classes=1)


def test_gratings_classes_are_orientations():
  src = create_dataset("gratings", "train", num_examples=200, noise=0.0)
  assert src.info.num_classes == 10 and src.info.image_shape == (16, 16, 3)
  # Noise-free gratings are constant along their stripes: for class 0 (orientation 0,
  # stripes along y) every column is constant.
  zero = src.images[src.labels == 0]
  assert zero.size and np.allclose(zero, zero[:, :1, :, :], atol=1e-5)
  test = create_dataset("gratings", "test", num_examples=200)
  assert not np.array_equal(test.images, create_dataset("gratings", "train",
                                                        num_examples=200).images)
