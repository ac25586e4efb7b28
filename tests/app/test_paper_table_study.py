"""The quick paper table the studies page offers (app/services/paper_table.py): the study file with the quick
sizing over its base, and no offer without a valid file."""

from __future__ import annotations

from pathlib import Path

from app.services.paper_table import PAPER_TABLE, QUICK_OVERRIDES, paper_table, quick_paper_table
from fedcore.study import StudySpec, read_study_file


def test_the_quick_paper_table_is_the_study_file_sized_down() -> None:
    full = StudySpec.model_validate(read_study_file(PAPER_TABLE))
    quick = quick_paper_table()
    assert quick is not None and paper_table() == full
    assert quick.name == "paper_table (quick)" and quick.seeds == [0] and len(quick.runs()) == 9
    assert (quick.variants, quick.baseline, quick.targets) == (full.variants, full.baseline, full.targets)
    assert quick.base.preset == full.base.preset == "paper-dense"
    assert quick.base.overrides == {**full.base.overrides, **QUICK_OVERRIDES}
    assert {k: quick.base.overrides[k] for k in ("rounds", "num_clients", "clients_per_round", "local_steps",
                                                 "eval_size")} == {"rounds": 3, "num_clients": 10,
                                                                   "clients_per_round": 2, "local_steps": 5,
                                                                   "eval_size": 100}


def test_no_offer_without_a_valid_study_file(tmp_path: Path) -> None:
    assert quick_paper_table(tmp_path / "missing.yaml") is None
    (tmp_path / "bad.yaml").write_text("name: x\nvariants: {a: {}}\nseeds: [0]\nbaseline: b\n")
    assert quick_paper_table(tmp_path / "bad.yaml") is None  # a baseline that is not a variant
    (tmp_path / "broken.yaml").write_text("name: [\n")
    assert paper_table(tmp_path / "broken.yaml") is None
