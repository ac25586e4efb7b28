"""Run one experiment: the logic both executors share (the local process and the Celery task).

``run_job`` takes an experiment id and re-reads everything from the database:

1. take the job lock (one live runner per job), then claim the job: queued ->
   running, or running -> running when the previous runner died (a re-delivered
   task, a restarted server);
2. build the fedcore context, write the clients' partition statistics;
3. copy into the database any round the checkpoint holds but the database lacks
   (the runner died between the two writes), then ``run_simulation`` with the
   job's checkpoint folder, so it continues after the last finished round;
4. every round: round row + event row + ``rounds_done`` in ONE transaction, the
   round row keyed by (experiment, round) so a repeated write is a no-op; then a
   notice on pub/sub;
5. ``should_stop`` reads the cancel flag from the database (throttled); the final
   status, error text and adapter path are written with a status event.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings, fedcore_paths
from app.core.db import get_engine
from app.core.locks import job_lock
from app.models import TERMINAL, Client, Experiment, Round, utcnow
from app.services.events import add_event, status_event
from worker.events import Publisher

if TYPE_CHECKING:
    from fedcore.context import RunContext
    from fedcore.simulation import ClientRunner

log = logging.getLogger(__name__)

ClientRunnerFactory = Callable[["RunContext", Callable[[], bool]], "ClientRunner | None"]
ERROR_TEXT_LIMIT = 4000


def runner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def checkpoint_name(round_: int) -> str:
    """fedcore's file name of the global state after ``round_`` (fedcore.simulation.save_checkpoint)."""
    return f"global_round_{round_:04d}.safetensors"


@dataclass
class Claim:
    spec: dict[str, Any]
    cancel_requested: bool
    rounds_done: int


class CancelFlag:
    """``should_stop`` for fedcore: true once the cancel flag is set (re-read at most once per interval)."""

    def __init__(self, sessions: sessionmaker[Session], experiment_id: uuid.UUID, interval: float) -> None:
        self._sessions = sessions
        self._id = experiment_id
        self._interval = interval
        self._checked = float("-inf")
        self._stop = False

    def __call__(self) -> bool:
        if self._stop:
            return True
        now = time.monotonic()
        if now - self._checked >= self._interval:
            self._checked = now
            with self._sessions() as s:
                row = s.execute(
                    select(Experiment.cancel_requested, Experiment.status).where(Experiment.id == self._id)
                ).one_or_none()
            self._stop = row is None or bool(row.cancel_requested) or row.status != "running"
        return self._stop


class Job:
    """The database side of one running experiment."""

    def __init__(self, experiment_id: uuid.UUID, settings: Settings, publisher: Publisher) -> None:
        self.id = experiment_id
        self.settings = settings
        self.engine = get_engine(settings.database_url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.publisher = publisher
        self.folder = settings.experiment_dir(experiment_id).expanduser().resolve()
        self.checkpoint_dir = self.folder / "checkpoint"

    # -- state changes ----------------------------------------------------------------

    def claim(self, task_id: str | None) -> Claim | None:
        """Become the job's runner (the caller holds the job lock); None when there is nothing to do."""
        with self.sessions.begin() as s:
            exp = s.get(Experiment, self.id, with_for_update=True)
            if exp is None or exp.status in TERMINAL:
                return None
            takeover = exp.status == "running"
            now = utcnow()
            exp.status = "running"
            exp.task_id = task_id or exp.task_id
            exp.runner = runner_name()
            exp.started_at = exp.started_at or now
            exp.heartbeat_at = now
            exp.updated_at = now
            exp.artifact_dir = str(self.folder)
            ev = status_event(
                s, exp, runner=exp.runner, resumed_from=exp.rounds_done or None, takeover=takeover
            )
            claim = Claim(
                spec=dict(exp.spec), cancel_requested=exp.cancel_requested, rounds_done=exp.rounds_done
            )
        self.publisher.publish(self.id, ev.id)
        return claim

    def finish(self, status: str, *, error: str | None = None, adapter: Path | None = None) -> None:
        with self.sessions.begin() as s:
            exp = s.get(Experiment, self.id, with_for_update=True)
            if exp is None:
                return
            now = utcnow()
            exp.status = status
            exp.error = error
            exp.finished_at = now
            exp.updated_at = now
            exp.heartbeat_at = now
            if adapter is not None:
                exp.adapter_path = str(adapter)
            ev = status_event(s, exp)
        self.publisher.publish(self.id, ev.id)

    def write_clients(self, ctx: RunContext) -> None:
        """Partition statistics and run facts (idempotent)."""
        rows = [
            {"experiment_id": self.id, "client_index": i, "examples": n, "label_histogram": h}
            for i, (n, h) in enumerate(zip(ctx.num_examples, ctx.label_histograms(), strict=True))
        ]
        info = {
            "task": ctx.task,
            "label_names": list(ctx.label_names),
            "blocks": [b.name for b in ctx.blocks],
            "heads_per_block": ctx.blocks[0].num_heads if ctx.blocks else 0,
            "train_examples": len(ctx.data.train),
            "device": str(ctx.device),
        }
        with self.sessions.begin() as s:
            if rows:
                s.execute(
                    self._insert(Client)
                    .values(rows)
                    .on_conflict_do_nothing(index_elements=["experiment_id", "client_index"])
                )
            s.execute(update(Experiment).where(Experiment.id == self.id).values(info=info))

    def persist_round(self, record: dict[str, Any]) -> bool:
        """Round row + round event + rounds_done in one transaction; False if the round was already stored."""
        rnd = int(record["round"])
        metrics = record.get("metrics") or {}
        ck = checkpoint_name(rnd)
        values = {
            "experiment_id": self.id,
            "round": rnd,
            "accuracy": metrics.get("accuracy"),
            "loss": metrics.get("loss"),
            "train_loss": record.get("train_loss"),
            "bytes_up": record["bytes_up"],
            "bytes_up_dense": record["bytes_up_dense"],
            "bytes_down": record["bytes_down"],
            "ops": record["ops"],
            "ops_dense": record["ops_dense"],
            "wall_time": record["wall_time"],
            "record": record,
            "checkpoint": str(Path("checkpoint") / ck) if (self.checkpoint_dir / ck).is_file() else None,
            "created_at": utcnow(),
        }
        with self.sessions.begin() as s:
            res = s.execute(
                self._insert(Round)
                .values(values)
                .on_conflict_do_nothing(index_elements=["experiment_id", "round"])
            )
            if not res.rowcount:  # type: ignore[attr-defined]
                return False
            total = s.scalar(select(Experiment.rounds_total).where(Experiment.id == self.id)) or 0
            ev = add_event(s, self.id, "round", round_event(record, total))
            now = utcnow()
            s.execute(
                update(Experiment)
                .where(Experiment.id == self.id, Experiment.rounds_done < rnd)
                .values(rounds_done=rnd, heartbeat_at=now, updated_at=now)
            )
        self.publisher.publish(self.id, ev.id)
        return True

    def backfill_from_checkpoint(self) -> int:
        """Store rounds the checkpoint holds but the database lacks; returns how many were added."""
        from fedcore.simulation import load_checkpoint

        ck = load_checkpoint(self.checkpoint_dir)
        if ck is None:
            return 0
        return sum(self.persist_round(rec) for rec in ck[3])

    def _insert(self, model: type) -> Any:
        return (pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert)(model)


def round_event(record: dict[str, Any], rounds_total: int) -> dict[str, Any]:
    """The figures a live view needs; the full record is at /rounds/{n}."""
    metrics = record.get("metrics") or {}
    keys = (
        "bytes_up",
        "bytes_up_dense",
        "bytes_down",
        "ops",
        "ops_dense",
        "ops_attention",
        "ops_attention_dense",
        "train_loss",
        "wall_time",
    )
    return {
        "round": record["round"],
        "rounds_total": rounds_total,
        "accuracy": metrics.get("accuracy"),
        "loss": metrics.get("loss"),
        "metrics": metrics,
        "selected": record["selection"]["selected"],
        **{k: record.get(k) for k in keys},
    }


def error_text(err: BaseException) -> str:
    head = "".join(traceback.format_exception_only(type(err), err)).strip()
    tail = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    text = f"{head}\n\n{tail}"
    return text if len(text) <= ERROR_TEXT_LIMIT else text[: ERROR_TEXT_LIMIT - 20] + "\n... (truncated)"


def run_job(
    experiment_id: uuid.UUID,
    *,
    settings: Settings,
    task_id: str | None = None,
    client_runner_factory: ClientRunnerFactory | None = None,
    publisher: Publisher | None = None,
) -> str:
    """Run (or resume) one experiment to a final status; returns what happened."""
    job = Job(experiment_id, settings, publisher or Publisher(None))
    with job_lock(job.engine, job.folder, experiment_id) as held:
        if not held:
            log.info("experiment %s already has a live runner; nothing to do", experiment_id)
            return "busy"
        claim = job.claim(task_id)
        if claim is None:
            log.info("experiment %s is gone or finished; nothing to do", experiment_id)
            return "skipped"
        if claim.cancel_requested:
            job.finish("cancelled")
            return "cancelled"
        try:
            return _run(job, claim, client_runner_factory)
        except Exception as err:
            log.exception("experiment %s failed", experiment_id)
            job.finish("failed", error=error_text(err))
            return "failed"


def _run(job: Job, claim: Claim, client_runner_factory: ClientRunnerFactory | None) -> str:
    from fedcore.context import get_context
    from fedcore.simulation import RoundResult, run_simulation, save_adapter
    from fedcore.spec import ExperimentSpec

    spec = ExperimentSpec.model_validate(claim.spec)
    ctx = get_context(spec, fedcore_paths(job.settings))
    job.write_clients(ctx)
    added = job.backfill_from_checkpoint()
    if added:
        log.info("experiment %s: stored %d round(s) found only in the checkpoint", job.id, added)
    should_stop = CancelFlag(job.sessions, job.id, job.settings.cancel_poll_interval)
    runner = client_runner_factory(ctx, should_stop) if client_runner_factory is not None else None

    def on_round_end(result: RoundResult) -> None:
        job.persist_round(result.to_dict())

    result = run_simulation(
        spec,
        context=ctx,
        client_runner=runner,
        on_round_end=on_round_end,
        should_stop=should_stop,
        checkpoint_dir=job.checkpoint_dir,
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
    return run_job(uuid.UUID(experiment_id), settings=settings, task_id=task_id)
