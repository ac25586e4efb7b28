"""The experiment spec: bounds, relations, presets, files."""

from __future__ import annotations

import json

import pytest

from fedcore.spec import (
    ExperimentSpec,
    SpecError,
    UnknownPreset,
    load_spec,
    merged_fields,
    parse_sets,
    preset,
    preset_names,
    requested_fields,
    validate_spec,
)


def test_out_of_bounds_sparsity_names_field_and_range() -> None:
    with pytest.raises(SpecError) as err:
        validate_spec({"sparsity": 1.5})
    assert "sparsity" in str(err.value)
    assert "0.99" in str(err.value)


def test_clients_per_round_above_num_clients_is_refused() -> None:
    with pytest.raises(SpecError, match=r"clients_per_round \(8\) must be <= num_clients \(4\)"):
        validate_spec({"num_clients": 4, "clients_per_round": 8})


def test_unknown_field_is_refused() -> None:
    with pytest.raises(SpecError, match="sparsty: unknown field"):
        validate_spec({"sparsty": 0.5})


@pytest.mark.parametrize(
    ("field", "value", "bound"),
    [("batch_size", 0, "1"), ("learning_rate", 2.0, "1"), ("max_seq_len", 4, "8"), ("rounds", 0, "1")],
)
def test_bounds_enforced_for_each_field(field: str, value: float, bound: str) -> None:
    with pytest.raises(SpecError) as err:
        validate_spec({field: value})
    assert field in str(err.value) and bound in str(err.value)


def test_exactly_one_of_steps_and_epochs_required() -> None:
    with pytest.raises(SpecError, match="exactly one of local_steps and local_epochs"):
        validate_spec({"local_steps": None, "local_epochs": None})
    assert validate_spec({"local_steps": None, "local_epochs": 1.0}).local_epochs == 1.0


def test_every_preset_validates_and_lists() -> None:
    names = preset_names()
    assert {"smoke", "demo", "paper-dense", "paper-pruned"} <= set(names)
    for name in names:
        assert isinstance(preset(name), ExperimentSpec)
    assert preset("paper-pruned").sparsity == 0.9
    assert preset("paper-dense").sparsity == 0.0


def test_paper_sampled_is_the_paper_table_row_it_reports() -> None:
    # the preset's _about quotes the paper table's row "mask s=0.9, sampled heads, heads-random init": the
    # same spec, so those figures are what the preset gives
    from pathlib import Path

    from fedcore.study import StudySpec, read_study_file
    from fedcore.study_runner import study_specs

    root = Path(__file__).resolve().parents[2]
    study = StudySpec.model_validate(read_study_file(root / "bench" / "studies" / "paper_table-extra.yaml"))
    key = ("mask s=0.9, sampled heads, heads-random init", 0)
    assert study_specs(study, [key])[key] == preset("paper-sampled")
    assert preset("paper-sampled").with_overrides(head_choice="top", lora_init="peft") == preset("paper-pruned")


def test_unknown_preset_lists_choices() -> None:
    with pytest.raises(SpecError, match="smoke"):
        preset("nope")


def test_spec_loads_from_yaml_with_preset_and_json(tmp_path) -> None:
    y = tmp_path / "s.yaml"
    y.write_text("preset: smoke\nrounds: 7\nsparsity: 0.25\n")
    spec = load_spec(y)
    assert spec.rounds == 7 and spec.sparsity == 0.25 and spec.model == "tiny-bert"
    j = tmp_path / "s.json"
    j.write_text(json.dumps({"model": "tiny-t5", "dataset": "synthetic", "rounds": 2}))
    assert load_spec(j).model == "tiny-t5"


def test_sets_parse_values_as_yaml_and_refuse_an_item_without_equals() -> None:
    assert parse_sets(["rounds=3", " sparsity =0.5", "lora_targets=[q, v]", "data_path=null", "name=a=b"]) == {
        "rounds": 3, "sparsity": 0.5, "lora_targets": ["q", "v"], "data_path": None, "name": "a=b"
    }
    assert parse_sets(None) == {}
    with pytest.raises(SpecError, match="--set expects key=value, got 'rounds'"):
        parse_sets(["rounds"])


def test_requested_fields_put_sets_over_a_file_that_names_a_preset(tmp_path) -> None:
    y = tmp_path / "s.yaml"
    y.write_text("preset: smoke\noverrides: {rounds: 7, seed: 1}\nrounds: 5\nsparsity: 0.25\n")
    name, fields = requested_fields(preset_name=None, spec_path=y, overrides={"sparsity": 0.75})
    assert (name, fields) == ("smoke", {"rounds": 5, "seed": 1, "sparsity": 0.75})
    merged = merged_fields(name, fields)
    assert merged["model"] == "tiny-bert" and merged["rounds"] == 5 and "_about" not in merged
    assert requested_fields(preset_name="demo", spec_path=y, overrides={"rounds": 2}) == ("demo", {"rounds": 2})
    plain = tmp_path / "p.json"
    plain.write_text(json.dumps({"model": "tiny-t5", "rounds": 2}))
    assert requested_fields(preset_name=None, spec_path=plain, overrides={"rounds": 3}) == (
        None, {"model": "tiny-t5", "rounds": 3}
    )


def test_merged_fields_name_an_unknown_preset_and_its_choices() -> None:
    with pytest.raises(UnknownPreset) as err:
        merged_fields("nope", {"rounds": 2})
    assert err.value.reason.startswith("unknown preset 'nope'; choose one of smoke, demo")
    assert str(err.value) == f"preset: {err.value.reason}"
    assert merged_fields(None, {"rounds": 2}) == {"rounds": 2}


def test_a_spec_file_must_hold_a_mapping(tmp_path) -> None:
    y = tmp_path / "list.yaml"
    y.write_text("- rounds\n")
    with pytest.raises(SpecError, match="a spec file must hold a mapping"):
        load_spec(y)


def test_yaml_is_loaded_safely(tmp_path) -> None:
    y = tmp_path / "evil.yaml"
    y.write_text("rounds: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(Exception) as err:
        load_spec(y)
    assert "ConstructorError" in type(err.value).__name__ or "could not determine" in str(err.value)


def test_json_schema_has_descriptions_and_bounds() -> None:
    schema = ExperimentSpec.model_json_schema()
    sp = schema["properties"]["sparsity"]
    assert sp["maximum"] == 0.99 and sp["minimum"] == 0 and sp["description"]
    assert all("description" in p for p in schema["properties"].values())
