"""Colorization sources: the embedded scikit-image crops (shapes, ranges, L/ab/rgb
consistency, determinism, content-disjoint splits, augmentation only with seeds) and the
COCO path (clear errors without prepared data; a tiny fake ``coco/2017`` prepared in
tmp_path without TensorFlow, grayscale dropping)."""

import os

import numpy as np
import pytest
from PIL import Image

from jaxvision import ops
from jaxvision.data import colorization, create_dataset, dataset_splits, iqa, list_datasets

KEYS = {"L": 1, "ab": 2, "rgb": 3}


def _check_batch(batch, n, s):
  assert set(batch) == set(KEYS)
  for k, c in KEYS.items():
    assert batch[k].shape == (n, s, s, c) and batch[k].dtype == np.float32, k
  assert batch["L"].min() >= 0 and batch["L"].max() <= 100
  assert batch["rgb"].min() >= 0 and batch["rgb"].max() <= 1
  assert np.abs(batch["ab"]).max() < 110
  # The planes are one Lab image: lab_to_rgb(L, ab) = rgb, rgb_to_lab(rgb) = (L, ab).
  lab = np.concatenate([batch["L"], batch["ab"]], axis=-1)
  np.testing.assert_allclose(np.asarray(ops.lab_to_rgb(lab)), batch["rgb"], atol=2e-5)
  np.testing.assert_allclose(np.asarray(ops.rgb_to_lab(batch["rgb"])), lab, atol=2e-4)


def _windows_match(crop, ref):
  """Whether ``crop`` (S, S, C) is a window of ``ref`` or of its mirror; returns the flip."""
  s = crop.shape[0]
  for flipped, image in ((False, ref), (True, ref[:, ::-1])):
    h, w = image.shape[:2]
    for top in range(h - s + 1):
      for left in range(w - s + 1):
        if np.array_equal(image[top:top + s, left:left + s], crop):
          return flipped
  return None


def test_registered_with_three_splits():
  assert {"embedded_colorization", "coco_colorization"} <= set(list_datasets())
  for name in ("embedded_colorization", "coco_colorization"):
    assert dataset_splits(name) == ("train", "validation", "test")


def test_embedded_default_sizes_shapes_ranges_and_consistency():
  sizes = {}
  for split in colorization.COLORIZATION_SPLITS:
    src = create_dataset("embedded_colorization", split)
    sizes[split] = len(src)
    assert src.info.image_shape == (64, 64, 1) and src.info.num_classes == 0
    assert src.info.num_examples == len(src)
  assert sizes == {"train": 1000, "validation": 128, "test": 128}
  batch = src.get(np.array([0, 5, 64, 127]))
  _check_batch(batch, 4, 64)
  # Real colour content: the test crops are far from grey on average.
  assert np.mean(np.linalg.norm(batch["ab"], axis=-1)) > 5


def test_embedded_is_deterministic_per_index_and_seed():
  a = colorization.embedded_colorization("validation", image_size=16, num_per_image=10, seed=3)
  b = colorization.embedded_colorization("validation", image_size=16, num_per_image=10, seed=3)
  idx = np.arange(20)
  for k, v in a.get(idx).items():
    np.testing.assert_array_equal(v, b.get(idx)[k])
    np.testing.assert_array_equal(v, a.get(idx)[k])  # the evaluation view is fixed
  # Example k of a photo does not depend on how many examples there are.
  c = colorization.embedded_colorization("validation", image_size=16, num_per_image=4, seed=3)
  np.testing.assert_array_equal(c.positions, a.positions[np.r_[0:4, 10:14]])
  np.testing.assert_array_equal(c.get(np.arange(8))["ab"], a.get(np.r_[0:4, 10:14])["ab"])
  d = colorization.embedded_colorization("validation", image_size=16, num_per_image=10, seed=4)
  assert not np.array_equal(d.positions, a.positions)


def test_embedded_splits_are_content_disjoint():
  photos = {}
  for split in colorization.COLORIZATION_SPLITS:
    src = colorization.embedded_colorization(split, image_size=16, num_per_image=3)
    photos[split] = {src.photo_names[p] for p in np.unique(src.photo_index)}
    assert photos[split] == set(colorization.EMBEDDED_SPLIT_PHOTOS[split])
    assert photos[split] <= set(iqa.SKIMAGE_PHOTOS)
  assert not photos["train"] & photos["validation"]
  assert not photos["train"] & photos["test"]
  assert not photos["validation"] & photos["test"]
  assert {"motorcycle_left", "motorcycle_right"} <= photos["train"]  # one scene, one split


def test_augmentation_only_with_seeds_and_augment():
  s, idx = 8, np.arange(6)
  seeds = np.arange(100, 106, dtype=np.uint64)
  src = colorization.embedded_colorization("test", image_size=s, num_per_image=3, augment=True)
  plain = src.get(idx)
  aug = src.get(idx, seeds)
  _check_batch(aug, 6, s)
  assert not np.array_equal(aug["ab"], plain["ab"])
  for k, v in src.get(idx, seeds).items():  # a pure function of the seeds
    np.testing.assert_array_equal(v, aug[k])
  off = colorization.embedded_colorization("test", image_size=s, num_per_image=3, augment=False)
  for k, v in off.get(idx, seeds).items():
    np.testing.assert_array_equal(v, plain[k])
  # Each augmented example is a (possibly mirrored) crop of its own photograph, and both
  # orientations occur.
  flips = set()
  many = src.get(np.zeros(24, np.int64), np.arange(24, dtype=np.uint64))
  ref = colorization.embedded_reference(src.photo_names[0], 4 * s)["L"]
  for crop in many["L"]:
    flipped = _windows_match(crop, ref)
    assert flipped is not None
    flips.add(flipped)
  assert flips == {False, True}


@pytest.mark.parametrize("kwargs, match", [
    (dict(split="val"), "`split` must be one of"),
    (dict(split="train", image_size=4), "`image_size` must be an int in"),
    (dict(split="train", image_size=400), "`image_size` must be an int in"),
    (dict(split="train", num_per_image=0), "`num_per_image` must be a positive int"),
    (dict(split="train", seed=-1), "`seed` must be an int >= 0"),
])
def test_embedded_errors(kwargs, match):
  with pytest.raises(ValueError, match=match):
    colorization.embedded_colorization(**kwargs)


def test_embedded_ab_samples_pool_the_training_photographs():
  ab = colorization.embedded_ab_samples("train", stride=4)
  assert ab.ndim == 2 and ab.shape[1] == 2 and ab.dtype == np.float32
  expected = sum(((h + 3) // 4) * ((w + 3) // 4) for h, w in (
      iqa.load_photo(n).shape[:2] for n in colorization.EMBEDDED_SPLIT_PHOTOS["train"]))
  assert len(ab) == expected


# ------------------------------------------------------------------------------------------
# COCO 2017


def test_coco_without_prepared_data_dir_says_how_to_prepare(tmp_path):
  with pytest.raises(ValueError, match=r"data_dir.*never downloads.*tfds build coco/2017"):
    create_dataset("coco_colorization", "train")
  pytest.importorskip("tensorflow_datasets")
  with pytest.raises(FileNotFoundError, match=r"coco/2017.*not prepared.*tfds build coco/2017"):
    create_dataset("coco_colorization", "validation", data_dir=str(tmp_path))
  with pytest.raises(FileNotFoundError, match="is not a directory"):
    create_dataset("coco_colorization", "train", data_dir=str(tmp_path / "missing"))
  with pytest.raises(ValueError, match="`grayscale` must be one of"):
    create_dataset("coco_colorization", "train", data_dir=str(tmp_path), grayscale="mask")


def test_coco_image_resize_crop_stretch_and_grayscale():
  rng = np.random.default_rng(0)
  img = rng.integers(0, 256, (30, 45, 3), dtype=np.uint8)
  crop = colorization.coco_image(img, None, image_size=16)
  assert crop.shape == (16, 16, 3) and crop.dtype == np.uint8
  np.testing.assert_array_equal(crop, colorization.coco_image(img, None, image_size=16))
  stretch = colorization.coco_image(img, None, image_size=16, resize="stretch")
  assert stretch.shape == (16, 16, 3) and not np.array_equal(stretch, crop)
  np.testing.assert_array_equal(
      colorization.coco_image(img[:16, :16], None, image_size=16, resize="stretch"), img[:16, :16])
  gray = colorization.coco_image(img[..., 0], None, image_size=16)
  assert gray.shape == (16, 16, 3) and np.array_equal(gray[..., 0], gray[..., 2])
  flipped = [colorization.coco_image(img, np.random.default_rng(i), image_size=16)
             for i in range(8)]
  assert all(f.shape == (16, 16, 3) for f in flipped)
  assert len({f.tobytes() for f in flipped}) > 1  # random crops / flips


def _prepare_fake_coco(tmp_path):
  """A tiny ``coco/2017`` (only the image features) prepared as array_record, no TF."""
  tfds = pytest.importorskip("tensorflow_datasets")
  pytest.importorskip("array_record")
  from etils import epath

  image_dir = tmp_path / "images"
  image_dir.mkdir()
  rng = np.random.default_rng(0)
  files = {}
  for split, n in (("train", 3), ("validation", 2), ("test", 1)):
    files[split] = []
    for i in range(n):
      arr = rng.integers(0, 256, (20 + i, 28, 3), dtype=np.uint8)
      path = str(image_dir / f"{split}_{i}.jpg")
      # The second training image is a single-band (grayscale) JPEG, as 227 of train2017.
      Image.fromarray(arr[..., 0] if (split, i) == ("train", 1) else arr).save(path, quality=95)
      files[split].append(path)

  class Coco(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    name = "coco"
    VERSION = tfds.core.Version("1.1.0")
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name="2017")]

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):
      return epath.Path(__file__)

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
          "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
          "image/filename": tfds.features.Text(), "image/id": np.int64}))

    def _split_generators(self, dl_manager):
      return {split: self._generate_examples(split) for split in files}

    def _generate_examples(self, split):
      for i, path in enumerate(files[split]):
        yield f"{split}{i}", {"image": path, "image/filename": os.path.basename(path),
                              "image/id": i}

  data_dir = str(tmp_path / "tfds")
  Coco(data_dir=data_dir, config="2017", file_format="array_record").download_and_prepare()
  return data_dir


def test_coco_reads_a_prepared_data_dir_and_drops_grayscale(tmp_path):
  data_dir = _prepare_fake_coco(tmp_path)
  cache = str(tmp_path / "cache")
  src = create_dataset("coco_colorization", "train", data_dir=data_dir, image_size=8,
                       cache_dir=cache)
  assert len(src) == 2 and src.info.image_shape == (8, 8, 1)
  assert os.path.isfile(os.path.join(cache, "coco2017_train_colour_rows.npy"))
  batch = src.get(np.arange(2))
  _check_batch(batch, 2, 8)
  assert np.abs(batch["ab"]).max() > 5  # the colour images are kept
  keep = create_dataset("coco_colorization", "train", data_dir=data_dir, image_size=8,
                        grayscale="keep", resize="stretch")
  assert len(keep) == 3
  all_ab = keep.get(np.arange(3))["ab"]
  chroma = np.linalg.norm(all_ab, axis=-1).max(axis=(1, 2))
  assert np.sum(chroma < 0.5) == 1  # the grayscale JPEG: ab ~ 0
  assert len(create_dataset("coco_colorization", "validation", data_dir=data_dir,
                            image_size=8)) == 2
  # Augmentation (random crop + flip) only with `augment` and seeds.
  aug = create_dataset("coco_colorization", "train", data_dir=data_dir, image_size=8,
                       augment=True)
  seeds = np.arange(2, dtype=np.uint64)
  np.testing.assert_array_equal(aug.get(np.arange(2))["L"], batch["L"])
  np.testing.assert_array_equal(src.get(np.arange(2), seeds)["L"], batch["L"])
  assert any(not np.array_equal(aug.get(np.arange(2), np.array([s, s + 1], np.uint64))["L"],
                                batch["L"]) for s in range(0, 16, 2))
