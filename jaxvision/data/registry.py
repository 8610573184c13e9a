"""The dataset registry: configs name a dataset, ``create_dataset`` builds its source."""

from __future__ import annotations

from jaxvision.data.sources import Source
from jaxvision.registry import Registry

DATASETS: Registry = Registry("dataset")

SPLITS = ("train", "validation", "test")
DEFAULT_SPLITS = ("train", "test")  # classification / scene datasets hold out "test" only
_DATASET_SPLITS: dict[str, tuple[str, ...]] = {}


def register_dataset(name: str, splits: tuple[str, ...] = DEFAULT_SPLITS):
  """Decorator registering a dataset factory ``fn(split, **options) -> Source`` with the
  splits it provides (a subset of :data:`SPLITS`)."""
  unknown = set(splits) - set(SPLITS)
  if unknown:
    raise ValueError(f"dataset {name!r}: splits must be among {SPLITS}; found {sorted(unknown)}.")
  _DATASET_SPLITS[name.lower()] = tuple(splits)
  return DATASETS.register(name)


def dataset_splits(name: str) -> tuple[str, ...]:
  """The splits dataset ``name`` provides."""
  DATASETS.get(name)  # the unknown-name error, listing the registered ones
  return _DATASET_SPLITS.get(name.lower(), DEFAULT_SPLITS)


def create_dataset(name: str, split: str, **kwargs) -> Source:
  """Builds split ``split`` (``"train"``, ``"validation"`` or ``"test"``) of dataset ``name``.

  Not every dataset has a ``"validation"`` split (the IQA datasets do, the
  classification ones hold out ``"test"`` only): asking for a split the dataset was
  not registered with raises, naming the splits it has.

  ``kwargs`` are the dataset's own options (e.g. ``data_dir`` for tfds datasets,
  ``image_size`` for digits); an unknown option is an error naming it.
  """
  if split not in SPLITS:
    raise ValueError(f"dataset split must be one of {SPLITS} (\"validation\" only for datasets "
                     f"that have one); found {split!r}.")
  factory = DATASETS.get(name)
  if split not in dataset_splits(name):
    raise ValueError(f"dataset {name!r} has no split {split!r}; its splits are "
                     f"{dataset_splits(name)} (config field data.eval_split).")
  try:
    return factory(split=split, **kwargs)
  except TypeError as e:
    raise TypeError(f"create_dataset({name!r}): bad option: {e}") from None


def list_datasets(pattern: str = "*") -> list[str]:
  """Registered dataset names matching the shell-style ``pattern``."""
  return DATASETS.list(pattern)
