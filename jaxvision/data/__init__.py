"""Datasets (embedded, synthetic, TFDS catalog) and the host-side input pipeline."""

from jaxvision.data import augment
from jaxvision.data.registry import (DATASETS, create_dataset, dataset_splits, list_datasets,
                                     register_dataset)
from jaxvision.data.sources import ArraySource, Batch, DatasetInfo, Source
from jaxvision.data.pipeline import TrainIterator, eval_batches, splitmix64, to_global_array
# Registration side effects: each module registers its datasets.
from jaxvision.data import (av2, colorization, digits, iqa, scenes, spectral,  # noqa: E402,F401
                            synthetic, tfds_datasets)

__all__ = ["DATASETS", "create_dataset", "dataset_splits", "list_datasets", "register_dataset",
           "ArraySource", "Batch", "DatasetInfo", "Source", "TrainIterator", "eval_batches",
           "splitmix64", "to_global_array", "augment"]
