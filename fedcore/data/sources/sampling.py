"""Seeded sampling and splitting shared by the dataset sources.

Held-out splits made here use the fixed ``SPLIT_SEED`` so a test set never depends on an
experiment's seed; ``seed`` only drives the ``max_train``/``max_test`` subsamples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedcore.data.types import Example

SPLIT_SEED = 0
TEST_FRACTION = 0.2


def seeded_rng(seed: int, salt: int) -> np.random.Generator:
    return np.random.default_rng([seed, salt])


def subsample(examples: Sequence[Example], n: int | None, *, seed: int, salt: int = 0) -> list[Example]:
    """The first ``n`` examples of a seeded shuffle, returned in their original order."""
    if n is None or n >= len(examples):
        return list(examples)
    keep = np.sort(seeded_rng(seed, salt).permutation(len(examples))[:n])
    return [examples[int(i)] for i in keep]


def stratified_split(
    labels: Sequence[int | None], *, test_fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED
) -> tuple[list[int], list[int]]:
    """Seeded train/test index split; each label group (None counts as one group) is split alike."""
    rng = seeded_rng(seed, 0)
    groups: dict[int | None, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    train: list[int] = []
    test: list[int] = []
    for key in sorted(groups, key=lambda k: (k is None, k if k is not None else 0)):
        idx = np.asarray(groups[key])[rng.permutation(len(groups[key]))]
        n_test = int(round(len(idx) * test_fraction))
        test.extend(int(i) for i in idx[:n_test])
        train.extend(int(i) for i in idx[n_test:])
    return sorted(train), sorted(test)
