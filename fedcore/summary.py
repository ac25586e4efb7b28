"""Headline figures of a run from its round records (plain Python: the API imports it without torch).

Two ways in, one set of definitions: :func:`summarize` sums a run's round records here; the
dashboard's list sums the same round columns in SQL (app/services/listing.py) and hands the sums to
:func:`headline`, so both show the same ratios.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# the keys of a round record that summarize reads
SUMMARY_KEYS = ("bytes_up", "bytes_up_dense", "bytes_down", "ops", "ops_dense", "ops_attention",
                "ops_attention_dense", "metrics", "wall_time")


def ratio(dense: Any, actual: Any) -> Any:
    """How many times the dense run's cost this run's is (dense / actual); None when nothing was spent."""
    return dense / actual if actual else None


def headline(*, rounds: int, best_accuracy: float | None, bytes_up: Any, bytes_up_dense: Any, bytes_down: Any,
             ops: Any, ops_dense: Any, wall_time: Any) -> dict[str, Any]:
    """The figures a list of runs shows, from a run's sums over its rounds (summed in Python or in SQL)."""
    return {
        "rounds": rounds, "best_accuracy": best_accuracy, "bytes_up": bytes_up, "bytes_up_dense": bytes_up_dense,
        "bytes_down": bytes_down, "uplink_advantage": ratio(bytes_up_dense, bytes_up),
        "ops_reduction": ratio(ops_dense, ops), "wall_time": wall_time,
    }


def summarize(rounds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Headline figures of a run from its round records."""
    if not rounds:
        return {"rounds": 0}
    up = sum(r["bytes_up"] for r in rounds)
    up_dense = sum(r["bytes_up_dense"] for r in rounds)
    down = sum(r["bytes_down"] for r in rounds)
    ops = sum(r["ops"] for r in rounds)
    ops_dense = sum(r["ops_dense"] for r in rounds)
    att = sum(r["ops_attention"] for r in rounds)
    att_dense = sum(r["ops_attention_dense"] for r in rounds)
    accs = [r["metrics"].get("accuracy") for r in rounds if r["metrics"].get("accuracy") is not None]
    head = headline(rounds=len(rounds), best_accuracy=max(accs) if accs else None, bytes_up=up,
                    bytes_up_dense=up_dense, bytes_down=down, ops=ops, ops_dense=ops_dense,
                    wall_time=sum(r["wall_time"] for r in rounds))
    return {
        "rounds": head["rounds"],
        "final_accuracy": accs[-1] if accs else None,
        "best_accuracy": head["best_accuracy"],
        "final_metrics": rounds[-1]["metrics"],
        "bytes_up": up,
        "bytes_up_dense": up_dense,
        "bytes_down": down,
        "uplink_advantage": head["uplink_advantage"],
        "total_advantage": ratio(up_dense + down, up + down),
        "ops": ops,
        "ops_dense": ops_dense,
        "ops_reduction": head["ops_reduction"],
        "ops_attention_reduction": ratio(att_dense, att),
        "wall_time": head["wall_time"],
    }
