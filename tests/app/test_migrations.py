"""Alembic is the one schema source: the migration and the ORM models agree on both databases."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, create_engine, inspect, text

from alembic import command
from app.core.migrate import alembic_config, current_revision, upgrade
from app.models import Base
from tests.app.stack import fresh_schema

TABLES = {"experiments", "rounds", "clients", "events", "studies"}
HEAD = "0003_studies"


@pytest.fixture(params=["postgresql", "sqlite"])
def migrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return fresh_schema("fedheads_test_migrations")
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    return url


def test_models_match_the_migration_when_upgraded_to_head(migrated_url: str) -> None:
    engine = create_engine(migrated_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert diff == []
    assert current_revision(migrated_url) == HEAD


def test_downgrade_to_base_removes_every_table_and_upgrade_restores_them(migrated_url: str) -> None:
    command.downgrade(alembic_config(migrated_url), "base")
    engine = create_engine(migrated_url)
    assert not TABLES & set(inspect(engine).get_table_names())
    upgrade(migrated_url)
    assert set(inspect(engine).get_table_names()) >= TABLES
    engine.dispose()


def test_experiments_stored_before_tags_get_no_tags_and_an_empty_note(migrated_url: str) -> None:
    command.downgrade(alembic_config(migrated_url), "0001_initial")
    engine = create_engine(migrated_url)
    assert "tags" not in {c["name"] for c in inspect(engine).get_columns("experiments")}
    exp_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO experiments (id, name, spec, status, rounds_done, rounds_total, cancel_requested, "
                "created_at, updated_at) VALUES (:id, 'old run', '{}', 'succeeded', 1, 1, false, "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"id": exp_id.hex if engine.dialect.name == "sqlite" else str(exp_id)},
        )
    upgrade(migrated_url)
    assert current_revision(migrated_url) == HEAD
    with engine.connect() as conn:
        tags, note = conn.execute(text("SELECT tags, note FROM experiments")).one()
    engine.dispose()
    assert (tags if isinstance(tags, list) else json.loads(tags)) == []  # SQLite hands back the JSON text
    assert note == ""


def _insert_run(conn: Connection, name: str, spec: dict[str, object], sqlite: bool) -> uuid.UUID:
    exp_id = uuid.uuid4()
    conn.execute(
        text(
            "INSERT INTO experiments (id, name, spec, status, rounds_done, rounds_total, cancel_requested, "
            "created_at, updated_at) VALUES (:id, :name, :spec, 'succeeded', 1, 1, false, "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ),
        {"id": exp_id.hex if sqlite else str(exp_id), "name": name, "spec": json.dumps(spec)},
    )
    return exp_id


def test_sweeps_stored_before_studies_become_studies_linked_by_key(migrated_url: str) -> None:
    command.downgrade(alembic_config(migrated_url), "0002_tags_note")
    engine = create_engine(migrated_url)
    sqlite = engine.dialect.name == "sqlite"
    base = {"model": "tiny-bert", "dataset": "synthetic", "rounds": 2, "seed": 3, "spec_version": 2}
    with engine.begin() as conn:
        dense = _insert_run(conn, "sw [sweep ab12] s=0", {**base, "sparsity": 0.0}, sqlite)
        half = _insert_run(conn, "sw [sweep ab12] s=0.5", {**base, "sparsity": 0.5}, sqlite)
        bare = _insert_run(conn, "[sweep cd34]", {**base, "sparsity": 0.9, "seed": 1}, sqlite)
        alone = _insert_run(conn, "not a [sweep] member", {**base, "sparsity": 0.9}, sqlite)
    upgrade(migrated_url)
    with engine.connect() as conn:
        studies = {r.name: r for r in conn.execute(text("SELECT id, name, definition FROM studies")).all()}
        runs = {
            str(r.id).replace("-", ""): r
            for r in conn.execute(text("SELECT id, name, study_id, variant, seed FROM experiments")).all()
        }
    engine.dispose()
    assert set(studies) == {"sw", "sweep cd34"}
    sw = studies["sw"]
    definition = sw.definition if isinstance(sw.definition, dict) else json.loads(sw.definition)
    assert definition["variants"] == {"s=0": {"sparsity": 0.0}, "s=0.5": {"sparsity": 0.5}}
    assert definition["baseline"] == "s=0" and definition["seeds"] == [3]
    assert definition["base"] == {"preset": None, "overrides": {"model": "tiny-bert", "dataset": "synthetic",
                                                                  "rounds": 2}}
    same = lambda a, b: str(a).replace("-", "") == str(b).replace("-", "")  # noqa: E731 (SQLite: hex text)
    assert same(runs[dense.hex].study_id, sw.id) and runs[dense.hex].variant == "s=0"
    assert same(runs[half.hex].study_id, sw.id) and (runs[half.hex].variant, runs[half.hex].seed) == ("s=0.5", 3)
    assert same(runs[bare.hex].study_id, studies["sweep cd34"].id)
    assert (runs[bare.hex].variant, runs[bare.hex].seed) == ("s=0.9", 1)
    assert runs[alone.hex].study_id is None and runs[alone.hex].variant is None
    assert runs[half.hex].name == "sw [sweep ab12] s=0.5"  # names are left as they were
