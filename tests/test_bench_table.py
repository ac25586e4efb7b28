"""paper_table's verdicts: a variant with its own dense counterpart is judged against the stronger dense row; its
rows come from the study files (bench/studies/), and the generated one is what its command writes."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from fedcore.spec import validate_spec
from fedcore.study import StudySpec, read_study_file

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ROOT / "bench" / "studies"
sys.path.insert(0, str(ROOT / "bench"))

from paper_table import BASELINE, CONFIGS, DENSE_COUNTERPART, EXTRA, HR_DENSE, table  # noqa: E402


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


def test_the_rows_are_the_study_files_and_every_run_of_them_is_a_valid_spec() -> None:
    main = StudySpec.model_validate(read_study_file(STUDIES / "paper_table.yaml"))
    extra = StudySpec.model_validate(read_study_file(STUDIES / "paper_table-extra.yaml"))
    assert list(main.variants.items()) == CONFIGS and len(CONFIGS) == 9 and BASELINE == main.baseline == "dense FedAvg"
    assert [(n, o) for n, o in extra.variants.items() if n != BASELINE] == EXTRA and len(EXTRA) == 28
    assert extra.base == main.base and extra.variants[BASELINE] == main.variants[BASELINE]
    assert HR_DENSE == "dense FedAvg, heads-random init" and len(DENSE_COUNTERPART) == 7  # the pruned heads-random rows
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
