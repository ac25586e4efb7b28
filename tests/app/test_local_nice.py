"""The embedded executor's job processes run at ``local_nice``: the server answers before training."""

from __future__ import annotations

import os
from pathlib import Path

from app.core.config import Settings
from worker.executors import LocalExecutor


def _niceness() -> int:
    return os.nice(0)


def test_job_processes_start_at_the_configured_niceness_above_the_server(tmp_path: Path) -> None:
    base = os.nice(0)
    for nice, expected in ((7, min(base + 7, 19)), (0, base)):
        executor = LocalExecutor(Settings(database_url=f"sqlite:///{tmp_path / 'f.db'}", local_nice=nice))
        try:
            assert executor._get_pool().submit(_niceness).result(timeout=60) == expected
        finally:
            executor.close()
    assert os.nice(0) == base  # the server itself is untouched
