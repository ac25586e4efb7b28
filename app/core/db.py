"""Engine and sessions: one engine per (process, URL), SQLite tuned for a second writer process.

SQLite gets WAL and a busy timeout (docs/operations.md: the embedded executor
writes from another process); PostgreSQL gets pre-ping so a restarted server does
not surface as a failed request, and bounds on connecting, on a server that stopped
answering and on a statement's run time (settings ``db_connect_timeout``,
``db_statement_timeout``). :func:`retry_transient` repeats an idempotent write while
the database is briefly unreachable (the worker's round writes).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from anyio import CapacityLimiter, to_thread
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_POOL_SIZE = 48

log = logging.getLogger(__name__)
T = TypeVar("T")

_engines: dict[tuple[int, str], Engine] = {}
_lock = threading.Lock()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_engine(url: str) -> Engine:
    """A new engine for ``url`` (SQLite: folder created, WAL + busy timeout on every connection)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        pool: dict[str, Any] = {}
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            # a file connection is cheap to keep and costs its pragmas to open: keep enough for every
            # API thread, so that a busy server does not open and close one per request
            pool = {"pool_size": SQLITE_POOL_SIZE, "max_overflow": SQLITE_POOL_SIZE}
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}, **pool
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    libpq = parsed.get_driver_name() in ("psycopg2", "psycopg")
    connect_args = _libpq_bounds(dict(parsed.query)) if libpq else {}
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, connect_args=connect_args)


def _libpq_bounds(query: dict[str, Any]) -> dict[str, Any]:
    """Connection options that bound how long a PostgreSQL call can hang: connecting, a server that stopped
    answering (TCP keepalives: idle 30 s, then 3 probes 10 s apart) and a statement that never ends
    (``statement_timeout``, set on every session by the server). What the URL's own query sets wins:
    its parameters are kept, and its ``options`` (e.g. ``-csearch_path=...``) come after ours, so a
    ``statement_timeout`` there overrides the setting."""
    from app.core.config import get_settings

    s = get_settings()
    bounds: dict[str, Any] = {"connect_timeout": s.db_connect_timeout, "keepalives": 1, "keepalives_idle": 30,
                              "keepalives_interval": 10, "keepalives_count": 3}
    args = {k: v for k, v in bounds.items() if k not in query}
    if s.db_statement_timeout > 0:
        own = query.get("options")
        own = " ".join(own) if isinstance(own, tuple) else own
        args["options"] = " ".join(
            x for x in (f"-c statement_timeout={max(1, round(s.db_statement_timeout * 1000))}", own) if x)
    return args


def get_engine(url: str) -> Engine:
    """The engine of this process for ``url`` (engines are never shared across a fork)."""
    key = (os.getpid(), url)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = make_engine(url)
        return engine


def session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on error."""
    with session_factory(url)() as session, session.begin():
        yield session


async def read_session(
    sessions: sessionmaker[Session], fn: Callable[[Session], T], *, limiter: CapacityLimiter | None = None
) -> T:
    """``fn(session)`` for an async caller, with a session opened and closed around it.

    On PostgreSQL: in one worker thread (of ``limiter`` if given). On SQLite: on the event
    loop itself. A read there takes tens of microseconds and never waits for the writer
    (WAL), while a thread hop costs more than the read and, with many readers, threads fight
    over the interpreter lock (bench/api_load.py: see bench/results/api_load.md). Callers
    keep ``fn`` short: reads bounded by what is new (the round cache, events after an id).
    """

    def run() -> T:
        with sessions() as db:
            return fn(db)

    bind = sessions.kw.get("bind")
    if bind is not None and bind.dialect.name == "sqlite":
        return run()
    return await to_thread.run_sync(run, limiter=limiter)


def dispose_engines() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


# --- retrying a write while the database is briefly unreachable ---------------------------------

RETRY_FIRST_DELAY = 0.1
RETRY_MAX_DELAY = 5.0
_SQLITE_BUSY = ("database is locked", "database is busy")


class DatabaseUnavailable(RuntimeError):
    """A database operation kept failing with connection-level errors for the whole retry budget."""


def is_transient(err: BaseException) -> bool:
    """Whether ``err`` says the database could not be reached or was busy, not that the statement is wrong.

    Transient: a connection SQLAlchemy invalidated, any psycopg ``OperationalError`` (connection
    refused or dropped, server shutting down, too many connections, deadlock), a pool checkout
    timeout, and SQLite's "database is locked".
    """
    if isinstance(err, DisconnectionError | SATimeoutError):
        return True
    if not isinstance(err, DBAPIError):
        return False
    if err.connection_invalidated:
        return True
    orig = err.orig
    if isinstance(orig, sqlite3.OperationalError):
        return any(text in str(orig).lower() for text in _SQLITE_BUSY)
    from_psycopg = type(orig).__module__.split(".")[0] in ("psycopg2", "psycopg")
    return isinstance(err, OperationalError) and from_psycopg


def describe_db_error(err: BaseException) -> str:
    """``Type: first line of the message`` of the driver's error (what a person needs to act on)."""
    orig = err.orig if isinstance(err, DBAPIError) and err.orig is not None else err
    lines = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {lines[0].strip() if lines else '(no message)'}"


def retry_transient(
    operation: Callable[[], T],
    *,
    what: str,
    budget: float,
    hint: str = "",
    first_delay: float = RETRY_FIRST_DELAY,
    max_delay: float = RETRY_MAX_DELAY,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    logger: logging.Logger = log,
) -> T:
    """Run ``operation``; on a transient database error retry it with exponential backoff.

    The delays are ``first_delay``, twice that, ... up to ``max_delay``, cut so that the last
    attempt starts ``budget`` seconds after the first failure at the latest. Each retry is logged
    at WARNING with its attempt number and delay. Any other error propagates at once; when the
    budget is spent, :class:`DatabaseUnavailable` says what failed (``what``), how long it was
    tried and the last driver error, followed by ``hint``. ``operation`` must be safe to repeat
    (one transaction, idempotent).
    """
    started: float | None = None
    attempt = 0
    while True:
        attempt += 1
        try:
            return operation()
        except Exception as err:
            if not is_transient(err):
                raise
            now = clock()
            started = now if started is None else started
            remaining = budget - (now - started)
            if remaining <= 0:
                raise DatabaseUnavailable(
                    f"{what} failed: the database stayed unreachable for {now - started:.1f} s "
                    f"({attempt} attempt(s); retry budget {budget:g} s, setting db_retry_seconds); "
                    f"last error: {describe_db_error(err)}" + (f". {hint}" if hint else "")
                ) from err
            delay = min(first_delay * 2 ** (attempt - 1), max_delay, remaining)
            logger.warning(
                "%s: attempt %d failed (%s); retrying in %.2f s", what, attempt, describe_db_error(err), delay
            )
            sleep(delay)
