"""``hub:<id>[:<config>]`` datasets through the optional `datasets` package (never at test time)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fedcore.data.sources.rows import rows_to_splits
from fedcore.data.types import DatasetSplits


def _hub_columns(ds: Any, fields: Sequence[str]) -> list[dict[str, Any]]:
    missing = [f for f in fields if f not in ds.column_names]
    if missing:
        raise ValueError(
            f"field(s) {', '.join(missing)} not in hub dataset; columns: {', '.join(ds.column_names)}"
        )
    columns = {f: list(ds[f]) for f in fields}
    return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def load_hub(
    name: str,
    split_train: str,
    split_test: str,
    *,
    text_field: str,
    text_pair_field: str | None,
    label_field: str,
    target_field: str | None,
) -> DatasetSplits:
    """``hub:<id>`` or ``hub:<id>:<config>``; ``hub:a/b`` falls back to id ``a`` with config ``b``."""
    try:
        import datasets
    except ImportError as exc:
        raise ImportError(f"{name} needs the `datasets` package: pip install 'fedheads[hub]'") from exc
    ident = name.removeprefix("hub:")
    path, _, config = ident.partition(":")

    def fetch(split: str) -> Any:
        if config:
            return datasets.load_dataset(path, config, split=split)
        try:
            return datasets.load_dataset(path, split=split)
        except Exception:
            if path.count("/") != 1:
                raise
            repo, sub = path.split("/")
            return datasets.load_dataset(repo, sub, split=split)

    train_ds, test_ds = fetch(split_train), fetch(split_test)
    used = [f for f in (text_field, text_pair_field, target_field or label_field) if f is not None]
    rows = _hub_columns(train_ds, used) + _hub_columns(test_ds, used)
    feature = None if target_field else getattr(train_ds, "features", {}).get(label_field)
    names = list(feature.names) if feature is not None and hasattr(feature, "names") else None
    return rows_to_splits(
        name,
        rows,
        text_field=text_field,
        text_pair_field=text_pair_field,
        label_field=label_field,
        target_field=target_field,
        label_names=names,
        split_rows=(len(train_ds), len(test_ds)),
    )
