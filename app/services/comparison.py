"""What a comparison of runs must say before its charts: which spec fields differ, and when the runs are not
comparable as they stand (different models, datasets, or test examples).

Pure functions of (id, name, spec) triples; the compare page (app/web/views.py) renders what they return.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fedcore.spec import ExperimentSpec

# Always table columns: what a run is of, and its seed.
ALWAYS = ("model", "dataset", "seed")
# The test examples a run is scored on: the data, its fields and the seeded subsample of eval_size examples
# (fedcore.data.sources.load_dataset draws it with the run's seed).
EVAL_FIELDS = ("dataset", "data_path", "text_field", "text_pair_field", "label_field", "target_field", "eval_size",
               "seed")


@dataclass(frozen=True)
class Run:
    id: str
    name: str
    spec: dict[str, Any]


@dataclass
class Comparison:
    labels: dict[str, str] = field(default_factory=dict)  # id -> the run's name in legends (unique)
    differs: list[str] = field(default_factory=list)  # spec fields whose values are not all equal, in spec order
    columns: list[str] = field(default_factory=list)  # table columns: ALWAYS, then the other fields that differ
    warnings: list[str] = field(default_factory=list)


def _shown(value: Any) -> str:
    return "unset" if value is None else str(value)


def _spec_order(keys: set[str]) -> list[str]:
    order = list(ExperimentSpec.model_fields)
    return sorted(keys, key=lambda k: (order.index(k) if k in order else len(order), k))


def labels(runs: Sequence[Run]) -> dict[str, str]:
    """Each run's name; a name two runs share gets the run's short id, so legends tell them apart."""
    count: dict[str, int] = {}
    for r in runs:
        count[r.name] = count.get(r.name, 0) + 1
    return {r.id: r.name if count[r.name] == 1 else f"{r.name} · {r.id[:8]}" for r in runs}


def differing(runs: Sequence[Run]) -> list[str]:
    keys = {k for r in runs for k in r.spec}
    return _spec_order({k for k in keys if len({repr(r.spec.get(k)) for r in runs}) > 1})


def _groups(runs: Sequence[Run], key: str, names: dict[str, str]) -> str:
    by: dict[str, list[str]] = {}
    for r in runs:
        by.setdefault(_shown(r.spec.get(key)), []).append(names[r.id])
    return "; ".join(f"{value} ({', '.join(who)})" for value, who in by.items())


def compare(runs: Sequence[Run]) -> Comparison:
    names = labels(runs)
    differs = differing(runs) if len(runs) > 1 else []
    out = Comparison(labels=names, differs=differs,
                     columns=[*ALWAYS, *(k for k in differs if k not in ALWAYS)])
    if "model" in differs:
        out.warnings.append(f"Different models: {_groups(runs, 'model', names)}. Their accuracies and costs are "
                            "not the effect of one method on one network.")
    if "dataset" in differs:
        out.warnings.append(f"Different datasets: {_groups(runs, 'dataset', names)}. Accuracies on different "
                            "tasks are not comparable.")
    eval_diff = [k for k in EVAL_FIELDS if k in differs and k != "dataset"]
    if eval_diff:
        out.warnings.append(
            f"Evaluated on different test examples: {', '.join(eval_diff)} differ (each run scores a subsample of "
            "eval_size test examples drawn with its seed). Differences of a point or two may be the test set's.")
    return out
