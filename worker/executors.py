"""The executors the API process is started with (``fedheads serve`` wires :func:`make_executor` in).

- :class:`LocalExecutor` (embedded default, no broker): a pool of spawned local
  processes, so the API stays responsive; the database is the queue. Its jobs'
  progress reports come back on a process queue into the API's in-memory board
  (:data:`app.services.stream.LIVE_PROGRESS`), which the pages' streams read.
- :class:`CeleryExecutor`: one ``run_experiment`` message per job on the
  experiments queue (the GPU queue for a CUDA job); a broker that cannot be reached
  is :class:`~app.services.errors.BrokerUnavailable` and the job stays queued.

Both implement :class:`app.services.dispatch.Executor`, the interface the app defines.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing as mp
import os
import queue
import threading
import uuid
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timedelta
from typing import Any

from app.core.config import Settings, redact_url
from app.models import utcnow
from app.schemas import ComponentHealth
from app.services.dispatch import Executor
from app.services.errors import BrokerUnavailable
from app.services.stream import LIVE_PROGRESS
from worker.events import QueueProgress
from worker.runner import run_local_job, set_local_progress

log = logging.getLogger(__name__)

PROGRESS_QUEUE = 1000  # reports waiting for the server's reader; more are dropped (the next one replaces them)


def _job_process_init(nice: int, progress: Any) -> None:
    """In each job process: yield the CPU to the server process that shares the machine; report progress
    on the executor's queue."""
    if nice > 0 and hasattr(os, "nice"):
        os.nice(nice)
    set_local_progress(QueueProgress(progress))


def _read_progress(progress: Any, stop: threading.Event) -> None:
    """The server's end of the progress queue: each report into the in-memory board."""
    while not stop.is_set():
        try:
            experiment_id, data = progress.get(timeout=0.5)
        except queue.Empty:
            continue
        except (EOFError, OSError, ValueError):  # the queue was closed
            return
        LIVE_PROGRESS.put(experiment_id, data)


class LocalExecutor:
    """Jobs in spawned local processes (embedded mode)."""

    kind = "local"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._futures: dict[str, Future[str]] = {}
        self._progress: Any = None  # the jobs' progress queue and its reader, made with the first pool
        self._stop_reading = threading.Event()

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = mp.get_context("spawn")
            if self._progress is None:
                self._progress = ctx.Queue(PROGRESS_QUEUE)
                threading.Thread(target=_read_progress, args=(self._progress, self._stop_reading),
                                 name="fedheads-local-progress", daemon=True).start()
            self._pool = ProcessPoolExecutor(
                max_workers=self._settings.local_workers,
                mp_context=ctx,
                initializer=_job_process_init,
                initargs=(self._settings.local_nice, self._progress),
            )
        return self._pool

    def dispatch(self, experiment_id: uuid.UUID, device: str = "auto") -> str:  # one host: device unused
        task_id = f"local-{uuid.uuid4()}"
        with self._lock:
            for attempt in (1, 2):
                try:
                    fut = self._get_pool().submit(run_local_job, str(experiment_id), task_id, self._settings)
                    break
                except (BrokenProcessPool, RuntimeError):  # a worker process died: start a fresh pool
                    self._pool = None
                    if attempt == 2:
                        raise
            self._futures[task_id] = fut
        fut.add_done_callback(functools.partial(self._done, task_id))
        return task_id

    def _done(self, task_id: str, fut: Future[str]) -> None:
        with self._lock:
            self._futures.pop(task_id, None)
        if not fut.cancelled() and fut.exception() is not None:
            log.warning("local job process ended abnormally: %s", fut.exception())

    def pending(self, task_id: str | None, dispatched_at: datetime | None) -> bool:
        with self._lock:
            return task_id is not None and task_id in self._futures

    def broker_health(self) -> ComponentHealth:
        return ComponentHealth(
            ok=True, detail="no broker configured: jobs run in local processes (embedded mode)"
        )

    def workers(self) -> list[str]:
        with self._lock:
            procs = dict(getattr(self._pool, "_processes", None) or {}) if self._pool is not None else {}
        return [f"local:{pid}" for pid in sorted(procs)] or [
            f"local (up to {self._settings.local_workers} process(es), started on demand)"
        ]

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            self._futures.clear()
            self._stop_reading.set()  # the reader ends within its timeout; a later pool gets a new queue
            self._progress, self._stop_reading = None, threading.Event()
        if pool is None:
            return
        procs = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:  # a running job is resumed after the next start
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=5)


class CeleryExecutor:
    """Jobs as ``run_experiment`` messages to Celery workers."""

    kind = "celery"

    def __init__(self, settings: Settings) -> None:
        from worker.celery_app import make_celery  # celery is imported only when a broker is configured

        self._settings = settings
        self.app = make_celery(settings, results=False)

    def queue_for(self, device: str) -> str:
        """The queue of a job whose spec asks for ``device``: GPU jobs go to the GPU workers."""
        return self._settings.gpu_queue if device == "cuda" else self._settings.experiments_queue

    def dispatch(self, experiment_id: uuid.UUID, device: str = "auto") -> str:
        from worker.celery_app import RUN_EXPERIMENT

        task_id = str(uuid.uuid4())
        try:
            self.app.send_task(
                RUN_EXPERIMENT,
                args=[str(experiment_id)],
                task_id=task_id,
                queue=self.queue_for(device),
                ignore_result=True,
                retry=True,
                retry_policy={
                    "max_retries": 1,
                    "interval_start": 0.2,
                    "interval_step": 0.5,
                    "interval_max": 0.5,
                },
            )
        except Exception as err:
            raise BrokerUnavailable(
                f"the broker at {redact_url(self._settings.broker_url)} is unreachable "
                f"({type(err).__name__}: {err}); experiment {experiment_id} is kept queued and will be "
                "dispatched when the broker is back"
            ) from err
        return task_id

    def pending(self, task_id: str | None, dispatched_at: datetime | None) -> bool:
        if task_id is None or dispatched_at is None:
            return False
        if dispatched_at.tzinfo is None:
            from datetime import UTC

            dispatched_at = dispatched_at.replace(tzinfo=UTC)
        return utcnow() - dispatched_at < timedelta(seconds=self._settings.redispatch_after)

    def broker_health(self) -> ComponentHealth:
        try:
            with self.app.connection_for_write() as conn:
                conn.ensure_connection(
                    max_retries=1, interval_start=0, interval_step=0.2, timeout=self._settings.broker_timeout
                )
            return ComponentHealth(ok=True, detail=f"reachable: {redact_url(self._settings.broker_url)}")
        except Exception as err:
            return ComponentHealth(
                ok=False,
                detail=f"unreachable: {redact_url(self._settings.broker_url)} ({type(err).__name__}: {err})",
            )

    def workers(self) -> list[str]:
        try:
            replies = self.app.control.ping(timeout=1.0) or []
        except Exception:
            return []
        return sorted(name for reply in replies for name in reply)

    def close(self) -> None:
        self.app.close()


def make_executor(settings: Settings) -> Executor:
    return CeleryExecutor(settings) if settings.uses_celery else LocalExecutor(settings)
