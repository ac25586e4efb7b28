"""Advice from measured results (app/services/advice.py) on hand-made benchmark files."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from app.services import advice
from fedcore.spec import ExperimentSpec, preset
from tests.app.held import held_client

BASE = {"model": "minilm-l6", "dataset": "snli", "partition": "dirichlet", "rounds": 3, "pooling": "cls"}
PRUNED = {"aggregation": "head_weighted", "selection": "loss_gap"}


def spec(**fields: Any) -> dict[str, Any]:
    return ExperimentSpec.model_validate({**BASE, **fields}).model_dump(mode="json")


def runs(name: str, finals: list[float], rounds: int = 3, **fields: Any) -> list[dict[str, Any]]:
    return [{"name": name, "seed": seed, "spec": spec(seed=seed, rounds=rounds, **fields),
             "accuracy": [0.33] * (rounds - 1) + [final], "final_accuracy": final}
            for seed, final in enumerate(finals)]


@pytest.fixture
def results(tmp_path: Path) -> Path:
    table = [
        *runs("dense FedAvg", [0.70, 0.72]),
        *runs("dense FedAvg", [0.80, 0.80, 0.80], rounds=5),
        *runs("drop s=0.9", [0.35, 0.37], sparsity=0.9, prune_mode="drop", **PRUNED),
        *runs("drop s=0.9", [0.75], rounds=5, sparsity=0.9, prune_mode="drop", **PRUNED),
        *runs("mask s=0.9", [0.66, 0.68], sparsity=0.9, **PRUNED),
        *runs("mask s=0.5", [0.55, 0.57], sparsity=0.5, **PRUNED),
    ]
    (tmp_path / "paper_table-x.json").write_text(json.dumps(table))
    (tmp_path / "paper_table-x.md").write_text("# paper_table\n\n| configuration | seeds |\n|---|---:|\n"
                                               "| drop s=0.9 <script>x</script> | 2 |\n")
    (tmp_path / "paper_table-x.timing.json").write_text(json.dumps({"machine": "not a list of runs"}))
    return tmp_path


def test_a_row_that_did_not_learn_is_named_with_its_accuracy_vs_dense_seeds_rounds_and_table(results: Path) -> None:
    [got] = advice.advise(spec(sparsity=0.88, prune_mode="drop", **PRUNED), results)
    assert (got.row, got.table, got.rounds, got.seeds, got.dense_seeds) == ("drop s=0.9", "paper_table-x", 3, 2, 2)
    assert got.accuracy == pytest.approx(0.36) and got.dense_accuracy == pytest.approx(0.71)
    assert got.link == "/results/paper_table-x"
    assert "36.0% mean final accuracy vs 71.0% for dense FedAvg (2 seeds, 3 rounds, table paper_table-x)" in got.message


def test_a_row_is_compared_with_the_dense_baseline_of_its_own_rounds(results: Path) -> None:
    # the 5-round drop row (75%) is 5 points under the 5-round dense (80%): it learned, so no warning from it
    rows = {(r.name, r.rounds): r for r in advice.load_rows(results)}
    assert rows[("drop s=0.9", 5)].dense_accuracy == pytest.approx(0.80)
    assert rows[("drop s=0.9", 3)].dense_accuracy == pytest.approx(0.71)
    assert [a.rounds for a in advice.advise(spec(sparsity=0.9, prune_mode="drop", **PRUNED), results)] == [3]


def test_ten_points_below_dense_warns_even_above_chance(results: Path) -> None:
    [got] = advice.advise(spec(sparsity=0.5, **PRUNED), results)
    assert got.row == "mask s=0.5" and got.accuracy == pytest.approx(0.56)
    assert advice.advise(spec(sparsity=0.9, **PRUNED), results) == []  # 4 points below dense: it learned


@pytest.mark.parametrize("change", [
    {"pooling": "mean"}, {"model": "tiny-bert"}, {"dataset": "synthetic"}, {"partition": "iid"},
    {"sparsity": 0.8}, {"compute_sparsity": 0.5}, {"drop_scaling": True}, {"drop_dense_steps": 4},
    {"compute_ramp_rounds": 3}, {"compute_edge_blocks": 1}, {"head_choice": "sampled"}, {"lora_init": "heads_random"},
    {"aggregation": "fedavg"}, {"selection": "random"}, {"importance": "gradient"}, {"prune_ranking": "per_block"},
    {"prune_mode": "mask"},
])
def test_no_warning_when_a_field_that_decides_learning_differs(results: Path, change: dict[str, Any]) -> None:
    drop = {"sparsity": 0.9, "prune_mode": "drop", **PRUNED}
    assert len(advice.advise(spec(**drop), results)) == 1
    assert advice.advise(spec(**{**drop, **change}), results) == []


def test_fields_a_mode_does_not_use_are_not_matched(results: Path) -> None:
    # drop-only options on a mask-mode spec, and hyper-parameters, leave the match as it is
    got = advice.advise(spec(sparsity=0.5, drop_dense_steps=4, drop_scaling=True, learning_rate=1e-3, rounds=40,
                             **PRUNED), results)
    assert [a.row for a in got] == ["mask s=0.5"]
    # an unset compute sparsity is the sparsity: the same run as one that sets it equal
    assert len(advice.advise(spec(sparsity=0.9, compute_sparsity=0.9, prune_mode="drop", **PRUNED), results)) == 1


def test_without_benchmark_files_there_is_no_advice_and_one_log_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = tmp_path / "no-bench" / "results"
    with caplog.at_level(logging.INFO, logger=advice.__name__):
        assert advice.advise(spec(sparsity=0.9, prune_mode="drop"), missing) == []
        assert advice.advise(spec(sparsity=0.5, prune_mode="drop"), missing) == []
    assert [r.getMessage() for r in caplog.records] == [
        f"no benchmark results under {missing}: the form gives no advice from measured results"]


def test_only_committed_tables_render_and_their_html_is_escaped(results: Path) -> None:
    html = advice.render_table("paper_table-x", results)
    assert html is not None and "<table>" in html and "<td>drop s=0.9 &lt;script&gt;x&lt;/script&gt;</td>" in html
    assert advice.render_table("paper_table-x.md", results) == html
    for name in ("paper_table-x.json", "../paper_table-x", "nothing", ""):
        assert advice.render_table(name, results) is None


def test_the_committed_cls_table_flags_drop_mode_at_s_0_9() -> None:
    runs = json.loads((advice.RESULTS_DIR / "paper_table-cls.json").read_text())
    finals = [r["final_accuracy"] for r in runs if r["name"] == "drop s=0.9" and len(r["accuracy"]) == 15]
    got = advice.advise(preset("paper-pruned", prune_mode="drop", pooling="cls"))
    flagged = [a for a in got if a.table == "paper_table-cls"]
    assert [(a.row, a.seeds) for a in flagged] == [("drop s=0.9", len(finals))]
    assert flagged[0].accuracy == pytest.approx(sum(finals) / len(finals))
    assert advice.advise(preset("paper-pruned", pooling="cls")) == []  # mask at 0.9 learned


def test_the_rest_create_response_carries_the_warnings_and_still_creates(tmp_path: Path) -> None:
    with held_client(tmp_path) as client:  # jobs recorded and held queued
        drop = client.post("/api/v1/experiments", json={"preset": "paper-pruned",
                                                        "overrides": {"prune_mode": "drop", "pooling": "cls"}})
        assert drop.status_code == 201 and drop.json()["status"] == "queued"
        warned = {w["table"]: w for w in drop.json()["warnings"]}
        assert warned["paper_table-cls"]["row"] == "drop s=0.9"
        assert warned["paper_table-cls"]["message"] == next(
            a.message for a in advice.advise(preset("paper-pruned", prune_mode="drop", pooling="cls"))
            if a.table == "paper_table-cls")
        mask = client.post("/api/v1/experiments", json={"preset": "paper-pruned", "overrides": {"pooling": "cls"}})
        assert mask.status_code == 201 and mask.json()["warnings"] == []
        assert client.get("/api/v1/experiments").json()["total"] == 2
