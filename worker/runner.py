"""Run one experiment: fedcore's round loop wired to the job's lifecycle (both executors use it).

``run_job`` takes an experiment id and re-reads everything from the database:

1. take the job lock (one live runner per job), then claim the job: queued ->
   running, or running -> running when the previous runner died (a re-delivered
   task, a restarted server);
2. build the fedcore context, write the clients' partition statistics;
3. copy into the database any round the checkpoint holds but the database lacks
   (the runner died between the two writes), then ``run_simulation`` with the
   job's checkpoint folder, so it continues after the last finished round;
4. every round: ``on_round_end`` stores it (round row + event + ``rounds_done`` in
   one transaction, a repeated write is a no-op), then announces it;
5. ``should_stop`` reads the cancel flag from the database (throttled); progress inside
   a round (client j of M, step k of S) goes to the ``progress`` publisher through an
   :class:`~app.services.events.ProgressReporter`, never to the database; the final
   status, error (one line and an error id; the traceback goes to the log under
   that id, :mod:`app.services.failures`) and adapter path are written with a status event.

The status changes are :mod:`app.services.jobs`'; the retries through database
outages and the ownership checks are :class:`app.services.running.RunningJob`'s.
When the job turns out to be another runner's (:class:`NotOwner`) this one stops
without writing anything more.
"""

from __future__ import annotations

import logging
import signal
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from app.core.config import Settings, fedcore_paths, with_device
from app.core.db import DatabaseUnavailable
from app.core.locks import NotOwner, job_lock
from app.services.events import EventPublisher, ProgressPublisher, ProgressReporter
from app.services.jobs import Claim
from app.services.running import CancelFlag, RunningJob

if TYPE_CHECKING:
    from fedcore.context import RunContext
    from fedcore.simulation import ClientPool, ProgressFn

log = logging.getLogger(__name__)

# (context, should_stop, on_progress) -> the round's client pool; None: fedcore's sequential one
ClientPoolFactory = Callable[["RunContext", Callable[[], bool], "ProgressFn | None"], "ClientPool | None"]

_local_progress: ProgressPublisher | None = None  # set in an embedded executor's job processes (set_local_progress)


def set_local_progress(publisher: ProgressPublisher | None) -> None:
    """Where the jobs of this (embedded executor's) process report their progress."""
    global _local_progress
    _local_progress = publisher


def run_job(
    experiment_id: uuid.UUID,
    *,
    settings: Settings,
    task_id: str | None = None,
    client_pool_factory: ClientPoolFactory | None = None,
    publisher: EventPublisher | None = None,
    progress: ProgressPublisher | None = None,
) -> str:
    """Run (or resume) one experiment to a final status; returns what happened."""
    job = RunningJob(experiment_id, settings, publisher)
    with job_lock(job.engine, job.folder, experiment_id) as held:
        if not held:
            log.info("experiment %s already has a live runner; nothing to do", experiment_id)
            return "busy"
        reporter = ProgressReporter(experiment_id, progress) if progress is not None else None
        try:
            return _claim_and_run(job, task_id, client_pool_factory, reporter)
        except NotOwner as err:
            log.warning("experiment %s: %s; this runner stops and leaves the job alone", experiment_id, err)
            return "superseded"
        except DatabaseUnavailable:
            # not even the claim or the final status could be stored: the row says queued or running,
            # and the reconciler dispatches it again (a running job once its lock is seen free)
            log.exception("experiment %s: database unreachable; left to the reconciler", experiment_id)
            raise
        finally:
            if reporter is not None and reporter.sent:
                reporter.done()
            job.release()


def _claim_and_run(
    job: RunningJob,
    task_id: str | None,
    client_pool_factory: ClientPoolFactory | None,
    reporter: ProgressReporter | None,
) -> str:
    claim = job.claim(task_id)
    if claim is None:
        log.info("experiment %s is gone or finished; nothing to do", job.id)
        return "skipped"
    if claim.cancel_requested:
        job.finish("cancelled")
        return "cancelled"
    try:
        return _run(job, claim, client_pool_factory, reporter)
    except NotOwner:
        raise
    except Exception as err:
        job.fail(err)  # logs the traceback under the error id the stored one-line error names
        return "failed"


def _run(
    job: RunningJob, claim: Claim, client_pool_factory: ClientPoolFactory | None, reporter: ProgressReporter | None
) -> str:
    if reporter is not None:
        reporter.preparing()  # before torch is imported and the model loaded: the page shows it at once

    from dataclasses import asdict

    from fedcore.context import get_context
    from fedcore.simulation import Progress, RoundResult, run_simulation, save_adapter
    from fedcore.spec import ExperimentSpec

    on_progress = None
    if reporter is not None:

        def on_progress(p: Progress) -> None:
            reporter(asdict(p))

    spec = with_device(ExperimentSpec.model_validate(claim.spec), job.settings)
    ctx = get_context(spec, fedcore_paths(job.settings))
    job.write_clients(ctx)
    added = job.backfill_from_checkpoint()
    if added:
        log.info("experiment %s: stored %d round(s) found only in the checkpoint", job.id, added)
    should_stop = CancelFlag(job.sessions, job.id, job.settings.cancel_poll_interval)
    pool = client_pool_factory(ctx, should_stop, on_progress) if client_pool_factory is not None else None

    def on_round_end(result: RoundResult) -> None:
        job.persist_round(result.to_dict())

    result = run_simulation(
        spec,
        context=ctx,
        client_pool=pool,
        on_round_end=on_round_end,
        should_stop=should_stop,
        checkpoint_dir=job.checkpoint_dir,
        on_progress=on_progress,
    )
    if result.status != "succeeded":
        job.finish("cancelled")
        return "cancelled"
    adapter = save_adapter(ctx, result.final_state, job.folder / "adapter")
    job.finish("succeeded", adapter=adapter)
    return "succeeded"


def run_local_job(experiment_id: str, task_id: str, settings: Settings) -> str:
    """Entry point of the embedded executor's worker process (spawned; the server owns Ctrl-C)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s [local-executor] %(message)s"
        )
    return run_job(uuid.UUID(experiment_id), settings=settings, task_id=task_id, progress=_local_progress)
