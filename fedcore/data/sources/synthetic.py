"""A seeded 3-class keyword-count task that needs no files (tests and the smoke preset); fedheads' own."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from fedcore.data.sources.sampling import seeded_rng
from fedcore.data.types import DatasetSplits, Example

SYNTHETIC_LABELS = ["alpha", "beta", "gamma"]
SYNTHETIC_KEYWORDS: tuple[tuple[str, ...], ...] = (
    ("zorbel", "quandix", "fimble", "arrotash", "plimvex"),
    ("drovin", "skellup", "mirnaq", "tuvessa", "brakko"),
    ("yelmoth", "ganfuth", "wespira", "coddlem", "hiznar"),
)
SYNTHETIC_FILLERS: tuple[str, ...] = (
    "the", "a", "of", "to", "and", "in", "was", "with", "for", "on",
    "lomi", "teva", "rusk", "pell", "obra", "nisu", "kader", "folm", "ustin", "graw",
    "meek", "dorr", "salt", "viny", "preb", "hult", "cromm", "essa", "jint", "wabe",
    "loda", "terk", "mup", "balo", "ziff", "nerro", "kest", "oplin", "rafe", "suda",
    "tolly", "vrem", "yask", "gult", "hemm",
)  # fmt: skip


_KEYWORD_GROUP = {word: g for g, group in enumerate(SYNTHETIC_KEYWORDS) for word in group}


def synthetic_label(words: Iterable[str]) -> int:
    """The keyword group that occurs most often; ties go to the lowest group index."""
    counts = [0] * len(SYNTHETIC_KEYWORDS)
    for word in words:
        g = _KEYWORD_GROUP.get(word.rstrip("."))
        if g is not None:
            counts[g] += 1
    return max(range(len(counts)), key=lambda g: (counts[g], -g))


def _synthetic_examples(n: int, rng: np.random.Generator) -> list[Example]:
    def pick(pool: Sequence[str], count: int) -> list[str]:
        return [pool[int(i)] for i in rng.integers(len(pool), size=count)]

    out = []
    for _ in range(n):
        cls = int(rng.integers(len(SYNTHETIC_KEYWORDS)))
        length = int(rng.integers(6, 13))
        k = int(rng.integers(1, 4))
        words = pick(SYNTHETIC_KEYWORDS[cls], k)
        for g, group in enumerate(SYNTHETIC_KEYWORDS):
            if g != cls and rng.random() < 0.5:  # distractors: fewer than k from another group
                words += pick(group, min(int(rng.integers(0, k)), length - len(words) - 1))
        words += pick(SYNTHETIC_FILLERS, length - len(words))
        words = [words[int(i)] for i in rng.permutation(len(words))]
        out.append(Example(text=" ".join(words) + ".", label=synthetic_label(words)))
    return out


def make_synthetic(*, num_train: int = 2000, num_test: int = 300, seed: int = 0) -> DatasetSplits:
    """Seeded keyword-count task: 6-12 words from a 60-word made-up vocabulary, 3 balanced classes.

    The label is the keyword group occurring most often. Train and test are prefixes of two seeded
    streams, so a larger size gives a superset.
    """
    return DatasetSplits(
        name="synthetic",
        task="classification",
        label_names=list(SYNTHETIC_LABELS),
        train=_synthetic_examples(num_train, seeded_rng(seed, 11)),
        test=_synthetic_examples(num_test, seeded_rng(seed, 12)),
    )
