"""Rows of named fields -> examples: a field mapping, label ids and a train/test split (local files, hub
datasets and the submit-time checks)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from fedcore.data.sources.sampling import stratified_split
from fedcore.data.types import DatasetSplits, Example, Task

_UNLABELLED = {"", "-"}
_INT_RE = re.compile(r"^-?\d+$")


def _as_int(value: Any) -> int | None:
    """An int for int-like label values (ints, integral floats, digit strings), else None."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_RE.match(value.strip()):
        return int(value.strip())
    return None


def _is_unlabelled(value: Any) -> bool:
    if value is None or (isinstance(value, str) and value.strip() in _UNLABELLED):
        return True
    as_int = _as_int(value)
    return as_int is not None and as_int < 0


def _label_mapping(values: Sequence[Any]) -> tuple[list[str], dict[Any, int]]:
    """Label names and a value -> id map: int-like labels keep their value, strings go in sorted order."""
    ints = [_as_int(v) for v in values]
    if all(i is not None for i in ints):
        top = max((i for i in ints if i is not None), default=-1)
        return [str(i) for i in range(top + 1)], {
            v: i for v, i in zip(values, ints, strict=True) if i is not None
        }
    names = sorted({str(v).strip() for v in values})
    index = {n: i for i, n in enumerate(names)}
    return names, {v: index[str(v).strip()] for v in values}


def rows_to_splits(
    name: str,
    rows: Sequence[dict[str, Any]],
    *,
    text_field: str,
    text_pair_field: str | None,
    label_field: str,
    target_field: str | None,
    label_names: list[str] | None = None,
    split_rows: tuple[int, int] | None = None,
) -> DatasetSplits:
    """Map rows to examples with a field mapping and split them.

    Split: ``split_rows`` (n_train, n_test) when the rows are train then test; else a ``split`` column
    (train / test, or validation when there is no test); else a seeded stratified 80/20 split.
    Classification rows without a label (missing, empty, "-" or negative) are dropped.
    """
    if not rows:
        raise ValueError(f"dataset {name!r} has no rows")
    generation = target_field is not None
    wanted = [text_field, text_pair_field, target_field if generation else label_field]
    columns = list(rows[0].keys())
    for field in (f for f in wanted if f is not None):
        if field not in rows[0]:
            raise ValueError(f"field {field!r} not found in dataset {name!r}; columns: {', '.join(columns)}")
    origin = [0] * split_rows[0] + [1] * split_rows[1] if split_rows else [0] * len(rows)
    kept = [
        (r, o)
        for r, o in zip(rows, origin, strict=True)
        if generation or label_names is not None or not _is_unlabelled(r.get(label_field))
    ]
    if label_names is not None:  # hub ClassLabel: ints already, -1 marks unlabelled
        kept = [(r, o) for r, o in kept if generation or int(r[label_field]) >= 0]
        mapping: dict[Any, int] = {}
    elif not generation:
        label_names, mapping = _label_mapping([r[label_field] for r, _ in kept])
    else:
        label_names, mapping = [], {}

    def to_example(row: dict[str, Any]) -> Example:
        pair = row.get(text_pair_field) if text_pair_field else None
        if target_field is not None:
            return Example(
                text=str(row[text_field]),
                text_pair=None if pair is None else str(pair),
                target=str(row[target_field]),
            )
        raw = row[label_field]
        label = mapping[raw] if mapping else int(raw)
        return Example(text=str(row[text_field]), text_pair=None if pair is None else str(pair), label=label)

    examples = [to_example(r) for r, _ in kept]
    if split_rows:
        train = [e for e, (_, o) in zip(examples, kept, strict=True) if o == 0]
        test = [e for e, (_, o) in zip(examples, kept, strict=True) if o == 1]
    elif "split" in rows[0]:
        tags = [str(r.get("split", "")).strip().lower() for r, _ in kept]
        tags = ["validation" if t in ("val", "valid", "dev") else t for t in tags]
        test_tag = "test" if "test" in tags else "validation"
        train = [e for e, t in zip(examples, tags, strict=True) if t == "train"]
        test = [e for e, t in zip(examples, tags, strict=True) if t == test_tag]
        if not train or not test:
            raise ValueError(
                f"dataset {name!r}: the split column needs 'train' and 'test' (or 'validation') rows"
            )
    else:
        train_idx, test_idx = stratified_split([e.label for e in examples])
        train, test = [examples[i] for i in train_idx], [examples[i] for i in test_idx]
    task: Task = "generation" if generation else "classification"
    return DatasetSplits(name=name, task=task, label_names=list(label_names), train=train, test=test)
