"""A study's table: per variant, the mean and spread over seeds, paired differences, verdicts per target.

Plain functions of round records (plain Python, no torch: the API imports it). What they compute is
what bench/paper_table.py computed by hand, now in one place:

- per run (:func:`run_figures`): the task's metric (accuracy; else ROUGE-L; else BLEU) in points
  (percent; BLEU is already 0-100) at the final round and averaged over the last three rounds, the
  uplink and total communication advantage and the OPs reductions (:func:`fedcore.summary.summarize`),
  client training time (summed over a round's clients, mean over rounds) and wall time;
- per variant (:func:`aggregate`): over its finished runs, each figure's mean, half-range
  ((max - min) / 2) and seed count (:class:`Spread`), and the differences from the baseline's run of
  the same seed (variant - baseline, in points; training speed-up: baseline / variant), paired
  per seed;
- per target (:func:`verdicts`): met / not met, by how much, on how many seeds.

Only finished (``succeeded``) runs count; a study with runs still going says so (``complete``).

A run's figures come from its round records, or are given with it (:attr:`StudyRun.figures`) where
the records were not kept: bench/paper_table.py's runs saved before it kept them hold only the
summed figures, and they are aggregated by the same :func:`aggregate`. That table also compares rows
with different numbers of seeds (one seed of a variant against four of the baseline), so
:func:`aggregate` can compare the means instead of pairing seeds (``compare="means"``).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from fedcore.study import PAIRED, StudySpec, Target
from fedcore.summary import summarize

METRICS = ("accuracy", "rougeL", "bleu")  # the task's metric: the first one the run records
SPREAD = "half-range"  # how a spread is stated: (max - min) / 2 over the seeds
TIE = 1e-9  # a verdict's value this close to its bar is on it (met)
FIGURES = ("final_accuracy", "last3_accuracy", "uplink_advantage", "total_advantage", "ops_reduction",
           "ops_attention_reduction", "train_time_per_round", "wall_time_per_round", "uplink_mb", "train_time")


Compare = Literal["paired", "means"]


@dataclass(frozen=True)
class StudyRun:
    """One run of a study as stored: its place in the grid, its status and its round records so far.

    ``figures``, when given, are the run's figures (the keys of :func:`run_figures`, plus ``per_round``:
    the metric per round in points) and are used instead of figures computed from ``records``; a run
    saved without its records has only these.
    """

    variant: str
    seed: int
    status: str
    records: Sequence[dict[str, Any]] = ()
    figures: Mapping[str, Any] | None = None

    def run_figures(self) -> dict[str, Any]:
        """The run's figures: the ones given, else :func:`run_figures` of its records."""
        return dict(self.figures) if self.figures is not None else run_figures(self.records)

    def per_round(self) -> list[float | None]:
        """The task's metric at each round, in points: from the records, else the figures' ``per_round``."""
        if self.records or self.figures is None:
            return metric_per_round(self.records)
        return list(self.figures.get("per_round") or [])


@dataclass(frozen=True)
class Spread:
    """The mean of some seeds' values, their half-range and how many there are."""

    mean: float | None
    half_range: float | None
    n: int

    @classmethod
    def of(cls, values: Sequence[float | None]) -> Spread:
        vals = [float(v) for v in values if v is not None]
        if not vals:
            return cls(None, None, 0)
        return cls(statistics.fmean(vals), (max(vals) - min(vals)) / 2, len(vals))

    def as_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "half_range": self.half_range, "n": self.n}


def metric_name(records: Sequence[dict[str, Any]]) -> str | None:
    """The task's metric a run records: accuracy, else ROUGE-L, else BLEU (None before any evaluation)."""
    for name in METRICS:
        if any((r.get("metrics") or {}).get(name) is not None for r in records):
            return name
    return None


def _points(name: str | None, value: float | None) -> float | None:
    if value is None or name is None:
        return None
    return float(value) if name == "bleu" else float(value) * 100.0


def metric_per_round(records: Sequence[dict[str, Any]], name: str | None = None) -> list[float | None]:
    """The task's metric at each round, in points."""
    name = name or metric_name(records)
    return [_points(name, (r.get("metrics") or {}).get(name or "")) for r in records]


def last3(values: Sequence[float | None]) -> float | None:
    """The mean of a run's last three per-round values (fewer when it has fewer rounds)."""
    tail = [v for v in values[-3:] if v is not None]
    return statistics.fmean(tail) if tail else None


def run_figures(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One run's figures (see the module docstring); an empty dict for a run without rounds."""
    if not records:
        return {}
    s = summarize(records)
    name = metric_name(records)
    per_round = metric_per_round(records, name)
    train = [sum(float(c.get("train_time", 0.0)) for c in r.get("clients") or []) for r in records]
    return {
        "metric": name,
        "final_accuracy": per_round[-1],
        "last3_accuracy": last3(per_round),
        "uplink_advantage": s["uplink_advantage"],
        "total_advantage": s["total_advantage"],
        "ops_reduction": s["ops_reduction"],
        "ops_attention_reduction": s["ops_attention_reduction"],
        "train_time_per_round": statistics.fmean(train),
        "train_time": sum(train),
        "wall_time_per_round": s["wall_time"] / len(records),
        "uplink_mb": s["bytes_up"] / 1e6,
        "rounds": len(records),
    }


@dataclass
class VariantTable:
    """One variant's row: its runs' counts, spreads of every figure, paired differences, per-round band."""

    name: str
    runs: int
    finished: int
    figures: dict[str, Spread] = field(default_factory=dict)
    paired: dict[str, Spread] = field(default_factory=dict)
    per_round: list[dict[str, Any]] = field(default_factory=list)
    against: int | None = None  # compare="means": the baseline's finished seeds (None: paired per seed)

    def as_dict(self) -> dict[str, Any]:
        out = {
            "variant": self.name, "runs": self.runs, "finished": self.finished,
            "figures": {k: v.as_dict() for k, v in self.figures.items()},
            "vs_baseline": {k: v.as_dict() for k, v in self.paired.items()},
            "per_round": self.per_round,
        }
        return out if self.against is None else {**out, "against": self.against}


def _band(runs: Sequence[StudyRun]) -> list[dict[str, Any]]:
    """Per round, over the runs that stored it (finished or not): mean, min and max of the metric in points."""
    series = [s for r in runs if (s := r.per_round())]
    out = []
    for i in range(max((len(s) for s in series), default=0)):
        vals = [v for s in series if i < len(s) and (v := s[i]) is not None]
        if vals:
            out.append({"round": i + 1, "mean": statistics.fmean(vals), "min": min(vals), "max": max(vals),
                        "n": len(vals)})
    return out


PairFn = Callable[[dict[str, Any], dict[str, Any]], float | None]


def _diff(key: str) -> PairFn:
    def fn(run: dict[str, Any], base: dict[str, Any]) -> float | None:
        a, b = run.get(key), base.get(key)
        return None if a is None or b is None else a - b

    return fn


def _speedup(run: dict[str, Any], base: dict[str, Any]) -> float | None:
    t, b = run.get("train_time_per_round"), base.get("train_time_per_round")
    return b / t if t and b is not None else None


PAIRS: dict[str, PairFn] = {
    "accuracy_vs_baseline": _diff("final_accuracy"),
    "last3_vs_baseline": _diff("last3_accuracy"),
    "train_speedup": _speedup,
}
# compare="means": the same comparisons between the means over every finished seed of each side
MEAN_PAIRS: dict[str, tuple[str, Callable[[float, float], float | None]]] = {
    "accuracy_vs_baseline": ("final_accuracy", lambda v, b: v - b),
    "last3_vs_baseline": ("last3_accuracy", lambda v, b: v - b),
    "train_speedup": ("train_time_per_round", lambda v, b: b / v if v else None),
}


def _compared(figures: dict[str, Spread], base: dict[str, Spread]) -> dict[str, Spread]:
    """``compare="means"``: each comparison of the variant's mean with the baseline's, on the variant's seeds
    (no spread: the two means need not rest on the same seeds)."""
    out = {}
    for k, (fig, fn) in MEAN_PAIRS.items():
        v, b = figures[fig], base[fig]
        value = fn(v.mean, b.mean) if v.mean is not None and b.mean is not None else None
        out[k] = Spread(value, None, v.n if value is not None else 0)
    return out


def aggregate(study: StudySpec, runs: Sequence[StudyRun], *, compare: Compare = "paired",
              extra: Sequence[str] = ()) -> dict[str, Any]:
    """The study's table: ``variants`` (one :class:`VariantTable` dict each, in the study's order),
    ``verdicts``, the ``metric`` judged, ``spread`` (how spreads are stated), run counts and ``complete``.

    ``compare``: "paired" (the differences from the baseline's run of the same seed, with their spread) or
    "means" (the variant's mean over its finished seeds against the baseline's over all of its own; no
    spread; each variant's and verdict's ``against`` is the baseline's seed count). ``extra``: per-run figures
    to spread per variant besides :data:`FIGURES`, for runs whose ``figures`` carry more.
    """
    done = {(r.variant, r.seed): r.run_figures() for r in runs if r.status == "succeeded"}
    base = {seed: f for (v, seed), f in done.items() if v == study.baseline}
    tables = []
    for name in study.variants:
        mine = [r for r in runs if r.variant == name]
        figs = [f for (v, _), f in done.items() if v == name]
        table = VariantTable(name=name, runs=len(mine), finished=len(figs),
                             figures={k: Spread.of([f.get(k) for f in figs]) for k in (*FIGURES, *extra)},
                             per_round=_band(mine))
        if compare == "paired":
            pairs = [(f, base[seed]) for (v, seed), f in done.items() if v == name and seed in base]
            table.paired = {k: Spread.of([fn(f, b) for f, b in pairs]) for k, fn in PAIRS.items()}
        tables.append(table)
    if compare == "means":
        by_name = {t.name: t for t in tables}
        for t in tables:
            t.paired = _compared(t.figures, by_name[study.baseline].figures)
            t.against = len(base)
    metrics = {f.get("metric") for f in done.values() if f.get("metric")}
    total = len(study.runs())
    finished = sum(1 for r in runs if r.status == "succeeded")
    out = {
        "metric": metrics.pop() if len(metrics) == 1 else ("mixed" if metrics else None),
        "spread": SPREAD,
        "runs": total,
        "finished": finished,
        "complete": finished == total,
        "variants": [t.as_dict() for t in tables],
        "verdicts": verdicts(study, tables, complete=finished == total),
        "pareto": {"uplink_mb": frontier(tables, "uplink_mb"), "train_time": frontier(tables, "train_time")},
    }
    return out if compare == "paired" else {**out, "compare": compare}


def _value(table: VariantTable, metric: str) -> Spread:
    return table.paired[metric] if metric in PAIRED else table.figures[metric]


def judge(target: Target, table: VariantTable, *, complete: bool = True) -> dict[str, Any]:
    """One target on one variant: met or not, the value, the margin (how far past the bar; negative: short
    of it) and the seeds it rests on, with a sentence that says all of it."""
    kind, limit = target.bound()
    spread = _value(table, target.metric)
    out: dict[str, Any] = {"variant": table.name, "metric": target.metric, "bound": kind, "limit": limit,
                           "value": spread.mean, "half_range": spread.half_range, "seeds": spread.n}
    if spread.mean is None:
        return {**out, "met": None, "margin": None, "partial": not complete,
                "text": f"not judged: no finished {'pair of runs' if target.metric in PAIRED else 'run'} yet"}
    margin = spread.mean - limit if kind == "at_least" else limit - spread.mean
    met = margin >= -TIE  # a value on the bar meets it, whichever way the floating-point noise of its mean went
    unit = " points" if target.metric.endswith("accuracy") or target.metric.endswith("_vs_baseline") else "x"
    sign = ">=" if kind == "at_least" else "<="
    text = (f"{'met' if met else 'NOT met'}: {target.metric} {spread.mean:.2f}{unit} {sign} {limit:.2f}{unit} "
            f"{'by' if met else 'short by'} {abs(margin):.2f}, on {spread.n} seed(s)")
    if target.within is not None:
        where = f"{-spread.mean:.2f} points below" if spread.mean < 0 else f"{spread.mean:.2f} points above"
        text = (f"{'met' if met else 'NOT met'}: {where} the baseline (allowed {target.within:.2f} below; "
                f"{'room' if met else 'over by'} {abs(margin):.2f}), on {spread.n} seed(s)")
    if table.against is not None and target.metric in PAIRED:
        text += f" against {table.against} of the baseline (means, not paired)"
        out["against"] = table.against
    if not complete:
        text += " (partial: runs still going)"
    return {**out, "met": met, "margin": margin, "partial": not complete, "text": text}


def verdicts(study: StudySpec, tables: Sequence[VariantTable], *, complete: bool = True) -> list[dict[str, Any]]:
    """Every target on every variant it names (default: all but the baseline), in order."""
    by_name = {t.name: t for t in tables}
    out = []
    for i, target in enumerate(study.targets):
        names = target.variants or [v for v in study.variants if v != study.baseline]
        out += [{"target": i, **judge(target, by_name[n], complete=complete)} for n in names]
    return out


def frontier(tables: Sequence[VariantTable], cost: str) -> list[str]:
    """The variants on the Pareto frontier of mean final accuracy (higher is better) against mean ``cost``
    (lower is better): none other is at least as good on both and better on one."""
    pts: list[tuple[str, float, float]] = []
    for t in tables:
        a, c = t.figures["final_accuracy"].mean, t.figures[cost].mean
        if a is not None and c is not None:
            pts.append((t.name, a, c))
    return [n for n, a, c in pts
            if not any(a2 >= a and c2 <= c and (a2 > a or c2 < c) for _, a2, c2 in pts)]
