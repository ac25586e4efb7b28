"""Celery tasks: thin. Each takes ids or plain data, calls one function, returns a small result.

Shared tasks: they belong to whichever app ``worker.celery_app.make_celery`` built
(the app includes this module) and read that app's Settings.

fedcore (and with it torch) is imported inside the tasks and at worker-process
start, never in the parent of a prefork pool (docs/operations.md).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from typing import Any

from celery import shared_task
from celery.signals import worker_process_init

from app.core.config import fedcore_paths, with_device
from worker.celery_app import EVALUATE_PART, RUN_EXPERIMENT, TRAIN_CLIENT, settings_of

log = logging.getLogger(__name__)


@worker_process_init.connect
def _warm_up(**_: Any) -> None:
    """Load torch and fedcore once per worker process, before the first task arrives."""
    import fedcore.simulation  # noqa: F401

    log.info("worker process %d: fedcore loaded", os.getpid())


@shared_task(name=RUN_EXPERIMENT, bind=True, ignore_result=True)
def run_experiment(self: Any, experiment_id: str) -> str:
    """Run (or resume) one experiment; a re-delivered message continues after the last stored round."""
    from worker.events import Publisher
    from worker.fanout import CeleryClientPool
    from worker.runner import run_job

    settings = settings_of(self.app)

    def client_pool(ctx: Any, should_stop: Any, on_progress: Any) -> CeleryClientPool:
        return CeleryClientPool(
            ctx, should_stop, app=self.app, settings=settings, own_node=self.request.hostname,
            on_progress=on_progress,
        )

    publisher = Publisher(settings.broker_url)
    return run_job(
        uuid.UUID(experiment_id),
        settings=settings,
        task_id=self.request.id,
        client_pool_factory=client_pool,
        publisher=publisher,
        progress=publisher,
    )


def _context(app: Any, spec_json: str) -> Any:
    """The (cached) run context of a fanned-out task's spec, on this worker's device and paths."""
    from fedcore.context import get_context
    from fedcore.spec import ExperimentSpec

    settings = settings_of(app)
    return get_context(with_device(ExperimentSpec.model_validate_json(spec_json), settings), fedcore_paths(settings))


@shared_task(name=TRAIN_CLIENT, bind=True, resultrepr_maxsize=200)
def train_client_task(
    self: Any, spec_json: str, round_: int, client: int, global_state: str
) -> dict[str, Any]:
    """Train one client of one round; the result depends only on the arguments."""
    from fedcore.client import ClientTask, train_client
    from worker.fanout import decode_state, update_to_json

    ctx = _context(self.app, spec_json)
    update = train_client(
        ctx, ClientTask(round=round_, client=client, global_state=decode_state(global_state))
    )
    update.extra = {**update.extra, "trained_by": f"{socket.gethostname()}:{os.getpid()}"}
    return update_to_json(update)


@shared_task(name=EVALUATE_PART, bind=True, resultrepr_maxsize=200)
def evaluate_part_task(
    self: Any, spec_json: str, global_state: str, part: int, parts: int
) -> dict[str, Any]:
    """Evaluate batches ``part``, ``part + parts``, ... of a round's global model (fedcore.evaluate)."""
    from fedcore.evaluate import evaluate_part
    from worker.fanout import decode_state, eval_part_to_json

    ctx = _context(self.app, spec_json)
    return eval_part_to_json(evaluate_part(ctx, decode_state(global_state), part, parts))
