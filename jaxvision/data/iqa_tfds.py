"""TFDS builders (manual download) for the IQA datasets KonIQ-10k and CLIVE.

Neither dataset is in the TFDS catalog and neither may be downloaded at run time, so these
builders read a copy the user already has (the ``manual_dir``, laid out as the file
readers of :mod:`jaxvision.data.iqa` expect) and write a TFDS dataset once. Preparing
needs no TensorFlow in the ``array_record`` file format (images are stored as the
original JPEG bytes for KonIQ-10k and as PNG for CLIVE, encoded by Pillow)::

  from jaxvision.data import iqa_tfds
  iqa_tfds.prepare("koniq10k", manual_dir="~/koniq10k", data_dir="~/tensorflow_datasets")

after which ``create_dataset("koniq10k", split, tfds_data_dir="~/tensorflow_datasets")``
reads it through ``tfds.data_source`` (random access, no TensorFlow).

Importing this module imports ``tensorflow_datasets`` and registers the builders
``koniq10k`` and ``clive``; :mod:`jaxvision.data.iqa` imports it only on the TFDS path.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from jaxvision.data import iqa

_KONIQ_CITATION = """@article{hosu2020koniq,
  title={KonIQ-10k: An Ecologically Valid Database for Deep Learning of Blind Image Quality
         Assessment},
  author={Hosu, Vlad and Lin, Hanhe and Sziranyi, Tamas and Saupe, Dietmar},
  journal={IEEE Transactions on Image Processing}, volume={29}, pages={4041--4056},
  year={2020}}"""

_CLIVE_CITATION = """@article{ghadiyaram2016massive,
  title={Massive Online Crowdsourced Study of Subjective and Objective Picture Quality},
  author={Ghadiyaram, Deepti and Bovik, Alan C},
  journal={IEEE Transactions on Image Processing}, volume={25}, number={1},
  pages={372--387}, year={2016}}"""


class _IQABuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base of the IQA builders."""

  # tfds 4.9.10 finds a builder's code through the `importlib_resources` backport, which it
  # installs only for Python < 3.9, so `download_and_prepare` fails with
  # ModuleNotFoundError for a builder defined in a package. The file is known: say it.
  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    return epath.Path(__file__)


class Koniq10k(_IQABuilder):
  """KonIQ-10k: 10,073 in-the-wild images with MOS; the owner's 7058 / 1000 / 2015 split."""

  name = "koniq10k"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release (jaxvision)."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
  Download KonIQ-10k from http://database.mmsp-kn.de/koniq-10k-database.html and place in
  `manual_dir`: {iqa.KONIQ_LAYOUT}. The split is the `set` column of
  {iqa.KONIQ_SETS_CSV} (or, without it, LinearityIQA's {iqa.KONIQ_INFO_MAT}, exp_id 0).
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=("KonIQ-10k in-the-wild image quality database. `score` is the MOS "
                     "(mean of 1..5 ratings), `score_std` its SD, `mos_zscore` the release's "
                     "0..100 score (NaN where the CSV lacks a column)."),
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
            "image_name": tfds.features.Text(),
            "score": tfds.features.Scalar(np.float32),
            "score_std": tfds.features.Scalar(np.float32),
            "mos_zscore": tfds.features.Scalar(np.float32),
        }),
        supervised_keys=("image", "score"),
        homepage="http://database.mmsp-kn.de/koniq-10k-database.html",
        citation=_KONIQ_CITATION,
    )

  def _split_generators(self, dl_manager):
    root = os.fspath(dl_manager.manual_dir)
    image_dir, _ = iqa._koniq_image_dir(root, None)
    table = iqa.read_koniq_table(root)
    if "MOS" not in table["columns"]:
      raise ValueError(f"koniq10k: the labels in {root} have no `MOS` column; found "
                       f"{sorted(table['columns'])}.")
    return {split: self._generate_examples(image_dir, table, split)
            for split in iqa.IQA_SPLITS}

  def _generate_examples(self, image_dir: str, table: dict, split: str):
    nan = np.full(len(table["image_name"]), np.nan)
    columns = {"score": table["columns"]["MOS"], "score_std": table["columns"].get("SD", nan),
               "mos_zscore": table["columns"].get("MOS_zscore", nan)}
    for i in np.flatnonzero(table["split"] == split):
      name = table["image_name"][i]
      path = os.path.join(image_dir, name)
      if not os.path.isfile(path):
        raise FileNotFoundError(f"koniq10k: image file {path} is missing.")
      yield name, {"image": path, "image_name": name,
                   **{k: np.float32(v[i]) for k, v in columns.items()}}


class Clive(_IQABuilder):
  """CLIVE (LIVE In the Wild Image Quality Challenge): 1,162 test images, MOS 0..100."""

  name = "clive"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release (jaxvision)."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
  Download the LIVE In the Wild Image Quality Challenge database (ChallengeDB_release) from
  https://live.ece.utexas.edu/research/ChallengeDB/index.html and use its folder as
  `manual_dir`: {iqa.CLIVE_LAYOUT}.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=("LIVE In the Wild Image Quality Challenge (CLIVE): the 1,162 test images "
                     "(the 7 challenge training images are left out) at native size, stored "
                     "losslessly as PNG; `score` is the MOS on 0..100."),
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3), encoding_format="png"),
            "image_name": tfds.features.Text(),
            "score": tfds.features.Scalar(np.float32),
        }),
        supervised_keys=("image", "score"),
        homepage="https://live.ece.utexas.edu/research/ChallengeDB/index.html",
        citation=_CLIVE_CITATION,
    )

  def _split_generators(self, dl_manager):
    paths, mos = iqa.read_clive_table(os.fspath(dl_manager.manual_dir))
    return {"test": self._generate_examples(paths, mos)}

  def _generate_examples(self, paths: list[str], mos: np.ndarray):
    from PIL import Image
    for path, score in zip(paths, mos):
      if not os.path.isfile(path):
        raise FileNotFoundError(f"clive: image file {path} is missing.")
      name = os.path.basename(path)
      with Image.open(path) as im:
        # A PIL image (not a numpy array): tfds encodes it with Pillow, without TensorFlow.
        yield name, {"image": im.convert("RGB"), "image_name": name, "score": np.float32(score)}


BUILDERS = {"koniq10k": Koniq10k, "clive": Clive}


def prepare(name: str, manual_dir: str, data_dir: str, file_format: str = "array_record"
            ) -> tfds.core.DatasetBuilder:
  """Prepares the IQA TFDS dataset ``name`` (``"koniq10k"`` or ``"clive"``) once.

  Args:
    name: builder name.
    manual_dir: the user's copy of the raw release (see each builder's instructions).
    data_dir: TFDS data_dir to write to.
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
  builder = BUILDERS[name](data_dir=os.path.expanduser(os.fspath(data_dir)),
                           file_format=file_format)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder
