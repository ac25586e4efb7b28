"""Alembic is the one schema source: the migration and the ORM models agree on both databases."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from alembic import command
from app.core.migrate import alembic_config, current_revision, upgrade
from app.models import Base
from tests.app.stack import fresh_schema

TABLES = {"experiments", "rounds", "clients", "events"}


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
    assert current_revision(migrated_url) == "0002_tags_note"


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
    assert current_revision(migrated_url) == "0002_tags_note"
    with engine.connect() as conn:
        tags, note = conn.execute(text("SELECT tags, note FROM experiments")).one()
    engine.dispose()
    assert (tags if isinstance(tags, list) else json.loads(tags)) == []  # SQLite hands back the JSON text
    assert note == ""
