"""Partitioning a dataset's examples over federated clients (IID and non-IID).

- ``iid``: a seeded shuffle cut into near-equal parts.
- ``dirichlet``: label skew; each class is spread over clients with proportions ~ Dir(alpha)
  (Hsu et al. 2019, "Measuring the Effects of Non-Identical Data Distribution", arXiv 1909.06335).
- ``shards``: label skew; examples sorted by label, cut into ``num_clients * shards_per_client``
  shards dealt out at random (McMahan et al. 2017, arXiv 1602.05629).
- ``quantity``: size skew; client sizes ~ LogNormal(0, sigma) normalised, labels IID.

Every method is deterministic for a seed, gives disjoint index lists (sorted ascending) and gives
each client at least ``min_examples`` (too-small clients are topped up from the largest ones).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np

Method = Literal["iid", "dirichlet", "shards", "quantity"]
METHODS: tuple[str, ...] = get_args(Method)
_SALT = 0x5EED
_DIRICHLET_TRIES = 10


def partition(
    labels: Sequence[int] | None,
    num_examples: int,
    num_clients: int,
    method: Method,
    *,
    seed: int,
    alpha: float = 0.5,
    shards_per_client: int = 2,
    quantity_sigma: float = 1.0,
    min_examples: int = 2,
) -> list[list[int]]:
    """Example indices per client for the chosen ``method`` (see the module docstring)."""
    label_arr = _validate(
        labels,
        num_examples,
        num_clients,
        method,
        seed,
        alpha,
        shards_per_client,
        quantity_sigma,
        min_examples,
    )
    rng = np.random.default_rng([seed, _SALT])
    parts: Sequence[Sequence[int] | np.ndarray]
    if method == "iid":
        parts = np.array_split(rng.permutation(num_examples), num_clients)
    elif method == "quantity":
        parts = _quantity(num_examples, num_clients, quantity_sigma, min_examples, rng)
    elif method == "dirichlet":
        assert label_arr is not None
        parts = _dirichlet(label_arr, num_clients, alpha, min_examples, rng)
    else:
        assert label_arr is not None
        parts = _shards(label_arr, num_clients, shards_per_client, rng)
    lists = [[int(i) for i in part] for part in parts]
    lists = _top_up(lists, min_examples, rng)
    return [sorted(part) for part in lists]


def _validate(
    labels: Sequence[int] | None,
    num_examples: int,
    num_clients: int,
    method: str,
    seed: int,
    alpha: float,
    shards_per_client: int,
    quantity_sigma: float,
    min_examples: int,
) -> np.ndarray | None:
    if method not in METHODS:
        raise ValueError(f"unknown partition method {method!r}; choose one of {', '.join(METHODS)}")
    if num_clients < 1:
        raise ValueError(f"num_clients must be >= 1, got {num_clients}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if min_examples < 0:
        raise ValueError(f"min_examples must be >= 0, got {min_examples}")
    if num_examples < num_clients * min_examples:
        raise ValueError(
            f"{num_examples} examples cannot give {num_clients} clients at least {min_examples} each "
            f"(need {num_clients * min_examples})"
        )
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    if shards_per_client < 1:
        raise ValueError(f"shards_per_client must be >= 1, got {shards_per_client}")
    if quantity_sigma < 0:
        raise ValueError(f"quantity_sigma must be >= 0, got {quantity_sigma}")
    if labels is None:
        if method in ("dirichlet", "shards"):
            raise ValueError(
                f"the {method!r} partition skews labels and needs labels; this dataset has none "
                "(use 'iid' or 'quantity')"
            )
        return None
    arr = np.asarray(labels, dtype=np.int64)
    if arr.shape != (num_examples,):
        raise ValueError(f"got {len(labels)} labels for {num_examples} examples")
    if num_examples and arr.min() < 0:
        raise ValueError("labels must be >= 0")
    if method == "shards" and num_clients * shards_per_client > num_examples:
        raise ValueError(
            f"{num_clients} clients x {shards_per_client} shards need at least "
            f"{num_clients * shards_per_client} examples, got {num_examples}"
        )
    return arr


def _quantity(n: int, k: int, sigma: float, minimum: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Sizes = minimum + a LogNormal(0, sigma) share of the rest (largest remainders get the leftovers)."""
    share = rng.lognormal(mean=0.0, sigma=sigma, size=k)
    share /= share.sum()
    spare = n - k * minimum
    exact = share * spare
    sizes = minimum + np.floor(exact).astype(np.int64)
    leftover = n - int(sizes.sum())
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    sizes[order[:leftover]] += 1
    return np.split(rng.permutation(n), np.cumsum(sizes)[:-1])


def _dirichlet(
    labels: np.ndarray, k: int, alpha: float, minimum: int, rng: np.random.Generator
) -> list[list[int]]:
    """Per class, proportions ~ Dir(alpha) over clients; resampled up to a few times to meet ``minimum``."""
    classes = np.unique(labels)
    parts: list[list[int]] = []
    for _ in range(_DIRICHLET_TRIES):
        parts = [[] for _ in range(k)]
        for c in classes:
            idx = np.flatnonzero(labels == c)
            idx = idx[rng.permutation(len(idx))]
            props = rng.dirichlet(np.full(k, alpha))
            cuts = (np.cumsum(props)[:-1] * len(idx)).astype(np.int64)
            for client, chunk in enumerate(np.split(idx, cuts)):
                parts[client].extend(int(i) for i in chunk)
        if min(len(p) for p in parts) >= minimum:
            break
    return parts  # any client still short is topped up by _top_up


def _shards(labels: np.ndarray, k: int, per_client: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Sort by label (random order within a label), cut into k*per_client shards, deal them out."""
    order = rng.permutation(len(labels))
    order = order[np.argsort(labels[order], kind="stable")]
    shards = np.array_split(order, k * per_client)
    deal = rng.permutation(k * per_client).reshape(k, per_client)
    return [np.concatenate([shards[j] for j in row]) for row in deal]


def _top_up(parts: list[list[int]], minimum: int, rng: np.random.Generator) -> list[list[int]]:
    """Move random examples from the largest client to any client below ``minimum``."""
    parts = [list(p) for p in parts]
    while True:
        sizes = [len(p) for p in parts]
        short = min(range(len(parts)), key=lambda c: (sizes[c], c))
        if sizes[short] >= minimum:
            return parts
        donor = max(range(len(parts)), key=lambda c: (sizes[c], -c))
        moved = parts[donor].pop(int(rng.integers(len(parts[donor]))))
        parts[short].append(moved)


def label_histogram(labels: Sequence[int], indices: Sequence[int], num_labels: int) -> list[int]:
    """Count of each label among ``labels[indices]``."""
    arr = np.asarray(labels, dtype=np.int64)[np.asarray(indices, dtype=np.int64)]
    if arr.size and (arr.min() < 0 or arr.max() >= num_labels):
        raise ValueError(f"labels must lie in [0, {num_labels}), got {int(arr.min())}..{int(arr.max())}")
    return [int(c) for c in np.bincount(arr, minlength=num_labels)]


def mean_max_class_share(labels: Sequence[int], parts: Sequence[Sequence[int]], num_labels: int) -> float:
    """Mean over non-empty clients of the largest class's share of the client's data (1/C = balanced)."""
    shares = []
    for part in parts:
        hist = label_histogram(labels, part, num_labels)
        if part:
            shares.append(max(hist) / len(part))
    return float(np.mean(shares)) if shares else 0.0
