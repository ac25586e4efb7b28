"""An app whose executor keeps every job queued: the API surface without running any job."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.core.config import Settings
from app.core.migrate import upgrade
from app.main import create_app
from app.schemas import ComponentHealth


class HeldExecutor:
    """Accepts every dispatch and runs nothing (the jobs stay queued)."""

    kind = "local"

    def __init__(self, settings: Settings) -> None:
        self.dispatched: list[uuid.UUID] = []
        self.devices: list[str] = []

    def dispatch(self, experiment_id: uuid.UUID, device: str = "auto") -> str:
        self.dispatched.append(experiment_id)
        self.devices.append(device)
        return f"held-{uuid.uuid4()}"

    def pending(self, task_id: str | None, dispatched_at: datetime | None) -> bool:
        return task_id is not None

    def broker_health(self) -> ComponentHealth:
        return ComponentHealth(ok=True, detail="held: jobs are recorded and never run (tests)")

    def workers(self) -> list[str]:
        return []

    def close(self) -> None:
        pass


def held_settings(folder: Path, **overrides: Any) -> Settings:
    settings = Settings(
        database_url=f"sqlite:///{folder / 'fedheads.db'}",
        broker_url=None,
        artifact_root=folder / "artifacts",
        data_root=folder / "data",
        **overrides,
    )
    upgrade(settings.database_url)
    return settings


def backend_url(backend: str, schema: str, folder: Path) -> str:
    """A migrated database of either kind the app runs on: ``"postgresql"`` a fresh schema ``schema``,
    ``"sqlite"`` a file under ``folder``."""
    from tests.app.stack import fresh_schema

    if backend == "postgresql":
        return fresh_schema(schema)
    url = f"sqlite:///{folder / 'fedheads.db'}"
    upgrade(url)
    return url


@contextmanager
def held_client_on(db_url: str, folder: Path, **overrides: Any) -> Iterator[TestClient]:
    """A TestClient of the app on ``db_url`` emptied of rows first, jobs held, files under ``folder``."""
    from tests.app.stack import clean_rows

    clean_rows(db_url)
    settings = Settings(database_url=db_url, broker_url=None, artifact_root=folder / "a", data_root=folder / "d",
                        **overrides)
    with TestClient(create_app(settings, background=False, executor_factory=HeldExecutor)) as client:
        yield client


@contextmanager
def held_client(folder: Path, **overrides: Any) -> Iterator[TestClient]:
    """A TestClient of the app on a fresh SQLite database under ``folder``, jobs held."""
    app = create_app(held_settings(folder, **overrides), background=False, executor_factory=HeldExecutor)
    with TestClient(app) as client:
        yield client


def hand_record(rnd: int, acc: float, up: int, train: float) -> dict[str, Any]:
    """A round record with hand-chosen figures: accuracy, upload bytes (dense: 100), each client's training s."""
    return {"round": rnd, "metrics": {"accuracy": acc}, "bytes_up": up, "bytes_up_dense": 100, "bytes_down": 100,
            "ops": 10.0, "ops_dense": 20.0, "ops_attention": 4.0, "ops_attention_dense": 12.0, "wall_time": 3.0,
            "train_loss": 1.0, "selection": {"selected": [0, 1]},
            "clients": [{"train_time": train}, {"train_time": train}]}


def run_by_hand(db_url: str, run_id: str, accs: list[float], up: int, train: float, *, finish: bool = True) -> None:
    """What a runner does, through the job lifecycle: claim, store rounds (:func:`hand_record`), finish."""
    from app.core.db import session_factory
    from app.services import jobs

    with session_factory(db_url).begin() as s:
        exp_id = uuid.UUID(run_id)
        assert jobs.claim(db_session=s, experiment_id=exp_id, runner="hand:1", task_id=None, artifact_dir="/tmp/x")
        for i, acc in enumerate(accs, 1):
            jobs.persist_round(db_session=s, experiment_id=exp_id, record=hand_record(i, acc, up, train),
                               checkpoint=None, runner="hand:1")
        if finish:
            jobs.finish(db_session=s, experiment_id=exp_id, status="succeeded", runner="hand:1")
