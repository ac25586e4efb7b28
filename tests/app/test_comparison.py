"""What a comparison says before its charts: the fields that differ, and warnings for runs not comparable."""

from __future__ import annotations

from typing import Any

from app.services.comparison import Run, compare
from tests.e2e.seed import smoke_spec


def run(id_: str, name: str, **spec: Any) -> Run:
    return Run(id=id_, name=name, spec=smoke_spec(**spec))


def test_identical_specs_differ_in_nothing_and_warn_of_nothing() -> None:
    out = compare([run("a" * 8, "x"), run("b" * 8, "y")])
    assert out.differs == [] and out.warnings == []
    assert out.columns == ["model", "dataset", "seed"]
    assert out.labels == {"a" * 8: "x", "b" * 8: "y"}


def test_fields_that_differ_become_columns_in_spec_order() -> None:
    out = compare([run("1", "a", sparsity=0.9, prune_mode="drop"), run("2", "b", sparsity=0.0), run("3", "c")])
    assert out.differs == ["sparsity", "prune_mode"]
    assert out.columns == ["model", "dataset", "seed", "sparsity", "prune_mode"]
    assert out.warnings == []


def test_different_models_datasets_and_test_examples_are_each_warned_of() -> None:
    out = compare([run("1", "a"), run("2", "b", model="tiny-t5", dataset="bbc-news", eval_size=50)])
    assert [w.split(":")[0] for w in out.warnings] == [
        "Different models", "Different datasets", "Evaluated on different test examples"]
    assert "tiny-bert (a); tiny-t5 (b)" in out.warnings[0]
    assert "eval_size differ" in out.warnings[2]
    seeds = compare([run("1", "a", seed=0), run("2", "b", seed=1)])
    assert len(seeds.warnings) == 1 and "seed differ" in seeds.warnings[0]


def test_runs_that_share_a_name_are_told_apart_by_their_id() -> None:
    out = compare([run("0123456789", "same"), run("abcdefghij", "same"), run("zz", "other")])
    assert out.labels == {"0123456789": "same · 01234567", "abcdefghij": "same · abcdefgh", "zz": "other"}
