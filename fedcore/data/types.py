"""Plain data types shared by dataset loaders, partitioners and trainers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Task = Literal["classification", "generation"]


@dataclass(frozen=True)
class Example:
    """One example: input text (and optional pair), a class label or a target text.

    Generation datasets may still carry a ``label`` (e.g. the topic for ``bbc-headlines``) so that
    label-skew partitions can be built; the task of a dataset is ``DatasetSplits.task``.
    """

    text: str
    text_pair: str | None = None
    label: int | None = None
    target: str | None = None


@dataclass
class DatasetSplits:
    """A dataset's train and test examples and its task."""

    name: str
    task: Task
    label_names: list[str]
    train: list[Example]
    test: list[Example]

    @property
    def num_labels(self) -> int:
        """Number of classes (0 when the dataset has none)."""
        return len(self.label_names)

    def labels(self, split: Literal["train", "test"] = "train") -> list[int] | None:
        """The split's labels, or None when any example has no label."""
        examples = self.train if split == "train" else self.test
        labels = [ex.label for ex in examples]
        if any(label is None for label in labels):
            return None
        return [int(label) for label in labels if label is not None]
