"""Spectral-recovery sources (issue 7): the synthetic_hsi scenes built from the committed
colour-science asset, and the NTIRE 2022 / NTIRE 2020 / CAVE readers and TFDS builders on
tiny fake releases written into tmp_path (MATLAB v7.3 .mat files written with h5py, v5
files with scipy, 16-bit band PNG stacks)."""

import os
import time

import numpy as np
import pytest
from PIL import Image

from jaxvision.data import create_dataset, dataset_splits, list_datasets, spectral

h5py = pytest.importorskip("h5py")


def test_registered_with_their_splits():
  assert {"synthetic_hsi", "ntire2022", "ntire2020", "cave"} <= set(list_datasets())
  assert dataset_splits("synthetic_hsi") == ("train", "validation", "test")
  assert dataset_splits("ntire2022") == ("train", "validation")
  assert dataset_splits("ntire2020") == ("train", "validation")
  assert dataset_splits("cave") == ("train", "test")


# ------------------------------------------------------------------------------------------
# The asset and the camera responses.


def test_asset_is_small_and_physical():
  path = os.path.join(os.path.dirname(spectral.__file__), spectral.ASSET)
  assert os.path.getsize(path) < 100_000
  a = spectral.measured_spectra()
  np.testing.assert_array_equal(a["wavelengths"], np.arange(400, 701, 10))
  assert a["reflectances"].shape == (83, 31) and len(a["reflectance_names"]) == 83
  assert 0.01 < a["reflectances"].min() and a["reflectances"].max() <= 1.0
  assert a["illuminants"].shape == (9, 31) and np.all(a["illuminants"] > 0)
  np.testing.assert_allclose(a["illuminants"].max(1), 1.0)
  assert "BSD-3-Clause" in str(a["provenance"])
  for camera in spectral.CAMERAS:
    r = spectral.camera_response(camera)
    assert r.shape == (31, 3) and r.dtype == np.float32
    np.testing.assert_allclose(r.sum(0), 1.0, rtol=1e-6)   # flat spectra render grey
  assert np.all(spectral.camera_response("nikon_d5100") >= 0)
  assert spectral.camera_response("cie1931").min() < 0      # sRGB's negative lobes
  # Peaks in the right order: red > green > blue (nm).
  peaks = spectral.WAVELENGTHS[np.argmax(spectral.camera_response("nikon_d5100"), axis=0)]
  assert peaks[0] > peaks[1] > peaks[2]


def test_asset_equals_a_fresh_extraction_from_colour():
  pytest.importorskip("colour")
  from jaxvision.data import make_spectral_assets
  fresh = make_spectral_assets.extract()
  stored = dict(spectral.measured_spectra())
  assert make_spectral_assets.compare(stored, fresh) == []


# ------------------------------------------------------------------------------------------
# synthetic_hsi


def test_synthetic_batch_format_ranges_and_linear_camera():
  src = create_dataset("synthetic_hsi", "train", rgb_norm="none")
  assert src.info.num_classes == 0 and src.info.image_shape == (64, 64, 3)
  assert len(src) == src.info.num_examples == 1024
  assert len(create_dataset("synthetic_hsi", "validation")) == 128
  batch = src.get(np.array([0, 5, 1023]))
  assert set(batch) == {"rgb", "cube"}
  assert batch["rgb"].shape == (3, 64, 64, 3) and batch["rgb"].dtype == np.float32
  assert batch["cube"].shape == (3, 64, 64, 31) and batch["cube"].dtype == np.float32
  cube = batch["cube"]
  assert cube.min() > 0 and np.allclose(cube.max(axis=(1, 2, 3)), 1.0)   # (0, 1], max 1
  # Exactly linear: rgb = cube @ R (the source's camera), in [0, 1].
  np.testing.assert_allclose(batch["rgb"], cube @ src.camera, rtol=1e-5, atol=1e-6)
  assert 0 <= batch["rgb"].min() and batch["rgb"].max() <= 1
  # MST++'s min-max normalisation: an affine map per image onto [0, 1].
  mm = create_dataset("synthetic_hsi", "train").get(np.array([0, 5, 1023]))
  np.testing.assert_array_equal(mm["cube"], cube)
  for x, lin in zip(mm["rgb"], batch["rgb"]):
    assert x.min() == 0 and x.max() == 1
    np.testing.assert_allclose(x, (lin - lin.min()) / (lin.max() - lin.min()), atol=1e-6)


def test_synthetic_scenes_are_piecewise_smooth_measured_spectra():
  rng = np.random.default_rng(0)
  cube, p = spectral.synthetic_scene(rng, 32)
  k = len(p["reflectances"])
  assert spectral.MIN_REGIONS <= k <= spectral.MAX_REGIONS
  # Within a region the spectrum is the region's reflectance x illuminant, up to a scale
  # (the shading): the normalised spectra are constant per region.
  light = spectral.illuminant_spectrum("D65")
  for r in np.unique(p["labels"]):
    s = cube[p["labels"] == r]
    unit = s / s.sum(-1, keepdims=True)
    want = p["reflectances"][r] * light
    np.testing.assert_allclose(unit, np.broadcast_to(want / want.sum(), unit.shape),
                               rtol=1e-4, atol=1e-6)
  # Shading spans [0.3, 1]: within-region intensity ratios reach 1/0.3 overall at most.
  for layout in spectral.LAYOUTS:
    for spectra in spectral.SPECTRA:
      c, q = spectral.synthetic_scene(np.random.default_rng(1), 16, layout=layout,
                                      spectra=spectra, illuminant="random")
      assert c.shape == (16, 16, 31) and c.min() > 0 and c.max() == 1.0
      assert q["illuminant"] in spectral.illuminant_names()
  shade = spectral._shading(np.random.default_rng(2), 64)
  np.testing.assert_allclose([shade.min(), shade.max()], [0.3, 1.0], rtol=1e-6)
  assert np.abs(np.diff(shade, axis=0)).max() < 0.25   # smooth (<= 1.5 cycles per image)
  refl = spectral.parametric_reflectances(np.random.default_rng(3), 50)
  assert refl.shape == (50, 31) and refl.min() >= 0.01 and refl.max() <= 1.0


def test_synthetic_is_deterministic_seeded_and_fast():
  a = spectral.synthetic_hsi("test", num_examples=20, seed=3)
  b = spectral.synthetic_hsi("test", num_examples=5, seed=3)
  idx = np.array([4, 1])
  for k in ("rgb", "cube"):
    np.testing.assert_array_equal(a.get(idx)[k], b.get(idx)[k])
  other = [spectral.synthetic_hsi(s, num_examples=5, seed=3).get(np.array([1]))["cube"]
           for s in ("train", "validation")] + [
               spectral.synthetic_hsi("test", num_examples=5, seed=4).get(np.array([1]))["cube"]]
  for c in other:
    assert not np.array_equal(c, a.get(np.array([1]))["cube"])
  src = spectral.synthetic_hsi("train")
  src.get(np.arange(2))  # warm the asset cache
  t = time.perf_counter()
  src.get(np.arange(16))
  assert time.perf_counter() - t < 0.5   # measured ~0.06 s on one shared core


def test_synthetic_augmentation_is_mst_and_seeded():
  src = spectral.synthetic_hsi("train", image_size=16, num_examples=4)
  idx, seeds = np.arange(4), np.array([11, 12, 13, 14], np.uint64)
  plain = src.get(idx)
  aug = src.get(idx, seeds)
  again = src.get(idx, seeds)
  for k in ("rgb", "cube"):
    np.testing.assert_array_equal(aug[k], again[k])
  for j, s in enumerate(seeds):
    want = spectral.mst_augment((plain["rgb"][j], plain["cube"][j]),
                                np.random.default_rng(int(s)))
    np.testing.assert_array_equal(aug["rgb"][j], want[0])
    np.testing.assert_array_equal(aug["cube"][j], want[1])
  # The 16 draws give the 8 symmetries of the square; the pair stays registered.
  x = np.arange(9.0).reshape(3, 3, 1)
  outs = {spectral.mst_augment([x], np.random.default_rng(s))[0].tobytes() for s in range(200)}
  assert len(outs) == 8
  no_aug = spectral.synthetic_hsi("train", image_size=16, num_examples=4, augment=False)
  np.testing.assert_array_equal(no_aug.get(idx, seeds)["cube"], plain["cube"])


def test_synthetic_options_and_errors():
  for camera in spectral.CAMERAS:
    src = spectral.synthetic_hsi("validation", image_size=8, num_examples=2, camera=camera,
                                 illuminant="A", spectra="mixed", layout="rectangles")
    b = src.get(np.arange(2))
    assert np.isfinite(b["rgb"]).all() and b["rgb"].min() >= 0 and b["rgb"].max() <= 1
    np.testing.assert_array_equal(src.camera, spectral.camera_response(camera))
  with pytest.raises(ValueError, match=r"synthetic_hsi: `camera` must be one of .*'canon'"):
    spectral.synthetic_hsi("train", camera="canon")
  with pytest.raises(ValueError, match="`illuminant` must be one of"):
    spectral.synthetic_hsi("train", illuminant="D93")
  with pytest.raises(ValueError, match=r"`image_size` must be an int in \[8, 1024\]"):
    spectral.synthetic_hsi("train", image_size=4)
  with pytest.raises(ValueError, match="`split` must be one of"):
    spectral.synthetic_hsi("valid")
  with pytest.raises(IndexError, match=r"indices must lie in \[0, 3\)"):
    spectral.synthetic_hsi("train", num_examples=3).get(np.array([3]))
  with pytest.raises(ValueError, match="one seed per index"):
    spectral.synthetic_hsi("train", num_examples=3).get(np.array([0, 1]), np.array([1]))


# ------------------------------------------------------------------------------------------
# Fake releases.

H, W = 20, 24   # fake scene size (ARAD is 482 x 512)


def _cube(seed, h=H, w=W):
  rng = np.random.default_rng(seed)
  return rng.uniform(0.01, 1.0, size=(h, w, 31)).astype(np.float32)


def _rgb(seed, h=H, w=W):
  rng = np.random.default_rng(1000 + seed)
  return rng.integers(10, 240, size=(h, w, 3), dtype=np.uint8)


def _write_mat73(path, cube):
  """A MATLAB v7.3 file as MATLAB writes it: a 512-byte header userblock, then HDF5 with the
  column-major (H, W, bands) array, which h5py sees as (bands, W, H)."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with h5py.File(path, "w", userblock_size=512) as f:
    f.create_dataset("cube", data=cube.transpose(2, 1, 0), compression="gzip")
    f.create_dataset("bands", data=np.arange(400.0, 701.0, 10.0)[None])
  with open(path, "r+b") as f:
    f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: fake HDF5 schema 1.00 .")


def _write_image(path, rgb):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(rgb).save(path, **({"quality": 95} if path.endswith(".jpg") else {}))


def _make_ntire2022(root, scenes=range(1, 951), official=False):
  """ARAD_1K files; only a few scenes get real content, the rest are 1-pixel stand-ins
  whose existence the reader checks."""
  for k in scenes:
    name = f"ARAD_1K_{k:04d}"
    valid = official and k > 900
    spec, rgbd = ("Valid_Spec", "Valid_RGB") if valid else ("Train_Spec", "Train_RGB")
    _write_mat73(os.path.join(root, spec, name + ".mat"), _cube(k))
    _write_image(os.path.join(root, rgbd, name + ".jpg"), _rgb(k))


def _mst_rgb(path, norm=True):
  """MST++'s RGB preprocessing (cv2.imread + bgr2rgb == Pillow's RGB), in numpy."""
  bgr = np.float32(np.asarray(Image.open(path).convert("RGB")))
  return (bgr - bgr.min()) / (bgr.max() - bgr.min()) if norm else bgr / 255.0


def test_read_mat_cube_v73_and_v5(tmp_path):
  cube = _cube(0)
  p73 = str(tmp_path / "a.mat")
  _write_mat73(p73, cube)
  with h5py.File(p73, "r") as f:                                   # MST++'s reading:
    mst = np.transpose(np.float32(np.array(f["cube"])), [0, 2, 1])  # (31, H, W)
  np.testing.assert_array_equal(spectral.read_mat_cube(p73), cube)
  np.testing.assert_array_equal(spectral.read_mat_cube(p73).transpose(2, 0, 1), mst)
  scipy_io = pytest.importorskip("scipy.io")
  p5 = str(tmp_path / "b.mat")
  scipy_io.savemat(p5, {"cube": cube, "bands": np.arange(400, 701, 10)})
  np.testing.assert_array_equal(spectral.read_mat_cube(p5), cube)
  with pytest.raises(ValueError, match=r"expected a variable 'rad'; found \['bands', 'cube'\]"):
    spectral.read_mat_cube(p73, key="rad")
  bad = str(tmp_path / "c.mat")
  scipy_io.savemat(bad, {"cube": cube[..., :30]})
  with pytest.raises(ValueError, match="must have 31 bands"):
    spectral.read_mat_cube(bad)
  with pytest.raises(FileNotFoundError, match="cube file .* is missing"):
    spectral.read_mat_cube(str(tmp_path / "none.mat"))


def test_ntire2022_reads_like_mst_plus_plus(tmp_path):
  root = str(tmp_path / "ARAD_1K")
  _make_ntire2022(root, scenes=list(range(1, 4)) + list(range(901, 951)))
  with pytest.raises(FileNotFoundError, match=r"ntire2022: 1794 of 1800 files are missing.*"
                     r"Train_Spec/ARAD_1K_0004.mat"):
    create_dataset("ntire2022", "train", data_dir=root)
  val = create_dataset("ntire2022", "validation", data_dir=root)
  assert len(val) == 50 and val.info.image_shape == (H, W, 3)
  assert val.scene_names[0] == "ARAD_1K_0901" and val.scene_names[-1] == "ARAD_1K_0950"
  b = val.get(np.array([0, 49]))
  np.testing.assert_array_equal(b["cube"][0], _cube(901))
  np.testing.assert_array_equal(b["cube"][1], _cube(950))
  want = _mst_rgb(os.path.join(root, "Train_RGB", "ARAD_1K_0950.jpg"))
  np.testing.assert_allclose(b["rgb"][1], want, atol=1e-6)
  assert b["rgb"].min() == 0 and b["rgb"].max() == 1
  plain = create_dataset("ntire2022", "validation", data_dir=root, rgb_norm="none", bgr=True)
  np.testing.assert_allclose(plain.get(np.array([49]))["rgb"][0],
                             _mst_rgb(os.path.join(root, "Train_RGB", "ARAD_1K_0950.jpg"),
                                      norm=False)[..., ::-1], atol=1e-6)
  # The official layout (Valid_Spec / Valid_RGB) is found too.
  off = str(tmp_path / "official")
  _make_ntire2022(off, scenes=range(901, 951), official=True)
  np.testing.assert_array_equal(
      create_dataset("ntire2022", "validation", data_dir=off).get(np.array([3]))["cube"][0],
      _cube(904))


def test_patches_follow_mst_plus_plus_enumeration(tmp_path, monkeypatch):
  monkeypatch.setitem(spectral.NTIRE2022_SCENES, "train", range(1, 4))
  monkeypatch.setitem(spectral.NTIRE2022_SCENES, "validation", range(901, 903))
  root = str(tmp_path / "ARAD_1K")
  _make_ntire2022(root, scenes=[1, 2, 3, 901, 902])
  p, stride = 8, 4
  src = spectral.ntire2022("train", data_dir=root, patch_size=p, stride=stride)
  per_line, per_col = (W - p) // stride + 1, (H - p) // stride + 1
  assert src.patches_per_scene == per_line * per_col and len(src) == 3 * per_line * per_col
  assert src.info.image_shape == (p, p, 3)
  # The evaluation split stays whole scenes with the same options (MST++ validates so).
  val = spectral.ntire2022("validation", data_dir=root, patch_size=p, stride=stride)
  assert len(val) == 2 and val.info.image_shape == (H, W, 3)
  full = spectral.ntire2022("train", data_dir=root).get(np.array([2]))
  idx = 2 * src.patches_per_scene + per_line + 2    # scene 2, row 1, column 2
  b = src.get(np.array([idx]))
  top, left = 1 * stride, 2 * stride
  np.testing.assert_array_equal(b["cube"][0], full["cube"][0, top:top + p, left:left + p])
  # RGB is normalised over the whole image before cropping (MST++).
  np.testing.assert_array_equal(b["rgb"][0], full["rgb"][0, top:top + p, left:left + p])
  aug = src.get(np.array([idx]), np.array([7], np.uint64))
  want = spectral.mst_augment((b["rgb"][0], b["cube"][0]), np.random.default_rng(7))
  np.testing.assert_array_equal(aug["cube"][0], want[1])
  with pytest.raises(ValueError, match="`augment` .* needs square examples"):
    spectral.scene_source("x", ["a"], lambda i: None, (4, 6), augment=True)


def test_ntire2020_layout_tracks_and_errors(tmp_path):
  scipy_io = pytest.importorskip("scipy.io")
  root = str(tmp_path / "NTIRE2020")
  for part, ids in (("Train", (1, 2, 3)), ("Validation", (451, 452))):
    for k in ids:
      name = f"ARAD_HS_{k:04d}"
      d = os.path.join(root, f"NTIRE2020_{part}_Spectral")
      os.makedirs(d, exist_ok=True)
      scipy_io.savemat(os.path.join(d, name + ".mat"), {"cube": _cube(k), "norm_factor": 1.0})
      _write_image(os.path.join(root, f"NTIRE2020_{part}_Clean", name + "_clean.png"), _rgb(k))
  train = create_dataset("ntire2020", "train", data_dir=root)
  assert train.scene_names == ["ARAD_HS_0001", "ARAD_HS_0002", "ARAD_HS_0003"]
  b = train.get(np.array([1]))
  np.testing.assert_array_equal(b["cube"][0], _cube(2))
  rgb = _rgb(2).astype(np.float32)
  np.testing.assert_allclose(b["rgb"][0], (rgb - rgb.min()) / (rgb.max() - rgb.min()),
                             atol=1e-6)   # PNG: lossless
  assert len(create_dataset("ntire2020", "validation", data_dir=root)) == 2
  with pytest.raises(FileNotFoundError, match=r"ntire2020: 3 of 3 files are missing.*"
                     r"ARAD_HS_0001_RealWorld.jpg"):
    create_dataset("ntire2020", "train", data_dir=root, track="real_world")
  with pytest.raises(ValueError, match="`track` must be one of"):
    create_dataset("ntire2020", "train", data_dir=root, track="noisy")
  with pytest.raises(ValueError, match=r"ntire2020: pass `data_dir`.*never downloads"):
    create_dataset("ntire2020", "train")
  with pytest.raises(FileNotFoundError, match="NTIRE2020_Train_Spectral is missing"):
    create_dataset("ntire2020", "train", data_dir=str(tmp_path))
  with pytest.raises(FileNotFoundError, match="`data_dir` .* is not a directory"):
    create_dataset("ntire2022", "train", data_dir=str(tmp_path / "nowhere"))


def _write_cave_scene(root, scene, cube, *, bmp=True, eight_bit_rgba=False):
  d = os.path.join(root, f"{scene}_ms", f"{scene}_ms")
  os.makedirs(d, exist_ok=True)
  for b in range(31):
    band = cube[..., b]
    path = os.path.join(d, f"{scene}_ms_{b + 1:02d}.png")
    if eight_bit_rgba:   # the release's quirk: some scenes are 8-bit RGBA band images
      v = np.round(band * 255).astype(np.uint8)
      Image.fromarray(np.stack([v, v, v, np.full_like(v, 255)], -1), "RGBA").save(path)
    else:
      Image.fromarray(np.round(band * 65535).astype(np.uint16)).save(path)
  if bmp:
    Image.fromarray(_rgb(len(scene), *cube.shape[:2])).save(os.path.join(d, f"{scene}_RGB.bmp"))


def test_cave_split_bands_and_rgb(tmp_path):
  split = spectral.cave_split()
  assert len(split["train"]) == 20 and len(split["test"]) == 12
  assert set(split["train"]) | set(split["test"]) == set(spectral.CAVE_SCENES)
  assert split == spectral.cave_split(spectral.CAVE_SCENES[::-1])   # order-independent
  assert split != spectral.cave_split(split_seed=1)

  root = str(tmp_path / "complete_ms_data")
  scenes = ("balloons", "beads", "cd", "watercolors")
  cubes = {s: _cube(i, 16, 16) for i, s in enumerate(scenes)}
  for s in scenes:
    _write_cave_scene(root, s, cubes[s], eight_bit_rgba=(s == "watercolors"))
  kw = dict(data_dir=root, scenes=scenes, num_train=2)
  want = spectral.cave_split(scenes, spectral.CAVE_SPLIT_SEED, 2)
  train, test = (create_dataset("cave", s, **kw) for s in ("train", "test"))
  assert tuple(train.scene_names) == want["train"] and tuple(test.scene_names) == want["test"]
  both = {**dict(zip(train.scene_names, train.get(np.arange(2))["cube"])),
          **dict(zip(test.scene_names, test.get(np.arange(2))["cube"]))}
  for s in scenes:
    tol = 0.5 / 255 if s == "watercolors" else 0.5 / 65535
    np.testing.assert_allclose(both[s], cubes[s], atol=tol + 1e-7, err_msg=s)
  # RGB: the release's bmp by default; rendered through the camera on request.
  b = train.get(np.arange(1))
  x = _rgb(len(train.scene_names[0]), 16, 16).astype(np.float32)
  np.testing.assert_allclose(b["rgb"][0], (x - x.min()) / (x.max() - x.min()), atol=1e-6)
  assert train.camera is None
  rendered = create_dataset("cave", "train", rgb="render", camera="cie1931", **kw)
  lin = b["cube"][0] @ spectral.camera_response("cie1931")
  np.testing.assert_allclose(rendered.get(np.arange(1))["rgb"][0],
                             (lin - lin.min()) / (lin.max() - lin.min()), atol=1e-5)
  np.testing.assert_array_equal(rendered.camera, spectral.camera_response("cie1931"))
  # Without a bmp: "auto" renders every scene, "file" raises.
  os.remove(os.path.join(root, "cd_ms", "cd_ms", "cd_RGB.bmp"))
  all4 = dict(data_dir=root, scenes=scenes, num_train=4)
  assert create_dataset("cave", "train", **all4).camera is not None
  with pytest.raises(FileNotFoundError, match="rgb='file' but some scenes have no"):
    create_dataset("cave", "train", rgb="file", **all4)
  with pytest.raises(FileNotFoundError, match=r"cave: scene 'balloons' not found"):
    create_dataset("cave", "train", data_dir=str(tmp_path), scenes=scenes, num_train=4)
  with pytest.raises(ValueError, match="split 'test' is empty"):
    create_dataset("cave", "test", **all4)


def test_tfds_builders_prepare_and_read_back_without_tensorflow(tmp_path, monkeypatch):
  pytest.importorskip("tensorflow_datasets")
  from jaxvision.data import spectral_tfds
  # A 3 + 2 scene ARAD_1K (the split's id ranges shrunk), 3 CAVE scenes, 8x8 pixels.
  monkeypatch.setitem(spectral.NTIRE2022_SCENES, "train", range(1, 4))
  monkeypatch.setitem(spectral.NTIRE2022_SCENES, "validation", range(901, 903))
  data_dir = str(tmp_path / "tfds")
  arad = str(tmp_path / "ARAD_1K")
  _make_ntire2022(arad, scenes=[1, 2, 3, 901, 902], official=True)
  with pytest.raises(FileNotFoundError, match="spectral_tfds.prepare"):
    spectral.ntire2022("validation", tfds_data_dir=data_dir)
  spectral_tfds.prepare("ntire2022", manual_dir=arad, data_dir=data_dir)
  for split, k in (("train", 2), ("validation", 1)):
    raw = spectral.ntire2022(split, data_dir=arad)
    stored = create_dataset("ntire2022", split, tfds_data_dir=data_dir)
    assert len(stored) == len(raw) and stored.scene_names == raw.scene_names
    a, b = raw.get(np.array([k])), stored.get(np.array([k]))
    np.testing.assert_array_equal(a["cube"], b["cube"])
    np.testing.assert_allclose(a["rgb"], b["rgb"], atol=1e-6)   # same JPEG bytes

  root = str(tmp_path / "complete_ms_data")
  scenes = ("balloons", "beads", "cd")
  for i, s in enumerate(scenes):
    _write_cave_scene(root, s, _cube(i, 8, 8), bmp=(s != "cd"))
  spectral_tfds.prepare("cave", manual_dir=root, data_dir=data_dir)
  kw = dict(scenes=scenes, num_train=2)
  for split in ("train", "test"):
    raw = spectral.cave(split, data_dir=root, **kw)
    stored = spectral.cave(split, tfds_data_dir=data_dir, **kw)
    assert stored.scene_names == raw.scene_names
    a, b = raw.get(np.arange(len(raw))), stored.get(np.arange(len(raw)))
    np.testing.assert_array_equal(a["cube"], b["cube"])
    np.testing.assert_allclose(a["rgb"], b["rgb"], atol=1e-6)
    assert (raw.camera is None) == (stored.camera is None)
  with pytest.raises(ValueError, match="not both"):
    spectral.cave("train", data_dir=root, tfds_data_dir=data_dir, **kw)
  with pytest.raises(ValueError, match="`name` must be one of"):
    spectral_tfds.prepare("icvl", manual_dir=root, data_dir=data_dir)
