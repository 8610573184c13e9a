"""TFDS builders (manual download) for NTIRE 2022, NTIRE 2020 and CAVE spectral recovery.

None of the three is in the TFDS catalog (spec ``spectral-transformer-ising`` Sec. 4) and
none may be downloaded at run time, so these builders read a copy the user already has
(the ``manual_dir``, laid out as the readers of :mod:`jaxvision.data.spectral` expect) and
write a TFDS dataset once. Preparing needs no TensorFlow in the ``array_record`` format::

  from jaxvision.data import spectral_tfds
  spectral_tfds.prepare("ntire2022", manual_dir="~/ARAD_1K", data_dir="~/tensorflow_datasets")
  spectral_tfds.prepare("ntire2020", manual_dir="~/NTIRE2020", data_dir=..., config="clean")
  spectral_tfds.prepare("cave", manual_dir="~/complete_ms_data", data_dir=...)

after which ``create_dataset("ntire2022", split, tfds_data_dir="~/tensorflow_datasets")``
(and likewise ``ntire2020`` with its ``track``, ``cave``) reads it through
``tfds.data_source`` (random access, no TensorFlow). Every example stores the cube
as float32 ``(H, W, 31)`` (zlib-compressed) exactly as read by
:func:`~jaxvision.data.spectral.read_mat_cube` / the CAVE band reader, the RGB file as
released (JPEG bytes unchanged; PNG / BMP decoded and stored as PNG, lossless) and the
scene name. The RGB normalisation is applied at read time, not stored.

Splits: ``ntire2022``: ``train`` (900) and ``validation`` (50); ``ntire2020/clean`` and
``ntire2020/real_world``: ``train`` and ``validation``; ``cave``: one split ``full`` (the 32
scenes), divided into train/test by the reader's seeded split.

Importing this module imports ``tensorflow_datasets`` and registers the builders;
:mod:`jaxvision.data.spectral` imports it only on the TFDS path.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from jaxvision.data import spectral
from jaxvision.data.tfds_datasets import random_access_source

_NTIRE2022_CITATION = """@inproceedings{arad2022ntire,
  title={NTIRE 2022 Spectral Recovery Challenge and Data Set},
  author={Arad, Boaz and Timofte, Radu and Yahel, Rony and Morag, Nimrod and Bernat, Amir and
          Cai, Yuanhao and Lin, Jing and Lin, Zudi and Wang, Haoqian and Zhang, Yulun and
          others},
  booktitle={CVPR Workshops}, pages={863--881}, year={2022}}"""

_NTIRE2020_CITATION = """@inproceedings{arad2020ntire,
  title={NTIRE 2020 Challenge on Spectral Reconstruction from an RGB Image},
  author={Arad, Boaz and Timofte, Radu and Ben-Shahar, Ohad and Lin, Yi-Tun and
          Finlayson, Graham D and others},
  booktitle={CVPR Workshops}, year={2020}}"""

_CAVE_CITATION = """@article{yasuma2010generalized,
  title={Generalized Assorted Pixel Camera: Postcapture Control of Resolution, Dynamic Range,
         and Spectrum},
  author={Yasuma, Fumihito and Mitsunaga, Tomoo and Iso, Daisuke and Nayar, Shree K},
  journal={IEEE Transactions on Image Processing}, volume={19}, number={9},
  pages={2241--2253}, year={2010}}"""


def _cube_feature():
  return tfds.features.Tensor(shape=(None, None, spectral.NUM_BANDS), dtype=np.float32,
                              encoding="zlib")


class _SpectralBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base of the spectral-recovery builders."""

  # tfds 4.9.10 finds a builder's code through the `importlib_resources` backport, which it
  # installs only for Python < 3.9: name the file (as jaxvision.data.iqa_tfds does).
  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    return epath.Path(__file__)

  def _record_scenes(self, split: str, names, **columns):
    """Keeps the split's scene names (in storage order) and per-scene ``columns`` in the
    dataset's metadata.json, so readers need not decode a record to find a scene."""
    self.info.metadata.setdefault("scenes", {})[split] = list(names)
    for key, values in columns.items():
      self.info.metadata.setdefault(key, {})[split] = list(values)

  def _generate_examples(self, names, cubes, rgbs, what: str):
    from PIL import Image
    for name, cube_path, rgb_path in zip(names, cubes, rgbs):
      cube = spectral.read_mat_cube(cube_path)
      if not os.path.isfile(rgb_path):
        raise FileNotFoundError(f"{what}: RGB file {rgb_path} is missing.")
      if rgb_path.lower().endswith((".jpg", ".jpeg")):
        rgb = rgb_path  # the JPEG bytes as released
      else:
        with Image.open(rgb_path) as im:
          rgb = im.convert("RGB")
          rgb.load()
      yield name, {"rgb": rgb, "cube": cube, "name": name}


class Ntire2022(_SpectralBuilder):
  """NTIRE 2022 spectral recovery (ARAD_1K): 900 train / 50 validation scenes, 482x512x31."""

  name = "ntire2022"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release (jaxvision)."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
  Register for the NTIRE 2022 Spectral Recovery Challenge (CodaLab) and download ARAD_1K
  (Train_Spec, Train_RGB, Valid_Spec, Valid_RGB). Place in `manual_dir`:
  {spectral.NTIRE2022_LAYOUT}.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=("ARAD_1K (NTIRE 2022 spectral recovery): `cube` float32 (482, 512, 31), "
                     "400..700 nm, as stored in the .mat files; `rgb` the release's JPEG; "
                     "MST++'s split (scenes 1-900 train, 901-950 validation)."),
        features=tfds.features.FeaturesDict({
            "rgb": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
            "cube": _cube_feature(),
            "name": tfds.features.Text(),
        }),
        supervised_keys=("rgb", "cube"),
        metadata=tfds.core.MetadataDict(),
        disable_shuffling=True,  # keep the scenes in the readers' (sorted) order
        homepage="https://codalab.lisn.upsaclay.fr/competitions/721",
        citation=_NTIRE2022_CITATION,
    )

  def _split_generators(self, dl_manager):
    root = os.fspath(dl_manager.manual_dir)
    out = {}
    for split in spectral.NTIRE2022_SPLITS:
      files = spectral.ntire2022_files(root, split)
      self._record_scenes(split, files[0])
      out[split] = self._generate_examples(*files, "ntire2022")
    return out



class Ntire2020(_SpectralBuilder):
  """NTIRE 2020 spectral reconstruction (ARAD), clean and real-world tracks, 482x512x31."""

  name = "ntire2020"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release (jaxvision)."}
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name="clean", description="Track 1: uncompressed 8-bit PNG."),
      tfds.core.BuilderConfig(name="real_world", description="Track 2: noisy JPEG."),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
  Register for the NTIRE 2020 Spectral Reconstruction Challenge (CodaLab, tracks Clean and
  Real World) and place in `manual_dir`: {spectral.NTIRE2020_LAYOUT}.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    fmt = "png" if self.builder_config.name == "clean" else "jpeg"
    return tfds.core.DatasetInfo(
        builder=self,
        description=("ARAD (NTIRE 2020 spectral reconstruction): `cube` float32 "
                     "(482, 512, 31), 400..700 nm, as stored; `rgb` the track's image."),
        features=tfds.features.FeaturesDict({
            "rgb": tfds.features.Image(shape=(None, None, 3), encoding_format=fmt),
            "cube": _cube_feature(),
            "name": tfds.features.Text(),
        }),
        supervised_keys=("rgb", "cube"),
        metadata=tfds.core.MetadataDict(),
        disable_shuffling=True,  # keep the scenes in the readers' (sorted) order
        homepage="https://github.com/boazarad/NTIRE2020_spectral",
        citation=_NTIRE2020_CITATION,
    )

  def _split_generators(self, dl_manager):
    root = os.fspath(dl_manager.manual_dir)
    track = self.builder_config.name
    out = {}
    for split in spectral.NTIRE2020_SPLITS:
      files = spectral.ntire2020_files(root, split, track)
      self._record_scenes(split, files[0])
      out[split] = self._generate_examples(*files, "ntire2020")
    return out



class Cave(_SpectralBuilder):
  """CAVE multispectral images: 32 scenes of 512x512x31 in one split ``full``."""

  name = "cave"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release (jaxvision)."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
  Download complete_ms_data.zip from
  https://www.cs.columbia.edu/CAVE/databases/multispectral/ and unzip it as `manual_dir`:
  {spectral.CAVE_LAYOUT}.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=("CAVE (Columbia) multispectral images: `cube` float32 (512, 512, 31), "
                     "the band PNGs / 65535; `rgb` the release's _RGB.bmp (lossless PNG; "
                     "zeros with `has_rgb` False where a scene has none). The train/test "
                     "split is made at read time (jaxvision.data.spectral.cave_split)."),
        features=tfds.features.FeaturesDict({
            "rgb": tfds.features.Image(shape=(None, None, 3), encoding_format="png"),
            "has_rgb": tfds.features.Scalar(np.bool_),
            "cube": _cube_feature(),
            "name": tfds.features.Text(),
        }),
        supervised_keys=("rgb", "cube"),
        metadata=tfds.core.MetadataDict(),
        disable_shuffling=True,  # keep the scenes in the readers' (sorted) order
        homepage="https://www.cs.columbia.edu/CAVE/databases/multispectral/",
        citation=_CAVE_CITATION,
    )

  def _split_generators(self, dl_manager):
    root = os.fspath(dl_manager.manual_dir)
    scenes = [s for s in spectral.CAVE_SCENES
              if os.path.isdir(os.path.join(root, f"{s}_ms"))]
    if not scenes:
      raise FileNotFoundError(f"cave: no scene folder in {root}; expected "
                              f"{spectral.CAVE_LAYOUT}.")
    self._record_scenes("full", scenes, has_rgb=[spectral.cave_rgb_file(root, s) is not None
                                                 for s in scenes])
    return {"full": self._generate_examples(root, scenes)}

  def _generate_examples(self, root: str, scenes):  # pylint: disable=arguments-differ
    from PIL import Image
    for scene in scenes:
      cube, bmp = spectral.read_cave_scene(root, scene)
      # PIL images (not numpy arrays): tfds encodes them with Pillow, without TensorFlow.
      if bmp is None:
        rgb, has = Image.fromarray(np.zeros(cube.shape[:2] + (3,), np.uint8)), False
      else:
        with Image.open(bmp) as im:
          rgb, has = im.convert("RGB"), True
      yield scene, {"rgb": rgb, "has_rgb": has, "cube": cube, "name": scene}



BUILDERS = {"ntire2022": Ntire2022, "ntire2020": Ntire2020, "cave": Cave}


def prepare(name: str, manual_dir: str, data_dir: str, config: str | None = None,
            file_format: str = "array_record") -> tfds.core.DatasetBuilder:
  """Prepares the TFDS dataset ``name`` (``"ntire2022"``, ``"ntire2020"`` or ``"cave"``) once.

  Args:
    name: builder name.
    manual_dir: the user's copy of the raw release (see each builder's instructions).
    data_dir: TFDS data_dir to write to.
    config: ``ntire2020`` only: ``"clean"`` (default) or ``"real_world"``.
    file_format: ``"array_record"`` (random access, what jaxvision reads; no TensorFlow
      needed) or ``"tfrecord"`` (needs TensorFlow).

  Returns:
    The prepared builder.
  """
  if name not in BUILDERS:
    raise ValueError(f"`name` must be one of {sorted(BUILDERS)}; found {name!r}.")
  manual_dir = os.path.expanduser(os.fspath(manual_dir))
  if not os.path.isdir(manual_dir):
    raise FileNotFoundError(f"{name}: `manual_dir` {manual_dir!r} is not a directory; "
                            f"expected {BUILDERS[name].MANUAL_DOWNLOAD_INSTRUCTIONS.strip()}")
  kwargs = {}
  if name == "ntire2020":
    config = config or "clean"
    if config not in spectral.NTIRE2020_TRACKS:
      raise ValueError(f"ntire2020: `config` must be one of {tuple(spectral.NTIRE2020_TRACKS)};"
                       f" found {config!r}.")
    kwargs["config"] = config
  elif config is not None:
    raise ValueError(f"{name}: has no configs; found config={config!r}.")
  builder = BUILDERS[name](data_dir=os.path.expanduser(os.fspath(data_dir)),
                           file_format=file_format, **kwargs)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder


def open_records(tfds_name: str, split: str, tfds_data_dir: str
                 ) -> tuple[Any, list[str], dict[str, list]]:
  """The prepared split ``split`` of ``tfds_name`` (e.g. ``"ntire2020/clean"``).

  Returns:
    ``(records, scene_names, columns)``: a random-access ``tfds.data_source``, the scene
    name of each record (from the dataset's metadata, no record decoded) and the split's
    per-scene metadata columns (``cave``: ``has_rgb``). Raises, saying how to prepare it,
    when the dataset is not there.
  """
  data_dir = os.path.expanduser(os.fspath(tfds_data_dir))
  base, _, config = tfds_name.partition("/")
  builder = BUILDERS[base](data_dir=data_dir, **({"config": config} if config else {}))
  if not builder.info.splits:
    hint = f", config={config!r}" if config else ""
    raise FileNotFoundError(
        f"{base}: no prepared TFDS dataset {tfds_name!r} under `tfds_data_dir` "
        f"{tfds_data_dir!r}. Prepare it once from your local copy (no network, no "
        f"TensorFlow): `from jaxvision.data import spectral_tfds; spectral_tfds.prepare("
        f"{base!r}, manual_dir=COPY, data_dir={tfds_data_dir!r}{hint})`, or pass "
        "`data_dir=COPY` to read the files directly.")
  if split not in builder.info.splits:
    raise ValueError(f"{base}: the TFDS dataset {tfds_name!r} in {tfds_data_dir} has splits "
                     f"{sorted(builder.info.splits)}; found request for {split!r}.")
  records = random_access_source(builder, split, base, tfds_name)
  meta = dict(builder.info.metadata or {})
  names = list(meta.get("scenes", {}).get(split, []))
  if len(names) != len(records):
    raise ValueError(f"{base}: the metadata of {tfds_name!r} in {tfds_data_dir} lists "
                     f"{len(names)} scenes for split {split!r}, which has {len(records)} "
                     "records; re-prepare it.")
  columns = {k: list(v[split]) for k, v in meta.items() if k != "scenes" and split in v}
  return records, names, columns
