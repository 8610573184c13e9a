"""The dataset registry: configs name a dataset, ``create_dataset`` builds its source."""

from __future__ import annotations

from jaxvision.data.sources import Source
from jaxvision.registry import Registry

DATASETS: Registry = Registry("dataset")
register_dataset = DATASETS.register

SPLITS = ("train", "test")


def create_dataset(name: str, split: str, **kwargs) -> Source:
  """Builds split ``split`` (``"train"`` or ``"test"``) of the registered dataset ``name``.

  ``kwargs`` are the dataset's own options (e.g. ``data_dir`` for tfds datasets,
  ``image_size`` for digits); an unknown option is an error naming it.
  """
  if split not in SPLITS:
    raise ValueError(f"dataset split must be one of {SPLITS}; found {split!r}.")
  factory = DATASETS.get(name)
  try:
    return factory(split=split, **kwargs)
  except TypeError as e:
    raise TypeError(f"create_dataset({name!r}): bad option: {e}") from None


def list_datasets(pattern: str = "*") -> list[str]:
  """Registered dataset names matching the shell-style ``pattern``."""
  return DATASETS.list(pattern)
