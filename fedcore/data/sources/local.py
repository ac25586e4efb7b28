"""Local data files (.jsonl, .csv, .parquet) inside the data root, read once per version of the file."""

from __future__ import annotations

import csv
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from fedcore.data.paths import confine
from fedcore.data.sources.rows import rows_to_splits
from fedcore.data.types import DatasetSplits

LOCAL_SUFFIXES = (".jsonl", ".csv", ".parquet")


@lru_cache(maxsize=16)
def _rows_cached(path: str, mtime_ns: int, size: int) -> tuple[dict[str, Any], ...]:
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix == ".jsonl":
        with file.open(encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
        if not all(isinstance(r, dict) for r in rows):
            raise ValueError(f"{file}: every line must be a JSON object")
    elif suffix == ".csv":
        with file.open(encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.DictReader(fh))
    elif suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise ImportError(f"reading {file.name} needs pyarrow: pip install pyarrow") from exc
        rows = pq.read_table(file).to_pylist()
    else:
        raise ValueError(f"unsupported data file {file.name}: use one of {', '.join(LOCAL_SUFFIXES)}")
    return tuple(rows)


def read_rows(path: Path) -> tuple[dict[str, Any], ...]:
    stat = path.stat()
    return _rows_cached(str(path), stat.st_mtime_ns, stat.st_size)


def load_local(name: str, data_root: Path | None, data_path: str | None, **fields: Any) -> DatasetSplits:
    relative = data_path if data_path is not None else name
    if data_root is None:
        raise ValueError(f"local dataset {relative!r} needs a data root (data_root) to confine it to")
    path = confine(relative, Path(data_root), what="dataset")
    if path.suffix.lower() not in LOCAL_SUFFIXES:
        raise ValueError(f"unsupported data file {path.name}: use one of {', '.join(LOCAL_SUFFIXES)}")
    if not path.is_file():
        raise FileNotFoundError(f"dataset file {relative!r} not found under data root {data_root}")
    display = relative if name == "local" else name
    return rows_to_splits(display, read_rows(path), **fields)
