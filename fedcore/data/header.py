"""A local data file judged from its first bytes: where it is, its format, its columns, a few rows.

fedheads' own, for submit-time checks (``fedcore.checks``): at most ``SAMPLE_BYTES`` are read from a
.csv/.jsonl file (a parquet file's magic bytes and footer), never the whole dataset, so a bad file is
refused before a job is queued. A file that fits in the sample is read whole, and then the
example and label counts are exact. Messages name the file as the user gave it (relative to the data
root), never a server path.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedcore.data.paths import PathConfinementError, confine
from fedcore.data.sources import LOCAL_SUFFIXES

SAMPLE_BYTES = 64 * 1024
_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}
_CONFINEMENT = {
    "empty": "give a file path relative to the data root",
    "absolute": "absolute paths are refused; give a path relative to the data root (e.g. 'mine/train.csv')",
    "dotdot": "'..' would leave the data root; give a path inside it",
    "symlink": "it is a symlink that leads out of the data root",
    "outside": "it leads out of the data root",
}


class DataFileError(ValueError):
    """A local data file that cannot be used; the message names the file as the user gave it."""


@dataclass(frozen=True)
class FileHeader:
    """What the first bytes of a data file say."""

    columns: list[str]
    rows: list[dict[str, Any]]  # the rows read: every row when ``complete``
    complete: bool  # the sample is the whole file


def locate(relative: str, data_root: Path, *, max_bytes: int | None = None) -> Path:
    """The file ``relative`` names inside ``data_root``: confined, existing, a supported type, not too large."""
    try:
        path = confine(relative, data_root, what="dataset")
    except PathConfinementError as err:
        raise DataFileError(f"{relative!r} is not allowed: {_CONFINEMENT.get(err.kind, _CONFINEMENT['outside'])}") \
            from None
    if path.suffix.lower() not in LOCAL_SUFFIXES:
        raise DataFileError(
            f"{relative!r} has an unsupported type ({path.suffix or 'no extension'}); "
            f"use a {', '.join(LOCAL_SUFFIXES)} file"
        )
    if path.is_dir():
        raise DataFileError(f"{relative!r} is a folder; give one {', '.join(LOCAL_SUFFIXES)} file in it")
    if not path.is_file():
        raise DataFileError(
            f"there is no file {relative!r} in the data root (GET /api/v1/assets lists the files there)"
        )
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise DataFileError(
            f"{relative!r} is {_megabytes(size)}, over the limit of {_megabytes(max_bytes)} for a data file"
        )
    return path


def read_header(path: Path, shown: str, *, sample_bytes: int = SAMPLE_BYTES) -> FileHeader:
    """Columns and the first rows of a .csv/.jsonl/.parquet file; ``DataFileError`` says what is wrong."""
    size = path.stat().st_size
    if size == 0:
        raise DataFileError(f"{shown!r} is empty")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _parquet(path, shown, size, sample_bytes)
    with path.open("rb") as fh:
        raw = fh.read(sample_bytes)
    complete = size <= sample_bytes
    text = _text(raw, shown, complete)
    return _csv(text, shown, complete) if suffix == ".csv" else _jsonl(text, shown, complete)


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n} bytes"


def _text(raw: bytes, shown: str, complete: bool) -> str:
    if b"\x00" in raw:
        raise DataFileError(f"{shown!r} is not a text file (it holds NUL bytes); give a UTF-8 text file")
    if not complete:  # the sample ends mid-line: keep whole lines only
        raw = raw[: raw.rfind(b"\n") + 1]
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataFileError(f"{shown!r} is not UTF-8 text (byte {err.start} cannot be decoded)") from None


def _csv(text: str, shown: str, complete: bool) -> FileHeader:
    lines = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    if not complete and len(lines) > 1:
        lines = lines[:-1]  # the cut may have split a quoted field
    if not lines:
        raise DataFileError(f"{shown!r} has no header line")
    header = [c.strip() for c in lines[0]]
    if len(header) == 1:
        for sep, name in _DELIMITERS.items():
            if sep in header[0]:
                raise DataFileError(
                    f"{shown!r}: the header line {header[0][:80]!r} is one column; the file looks "
                    f"{name}-separated, and a .csv file must be comma-separated"
                )
    for i, name in enumerate(header, start=1):
        if not name:
            raise DataFileError(f"{shown!r}: column {i} of the header line has no name")
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise DataFileError(f"{shown!r}: the header line repeats column(s) {', '.join(repeated)}")
    rows = []
    for number, values in enumerate(lines[1:], start=2):
        if len(values) != len(header):
            raise DataFileError(
                f"{shown!r}: row {number} has {len(values)} field(s), the header {len(header)} "
                f"({', '.join(header)})"
            )
        rows.append(dict(zip(header, values, strict=True)))
    if complete and not rows:
        raise DataFileError(f"{shown!r} has a header line ({', '.join(header)}) but no rows")
    return FileHeader(columns=header, rows=rows, complete=complete)


def _jsonl(text: str, shown: str, complete: bool) -> FileHeader:
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataFileError(f"{shown!r}: line {number} is not valid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise DataFileError(f"{shown!r}: line {number} is not a JSON object; each line must be one")
        rows.append(row)
    if not rows:
        raise DataFileError(f"{shown!r} holds no JSON lines")
    return FileHeader(columns=list(rows[0]), rows=rows, complete=complete)


def _parquet(path: Path, shown: str, size: int, sample_bytes: int) -> FileHeader:
    with path.open("rb") as fh:
        head = fh.read(4)
        fh.seek(max(size - 4, 0))
        tail = fh.read(4)
    if size < 12 or head != b"PAR1" or tail != b"PAR1":
        raise DataFileError(f"{shown!r} is not a parquet file (it lacks parquet's PAR1 markers)")
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataFileError(f"reading {shown!r} needs pyarrow, which this installation lacks: pip install pyarrow") \
            from None
    try:
        meta = pq.ParquetFile(path)
        columns = list(meta.schema_arrow.names)
        complete = size <= sample_bytes
        rows = meta.read().to_pylist() if complete else []
    except Exception as err:  # a damaged footer or page: pyarrow's own words, without the path
        raise DataFileError(f"{shown!r} cannot be read as parquet ({type(err).__name__})") from None
    if complete and not rows:
        raise DataFileError(f"{shown!r} has columns ({', '.join(columns)}) but no rows")
    return FileHeader(columns=columns, rows=rows, complete=complete)
