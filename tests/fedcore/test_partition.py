"""Client partitions: deterministic, disjoint, minimum sizes, and the intended skew."""

from __future__ import annotations

import numpy as np
import pytest

from fedcore.data import METHODS, Method, label_histogram, mean_max_class_share, partition


def _labels(n: int = 1200, classes: int = 4, seed: int = 0) -> list[int]:
    return [int(x) for x in np.random.default_rng(seed).integers(classes, size=n)]


@pytest.mark.parametrize("method", METHODS)
def test_partition_is_identical_when_seed_repeats(method: Method) -> None:
    labels = _labels()
    assert partition(labels, len(labels), 10, method, seed=7) == partition(
        labels, len(labels), 10, method, seed=7
    )


@pytest.mark.parametrize("method", METHODS)
def test_partition_changes_when_seed_changes(method: Method) -> None:
    labels = _labels()
    assert partition(labels, len(labels), 10, method, seed=1) != partition(
        labels, len(labels), 10, method, seed=2
    )


@pytest.mark.parametrize("method", METHODS)
def test_partition_is_disjoint_and_uses_every_example(method: Method) -> None:
    labels = _labels()

    parts = partition(labels, len(labels), 12, method, seed=0)

    flat = [i for part in parts for i in part]
    assert len(parts) == 12
    assert len(flat) == len(set(flat)) == len(labels)
    assert all(part == sorted(part) for part in parts)


@pytest.mark.parametrize("method", METHODS)
def test_partition_meets_minimum_when_skew_is_extreme(method: Method) -> None:
    labels = _labels(n=300, classes=3)

    parts = partition(labels, 300, 50, method, seed=3, alpha=0.01, quantity_sigma=3.0, min_examples=4)

    assert min(len(p) for p in parts) >= 4
    assert len({i for p in parts for i in p}) == sum(len(p) for p in parts)


def test_dirichlet_small_alpha_is_skewed_compared_with_iid() -> None:
    labels = _labels(n=4000, classes=4)

    iid = partition(labels, 4000, 20, "iid", seed=0)
    skewed = partition(labels, 4000, 20, "dirichlet", seed=0, alpha=0.1)

    assert mean_max_class_share(labels, iid, 4) < 0.35
    assert mean_max_class_share(labels, skewed, 4) > 0.7


def test_dirichlet_large_alpha_is_close_to_iid() -> None:
    labels = _labels(n=4000, classes=4)

    parts = partition(labels, 4000, 10, "dirichlet", seed=0, alpha=1000.0)

    assert mean_max_class_share(labels, parts, 4) < 0.33


def test_shards_give_each_client_few_classes() -> None:
    labels = _labels(n=1000, classes=10)

    parts = partition(labels, 1000, 10, "shards", seed=0, shards_per_client=2)

    classes_per_client = [sum(1 for c in label_histogram(labels, p, 10) if c > 0) for p in parts]
    assert max(classes_per_client) <= 4
    assert all(len(p) == 100 for p in parts)


def test_quantity_sizes_vary_while_iid_sizes_are_equal() -> None:
    labels = _labels(n=2000)

    iid_sizes = [len(p) for p in partition(labels, 2000, 10, "iid", seed=0)]
    qty_sizes = [len(p) for p in partition(labels, 2000, 10, "quantity", seed=0, quantity_sigma=1.0)]

    assert max(iid_sizes) - min(iid_sizes) <= 1
    assert np.std(qty_sizes) / np.mean(qty_sizes) > 0.3


@pytest.mark.parametrize("method", ["iid", "quantity"])
def test_partition_works_without_labels_when_method_ignores_them(method: Method) -> None:
    parts = partition(None, 100, 5, method, seed=0)
    assert sum(len(p) for p in parts) == 100


@pytest.mark.parametrize("method", ["dirichlet", "shards"])
def test_label_skew_partition_refuses_missing_labels(method: Method) -> None:
    with pytest.raises(ValueError, match="needs labels"):
        partition(None, 100, 5, method, seed=0)


def test_partition_refuses_too_few_examples_for_minimum() -> None:
    with pytest.raises(ValueError, match="at least 3 each"):
        partition(None, 20, 10, "iid", seed=0, min_examples=3)


def test_partition_refuses_unknown_method() -> None:
    with pytest.raises(ValueError, match="iid, dirichlet, shards, quantity"):
        partition(None, 20, 2, "random", seed=0)  # type: ignore[arg-type]


def test_label_histogram_counts_labels_of_given_indices() -> None:
    assert label_histogram([0, 2, 2, 1, 2], [1, 2, 3], 4) == [0, 1, 2, 0]
