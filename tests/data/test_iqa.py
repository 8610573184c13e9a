"""IQA sources: the synthetic dataset's score, splits and determinism; the KonIQ-10k and
CLIVE readers and TFDS builders on tiny fake releases written into tmp_path."""

import csv
import os

import numpy as np
import pytest
from PIL import Image

from jaxvision.data import augment, create_dataset, iqa, list_datasets
from jaxvision.data.tfds_datasets import IMAGENET_MEAN, IMAGENET_STD, normalize


def _ranks(x):
  return np.argsort(np.argsort(x)).astype(np.float64)


def _spearman(a, b):
  return float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])


def _grey(images):
  return images.astype(np.float64).mean(-1) / 255.0


def _sharpness(images):
  """Fine-scale over coarse-scale mean absolute gradient (falls as blur grows)."""
  g = _grey(images)
  n, h, w = g.shape
  coarse = g.reshape(n, h // 2, 2, w // 2, 2).mean((2, 4))
  fine = np.abs(np.diff(g, axis=2)).mean((1, 2))
  return fine / (np.abs(np.diff(coarse, axis=2)).mean((1, 2)) + 1e-6)


def _noise_level(images):
  """Donoho's MAD estimate of the noise std from the finest diagonal Haar band."""
  g = _grey(images)
  hh = (g[:, ::2, ::2] - g[:, 1::2, ::2] - g[:, ::2, 1::2] + g[:, 1::2, 1::2]) / 2
  return np.median(np.abs(hh), axis=(1, 2)) / 0.6745


# ------------------------------------------------------------------------------------------
# synthetic_iqa


def test_registered():
  assert {"synthetic_iqa", "koniq10k", "clive"} <= set(list_datasets())


def test_synthetic_default_sizes_batch_format_and_normalisation():
  sizes = {}
  for split in iqa.IQA_SPLITS:
    src = create_dataset("synthetic_iqa", split)
    sizes[split] = len(src)
    assert src.info.num_classes == 0 and src.info.image_shape == (64, 64, 3)
    assert src.info.num_examples == len(src) == len(src.scores)
  assert sizes == {"train": 2000, "validation": 512, "test": 512}
  batch = src.get(np.array([0, 7, 511]))
  assert set(batch) == {"image", "score"}
  assert batch["image"].shape == (3, 64, 64, 3) and batch["image"].dtype == np.float32
  assert batch["score"].shape == (3,) and batch["score"].dtype == np.float32
  np.testing.assert_array_equal(batch["score"], src.scores[[0, 7, 511]])
  np.testing.assert_allclose(batch["image"][1], normalize(src.images[7], IMAGENET_MEAN,
                                                          IMAGENET_STD), rtol=0, atol=1e-6)
  # The scores spread over the MOS-like 0..100 scale.
  assert -10 < src.scores.min() < 15 and 85 < src.scores.max() < 110
  assert src.scores.std() > 10


def test_synthetic_is_deterministic_per_example():
  kw = dict(image_size=32, levels=4, seed=3, distortions=iqa.DISTORTIONS, rater_noise=2.0,
            affine=False)
  build = iqa.build_synthetic_iqa.__wrapped__  # bypass the cache: really rebuild
  a_img, a_score, a_par = build("validation", num_per_image=12, **kw)
  b_img, b_score, b_par = build("validation", num_per_image=12, **kw)
  np.testing.assert_array_equal(a_img, b_img)
  np.testing.assert_array_equal(a_score, b_score)
  # Example k of a photo does not depend on how many examples there are.
  c_img, c_score, _ = build("validation", num_per_image=5, **kw)
  first = np.r_[0:5, 12:17]
  np.testing.assert_array_equal(c_img, a_img[first])
  np.testing.assert_array_equal(c_score, a_score[first])
  # Another seed gives other crops, grades and scores.
  d_img, d_score, _ = build("validation", num_per_image=12, **{**kw, "seed": 4})
  assert not np.array_equal(d_score, a_score) and not np.array_equal(d_img, a_img)
  # The cached public path returns the same split.
  src = iqa.synthetic_iqa("validation", num_per_image=12, **kw)
  np.testing.assert_array_equal(src.scores, a_score)
  assert set(a_par) >= {"photo", "top", "left", "blur_sigma", "noise_sigma", "jpeg_quality",
                        "contrast", "mos_clean"}


def test_synthetic_splits_are_content_disjoint():
  photos = {}
  for split in iqa.IQA_SPLITS:
    src = iqa.synthetic_iqa(split, num_per_image=8)
    photos[split] = {src.photo_names[p] for p in np.unique(src.params["photo"])}
    assert photos[split] == set(iqa.SYNTHETIC_SPLIT_PHOTOS[split])
  assert not photos["train"] & photos["validation"]
  assert not photos["train"] & photos["test"]
  assert not photos["validation"] & photos["test"]
  assert {"motorcycle_left", "motorcycle_right"} <= photos["train"]  # the stereo pair


def test_quality_score_is_monotone_and_documented():
  grid = np.linspace(0, 1, 6)
  for k in range(4):
    args = [np.zeros(6)] * 4
    args[k] = grid * np.array([iqa.MAX_BLUR_SIGMA, iqa.MAX_NOISE_SIGMA, 1, 1])[k]
    assert np.all(np.diff(iqa.quality_score(*args)) < 0)
  assert iqa.quality_score(0, 0, 0, 0) == 100.0
  assert iqa.quality_score(iqa.MAX_BLUR_SIGMA, iqa.MAX_NOISE_SIGMA, 1, 1) == pytest.approx(0.0)
  assert iqa.quality_score(1.0, 0.05, 0, 0) == pytest.approx(100 - 20 - 15)  # spec Sec. 4

  src = iqa.synthetic_iqa("test", rater_noise=0.0, levels=3)
  p = src.params
  np.testing.assert_allclose(src.scores, iqa.quality_score(
      p["blur_sigma"], p["noise_sigma"], p["jpeg_grade"] / 2, p["contrast_grade"] / 2),
                             atol=1e-4)
  # At fixed other grades, a higher blur (noise, ...) grade always gives a lower score.
  levels = np.stack([p[f"{d}_grade"] for d in iqa.DISTORTIONS], 1)
  for k in range(4):
    others = np.delete(levels, k, axis=1)
    checked = 0
    for key in np.unique(others, axis=0):
      sel = np.all(others == key, axis=1)
      by_level = {lv: src.scores[sel & (levels[:, k] == lv)] for lv in np.unique(levels[sel, k])}
      ordered = [by_level[lv] for lv in sorted(by_level)]
      for lo, hi in zip(ordered, ordered[1:]):
        assert lo.min() > hi.max()
        checked += 1
    assert checked > 10


def test_score_tracks_blur_and_noise_measured_on_the_images():
  for split in iqa.IQA_SPLITS:
    blur = iqa.synthetic_iqa(split, distortions=("blur",))
    assert _spearman(blur.scores, _sharpness(blur.images)) > 0.8, split
  for split in ("validation", "test"):
    noise = iqa.synthetic_iqa(split, distortions=("noise",))
    assert _spearman(noise.scores, -_noise_level(noise.images)) > 0.8, split
    # Only the selected distortion is applied.
    assert np.all(noise.params["blur_sigma"] == 0) and np.all(noise.params["jpeg_quality"] == 0)
    assert len(np.unique(noise.params["noise_sigma"])) == 5


def test_affine_map_is_monotone_per_dataset():
  plain = iqa.synthetic_iqa("validation", num_per_image=32, seed=5)
  mapped = iqa.synthetic_iqa("validation", num_per_image=32, seed=5, affine=True)
  a, b = mapped.params["affine"]
  assert a > 0 and (a, b) != (1.0, 0.0)
  np.testing.assert_allclose(mapped.scores, a * plain.scores + b, rtol=1e-5, atol=1e-4)
  test = iqa.synthetic_iqa("test", num_per_image=8, seed=5, affine=True)
  np.testing.assert_array_equal(test.params["affine"], mapped.params["affine"])
  other = iqa.synthetic_iqa("test", num_per_image=8, seed=6, affine=True)
  assert not np.array_equal(other.params["affine"], mapped.params["affine"])


def test_augmentation_only_with_seeds_and_augment():
  idx = np.arange(16)
  seeds = np.arange(100, 116, dtype=np.uint64)
  plain = iqa.synthetic_iqa("validation", num_per_image=8)
  aug = iqa.synthetic_iqa("validation", num_per_image=8, augment=True)
  base = plain.get(idx)["image"]
  np.testing.assert_array_equal(aug.get(idx)["image"], base)  # no seeds: eval preprocessing
  np.testing.assert_array_equal(plain.get(idx, seeds)["image"], base)  # augment=False
  out = aug.get(idx, seeds)
  flipped = [np.array_equal(o, b[:, ::-1]) for o, b in zip(out["image"], base)]
  same = [np.array_equal(o, b) for o, b in zip(out["image"], base)]
  assert all(f or s for f, s in zip(flipped, same)) and 0 < sum(flipped) < 16
  np.testing.assert_array_equal(aug.get(idx, seeds)["image"], out["image"])
  np.testing.assert_array_equal(out["score"], plain.scores[idx])


@pytest.mark.parametrize("kwargs, match", [
    (dict(split="val"), "`split` must be one of"),
    (dict(split="train", image_size=8), "`image_size` must be an int in"),
    (dict(split="train", distortions=("blur", "haze")), "`distortions` must be"),
    (dict(split="train", levels=1), "`levels` must be an int >= 2"),
    (dict(split="train", num_per_image=0), "`num_per_image` must be a positive int"),
    (dict(split="train", seed=-1), "`seed` must be an int >= 0"),
])
def test_synthetic_errors(kwargs, match):
  with pytest.raises(ValueError, match=match):
    iqa.synthetic_iqa(**kwargs)


# ------------------------------------------------------------------------------------------
# KonIQ-10k on a fake release.

KONIQ_SPLIT = ["training"] * 4 + ["validation"] * 2 + ["test"] * 3


def _colour(i):
  return np.array([20 + 19 * i, 230 - 17 * i, 60 + 11 * i], np.int64) % 256


def _write_image(path, i, size=(24, 32)):
  rng = np.random.default_rng(i)
  img = np.clip(_colour(i) + rng.integers(-10, 10, size + (3,)), 0, 255)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(img.astype(np.uint8)).save(path)


def _write_koniq(root, sets=True, folder="1024x768"):
  names = [f"{1000 + i}.jpg" for i in range(len(KONIQ_SPLIT))]
  header = ["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS", "SD", "MOS_zscore"]
  if sets:
    header.append("set")
  rows = []
  for i, name in enumerate(names):
    _write_image(os.path.join(root, folder, name), i)
    row = [name, 1, 2, 3, 4, 5, 15, f"{1.5 + 0.3 * i:.4f}", "0.5", f"{10.0 + 8 * i:.4f}"]
    rows.append(row + ([KONIQ_SPLIT[i]] if sets else []))
  csv_name = iqa.KONIQ_SETS_CSV if sets else iqa.KONIQ_SCORES_CSV
  with open(os.path.join(root, csv_name), "w", newline="") as f:
    w = csv.writer(f, quoting=csv.QUOTE_NONNUMERIC)  # the release quotes its fields
    w.writerow(header)
    w.writerows(rows)
  return names


def test_koniq_owner_split_labels_and_resize(tmp_path):
  names = _write_koniq(str(tmp_path))
  want = {"train": range(0, 4), "validation": range(4, 6), "test": range(6, 9)}
  for split, rows in want.items():
    src = create_dataset("koniq10k", split, data_dir=str(tmp_path), image_size=(12, 16))
    assert len(src) == len(rows) and src.info.image_shape == (12, 16, 3)
    assert src.image_names == [names[i] for i in rows]
    np.testing.assert_allclose(src.scores, [1.5 + 0.3 * i for i in rows], rtol=1e-6)
  batch = src.get(np.array([2, 0]))
  assert batch["image"].shape == (2, 12, 16, 3) and batch["image"].dtype == np.float32
  raw = np.asarray(Image.open(tmp_path / "1024x768" / names[8]).convert("RGB"))
  expected = normalize(augment.resize(raw, (12, 16)), IMAGENET_MEAN, IMAGENET_STD)
  np.testing.assert_allclose(batch["image"][0], expected, atol=1e-6)
  zscore = iqa.koniq10k("test", data_dir=str(tmp_path), score_column="MOS_zscore")
  np.testing.assert_allclose(zscore.scores, [58.0, 66.0, 74.0], rtol=1e-6)
  assert zscore.info.image_shape == (498, 664, 3)  # the paper's size by default
  native = iqa.koniq10k("test", data_dir=str(tmp_path), image_size=None)
  assert native.info.image_shape == (768, 1024, 3)
  assert native.get(np.array([1]))["image"].shape == (1, 768, 1024, 3)


def test_koniq_split_from_linearityiqa_mat(tmp_path):
  scipy_io = pytest.importorskip("scipy.io")
  root = str(tmp_path)
  names = _write_koniq(root, sets=False, folder="512x384")
  n = len(names)  # 9: cuts int(9 * 7058/10073) = 6 and int(9 * 8058/10073) = 7
  perm = np.random.default_rng(0).permutation(n) + 1  # MATLAB ids 1..n
  other = np.random.default_rng(1).permutation(n) + 1
  cell = np.empty((1, n), dtype=object)
  cell[0, :] = names[::-1]  # a different order than the CSV: matched by name
  scipy_io.savemat(os.path.join(root, iqa.KONIQ_INFO_MAT), {
      "im_names": cell, "ref_ids": np.arange(1, n + 1)[:, None].astype(float),
      "index": np.stack([perm, other]).astype(float),  # experiments x images (MATLAB)
      "subjective_scores": (np.arange(n) * 10.0)[::-1][None],
  })
  mat_order = names[::-1]
  expected = {"train": perm[:6], "validation": perm[6:7], "test": perm[7:]}
  for split, ids in expected.items():
    src = iqa.koniq10k(split, data_dir=root, image_size=(8, 8))
    assert sorted(src.image_names) == sorted(mat_order[i - 1] for i in ids)
    rows = [names.index(nm) for nm in src.image_names]
    np.testing.assert_allclose(src.scores, [1.5 + 0.3 * i for i in rows], rtol=1e-6)
    mat_scores = iqa.koniq10k(split, data_dir=root, image_size=(8, 8),
                              score_column="subjective_scores").scores
    np.testing.assert_allclose(mat_scores, [10.0 * i for i in rows])
  # exp_id picks another permutation.
  assert len(iqa.koniq10k("train", data_dir=root, exp_id=1).scores) == 6
  assert (sorted(iqa.koniq10k("test", data_dir=root, exp_id=1).image_names)
          == sorted(mat_order[i - 1] for i in other[7:]))
  # An images x experiments index (as h5py reads a v7.3 file) gives the same split.
  before = iqa.koniq10k("validation", data_dir=root, exp_id=1).image_names
  scipy_io.savemat(os.path.join(root, iqa.KONIQ_INFO_MAT), {
      "im_names": cell, "ref_ids": np.arange(1, n + 1)[None].astype(float),
      "index": np.stack([perm, other], axis=1).astype(float)})
  assert iqa.koniq10k("validation", data_dir=root, exp_id=1).image_names == before


def test_koniq_errors(tmp_path):
  root = str(tmp_path / "koniq")
  with pytest.raises(ValueError, match="pass `data_dir`"):
    iqa.koniq10k("train")
  with pytest.raises(FileNotFoundError, match="`data_dir` .* is not a directory"):
    iqa.koniq10k("train", data_dir=root)
  os.makedirs(os.path.join(root, "1024x768"))
  with pytest.raises(FileNotFoundError, match="no label file.*koniq10k_distributions_sets"):
    iqa.koniq10k("train", data_dir=root)
  names = _write_koniq(root)
  with pytest.raises(ValueError, match="`split` must be one of"):
    iqa.koniq10k("val", data_dir=root)
  with pytest.raises(ValueError, match="`score_column` 'mos'.*'MOS'.*'MOS_zscore'"):
    iqa.koniq10k("train", data_dir=root, score_column="mos")
  with pytest.raises(ValueError, match="`image_size` must be"):
    iqa.koniq10k("train", data_dir=root, image_size=(1, 2, 3))
  with pytest.raises(FileNotFoundError, match="no image folder 512x384"):
    iqa.koniq10k("train", data_dir=root, resolution="512x384")
  os.remove(os.path.join(root, "1024x768", names[1]))
  with pytest.raises(FileNotFoundError, match=f"1 of 4 image files are missing.*{names[1]}"):
    iqa.koniq10k("train", data_dir=root)
  os.remove(os.path.join(root, iqa.KONIQ_SETS_CSV))
  _write_koniq(root, sets=False)
  with pytest.raises(FileNotFoundError, match="no `set` column.*KonIQ-10kinfo.mat"):
    iqa.koniq10k("train", data_dir=root)


# ------------------------------------------------------------------------------------------
# CLIVE on a fake release.

CLIVE_TEST = ["10.bmp", "11.bmp", "1000.JPG", "12.bmp", "13.bmp"]


def _write_clive(root, scipy_io, n_mos=None):
  names = [f"t{i}.bmp" for i in range(1, 8)] + CLIVE_TEST
  for i, name in enumerate(names):
    folder = "Images/trainingImages" if i < 7 else "Images"
    size = (500, 500) if i % 2 else (30, 40)
    _write_image(os.path.join(root, folder, name), i, size=size)
  os.makedirs(os.path.join(root, "Data"), exist_ok=True)
  cell = np.empty((len(names), 1), dtype=object)
  cell[:, 0] = names
  mos = 5.0 * np.arange(len(names))[None] + 1.0
  scipy_io.savemat(os.path.join(root, iqa.CLIVE_IMAGES_MAT), {"AllImages_release": cell})
  scipy_io.savemat(os.path.join(root, iqa.CLIVE_MOS_MAT),
                   {"AllMOS_release": mos[:, :n_mos] if n_mos else mos})
  return names


def test_clive_reader_splits_labels_and_resize(tmp_path):
  scipy_io = pytest.importorskip("scipy.io")
  root = str(tmp_path)
  names = _write_clive(root, scipy_io)
  for split in iqa.IQA_SPLITS:  # cross-dataset test set: every split is all 1,162 (here 5)
    src = create_dataset("clive", split, data_dir=root, image_size=(10, 14))
    assert src.image_names == CLIVE_TEST
    np.testing.assert_allclose(src.scores, 5.0 * np.arange(7, 12) + 1.0)
  assert src.info.image_shape == (10, 14, 3)
  batch = src.get(np.array([0, 1]))
  for k, name in enumerate(CLIVE_TEST[:2]):  # 30x40 and 500x500 originals
    raw = np.asarray(Image.open(os.path.join(root, "Images", name)).convert("RGB"))
    want = augment.resize(augment.resize(raw, (500, 500)) if raw.shape[0] != 500 else raw,
                          (10, 14))
    np.testing.assert_allclose(batch["image"][k], normalize(want, IMAGENET_MEAN, IMAGENET_STD),
                               atol=1e-6)
  assert iqa.clive("test", data_dir=root, image_size=None).info.image_shape == (500, 500, 3)
  assert iqa.clive("test", data_dir=root).info.image_shape == (498, 664, 3)
  full = iqa.clive("test", data_dir=root, include_training_images=True, image_size=4)
  assert full.image_names == names and len(full.get(np.arange(12))["score"]) == 12
  parts = {s: iqa.clive(s, data_dir=root, split_fractions=(0.6, 0.2, 0.2), image_size=4)
           for s in iqa.IQA_SPLITS}
  assert [len(p) for p in parts.values()] == [3, 1, 1]
  assert sorted(sum((p.image_names for p in parts.values()), [])) == sorted(CLIVE_TEST)


def test_clive_errors(tmp_path):
  scipy_io = pytest.importorskip("scipy.io")
  root = str(tmp_path)
  with pytest.raises(FileNotFoundError, match="AllImages_release.mat is missing"):
    iqa.clive("test", data_dir=root)
  _write_clive(root, scipy_io, n_mos=10)
  with pytest.raises(ValueError, match="lists 12 images but .* has 10 scores"):
    iqa.clive("test", data_dir=root)
  _write_clive(root, scipy_io)
  with pytest.raises(ValueError, match="`split` must be one of"):
    iqa.clive("testing", data_dir=root)
  with pytest.raises(ValueError, match="`split_fractions` must be 3 non-negative"):
    iqa.clive("test", data_dir=root, split_fractions=(0.5, 0.5, 0.5))
  os.remove(os.path.join(root, "Images", "12.bmp"))
  with pytest.raises(FileNotFoundError, match="1 of 5 image files are missing.*12.bmp"):
    iqa.clive("test", data_dir=root)


# ------------------------------------------------------------------------------------------
# TFDS builders (array_record: prepared and read without TensorFlow).


def test_tfds_builders_prepare_and_read_back_without_tensorflow(tmp_path):
  pytest.importorskip("tensorflow_datasets")
  pytest.importorskip("array_record")
  scipy_io = pytest.importorskip("scipy.io")
  from jaxvision.data import iqa_tfds
  koniq_dir, clive_dir, data_dir = (str(tmp_path / d) for d in ("koniq", "clive", "tfds"))
  _write_koniq(koniq_dir)
  _write_clive(clive_dir, scipy_io)
  with pytest.raises(FileNotFoundError, match="iqa_tfds.prepare"):
    iqa.koniq10k("train", tfds_data_dir=data_dir)
  builder = iqa_tfds.prepare("koniq10k", manual_dir=koniq_dir, data_dir=data_dir)
  assert {s: builder.info.splits[s].num_examples for s in iqa.IQA_SPLITS} == {
      "train": 4, "validation": 2, "test": 3}
  iqa_tfds.prepare("clive", manual_dir=clive_dir, data_dir=data_dir)
  for split in iqa.IQA_SPLITS:
    files = iqa.koniq10k(split, data_dir=koniq_dir, image_size=(12, 16))
    stored = create_dataset("koniq10k", split, tfds_data_dir=data_dir, image_size=(12, 16))
    assert len(stored) == len(files) and stored.info == files.info
    # TFDS shuffles the examples: compare as sets (the scores are distinct).
    assert sorted(stored.scores) == pytest.approx(sorted(files.scores))
    z = iqa.koniq10k(split, tfds_data_dir=data_dir, score_column="MOS_zscore")
    assert sorted(z.scores) == pytest.approx(
        sorted(iqa.koniq10k(split, data_dir=koniq_dir, score_column="MOS_zscore").scores))
    s_batch, f_batch = stored.get(np.arange(len(stored))), files.get(np.arange(len(files)))
    for img, score in zip(s_batch["image"], s_batch["score"]):
      k = int(np.argmin(np.abs(f_batch["score"] - score)))
      np.testing.assert_array_equal(img, f_batch["image"][k])  # the same JPEG bytes
  assert iqa.koniq10k("test", tfds_data_dir=data_dir, image_size=None).info.image_shape == (
      24, 32, 3)
  c_files = iqa.clive("test", data_dir=clive_dir, image_size=(10, 14))
  c_stored = iqa.clive("validation", tfds_data_dir=data_dir, image_size=(10, 14))
  assert len(c_stored) == 5
  assert sorted(c_stored.scores) == pytest.approx(sorted(c_files.scores))
  s_batch, f_batch = c_stored.get(np.arange(5)), c_files.get(np.arange(5))
  for img, score in zip(s_batch["image"], s_batch["score"]):
    k = int(np.argmin(np.abs(f_batch["score"] - score)))
    np.testing.assert_array_equal(img, f_batch["image"][k])  # PNG is lossless
  with pytest.raises(ValueError, match="not both"):
    iqa.clive("test", data_dir=clive_dir, tfds_data_dir=data_dir)
