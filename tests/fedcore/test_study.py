"""Studies: the definition's rules, its grid, and the table of a study against numbers worked out by hand."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from fedcore.study import StudySpec, study_yaml
from fedcore.study_aggregate import StudyRun, aggregate, last3, run_figures

STUDY: dict[str, Any] = {
    "name": "hand",
    "base": {"preset": "smoke", "overrides": {"rounds": 4}},
    "variants": {"dense": {"sparsity": 0.0}, "mask": {"sparsity": 0.9}},
    "seeds": [0, 1],
    "baseline": "dense",
    "targets": [
        {"metric": "accuracy_vs_baseline", "within": 2.0},
        {"metric": "uplink_advantage", "at_least": 1.8},
        {"metric": "train_speedup", "at_least": 1.5, "variants": ["mask"]},
    ],
}


def _round(acc: float | None, up: int, train: float, *, dense_up: int = 100) -> dict[str, Any]:
    """A round record with what the table reads: 2 clients training ``train`` s each."""
    return {
        "metrics": {} if acc is None else {"accuracy": acc}, "bytes_up": up, "bytes_up_dense": dense_up,
        "bytes_down": 100, "ops": 10.0, "ops_dense": 20.0, "ops_attention": 4.0, "ops_attention_dense": 12.0,
        "wall_time": 3.0, "clients": [{"train_time": train}, {"train_time": train}],
    }


def _run(variant: str, seed: int, accs: list[float], up: int, train: float, status: str = "succeeded") -> StudyRun:
    return StudyRun(variant, seed, status, [_round(a, up, train) for a in accs])


HAND_RUNS = [
    _run("dense", 0, [0.5, 0.6, 0.7, 0.8], 100, 1.0),   # final 80, last-3 70, 2 s of training a round
    _run("mask", 0, [0.5, 0.6, 0.7, 0.79], 50, 0.5),    # final 79, 2.0x uplink, 1 s a round
    _run("dense", 1, [0.5, 0.6, 0.7, 0.76], 100, 1.0),  # final 76, last-3 68.67
    _run("mask", 1, [0.5, 0.6, 0.7, 0.72], 40, 1.0),    # final 72, 2.5x uplink, 2 s a round
]


def test_a_study_expands_seed_by_seed_with_the_variant_over_the_base() -> None:
    study = StudySpec.model_validate(STUDY)
    assert study.runs() == [("dense", 0), ("mask", 0), ("dense", 1), ("mask", 1)]
    fields = study.fields("mask", 1)
    assert "preset" not in fields
    assert fields["sparsity"] == 0.9 and fields["rounds"] == 4 and fields["seed"] == 1
    assert fields["model"] == "tiny-bert"  # the smoke preset's
    assert study.origin("mask", "sparsity") == ["variants", "mask", "sparsity"]
    assert study.origin("mask", "rounds") == ["base", "overrides", "rounds"]
    assert StudySpec.model_validate(yaml.safe_load(study_yaml(study))) == study


@pytest.mark.parametrize(
    ("change", "loc", "words"),
    [
        ({"baseline": "sparse"}, ("baseline",), "not one of the variants"),
        ({"variants": {}}, ("variants",), "at least 1"),
        ({"variants": {"dense": {"seed": 3}}, "baseline": "dense"}, ("variants",), "variant 'dense' sets 'seed'"),
        ({"seeds": [1, 1]}, ("seeds",), "must not repeat"),
        ({"targets": [{"metric": "uplink_advantage", "within": 1}]}, ("targets", 0), "'within' is for"),
        ({"targets": [{"metric": "ops_reduction", "at_least": 1, "variants": ["nope"]}]}, ("targets",), "nope"),
    ],
)
def test_a_bad_study_names_its_field(change: dict[str, Any], loc: tuple[Any, ...], words: str) -> None:
    with pytest.raises(ValidationError) as err:
        StudySpec.model_validate({**STUDY, **change})
    found = err.value.errors()
    assert any(e["loc"][: len(loc)] == loc and words in e["msg"] for e in found), found


def test_run_figures_are_points_of_the_metric_and_the_summary_ratios() -> None:
    f = run_figures(HAND_RUNS[1].records)
    assert f["final_accuracy"] == pytest.approx(79.0)
    assert f["last3_accuracy"] == pytest.approx((60 + 70 + 79) / 3)
    assert f["uplink_advantage"] == pytest.approx(2.0)
    assert f["total_advantage"] == pytest.approx(200 / 150)
    assert f["ops_reduction"] == pytest.approx(2.0) and f["ops_attention_reduction"] == pytest.approx(3.0)
    assert f["train_time_per_round"] == pytest.approx(1.0) and f["uplink_mb"] == pytest.approx(200 / 1e6)
    assert last3([None, 1.0, None]) == 1.0 and last3([]) is None


def test_aggregate_matches_the_hand_worked_means_pairs_and_verdicts() -> None:
    table = aggregate(StudySpec.model_validate(STUDY), HAND_RUNS)
    assert table["complete"] and table["metric"] == "accuracy" and table["spread"] == "half-range"
    dense, mask = table["variants"]
    assert dense["figures"]["final_accuracy"] == pytest.approx({"mean": 78.0, "half_range": 2.0, "n": 2})
    assert mask["figures"]["final_accuracy"] == pytest.approx({"mean": 75.5, "half_range": 3.5, "n": 2})
    assert mask["figures"]["uplink_advantage"] == pytest.approx({"mean": 2.25, "half_range": 0.25, "n": 2})
    # paired per seed: 79 - 80 = -1, 72 - 76 = -4; speed-up 2/1 = 2 and 2/2 = 1
    assert mask["vs_baseline"]["accuracy_vs_baseline"] == pytest.approx({"mean": -2.5, "half_range": 1.5, "n": 2})
    last3_pairs = [(60 + 70 + 79) / 3 - 70, (60 + 70 + 72) / 3 - (60 + 70 + 76) / 3]
    assert mask["vs_baseline"]["last3_vs_baseline"]["mean"] == pytest.approx(sum(last3_pairs) / 2)
    assert mask["vs_baseline"]["train_speedup"] == pytest.approx({"mean": 1.5, "half_range": 0.5, "n": 2})
    assert dense["vs_baseline"]["accuracy_vs_baseline"] == {"mean": 0.0, "half_range": 0.0, "n": 2}
    acc, up, speed = table["verdicts"]
    assert (acc["variant"], acc["met"], acc["seeds"]) == ("mask", False, 2)
    assert acc["margin"] == pytest.approx(-0.5) and "2.50 points below" in acc["text"]
    assert up["met"] is True and up["margin"] == pytest.approx(0.45) and "on 2 seed(s)" in up["text"]
    assert speed["met"] is True and speed["margin"] == pytest.approx(0.0)
    assert mask["per_round"][3] == {"round": 4, "mean": pytest.approx(75.5), "min": pytest.approx(72.0),
                                    "max": pytest.approx(79.0), "n": 2}
    assert table["pareto"]["uplink_mb"] == ["dense", "mask"]  # dense: more accurate; mask: fewer bytes


def test_a_partial_study_counts_only_finished_runs_and_says_so() -> None:
    runs = [*HAND_RUNS[:3], _run("mask", 1, [0.5, 0.6], 40, 1.0, status="running")]
    table = aggregate(StudySpec.model_validate(STUDY), runs)
    assert not table["complete"] and (table["finished"], table["runs"]) == (3, 4)
    mask = table["variants"][1]
    assert (mask["runs"], mask["finished"]) == (2, 1)
    assert mask["vs_baseline"]["accuracy_vs_baseline"] == {"mean": -1.0, "half_range": 0.0, "n": 1}
    assert mask["per_round"][1]["n"] == 2 and len(mask["per_round"]) == 4  # the running run's rounds show too
    acc = table["verdicts"][0]
    assert acc["met"] is True and acc["partial"] and "partial" in acc["text"] and "1 seed(s)" in acc["text"]


def test_means_compare_each_variant_with_every_seed_of_the_baseline_and_given_figures_count_like_records() -> None:
    # dense on seeds 0 and 1 (final 80, 76: mean 78), mask on seed 0 only (final 79); mask's seed 1 was saved without
    # its records, as figures: final 72, last-3 67, 2.5x uplink, 2 s a round, accuracy per round given
    given = {**run_figures(HAND_RUNS[3].records), "per_round": [50.0, 60.0, 70.0, 72.0]}
    runs = [*HAND_RUNS[:3], StudyRun("mask", 1, "succeeded", (), given)]
    assert aggregate(StudySpec.model_validate(STUDY), runs) == aggregate(StudySpec.model_validate(STUDY), HAND_RUNS)
    table = aggregate(StudySpec.model_validate(STUDY), HAND_RUNS[:3], compare="means")
    mask = table["variants"][1]
    assert table["compare"] == "means" and mask["against"] == 2
    # 79 - 78 = +1 on mask's one seed against dense's two (paired, it would be 79 - 80 = -1)
    assert mask["vs_baseline"]["accuracy_vs_baseline"] == {"mean": pytest.approx(1.0), "half_range": None, "n": 1}
    assert mask["vs_baseline"]["last3_vs_baseline"]["mean"] == pytest.approx((60 + 70 + 79) / 3 - (70 + 206 / 3) / 2)
    assert mask["vs_baseline"]["train_speedup"]["mean"] == pytest.approx(2.0)  # dense 2 s a round, mask 1 s
    acc, _, speed = table["verdicts"]
    assert acc["met"] is True and acc["against"] == 2 and "on 1 seed(s) against 2 of the baseline" in acc["text"]
    assert speed["met"] is True and speed["value"] == pytest.approx(2.0)
    paired = aggregate(StudySpec.model_validate(STUDY), HAND_RUNS[:3])
    assert "compare" not in paired and "against" not in paired["variants"][1]  # the API's table is unchanged


def test_a_value_on_the_bar_meets_it_whatever_its_rounding() -> None:
    # 60.2 - 62.2 points is -2.000000000000007 in floating point: mask is on the bar of "within 2.0", so met
    runs = [_run("dense", 0, [0.622], 100, 1.0), _run("mask", 0, [0.602], 50, 1.0)]
    acc = aggregate(StudySpec.model_validate({**STUDY, "seeds": [0]}), runs)["verdicts"][0]
    assert acc["value"] < -2.0 and acc["value"] == pytest.approx(-2.0) and acc["met"] is True
