"""PostgreSQL connections carry bounds on how long a call can hang (real server, no mocks):
the server cancels a statement past ``db_statement_timeout``, and libpq gets a connect timeout
and TCP keepalives."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app.core.config import get_settings
from app.core.db import is_transient, make_engine
from tests.app.stack import PG_URL


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_a_statement_past_the_timeout_is_cancelled_by_the_server(
        monkeypatch: pytest.MonkeyPatch, fresh_settings: None) -> None:
    monkeypatch.setenv("FEDHEADS_DB_STATEMENT_TIMEOUT", "0.5")
    monkeypatch.setenv("FEDHEADS_DB_CONNECT_TIMEOUT", "7")
    engine = make_engine(PG_URL)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "500ms"
            dsn = conn.connection.dbapi_connection.get_dsn_parameters()  # type: ignore[union-attr]
            assert dsn["connect_timeout"] == "7"
            assert (dsn["keepalives"], dsn["keepalives_idle"], dsn["keepalives_count"]) == ("1", "30", "3")
            assert conn.execute(text("SELECT 1 FROM pg_sleep(0.1)")).scalar() == 1  # short ones run
            t0 = time.monotonic()
            with pytest.raises(OperationalError, match="statement timeout") as info:
                conn.execute(text("SELECT pg_sleep(10)"))
            assert time.monotonic() - t0 < 5
            assert is_transient(info.value)  # an idempotent write that timed out is retried
    finally:
        engine.dispose()


@pytest.mark.parametrize(("setting", "shown"), [(None, "1min"), ("0", "0")])
def test_default_and_disabled_statement_timeout(setting: str | None, shown: str, monkeypatch: pytest.MonkeyPatch,
                                                fresh_settings: None) -> None:
    if setting is None:
        monkeypatch.delenv("FEDHEADS_DB_STATEMENT_TIMEOUT", raising=False)
    else:
        monkeypatch.setenv("FEDHEADS_DB_STATEMENT_TIMEOUT", setting)
    engine = make_engine(PG_URL)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == shown
    finally:
        engine.dispose()


def test_the_urls_own_options_are_kept_and_win(monkeypatch: pytest.MonkeyPatch, fresh_settings: None) -> None:
    """A URL that sets ``search_path`` (as the test stack's does) keeps it, with the statement timeout added;
    a ``statement_timeout`` or ``connect_timeout`` in the URL itself overrides the settings."""
    from tests.app.stack import schema_url

    monkeypatch.setenv("FEDHEADS_DB_STATEMENT_TIMEOUT", "2")
    engine = make_engine(schema_url("fedheads_bounds_probe"))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW search_path")).scalar() == "fedheads_bounds_probe"
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "2s"
    finally:
        engine.dispose()
    sep = "&" if "?" in PG_URL else "?"
    engine = make_engine(f"{PG_URL}{sep}options=-cstatement_timeout%3D3000&connect_timeout=4")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "3s"
            assert conn.connection.dbapi_connection.get_dsn_parameters()["connect_timeout"] == "4"  # type: ignore[union-attr]
    finally:
        engine.dispose()
