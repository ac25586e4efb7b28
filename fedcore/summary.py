"""Headline figures of a run from its round records (plain Python: the API imports it without torch)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# the keys of a round record that summarize reads
SUMMARY_KEYS = ("bytes_up", "bytes_up_dense", "bytes_down", "ops", "ops_dense", "ops_attention",
                "ops_attention_dense", "metrics", "wall_time")


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
    return {
        "rounds": len(rounds),
        "final_accuracy": accs[-1] if accs else None,
        "best_accuracy": max(accs) if accs else None,
        "final_metrics": rounds[-1]["metrics"],
        "bytes_up": up,
        "bytes_up_dense": up_dense,
        "bytes_down": down,
        "uplink_advantage": up_dense / up if up else None,
        "total_advantage": (up_dense + down) / (up + down) if up + down else None,
        "ops": ops,
        "ops_dense": ops_dense,
        "ops_reduction": ops_dense / ops if ops else None,
        "ops_attention_reduction": att_dense / att if att else None,
        "wall_time": sum(r["wall_time"] for r in rounds),
    }
