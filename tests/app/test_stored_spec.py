"""Stored specs carry a schema version; a spec stored by an older fedheads is upgraded when read.

The end-to-end case stores a spec as an older fedheads wrote it (no version key, no
``pooling``, and ``num_clients`` under an older name), then resumes the experiment and clones
it through the dashboard's form and the API.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from app.core import stored_spec
from app.core.stored_spec import VERSION_KEY, added, current_version, for_storage, renamed, upgrade
from app.models import Experiment
from app.services.experiments import create_experiment
from fedcore.spec import ExperimentSpec, preset
from tests.app.held import held_client
from tests.app.stack import TEST_JOB, fresh_schema
from worker.runner import run_job


def _current_spec() -> dict[str, Any]:
    return preset("smoke", **TEST_JOB).model_dump(mode="json")


def _as_stored_before_versions(spec: dict[str, Any], *, old_name: str | None = None) -> dict[str, Any]:
    """What fedheads wrote before spec versions and ``pooling`` existed."""
    old = {k: v for k, v in spec.items() if k != "pooling"}
    if old_name is not None:
        old[old_name] = old.pop("num_clients")
    return old


def test_upgrade_gives_a_spec_stored_before_versions_the_pooling_it_ran_with() -> None:
    spec = {**_current_spec(), "pooling": "mean"}
    upgraded = upgrade(_as_stored_before_versions(spec))
    assert upgraded == {**spec, "pooling": "cls"}
    assert ExperimentSpec.model_validate(upgraded).pooling == "cls"


def test_upgrade_leaves_a_spec_stored_at_the_current_version_as_it_was() -> None:
    spec = {**_current_spec(), "pooling": "mean"}
    stored = for_storage(spec)
    assert stored[VERSION_KEY] == current_version()
    assert upgrade(stored) == spec


def test_upgrade_refuses_a_spec_stored_by_a_newer_fedheads() -> None:
    with pytest.raises(ValueError, match="upgrade fedheads"):
        upgrade({**_current_spec(), VERSION_KEY: current_version() + 1})


def test_steps_rename_a_field_and_fill_an_absent_one_without_touching_a_present_one() -> None:
    assert renamed("clients", "num_clients")({"clients": 4, "rounds": 2}) == {"num_clients": 4, "rounds": 2}
    assert renamed("clients", "num_clients")({"num_clients": 4}) == {"num_clients": 4}
    assert added("pooling", "cls")({"rounds": 2}) == {"rounds": 2, "pooling": "cls"}
    assert added("pooling", "cls")({"pooling": "mean"}) == {"pooling": "mean"}


def test_the_spec_column_stores_the_version_and_reads_an_old_row_upgraded_on_postgresql() -> None:
    url = fresh_schema("fedheads_test_stored_spec")
    engine = create_engine(url)
    try:
        with Session(engine) as s:
            exp = create_experiment(
                db_session=s, name="v", spec=preset("smoke", **TEST_JOB), artifact_root=Path("/tmp/unused")
            )
            s.commit()
            exp_id = exp.id
        with engine.begin() as conn:
            raw = conn.scalar(text("SELECT spec FROM experiments WHERE id = :i"), {"i": exp_id})
            assert raw[VERSION_KEY] == current_version()
            old = _as_stored_before_versions(_current_spec())
            conn.execute(
                text("UPDATE experiments SET spec = CAST(:s AS JSONB) WHERE id = :i"),
                {"s": json.dumps(old), "i": exp_id},
            )
        with Session(engine) as s:
            read = s.scalar(select(Experiment.spec).where(Experiment.id == exp_id))
            assert read == {**old, "pooling": "cls"}
    finally:
        engine.dispose()


def _form_start_spec(html: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="form-data">(.*?)</script>', html, re.S)
    assert match, "the form's data block is missing"
    start: dict[str, Any] = json.loads(match.group(1))["start_spec"]
    return start


def test_an_experiment_stored_with_an_older_spec_resumes_and_clones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Suppose a later version renamed `clients` to `num_clients`: one more step. The stored row is
    # older still (no version key, no `pooling`), so reading it runs both steps.
    monkeypatch.setattr(stored_spec, "STEPS", [*stored_spec.STEPS, renamed("clients", "num_clients")])
    with held_client(tmp_path) as api:
        settings = api.app.state.settings  # type: ignore[attr-defined]
        body = {"name": "old", "preset": "smoke", "overrides": TEST_JOB}
        created = api.post("/api/v1/experiments", json=body)
        assert created.status_code == 201, created.text
        exp_id = uuid.UUID(created.json()["id"])
        current = created.json()["spec"]
        old = _as_stored_before_versions(current, old_name="clients")
        with api.app.state.sessions.begin() as s:  # type: ignore[attr-defined]
            s.execute(
                text("UPDATE experiments SET spec = :s, status = 'cancelled' WHERE id = :i"),
                {"s": json.dumps(old), "i": exp_id.hex},
            )

        resumed = api.post(f"/api/v1/experiments/{exp_id}/resume")
        assert resumed.status_code == 202, resumed.text
        assert run_job(exp_id, settings=settings) == "succeeded"
        done = api.get(f"/api/v1/experiments/{exp_id}").json()
        assert done["status"] == "succeeded" and done["progress"]["rounds_done"] == TEST_JOB["rounds"]
        expected = {**current, "pooling": "cls"}
        assert done["spec"] == expected

        page = api.get(f"/experiments/new?from={exp_id}")
        assert page.status_code == 200
        assert _form_start_spec(page.text) == expected
        clone = api.post("/api/v1/experiments", json={"name": "old (copy)", "spec": done["spec"]})
        assert clone.status_code == 201, clone.text
        assert clone.json()["spec"] == expected
