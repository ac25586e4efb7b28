"""One live runner per job: a lock that dies with the process holding it.

PostgreSQL: a session-level advisory lock on a dedicated connection (released by
the server when the connection drops, so a killed worker frees it). SQLite (the
embedded mode, one machine): ``flock`` on a file in the job's artifact folder.

The runner takes the lock *before* it marks a job running and sets the final
status *before* it lets go, so "status running and lock free" means the runner
is gone and the job can be resumed.

A database outage can cut the lock's connection while the runner lives on;
:class:`LockGuard` checks before each write that the runner still holds it (taking
it again when it is free) and raises :class:`NotOwner` when another runner does.
"""

from __future__ import annotations

import fcntl
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

# the backend holding a job lock, a bigint advisory lock of this database: pg_locks shows its
# high half in classid, its low half in objid, and objsubid 1
_LOCK_HOLDER = text(
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND classid::bigint = :hi AND objid::bigint = :lo AND objsubid = 1"
)


class NotOwner(Exception):
    """The job is no longer this runner's (another runner took it over, or it was finished meanwhile)."""


def lock_key(experiment_id: uuid.UUID) -> int:
    """The job's PostgreSQL advisory lock key (a signed bigint)."""
    return int.from_bytes(experiment_id.bytes[:8], "big", signed=True)


@contextmanager
def job_lock(engine: Engine, lock_dir: Path, experiment_id: uuid.UUID) -> Iterator[bool]:
    """Try to become the job's runner; yields whether the lock is held (never blocks)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            got = bool(
                conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": lock_key(experiment_id)}).scalar()
            )
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    _unlock(conn, experiment_id)
        return
    lock_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_dir / ".runner.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            got = True
        except BlockingIOError:
            got = False
        yield got
    finally:
        os.close(fd)  # closing releases the flock


def runner_alive(engine: Engine, lock_dir: Path, experiment_id: uuid.UUID) -> bool:
    """Whether some process holds the job's lock right now."""
    with job_lock(engine, lock_dir, experiment_id) as got:
        return not got


def lock_holder(db_session: Session, experiment_id: uuid.UUID) -> int | None:
    """The PostgreSQL backend (pid) that holds the job's lock, if any."""
    key = lock_key(experiment_id)
    pid = db_session.scalar(_LOCK_HOLDER, {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF})
    return None if pid is None else int(pid)


def _unlock(conn: Connection, experiment_id: uuid.UUID) -> None:
    try:
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(experiment_id)})
        conn.commit()
    except Exception:  # connection gone: the server released the lock with it
        conn.invalidate()


class LockGuard:
    """A runner's hold on its job lock across database outages (PostgreSQL; nothing to do on SQLite).

    ``remember(db_session)`` at the claim records which backend holds the lock for this runner
    (the :func:`job_lock` connection); ``check(db_session)`` before each write makes sure it still
    does: when nobody holds the lock it is taken again on a connection of the guard's own, when
    another backend holds it :class:`NotOwner` is raised. ``release()`` lets go of a lock taken again.
    """

    def __init__(self, engine: Engine, experiment_id: uuid.UUID) -> None:
        self._engine = engine
        self._id = experiment_id
        self._active = engine.dialect.name == "postgresql"
        self._pid: int | None = None
        self._conn: Connection | None = None

    def remember(self, db_session: Session) -> None:
        if self._active:
            self._pid = lock_holder(db_session, self._id)

    def check(self, db_session: Session) -> None:
        if not self._active:
            return
        holder = lock_holder(db_session, self._id)
        if holder is None:
            self._relock()
        elif holder != self._pid:
            raise NotOwner(f"another runner holds the job lock (PostgreSQL backend {holder})")

    def _relock(self) -> None:
        conn = self._engine.connect()
        try:
            got = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": lock_key(self._id)}))
            pid = int(conn.scalar(text("SELECT pg_backend_pid()")) or 0)
            conn.commit()
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        if not got:
            conn.close()
            raise NotOwner("another runner took the job lock while this one could not reach the database")
        self.release()
        self._conn, self._pid = conn, pid
        log.warning("experiment %s: the job lock went with a lost database connection; taken again", self._id)

    def release(self) -> None:
        """Let go of a lock taken again (the original goes with :func:`job_lock`)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            _unlock(conn, self._id)
            conn.close()
