"""Warnings from measured results: a submitted spec that matches a benchmark row that did not learn.

The committed benchmark runs (``bench/results/paper_table*.json``, written by ``bench/paper_table.py``)
are read once per process. Each run has ``name``, ``seed``, ``spec`` (the full spec it ran with),
``accuracy`` per round and ``final_accuracy``. Runs of one file with the same name and number of
rounds form a *row*; a file's dense baseline is its row named ``dense FedAvg`` with the same rounds.

A row *did not learn* when its mean final accuracy is more than ``GAP_POINTS`` points below its
dense baseline's mean, or under the dataset's chance floor (``CHANCE_FLOOR``: 40% for SNLI, whose
three labels put chance at 33%).

A spec *matches* a row when the two agree on every field that decides what is learned
(:func:`learning_key`):

- always: model, dataset, partition, pooling, lora_init, aggregation, selection, importance,
  train_top_blocks and train_top_blocks_after (absent from older rows: 0), and the sparsity within ``SPARSITY_TOLERANCE``;
- when heads are pruned (sparsity > 0): prune_mode, head_choice, prune_ranking, min_heads_per_block;
- in drop mode: the compute sparsity (``compute_sparsity``, unset meaning the sparsity; within the
  same tolerance), drop_dense_steps, compute_ramp_rounds, compute_edge_blocks, drop_scaling, compute_redraw_steps
  (absent from older rows: 0).

Fields that only take effect in a mode are left out of the other modes' keys, so a mask-mode spec
is not told apart from a benchmark row by a drop-mode option it never uses. Aggregation, selection,
importance and the ranking are matched because the benchmark rows differ in exactly those: a row
that tested FedAvg aggregation says nothing of head-weighted aggregation. Hyper-parameters (rounds,
clients, learning rate and its schedule, steps, Dirichlet alpha) are not matched; the warning names the rounds and
seeds the figure was measured on. A combination no benchmark row ran gets no warning: the advice is
only ever what was measured.

Without the benchmark files (a container without ``bench/``) there is no advice: one log line says so.
"""

from __future__ import annotations

import functools
import json
import logging
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass
from html import escape
from pathlib import Path
from typing import Any

from fedcore.spec import ExperimentSpec

log = logging.getLogger(__name__)

RESULTS_DIR = Path(__file__).resolve().parents[2] / "bench" / "results"
RESULTS_URL = "/results"
RUN_FILES = "paper_table*.json"
DENSE_ROW = "dense FedAvg"
GAP_POINTS = 10.0
CHANCE_FLOOR = {"snli": 0.40}
SPARSITY_TOLERANCE = 0.05

ALWAYS = ("model", "dataset", "partition", "pooling", "lora_init", "aggregation", "selection", "importance",
          "train_top_blocks", "train_top_blocks_after")
ABSENT_MEANS = {"train_top_blocks": 0, "train_top_blocks_after": 0, "compute_redraw_steps": 0}  # rows saved before a field existed ran with its default
WHEN_PRUNED = ("prune_mode", "head_choice", "prune_ranking", "min_heads_per_block")
IN_DROP_MODE = ("drop_dense_steps", "compute_ramp_rounds", "compute_edge_blocks", "drop_scaling", "compute_redraw_steps")


@dataclass(frozen=True)
class BenchRow:
    """One configuration of one benchmark file: its runs (one per seed) summed up."""

    table: str  # the file's stem, e.g. "paper_table-cls"
    name: str
    rounds: int
    seeds: int
    accuracy: float  # mean final accuracy over the seeds
    spec: dict[str, Any]
    dense_accuracy: float | None  # the same file's dense FedAvg with the same rounds; None if absent
    dense_seeds: int


@dataclass(frozen=True)
class Advice:
    """A warning about a submitted spec: the benchmark row it matches, and what that row measured."""

    row: str
    table: str
    rounds: int
    seeds: int
    accuracy: float
    dense_accuracy: float | None
    dense_seeds: int
    link: str | None  # the table's page (/results/<table>), when its markdown is committed
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- matching --------------------------------------------------------------------------------------


def learning_key(spec: dict[str, Any]) -> tuple[dict[str, Any], float, float | None]:
    """(exact fields, sparsity, compute sparsity or None outside drop mode) of a spec, as matched."""
    sparsity = float(spec.get("sparsity") or 0.0)
    names = list(ALWAYS)
    drop = sparsity > 0 and spec.get("prune_mode") == "drop"
    if sparsity > 0:
        names += WHEN_PRUNED
    if drop:
        names += IN_DROP_MODE
    compute = spec.get("compute_sparsity")
    compute_sparsity = (sparsity if compute is None else float(compute)) if drop else None
    return {n: spec.get(n, ABSENT_MEANS.get(n)) for n in names}, sparsity, compute_sparsity


def matches(spec: dict[str, Any], row_spec: dict[str, Any]) -> bool:
    fields, sparsity, compute = learning_key(spec)
    row_fields, row_sparsity, row_compute = learning_key(row_spec)
    if fields != row_fields or abs(sparsity - row_sparsity) > SPARSITY_TOLERANCE + 1e-9:
        return False
    if compute is None or row_compute is None:
        return compute is None and row_compute is None
    return abs(compute - row_compute) <= SPARSITY_TOLERANCE + 1e-9


def did_not_learn(row: BenchRow) -> bool:
    floor = CHANCE_FLOOR.get(str(row.spec.get("dataset")))
    if floor is not None and row.accuracy < floor:
        return True
    return row.dense_accuracy is not None and 100 * (row.dense_accuracy - row.accuracy) > GAP_POINTS


# --- the benchmark files ---------------------------------------------------------------------------


def _rows_of(table: str, runs: list[dict[str, Any]]) -> list[BenchRow]:
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        if isinstance(run, dict) and isinstance(run.get("spec"), dict) and run.get("accuracy"):
            groups[(str(run["name"]), len(run["accuracy"]))].append(run)

    def mean_final(group: list[dict[str, Any]]) -> float:
        return statistics.fmean(float(r["final_accuracy"]) for r in group)

    rows = []
    for (name, rounds), group in groups.items():
        dense = groups.get((DENSE_ROW, rounds))
        rows.append(BenchRow(
            table=table, name=name, rounds=rounds, seeds=len({r.get("seed") for r in group}),
            accuracy=mean_final(group), spec=group[0]["spec"],
            dense_accuracy=mean_final(dense) if dense else None, dense_seeds=len(dense or []),
        ))
    return rows


@functools.cache
def load_rows(results_dir: Path = RESULTS_DIR) -> tuple[BenchRow, ...]:
    """Every row of the committed benchmark files, read once per process (and per folder)."""
    files = sorted(p for p in results_dir.glob(RUN_FILES) if not p.name.endswith((".timing.json", ".partial.json")))
    rows: list[BenchRow] = []
    for path in files:
        try:
            runs = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            log.warning("benchmark results %s unreadable, skipped: %s", path, err)
            continue
        if isinstance(runs, list):
            rows += _rows_of(path.name.removesuffix(".json"), runs)
    if not rows:
        log.info("no benchmark results under %s: the form gives no advice from measured results", results_dir)
    return tuple(rows)


def _message(row: BenchRow) -> str:
    seeds = f"{row.seeds} seed{'s' if row.seeds != 1 else ''}"
    against = (f"vs {100 * row.dense_accuracy:.1f}% for dense FedAvg" if row.dense_accuracy is not None
               else "with no dense baseline in its table")
    return (f"This matches the benchmark row \u201c{row.name}\u201d, which did not learn: "
            f"{100 * row.accuracy:.1f}% mean final accuracy {against} ({seeds}, {row.rounds} rounds, "
            f"table {row.table}).")


def advise(spec: ExperimentSpec | dict[str, Any], results_dir: Path = RESULTS_DIR) -> list[Advice]:
    """Warnings for a spec: each benchmark row it matches that did not learn; [] without benchmark files."""
    data = spec.model_dump(mode="json") if isinstance(spec, ExperimentSpec) else spec
    tables = set(table_names(results_dir))
    out = []
    for row in load_rows(results_dir):
        if matches(data, row.spec) and did_not_learn(row):
            out.append(Advice(
                row=row.name, table=row.table, rounds=row.rounds, seeds=row.seeds, accuracy=row.accuracy,
                dense_accuracy=row.dense_accuracy, dense_seeds=row.dense_seeds,
                link=f"{RESULTS_URL}/{row.table}" if row.table in tables else None, message=_message(row),
            ))
    return out


# --- the tables, read-only ---------------------------------------------------------------------------


def table_names(results_dir: Path = RESULTS_DIR) -> list[str]:
    """The committed tables (bench/results/*.md), by stem: the only names the results page serves."""
    return sorted(p.stem for p in results_dir.glob("*.md")) if results_dir.is_dir() else []


def plot_names(results_dir: Path = RESULTS_DIR) -> list[str]:
    """The committed plots (bench/results/*.svg) the tables link to, by file name."""
    return sorted(p.name for p in results_dir.glob("*.svg")) if results_dir.is_dir() else []


def render_table(name: str, results_dir: Path = RESULTS_DIR) -> str | None:
    """A table's markdown as HTML (raw HTML in it escaped), or None when ``name`` is not a committed table."""
    stem = name.removesuffix(".md")
    if stem not in table_names(results_dir):
        return None
    text = (results_dir / f"{stem}.md").read_text(encoding="utf-8")
    try:
        from markdown_it import MarkdownIt  # a dependency (pyproject.toml)
    except ImportError:
        return f"<pre>{escape(text)}</pre>"
    return str(MarkdownIt("commonmark", {"html": False}).enable("table").render(text))
