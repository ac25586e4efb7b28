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

The database may go away for a while (a restart, a network blip). Every write is
retried with backoff for ``db_retry_seconds`` (``app.core.db.retry_transient``);
a round that still cannot be stored fails the job with an error naming the round
(its checkpoint is on disk, so a resume carries on). A lost connection may take
the job lock with it, and the reconciler may then queue the job again: before a
round or status is written the runner checks that it still holds the lock (taking
it again when it is free) and that the row is still its own; if another runner
took over, this one stops without writing anything more (:class:`NotOwner`).
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
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings, fedcore_paths, with_device
from app.core.db import DatabaseUnavailable, describe_db_error, get_engine, is_transient, retry_transient
from app.core.locks import _key as lock_key
from app.core.locks import job_lock
from app.models import TERMINAL, Client, Experiment, Round, utcnow
from app.services.events import add_event, status_event
from worker.events import Publisher

if TYPE_CHECKING:
    from fedcore.context import RunContext
    from fedcore.simulation import ClientRunner

log = logging.getLogger(__name__)
T = TypeVar("T")

ClientRunnerFactory = Callable[["RunContext", Callable[[], bool]], "ClientRunner | None"]
ERROR_TEXT_LIMIT = 4000

# the backend holding the job lock, a bigint advisory lock of this database: pg_locks shows its
# high half in classid, its low half in objid, and objsubid 1
LOCK_HOLDER = text(
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND classid::bigint = :hi AND objid::bigint = :lo AND objsubid = 1"
)


class NotOwner(Exception):
    """The job is no longer this runner's (another runner took it over, or it was finished meanwhile)."""


def lock_holder(s: Session, experiment_id: uuid.UUID) -> int | None:
    """The PostgreSQL backend (pid) that holds the job's lock, if any."""
    key = lock_key(experiment_id)
    pid = s.scalar(LOCK_HOLDER, {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF})
    return None if pid is None else int(pid)


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
    """``should_stop`` for fedcore: true once the job is cancelled, finished, gone or run by another runner.

    Re-read at most once per interval. A job put back to ``queued`` (the reconciler saw its lock
    free during a database outage) is not a reason to stop: the next write takes it back. While
    the database is unreachable the last answer stands; the round write that follows retries.
    """

    def __init__(self, sessions: sessionmaker[Session], experiment_id: uuid.UUID, interval: float) -> None:
        self._sessions = sessions
        self._id = experiment_id
        self._interval = interval
        self._checked = float("-inf")
        self._stop = False
        self._unreachable = False

    def __call__(self) -> bool:
        if self._stop:
            return True
        now = time.monotonic()
        if now - self._checked >= self._interval:
            self._checked = now
            try:
                with self._sessions() as s:
                    row = s.execute(
                        select(Experiment.cancel_requested, Experiment.status, Experiment.runner).where(
                            Experiment.id == self._id
                        )
                    ).one_or_none()
            except Exception as err:
                if not is_transient(err):
                    raise
                if not self._unreachable:
                    log.warning(
                        "experiment %s: cannot read the cancel flag (%s); carrying on",
                        self._id,
                        describe_db_error(err),
                    )
                self._unreachable = True
                return False
            self._unreachable = False
            self._stop = (
                row is None
                or bool(row.cancel_requested)
                or row.status in TERMINAL
                or (row.status == "running" and row.runner not in (None, runner_name()))
            )
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
        self._claimed = False
        self._lock_pid: int | None = None  # PostgreSQL backend that holds the job lock for us
        self._lock_conn: Connection | None = None  # the lock, when it had to be taken again

    def _retry(self, what: str, operation: Callable[[], T], hint: str = "") -> T:
        return retry_transient(
            operation, what=f"{what} (experiment {self.id})", budget=self.settings.db_retry_seconds, hint=hint
        )

    # -- state changes ----------------------------------------------------------------

    def claim(self, task_id: str | None) -> Claim | None:
        """Become the job's runner (the caller holds the job lock); None when there is nothing to do."""
        return self._retry("claiming the job", lambda: self._claim(task_id))

    def _claim(self, task_id: str | None) -> Claim | None:
        with self.sessions.begin() as s:
            exp = s.get(Experiment, self.id, with_for_update=True)
            if exp is None or exp.status in TERMINAL:
                return None
            if self.engine.dialect.name == "postgresql":
                self._lock_pid = lock_holder(s, self.id)  # the job_lock connection: ours
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
        self._claimed = True
        self.publisher.publish(self.id, ev.id)
        return claim

    def finish(self, status: str, *, error: str | None = None, adapter: Path | None = None) -> None:
        """Write the final status (retried); raises NotOwner when the job is no longer ours."""
        self._retry(f"storing the final status ({status})", lambda: self._finish(status, error, adapter))

    def _finish(self, status: str, error: str | None, adapter: Path | None) -> None:
        events: list[int] = []
        with self.sessions.begin() as s:
            events += self._check_owner(s)
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
            events.append(status_event(s, exp).id)
        for ev_id in events:
            self.publisher.publish(self.id, ev_id)

    def release(self) -> None:
        """Let go of a job lock that had to be taken again (the original goes with job_lock)."""
        conn, self._lock_conn = self._lock_conn, None
        if conn is None:
            return
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(self.id)})
            conn.commit()
            conn.close()
        except Exception:  # connection gone: the server released the lock with it
            conn.invalidate()
            conn.close()

    # -- ownership after a lost connection ------------------------------------------------

    def _check_owner(self, s: Session) -> list[int]:
        """Inside a write's transaction: make sure the job is still ours; returns status events to publish.

        PostgreSQL: the job lock lives on a connection, and a database outage can cut it. If
        nobody holds the lock now, take it again; if another backend does, raise NotOwner. Then
        the row: a job the reconciler put back to ``queued`` meanwhile is claimed again; a
        finished, deleted or taken-over job raises NotOwner.
        """
        if not self._claimed:  # a Job used for one write (tests, tools): nothing to guard
            return []
        if self.engine.dialect.name == "postgresql":
            holder = lock_holder(s, self.id)
            if holder is None:
                self._relock()
            elif holder != self._lock_pid:
                raise NotOwner(f"another runner holds the job lock (PostgreSQL backend {holder})")
        exp = s.get(Experiment, self.id, with_for_update=True)
        if exp is None or exp.status in TERMINAL:
            raise NotOwner(f"the job is {'gone' if exp is None else exp.status}")
        me = runner_name()
        if exp.status == "running" and exp.runner == me:
            return []
        if exp.status == "running" and exp.runner is not None:
            raise NotOwner(f"runner {exp.runner} took the job over")
        log.warning(
            "experiment %s was %s while this runner could not reach the database; it runs here again",
            self.id,
            exp.status,
        )
        now = utcnow()
        exp.status = "running"
        exp.runner = me
        exp.heartbeat_at = now
        exp.updated_at = now
        return [status_event(s, exp, runner=me, note="the runner got the database back and carries on").id]

    def _relock(self) -> None:
        """Take the job lock again on a connection of our own (the old one died with the outage)."""
        conn = self.engine.connect()
        try:
            got = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": lock_key(self.id)}))
            pid = int(conn.scalar(text("SELECT pg_backend_pid()")) or 0)
            conn.commit()
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        if not got:
            conn.close()
            raise NotOwner("another runner took the job lock while this one could not reach the database")
        self.release()
        self._lock_conn, self._lock_pid = conn, pid
        log.warning("experiment %s: the job lock went with a lost database connection; taken again", self.id)

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
        self._retry("storing the client statistics", lambda: self._write_clients(rows, info))

    def _write_clients(self, rows: list[dict[str, Any]], info: dict[str, Any]) -> None:
        with self.sessions.begin() as s:
            if rows:
                s.execute(
                    self._insert(Client)
                    .values(rows)
                    .on_conflict_do_nothing(index_elements=["experiment_id", "client_index"])
                )
            s.execute(update(Experiment).where(Experiment.id == self.id).values(info=info))

    def persist_round(self, record: dict[str, Any]) -> bool:
        """Round row + round event + rounds_done in one transaction; False if the round was already stored.

        Retried while the database is unreachable; after ``db_retry_seconds`` it raises
        DatabaseUnavailable naming the round. Raises NotOwner when the job is no longer ours.
        """
        rnd = int(record["round"])
        return self._retry(
            f"storing round {rnd}",
            lambda: self._persist_round(rnd, record),
            hint=f"Round {rnd} is in the checkpoint on disk: resume the experiment to store it and carry on",
        )

    def _persist_round(self, rnd: int, record: dict[str, Any]) -> bool:
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
            events = self._check_owner(s)
            res = s.execute(
                self._insert(Round)
                .values(values)
                .on_conflict_do_nothing(index_elements=["experiment_id", "round"])
            )
            stored = bool(res.rowcount)  # type: ignore[attr-defined]
            if stored:
                total = s.scalar(select(Experiment.rounds_total).where(Experiment.id == self.id)) or 0
                events.append(add_event(s, self.id, "round", round_event(record, total)).id)
                now = utcnow()
                s.execute(
                    update(Experiment)
                    .where(Experiment.id == self.id, Experiment.rounds_done < rnd)
                    .values(rounds_done=rnd, heartbeat_at=now, updated_at=now)
                )
        for ev_id in events:
            self.publisher.publish(self.id, ev_id)
        return stored

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
        try:
            return _claim_and_run(job, task_id, client_runner_factory)
        except NotOwner as err:
            log.warning("experiment %s: %s; this runner stops and leaves the job alone", experiment_id, err)
            return "superseded"
        except DatabaseUnavailable:
            # not even the claim or the final status could be stored: the row says queued or running,
            # and the reconciler dispatches it again (a running job once its lock is seen free)
            log.exception("experiment %s: database unreachable; left to the reconciler", experiment_id)
            raise
        finally:
            job.release()


def _claim_and_run(job: Job, task_id: str | None, client_runner_factory: ClientRunnerFactory | None) -> str:
    claim = job.claim(task_id)
    if claim is None:
        log.info("experiment %s is gone or finished; nothing to do", job.id)
        return "skipped"
    if claim.cancel_requested:
        job.finish("cancelled")
        return "cancelled"
    try:
        return _run(job, claim, client_runner_factory)
    except NotOwner:
        raise
    except Exception as err:
        log.exception("experiment %s failed", job.id)
        job.finish("failed", error=error_text(err))
        return "failed"


def _run(job: Job, claim: Claim, client_runner_factory: ClientRunnerFactory | None) -> str:
    from fedcore.context import get_context
    from fedcore.simulation import RoundResult, run_simulation, save_adapter
    from fedcore.spec import ExperimentSpec

    spec = with_device(ExperimentSpec.model_validate(claim.spec), job.settings)
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
