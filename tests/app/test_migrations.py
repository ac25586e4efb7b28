"""Alembic is the one schema source: the migration and the ORM models agree on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

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
    assert current_revision(migrated_url) == "0001_initial"


def test_downgrade_to_base_removes_every_table_and_upgrade_restores_them(migrated_url: str) -> None:
    command.downgrade(alembic_config(migrated_url), "base")
    engine = create_engine(migrated_url)
    assert not TABLES & set(inspect(engine).get_table_names())
    upgrade(migrated_url)
    assert set(inspect(engine).get_table_names()) >= TABLES
    engine.dispose()
