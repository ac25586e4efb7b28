"""One live runner per job: a lock that dies with the process holding it.

PostgreSQL: a session-level advisory lock on a dedicated connection (released by
the server when the connection drops, so a killed worker frees it). SQLite (the
embedded mode, one machine): ``flock`` on a file in the job's artifact folder.

The runner takes the lock *before* it marks a job running and sets the final
status *before* it lets go, so "status running and lock free" means the runner
is gone and the job can be resumed.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text


def _key(experiment_id: uuid.UUID) -> int:
    return int.from_bytes(experiment_id.bytes[:8], "big", signed=True)


@contextmanager
def job_lock(engine: Engine, lock_dir: Path, experiment_id: uuid.UUID) -> Iterator[bool]:
    """Try to become the job's runner; yields whether the lock is held (never blocks)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            got = bool(
                conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _key(experiment_id)}).scalar()
            )
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    try:
                        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _key(experiment_id)})
                        conn.commit()
                    except Exception:  # connection gone: the server released the lock with it
                        conn.invalidate()
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
