"""The Celery application, built from a ``Settings`` object, and the task names (the one place they live).

One CPU-heavy task per worker process: late acks, prefetch 1, and a task whose
worker process died goes back to the queue (docs/operations.md). Whole jobs go
to the ``experiments`` queue, single client trainings and shares of a round's evaluation to
``clients``; jobs whose spec says device 'cuda' (and their client tasks) go to the ``gpu`` queue instead.

Nothing is built at import: ``fedheads worker`` builds the worker's app from its
Settings, the Celery executor builds the API's; the tasks (``worker.tasks``) read the
settings of the app they run on (:func:`settings_of`).
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from app.core.config import Settings, get_settings

RUN_EXPERIMENT = "fedheads.run_experiment"
TRAIN_CLIENT = "fedheads.train_client"
EVALUATE_PART = "fedheads.evaluate_part"


class FedheadsCelery(Celery):
    """A Celery app that keeps the Settings it was built from."""

    settings: Settings


def settings_of(app: Any) -> Settings:
    """The Settings a Celery app was built from (the process's own for any other app, e.g. a task called
    as a plain function)."""
    settings = getattr(app, "settings", None)
    return settings if isinstance(settings, Settings) else get_settings()


def make_celery(settings: Settings, *, results: bool = True) -> FedheadsCelery:
    """A Celery app for ``settings``.

    The API builds one with ``results=False``: it only enqueues jobs and pings workers,
    and a result store it does not need must not slow down (or break) a submit while Redis is down.
    """
    backend = settings.backend_url if results else "disabled://"
    app = FedheadsCelery("fedheads", broker=settings.broker_url, backend=backend, include=["worker.tasks"])
    app.settings = settings
    timeout = settings.broker_timeout
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=settings.experiments_queue,
        task_routes={
            RUN_EXPERIMENT: {"queue": settings.experiments_queue},
            TRAIN_CLIENT: {"queue": settings.clients_queue},
            EVALUATE_PART: {"queue": settings.clients_queue},
        },
        broker_connection_timeout=timeout,
        broker_connection_retry_on_startup=True,
        # a long job outlives the default 1 h: a redelivered copy would only find the job lock taken
        broker_transport_options={
            "visibility_timeout": 12 * 3600,
            "socket_connect_timeout": timeout,
            "socket_timeout": 30,
        },
        result_backend_transport_options={"socket_connect_timeout": timeout},
        result_expires=3600,
        # a fanned-out client task says when a worker starts it: the orchestrator trains the ones nobody took
        task_track_started=True,
        # workers import torch once per process at start (worker_process_init), which takes a while
        worker_proc_alive_timeout=120,
        worker_hijack_root_logger=False,
    )
    return app
