"""How a committed, queued job reaches a runner: the :class:`Executor` interface and the reconciler.

The app defines the interface; the process that starts the app wires the concrete
executors in (``create_app(executor_factory=...)``; ``fedheads serve`` passes
``worker.executors.make_executor``): local processes in the embedded mode, Celery
messages when a broker is configured. A broker that cannot be reached is
:class:`BrokerUnavailable` and the job stays queued.

:func:`reconcile` runs at start-up and on a timer: it re-queues jobs whose runner
died (status running, job lock free) and dispatches queued jobs that have no
live task (never enqueued, or enqueued long ago).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.core.locks import runner_alive
from app.models import Experiment
from app.schemas import ComponentHealth
from app.services import jobs
from app.services.errors import BrokerUnavailable

log = logging.getLogger(__name__)


class Executor(Protocol):
    """Hands committed jobs to runners; built once per app process by an :data:`ExecutorFactory`."""

    kind: str

    def dispatch(self, experiment_id: uuid.UUID, device: str = "auto") -> str:
        """Hand the job to a runner; returns the task id. Raises BrokerUnavailable.

        ``device`` is the job spec's device; a Celery executor sends 'cuda' jobs to the GPU queue.
        """

    def pending(self, task_id: str | None, dispatched_at: datetime | None) -> bool:
        """Whether a task sent earlier may still start (so the job needs no new one)."""

    def broker_health(self) -> ComponentHealth: ...

    def workers(self) -> list[str]: ...

    def close(self) -> None: ...


ExecutorFactory = Callable[[Settings], Executor]


class NoExecutor:
    """What an app started without an executor has (``create_app`` with no ``executor_factory``).

    It dispatches nothing: a submitted job is kept queued (503, as while a broker is down) until a
    process started with an executor (``fedheads serve``) dispatches it.
    """

    kind = "none"

    def __init__(self, settings: Settings) -> None:
        pass

    def dispatch(self, experiment_id: uuid.UUID, device: str = "auto") -> str:
        raise BrokerUnavailable(
            f"this API process has no executor wired in; experiment {experiment_id} is kept queued until "
            "a process started with `fedheads serve` dispatches it"
        )

    def pending(self, task_id: str | None, dispatched_at: datetime | None) -> bool:
        return False

    def broker_health(self) -> ComponentHealth:
        return ComponentHealth(
            ok=False, detail="no executor wired into this process (start it with fedheads serve)"
        )

    def workers(self) -> list[str]:
        return []

    def close(self) -> None:
        pass


def dispatch_experiment(
    *,
    sessions: sessionmaker[Session],
    executor: Executor,
    experiment_id: uuid.UUID,
    device: str | None = None,
) -> str:
    """Enqueue a committed, queued job and record its task id (raises BrokerUnavailable).

    ``device`` is the job spec's device (read from the database when not given): it picks the queue.
    """
    if device is None:
        with sessions() as s:
            spec = s.scalar(select(Experiment.spec).where(Experiment.id == experiment_id)) or {}
        device = str(spec.get("device", "auto"))
    task_id = executor.dispatch(experiment_id, device=device)
    with sessions.begin() as s:
        jobs.mark_dispatched(db_session=s, experiment_id=experiment_id, task_id=task_id)
    return task_id


def recover_lost(*, sessions: sessionmaker[Session], settings: Settings) -> list[uuid.UUID]:
    """Running jobs whose runner is gone (job lock free) go back to queued, to be resumed."""
    with sessions() as s:
        running = s.scalars(select(Experiment.id).where(Experiment.status == "running")).all()
    engine = sessions.kw["bind"]
    lost = []
    for exp_id in running:
        if runner_alive(engine, settings.experiment_dir(exp_id).expanduser().resolve(), exp_id):
            continue
        with sessions.begin() as s:
            if jobs.requeue_lost(db_session=s, experiment_id=exp_id):
                lost.append(exp_id)
    return lost


def reconcile(*, sessions: sessionmaker[Session], executor: Executor, settings: Settings) -> dict[str, int]:
    """One pass: recover jobs whose runner died, dispatch queued jobs without a live task."""
    lost = recover_lost(sessions=sessions, settings=settings)
    with sessions() as s:
        queued = s.execute(
            select(Experiment.id, Experiment.task_id, Experiment.dispatched_at)
            .where(Experiment.status == "queued")
            .order_by(Experiment.created_at)
        ).all()
    sent = 0
    for row in queued:
        if executor.pending(row.task_id, row.dispatched_at):
            continue
        try:
            dispatch_experiment(sessions=sessions, executor=executor, experiment_id=row.id)
        except BrokerUnavailable as err:
            log.warning("reconciler: %s", err.message)
            break
        sent += 1
    if lost or sent:
        log.info("reconciler: %d lost job(s) re-queued, %d job(s) dispatched", len(lost), sent)
    return {"recovered": len(lost), "dispatched": sent}


class Reconciler:
    """Runs :func:`reconcile` at start and every ``settings.reconcile_interval`` seconds, in a thread."""

    def __init__(self, *, sessions: sessionmaker[Session], executor: Executor, settings: Settings) -> None:
        self._sessions = sessions
        self._executor = executor
        self._settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fedheads-reconciler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                reconcile(sessions=self._sessions, executor=self._executor, settings=self._settings)
            except Exception:
                log.exception("reconciler pass failed")
            self._stop.wait(self._settings.reconcile_interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
