"""paper_table: its rows come from the study files (bench/studies/), and the generated one is what its command
writes; its runs go through the product's study runner and its table is the study's aggregate
(fedcore/study_aggregate.py): runs saved with round records give study_aggregate's figures, runs saved before
(summed fields only) give every figure of their fields; a variant with its own dense counterpart is judged against
the stronger dense row; the README's headline tables are what the committed results give."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedcore.spec import validate_spec
from fedcore.study import StudySpec, read_study_file
from fedcore.study_aggregate import FIGURES, StudyRun, aggregate

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ROOT / "bench" / "studies"
RESULTS = ROOT / "bench" / "results"  # the committed runs (not FEDHEADS_BENCH_RESULTS)
sys.path.insert(0, str(ROOT / "bench"))

from paper_table import (  # noqa: E402
    BASELINE,
    CONFIGS,
    DENSE_COUNTERPART,
    EXTRA,
    HR_DENSE,
    README_TABLES,
    aggregates,
    readme,
    run_figures_of,
    run_missing,
    slim_record,
    table,
)


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
    above = table([_run("dense FedAvg", 0, 0.70), _run("mask s=0.9", 0, 0.715, 1.8)], "s")
    assert "met (1.5 points above; 1 seed(s) against 1)" in _verdict(above, "mask s=0.9")  # not "-1.5 points below"


def test_a_table_from_several_machines_says_which_rows_ran_where() -> None:
    one = [_run("dense FedAvg", 0, 0.7), _run("mask s=0.9", 0, 0.69, 1.8)]
    assert "more than one machine" not in table(one, "s")
    mixed = one + [{**_run("mask s=0.9, heads-random init", 0, 0.7, 1.8), "machine": "Xeon, 2 cores"}]
    text = table(mixed, "s")
    assert ('more than one machine; compare time columns only between rows of one machine: not recorded: "dense '
            'FedAvg", "mask s=0.9"; Xeon, 2 cores: "mask s=0.9, heads-random init".') in text


def test_the_rows_are_the_study_files_and_every_run_of_them_is_a_valid_spec() -> None:
    main = StudySpec.model_validate(read_study_file(STUDIES / "paper_table.yaml"))
    extra = StudySpec.model_validate(read_study_file(STUDIES / "paper_table-extra.yaml"))
    assert list(main.variants.items()) == CONFIGS and len(CONFIGS) == 9 and BASELINE == main.baseline == "dense FedAvg"
    assert [(n, o) for n, o in extra.variants.items() if n != BASELINE] == EXTRA and len(EXTRA) == 30
    assert extra.base == main.base and extra.variants[BASELINE] == main.variants[BASELINE]
    assert HR_DENSE == "dense FedAvg, heads-random init" and len(DENSE_COUNTERPART) == 9  # the pruned heads-random rows
    for study in (main, extra):  # what `fedheads study run` checks before it trains anything
        for variant, seed in study.runs():
            spec = validate_spec(study.fields(variant, seed))
            assert (spec.rounds, spec.eval_size, spec.pooling) == (15, 500, "mean")


def _study_yaml(*args: str) -> str:
    return subprocess.run([sys.executable, str(ROOT / "bench" / "paper_table.py"), *args, "--study-yaml", "-"],
                          check=True, capture_output=True, text=True, cwd=ROOT).stdout


def test_study_yaml_writes_the_study_files_back_and_the_committed_r25_file_is_what_its_command_writes() -> None:
    main = StudySpec.model_validate(read_study_file(STUDIES / "paper_table.yaml"))
    assert StudySpec.model_validate(yaml.safe_load(_study_yaml("--seeds", "4"))) == main
    committed = (STUDIES / "paper_table-r25.yaml").read_text()
    command = shlex.split(committed.splitlines()[2].removeprefix("#   python bench/paper_table.py "))
    assert command[-2:] == ["--study-yaml", "bench/studies/paper_table-r25.yaml"]
    again = _study_yaml(*command[:-2])
    assert again.splitlines()[3:] == committed.splitlines()[3:]  # all but the command line
    r25 = StudySpec.model_validate(yaml.safe_load(committed))
    assert r25.base.overrides == {**main.base.overrides, "rounds": 25} and r25.seeds == [0, 1, 2, 3]
    assert r25.model_copy(update={"name": main.name, "base": main.base}) == main
    # --extra --only: the chosen rows with the baseline first, the targets cut to them
    some = StudySpec.model_validate(yaml.safe_load(_study_yaml("--extra", "--only", "drop s=0.9, compute s=0.5")))
    assert list(some.variants) == [BASELINE, "drop s=0.9, compute s=0.5"] and some.seeds == [0, 1]
    assert [(t.metric, t.variants) for t in some.targets] == [
        (m, ["drop s=0.9, compute s=0.5"]) for m in ("accuracy_vs_baseline", "last3_vs_baseline",
                                                     "uplink_advantage", "train_speedup")]


# --- the table is the study's aggregate -------------------------------------------------------------------------


def _cells(text: str) -> dict[str, list[str]]:
    """The main table's cells by row (configuration -> the other columns)."""
    rows = {}
    for line in text.split("\n\n", 1)[0].splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def _is_rounding(shown: str, exact: Fraction) -> bool:
    """``shown`` (e.g. "62.3", "+1.5", "1.80x") is ``exact`` rounded to its decimals (a tie either way)."""
    digits = shown.rstrip("x").lstrip("+")
    step = Fraction(1, 10 ** len(digits.split(".")[1]))
    return abs(Fraction(digits) - exact) <= step / 2


def _mean(values: list[Fraction]) -> Fraction:
    return sum(values, Fraction(0)) / len(values)


def _half(values: list[Fraction]) -> Fraction:
    return (max(values) - min(values)) / 2


@pytest.mark.parametrize("stem", ["paper_table", "paper_table-cls", "paper_table-r25-cls"])
def test_a_legacy_results_file_gives_every_figure_of_its_summed_fields(stem: str) -> None:
    # runs saved before the round records were kept: every cell is its summed fields' exact mean over the row's
    # runs (worked out here in exact decimals, as the script did by hand before the study's aggregate took over)
    text = (RESULTS / f"{stem}.json").read_text()
    exact, runs = json.loads(text, parse_float=Fraction), json.loads(text)
    by: dict[str, list[dict[str, Any]]] = {}
    for r in exact:
        by.setdefault(r["name"], []).append(r)
    rows = _cells(table(runs, "s"))
    dense = by[BASELINE]
    d_final = _mean([r["final_accuracy"] for r in dense])
    d_train, d_wall = _mean([r["train_time_per_round"] for r in dense]), _mean([r["wall_per_round"] for r in dense])
    assert list(rows) == list(by)
    for name, rs in by.items():
        (seeds, final, delta, last3, up_mb, up, compute, both, ops, ops_att, train, train_x, wall, wall_x) = rows[name]
        finals = [r["final_accuracy"] * 100 for r in rs]
        tails = [_mean(r["accuracy"][-3:]) * 100 for r in rs]
        assert int(seeds) == len(rs)
        for shown, values in ((final, finals), (last3, tails)):
            m, _, h = shown.partition(" ± ")
            assert _is_rounding(m, _mean(values)) and (len(rs) == 1 or _is_rounding(h, _half(values))), (name, shown)
        if not all("uplink_per_round" in r for r in rs):  # later seeds saved with round records: their other
            continue  # figures come from the records (test_runs_with_round_records_give_the_figures_...)
        spec_compute = [Fraction(str(r["spec"].get("sparsity", 0))) if r["spec"].get("prune_mode") == "drop" else 0
                        for r in rs]
        checks = [
            (delta, (_mean([r["final_accuracy"] for r in rs]) - d_final) * 100),
            (up_mb, _mean([r["uplink_per_round"] for r in rs]) / 10**6),
            (up, _mean([r["uplink_advantage"] for r in rs])),
            (compute, _mean([r.get("compute_sparsity", c) for r, c in zip(rs, spec_compute, strict=True)])),
            (both, _mean([r["total_advantage"] for r in rs])),
            (ops, _mean([r["ops_reduction"] for r in rs])),
            (ops_att, _mean([r["ops_attention_reduction"] for r in rs])),
            (train, _mean([r["train_time_per_round"] for r in rs])),
            (train_x, d_train / _mean([r["train_time_per_round"] for r in rs])),
            (wall, _mean([r["wall_per_round"] for r in rs])),
            (wall_x, d_wall / _mean([r["wall_per_round"] for r in rs])),
        ]
        for shown, value in checks:
            assert _is_rounding(shown, value), (name, shown, float(value))


def test_the_committed_mean_pooling_table_is_what_its_command_writes_from_its_results(tmp_path: Path) -> None:
    # bench/results/paper_table.md from paper_table.json (runs without round records) and the saved side-by-side
    # timing, through the study's aggregate: the same markdown but for the date, the machine and the settings line
    committed = (RESULTS / "paper_table.md").read_text()
    command = shlex.split(next(line for line in committed.splitlines() if line.startswith("- command: "))
                          .removeprefix("- command: `python bench/paper_table.py ").removesuffix("`"))
    while "--timing-reps" in command:  # measuring flags: the saved timing is read instead
        del command[command.index("--timing-reps"):command.index("--timing-reps") + 2]
    command = [a for a in command if a != "--timing"]
    for name in ("paper_table.json", "paper_table.timing.json"):
        shutil.copy(RESULTS / name, tmp_path / name)
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "paper_table.py"), *command], check=True, text=True,
                         capture_output=True, cwd=ROOT, env={**os.environ, "FEDHEADS_BENCH_RESULTS": str(tmp_path)})

    def body(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith(("Settings: ", "# ", "- date: ", "- machine",
                                                                           "- command: "))]

    assert body(out.stdout) == body(committed.split("\n\n", 2)[2])


def test_a_report_of_a_few_rows_keeps_every_saved_run_in_the_results_file(tmp_path: Path) -> None:
    # `--only` (or fewer --seeds) picks the rows of the table; the results file keeps the runs left out of it
    before = json.loads((RESULTS / "paper_table.json").read_text())
    shutil.copy(RESULTS / "paper_table.json", tmp_path / "paper_table.json")
    subprocess.run([sys.executable, str(ROOT / "bench" / "paper_table.py"), "--report", "--seeds", "1",
                    "--only", "dense FedAvg"], check=True, capture_output=True, cwd=ROOT,
                   env={**os.environ, "FEDHEADS_BENCH_RESULTS": str(tmp_path)})
    table = (tmp_path / "paper_table.md").read_text()
    assert "| dense FedAvg | 4 |" in table and "| mask s=0.9 |" not in table
    after = json.loads((tmp_path / "paper_table.json").read_text())
    assert sorted((r["name"], r["seed"]) for r in after) == sorted((r["name"], r["seed"]) for r in before)
    assert len(after) > 4


SMOKE = {"name": "smoke table", "base": {"preset": "smoke", "overrides": {"rounds": 3, "local_steps": 2,
                                                                           "eval_size": 40, "max_train_examples": 200}},
         "variants": {BASELINE: {"sparsity": 0.0}, "mask s=0.9": {"sparsity": 0.9, "prune_mode": "mask"},
                      "drop s=0.9": {"sparsity": 0.9, "prune_mode": "drop"}},
         "seeds": [0], "baseline": BASELINE}


def test_runs_with_round_records_give_the_figures_of_the_study_aggregate(tmp_path: Path) -> None:
    # tiny runs through the product's study runner, as the script runs its rows (run_missing), saved with records
    study = StudySpec.model_validate(SMOKE)
    saved: list[dict[str, Any]] = []
    run_missing(study, study.runs(), {"rounds": 3}, saved, tmp_path / "partial.json")
    assert json.loads((tmp_path / "partial.json").read_text()) == saved
    assert [(r["name"], r["seed"], len(r["rounds"])) for r in saved] == [(v, 0, 3) for v in SMOKE["variants"]]
    ours = {v["variant"]: v for v in aggregates(saved)[1]["variants"]}
    records = [StudyRun(r["name"], r["seed"], "succeeded", r["rounds"]) for r in saved]
    theirs = {v["variant"]: v for v in aggregate(study, records)["variants"]}
    for name, v in theirs.items():
        for key in FIGURES:
            assert ours[name]["figures"][key] == v["figures"][key], (name, key)
        # one seed each: the difference of the means is the paired difference
        assert ours[name]["vs_baseline"]["accuracy_vs_baseline"]["mean"] == pytest.approx(
            v["vs_baseline"]["accuracy_vs_baseline"]["mean"])
    # the saved records are slim (no per-head matrices, no step losses); slimming a run's records changes no figure
    from fedcore.context import Paths
    from fedcore.study_runner import run_study, study_specs

    key = ("drop s=0.9", 0)
    full = next(run_study(study_specs(study, [key]), Paths())).records
    slim = next(r for r in saved if (r["name"], r["seed"]) == key)["rounds"]
    assert "importance" in full[0]["clients"][0] and "importance" not in slim[0]["clients"][0]
    assert [sorted(slim_record(r)) for r in full] == [sorted(r) for r in slim]  # (its times differ: another run)
    assert run_figures_of({"rounds": [slim_record(r) for r in full]}) == run_figures_of({"rounds": full})
    # drop mode trains only the kept heads: 2 of tiny-bert's 16 at s = 0.9; mask mode trains them all
    assert ours["drop s=0.9"]["figures"]["compute_sparsity"]["mean"] == pytest.approx(14 / 16)
    assert ours["mask s=0.9"]["figures"]["compute_sparsity"]["mean"] == 0.0
    # the table shows them, and a run saved in the old format (summed fields, no records) loads beside them
    old = {**_run(BASELINE, 1, 0.5), "uplink_per_round": 1e3}
    rows = _cells(table([*saved, old], "s"))
    mask = theirs["mask s=0.9"]["figures"]
    assert rows["mask s=0.9"][:2] == ["1", f"{mask['final_accuracy']['mean']:.1f}"]
    assert rows["mask s=0.9"][5] == f"{mask['uplink_advantage']['mean']:.2f}x"
    dense_finals = [theirs[BASELINE]["figures"]["final_accuracy"]["mean"], 50.0]
    assert rows[BASELINE][:2] == ["2", f"{sum(dense_finals) / 2:.1f} ± {abs(dense_finals[0] - 50.0) / 2:.1f}"]


def test_the_readme_headline_tables_are_what_the_committed_results_give() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme(text, RESULTS) == text, "README.md's headline tables are stale: python bench/paper_table.py --readme"
    for name in README_TABLES:
        assert f"<!-- paper_table --readme: {name} -->" in text
