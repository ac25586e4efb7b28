"""A study's tables as rows: the aggregate (one row per variant), the verdicts (one per target and variant) and
the runs (one per variant and seed), for CSV and JSON downloads and the study page.

Each table is a header and rows of plain values taken from the study's detail
(:func:`app.services.studies.study_table`, i.e. :func:`fedcore.study_aggregate.aggregate`) without any
arithmetic of its own, so the downloads hold exactly the API's numbers. A figure is three columns,
``<figure>.mean``, ``<figure>.half_range`` and ``<figure>.n`` (the spread is the half-range over ``n``
seeds, :data:`fedcore.study_aggregate.SPREAD`); the paired differences against the baseline are
``vs_baseline.<name>.*``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any, Literal

from fedcore.study_aggregate import FIGURES, PAIRS, SPREAD

TableName = Literal["aggregate", "verdicts", "runs"]
TABLES: tuple[TableName, ...] = ("aggregate", "verdicts", "runs")
SPREAD_PARTS = ("mean", "half_range", "n")
RUN_FIGURES = ("final_accuracy", "last3_accuracy", "uplink_advantage", "total_advantage", "ops_reduction",
               "ops_attention_reduction", "train_time_per_round", "train_time", "wall_time_per_round", "uplink_mb")
VERDICT_COLUMNS = ("target", "variant", "metric", "bound", "limit", "met", "value", "half_range", "margin", "seeds",
                   "partial", "text")

Table = tuple[list[str], list[list[Any]]]


def aggregate_table(aggregate: dict[str, Any], baseline: str) -> Table:
    """One row per variant, in the study's order: its run counts, every figure's spread and every paired
    difference's spread against the baseline."""
    header = ["variant", "baseline", "runs", "finished", "metric", "spread",
              *[f"{f}.{p}" for f in FIGURES for p in SPREAD_PARTS],
              *[f"vs_baseline.{k}.{p}" for k in PAIRS for p in SPREAD_PARTS]]
    rows = []
    for v in aggregate.get("variants", []):
        row: list[Any] = [v["variant"], v["variant"] == baseline, v["runs"], v["finished"], aggregate.get("metric"),
                          aggregate.get("spread", SPREAD)]
        row += [(v["figures"].get(f) or {}).get(p) for f in FIGURES for p in SPREAD_PARTS]
        row += [(v["vs_baseline"].get(k) or {}).get(p) for k in PAIRS for p in SPREAD_PARTS]
        rows.append(row)
    return header, rows


def verdicts_table(aggregate: dict[str, Any]) -> Table:
    """One row per target and variant judged, in the targets' order."""
    return list(VERDICT_COLUMNS), [[v.get(c) for c in VERDICT_COLUMNS] for v in aggregate.get("verdicts", [])]


def runs_table(runs: Sequence[dict[str, Any]]) -> Table:
    """One row per run (``StudyRunOut`` dicts), in the grid's order, with its page's path."""
    header = ["id", "name", "variant", "seed", "status", "rounds_done", "rounds_total", "metric", *RUN_FIGURES, "page"]
    rows = []
    for r in runs:
        figs = r.get("figures") or {}
        prog = r.get("progress") or {}
        rows.append([str(r["id"]), r["name"], r["variant"], r["seed"], r["status"], prog.get("rounds_done"),
                     prog.get("rounds_total"), figs.get("metric"), *[figs.get(f) for f in RUN_FIGURES],
                     f"/experiments/{r['id']}"])
    return header, rows


def table(name: TableName, detail: dict[str, Any]) -> Table:
    """The named table of a study detail (``StudyDetail`` as JSON-ready data)."""
    if name == "aggregate":
        return aggregate_table(detail["aggregate"], detail["definition"]["baseline"])
    if name == "verdicts":
        return verdicts_table(detail["aggregate"])
    return runs_table(detail["runs"])


def as_json(header: list[str], rows: list[list[Any]]) -> list[dict[str, Any]]:
    """The rows as objects keyed by the header."""
    return [dict(zip(header, row, strict=True)) for row in rows]


def _cell(value: Any) -> Any:
    """A CSV cell: empty for none; a text cell a spreadsheet would run as a formula gets a leading '."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def as_csv(header: list[str], rows: list[list[Any]]) -> str:
    """CSV text (RFC 4180: quoted where needed, CRLF line ends); numbers as Python writes them (full precision)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([[_cell(v) for v in row] for row in rows])
    return out.getvalue()
