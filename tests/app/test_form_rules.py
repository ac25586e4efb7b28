"""The form's rules of which fields apply (app/form_rules.py) name real spec fields and values, and the
form page hands them to its script."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from app.form_rules import APPLIES, FACTS, form_rules
from fedcore.checks import DATASET_TASKS, FAMILY_TASKS, MODEL_FAMILIES
from fedcore.spec import ExperimentSpec
from tests.app.held import held_client

FACT_VALUES = {
    "source": {"builtin", "local", "hub", "other"},
    "task": {"classification", "generation"},
    "family": set(FAMILY_TASKS) | {"unknown"},
}


def _choices(name: str) -> set[str] | None:
    prop: dict[str, Any] = ExperimentSpec.model_json_schema()["properties"][name]
    for variant in prop.get("anyOf", [prop]):
        if "enum" in variant:
            return {str(v) for v in variant["enum"]}
    return None


def test_every_rule_names_a_spec_field_and_conditions_it_can_meet() -> None:
    fields = ExperimentSpec.model_fields
    assert set(FACTS) == set(FACT_VALUES)
    for name, rule in APPLIES.items():
        assert name in fields, name
        assert rule, name
        for key, allowed in rule.items():
            if key in FACTS:
                assert set(allowed) <= FACT_VALUES[key], (name, key, allowed)
            else:
                choices = _choices(key)
                assert choices is not None, f"{name}: condition on {key}, which has no fixed choices"
                assert set(allowed) <= choices, (name, key, allowed)


def test_the_form_page_carries_the_rules(tmp_path: Path) -> None:
    with held_client(tmp_path) as client:
        page = client.get("/experiments/new").text
    data = json.loads(re.search(r'<script type="application/json" id="form-data">(.*?)</script>', page, re.S)[1])
    assert data["rules"] == json.loads(json.dumps(form_rules()))
    assert data["rules"]["model_families"] == MODEL_FAMILIES and data["rules"]["dataset_tasks"] == DATASET_TASKS
    for picker in ("pick-model", "pick-dataset", "pick-task"):
        assert f'id="{picker}"' in page
