"""Datasets, partitioners and path confinement for fedcore."""

from fedcore.data.partition import METHODS, Method, label_histogram, mean_max_class_share, partition
from fedcore.data.paths import PathConfinementError, confine
from fedcore.data.sources import BUILTIN_DATASETS, load_dataset, make_synthetic
from fedcore.data.types import DatasetSplits, Example, Task

__all__ = [
    "BUILTIN_DATASETS",
    "METHODS",
    "DatasetSplits",
    "Example",
    "Method",
    "PathConfinementError",
    "Task",
    "confine",
    "label_histogram",
    "load_dataset",
    "make_synthetic",
    "mean_max_class_share",
    "partition",
]
