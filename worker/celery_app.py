"""The Celery application, configured from the service Settings.

One CPU-heavy task per worker process: late acks, prefetch 1, and a task whose
worker process died goes back to the queue (DESIGN.md section 4). Whole jobs go
to the ``experiments`` queue, single client trainings to ``clients``; jobs whose spec
says device 'cuda' (and their client trainings) go to the ``gpu`` queue instead.

Start a worker with ``fedheads worker`` (or ``celery -A worker.celery_app worker``).
"""

from __future__ import annotations

from celery import Celery

from app.core.config import Settings, get_settings

RUN_EXPERIMENT = "fedheads.run_experiment"
TRAIN_CLIENT = "fedheads.train_client"


def make_celery(settings: Settings, *, results: bool = True) -> Celery:
    """A Celery app for ``settings``; workers use :data:`celery_app`.

    The API builds one with ``results=False``: it only enqueues jobs and pings workers,
    and a result store it does not need must not slow down (or break) a submit while Redis is down.
    """
    backend = settings.backend_url if results else "disabled://"
    app = Celery("fedheads", broker=settings.broker_url, backend=backend, include=["worker.tasks"])
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


celery_app = make_celery(get_settings())
