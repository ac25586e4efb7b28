"""paper_table's verdicts: a variant with its own dense counterpart is judged against the stronger dense row."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from paper_table import HR_DENSE, table  # noqa: E402


def _run(name: str, seed: int, acc: float, adv: float = 1.0) -> dict[str, Any]:
    return {"name": name, "seed": seed, "accuracy": [0.4, acc], "final_accuracy": acc, "uplink_per_round": 1e6,
            "uplink_advantage": adv, "total_advantage": 1.0, "ops_reduction": 1.0, "ops_attention_reduction": 1.0,
            "train_time_per_round": 10.0, "wall_per_round": 12.0}


def _verdict(text: str, row: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"- {row}:"))


def test_heads_random_variant_is_judged_against_the_stronger_dense_row() -> None:
    base = [_run("dense FedAvg", s, 0.70) for s in (0, 1)] + [_run("mask s=0.9", s, 0.69, 1.8) for s in (0, 1)]
    variant = [_run("mask s=0.9, heads-random init", s, 0.695, 1.8) for s in (0, 1)]
    weaker = table(base + variant + [_run(HR_DENSE, s, 0.66) for s in (0, 1)], "s")
    assert "met (0.5 points below; 2 seed(s) against 2)" in _verdict(weaker, "mask s=0.9, heads-random init")
    stronger = table(base + variant + [_run(HR_DENSE, s, 0.72) for s in (0, 1, 2)], "s")
    line = _verdict(stronger, "mask s=0.9, heads-random init")
    assert f"NOT met (2.5 points below {HR_DENSE}; 2 seed(s) against 3)" in line
    assert "met (1.0 points below; 2 seed(s) against 2)" in _verdict(stronger, "mask s=0.9")  # the method: plain dense
    assert not any(line.startswith(f"- {HR_DENSE}:") for line in stronger.splitlines())  # dense is not judged


def test_a_table_from_several_machines_says_which_rows_ran_where() -> None:
    one = [_run("dense FedAvg", 0, 0.7), _run("mask s=0.9", 0, 0.69, 1.8)]
    assert "more than one machine" not in table(one, "s")
    mixed = one + [{**_run("mask s=0.9, heads-random init", 0, 0.7, 1.8), "machine": "Xeon, 2 cores"}]
    text = table(mixed, "s")
    assert ('more than one machine; compare time columns only between rows of one machine: not recorded: "dense '
            'FedAvg", "mask s=0.9"; Xeon, 2 cores: "mask s=0.9, heads-random init".') in text
