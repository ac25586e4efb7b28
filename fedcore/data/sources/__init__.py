"""Dataset loaders, one module per source: offline assets (``snli``, ``bbc``, ``aclsum``), a synthetic
task (``synthetic``), local files (``local``, through ``rows``), hub ids (``hub``).

Every built-in dataset works offline from the assets of ``fedheads assets`` (README, "Offline models
and data").
Held-out splits made here (BBC News, local files without a ``split`` column) use the fixed
``SPLIT_SEED`` so the test set never depends on an experiment's seed; ``seed`` only drives the
``max_train``/``max_test`` subsamples and the synthetic generator.

This package keeps the names of the former ``fedcore/data/sources.py``; a new dataset is a module
here with a loader returning ``DatasetSplits``, a branch in :func:`load_dataset` and its name in
``BUILTIN_DATASETS``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedcore.data.sources.aclsum import ACLSUM_ASPECTS, ACLSUM_SECTIONS, load_aclsum
from fedcore.data.sources.bbc import load_bbc
from fedcore.data.sources.hub import load_hub
from fedcore.data.sources.local import LOCAL_SUFFIXES, load_local, read_rows
from fedcore.data.sources.rows import rows_to_splits
from fedcore.data.sources.sampling import SPLIT_SEED, TEST_FRACTION, stratified_split, subsample
from fedcore.data.sources.snli import SNLI_LABELS, load_snli
from fedcore.data.sources.synthetic import (
    SYNTHETIC_FILLERS,
    SYNTHETIC_KEYWORDS,
    SYNTHETIC_LABELS,
    make_synthetic,
    synthetic_label,
)
from fedcore.data.types import DatasetSplits

__all__ = [
    "ACLSUM_ASPECTS",
    "ACLSUM_SECTIONS",
    "BUILTIN_DATASETS",
    "DATASET_ASSETS",
    "LOCAL_SUFFIXES",
    "SNLI_LABELS",
    "SPLIT_SEED",
    "SYNTHETIC_FILLERS",
    "SYNTHETIC_KEYWORDS",
    "SYNTHETIC_LABELS",
    "TEST_FRACTION",
    "load_dataset",
    "make_synthetic",
    "read_rows",
    "rows_to_splits",
    "stratified_split",
    "subsample",
    "synthetic_label",
]

BUILTIN_DATASETS: dict[str, str] = {
    "snli": "SNLI 1.0 entailment/neutral/contradiction (sentence pairs; stands in for MultiNLI)",
    "bbc-news": "BBC News topic classification, 5 topics (stands in for 20 Newsgroups)",
    "bbc-headlines": "BBC News body -> headline generation (stands in for XL-Sum)",
    "aclsum": "ACLSum paper -> aspect summary generation (default aspect: outcome)",
    "synthetic": "seeded 3-class keyword-count task, no files (tests and the smoke preset)",
}
# the offline asset (fedcore.assets) each built-in dataset reads
DATASET_ASSETS: dict[str, str] = {"snli": "snli", "bbc-news": "bbc-news", "bbc-headlines": "bbc-news", "aclsum": "aclsum"}


def load_dataset(
    name: str,
    *,
    cache_dir: Path | None = None,
    data_root: Path | None = None,
    data_path: str | None = None,
    text_field: str = "text",
    text_pair_field: str | None = None,
    label_field: str = "label",
    target_field: str | None = None,
    hub_split_train: str = "train",
    hub_split_test: str = "test",
    max_train: int | None = None,
    max_test: int | None = None,
    seed: int = 0,
) -> DatasetSplits:
    """Load a dataset by name: a built-in one, ``synthetic``, a local file or ``hub:<id>[:<config>]``.

    A local file is used when ``data_path`` is given or ``name`` ends in .jsonl/.csv/.parquet; it must
    lie inside ``data_root``. ``max_train``/``max_test`` keep a seeded subsample (a larger N gives a
    superset), in the original order.
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    for field, value in (("max_train", max_train), ("max_test", max_test)):
        if value is not None and value < 0:
            raise ValueError(f"{field} must be >= 0, got {value}")
    fields: dict[str, Any] = {
        "text_field": text_field,
        "text_pair_field": text_pair_field,
        "label_field": label_field,
        "target_field": target_field,
    }
    if name == "synthetic":
        return make_synthetic(
            num_train=2000 if max_train is None else max_train,
            num_test=300 if max_test is None else max_test,
            seed=seed,
        )
    if name == "local" and data_path is None:
        raise ValueError("dataset 'local' needs data_path: a .jsonl/.csv/.parquet file inside the data root")
    if data_path is not None or name.lower().endswith(LOCAL_SUFFIXES):
        splits = load_local(name, data_root, data_path, **fields)
    elif name.startswith("hub:"):
        splits = load_hub(name, hub_split_train, hub_split_test, **fields)
    elif name == "snli":
        splits = load_snli(cache_dir)
    elif name in ("bbc-news", "bbc-headlines"):
        splits = load_bbc(name, cache_dir)
    elif name == "aclsum":
        splits = load_aclsum(cache_dir, text_field=text_field, target_field=target_field)
    else:
        known = ", ".join(BUILTIN_DATASETS)
        raise ValueError(
            f"unknown dataset {name!r}; known datasets: {known}; or a local .jsonl/.csv/.parquet file "
            "(with data_path inside the data root), or hub:<id>[:<config>]"
        )
    splits.train = subsample(splits.train, max_train, seed=seed, salt=1)
    splits.test = subsample(splits.test, max_test, seed=seed, salt=2)
    return splits
