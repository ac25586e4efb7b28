"""Fixtures of the service tests: the session's real stack, a clean database per test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.core.migrate import upgrade
from tests.app.stack import Stack, clean_rows, get_stack
from worker.serve import create_app


@pytest.fixture(scope="session")
def stack() -> Stack:
    return get_stack()


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    """An HTTP client of the stack's API, on an empty database."""
    clean_rows(stack.db_url)
    with stack.client() as client:
        yield client


@pytest.fixture(scope="session")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The embedded default: SQLite, no broker, jobs in a spawned local process (warm for the session)."""
    folder = tmp_path_factory.mktemp("embedded")
    settings = Settings(
        database_url=f"sqlite:///{folder / 'fedheads.db'}",
        broker_url=None,
        artifact_root=folder / "artifacts",
        data_root=folder / "data",
        reconcile_interval=1,
        cancel_poll_interval=0.1,
    )
    upgrade(settings.database_url)  # what `fedheads serve` does before it starts the app
    with TestClient(create_app(settings)) as client:
        yield client
