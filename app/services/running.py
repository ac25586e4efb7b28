"""A runner's handle on the job it runs: the :mod:`app.services.jobs` writes, made safe to call from a job.

:class:`RunningJob` puts each write in one transaction and announces its events after
the commit. The database may go away for a while (a restart, a network blip): every
write is retried with backoff for ``db_retry_seconds`` (``app.core.db.retry_transient``);
a round that still cannot be stored raises ``DatabaseUnavailable`` naming the round (its
checkpoint is on disk, so a resume carries on). A lost connection may take the job lock
with it, and the reconciler may then queue the job again: before a round or status is
written the job checks that it still holds the lock (:class:`~app.core.locks.LockGuard`)
and that the row is still its own (:func:`~app.services.jobs.ensure_owner`); if another
runner took over, :class:`~app.core.locks.NotOwner` is raised and nothing more is written.

:class:`CancelFlag` is fedcore's ``should_stop``: the cancel flag, re-read at most once
per interval.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.core.db import describe_db_error, get_engine, is_transient, retry_transient
from app.core.locks import LockGuard
from app.services import failures, jobs
from app.services.events import EventPublisher

if TYPE_CHECKING:
    from fedcore.context import RunContext

log = logging.getLogger(__name__)
T = TypeVar("T")


def runner_name() -> str:
    """This process, as a job's ``runner`` column names it."""
    return f"{socket.gethostname()}:{os.getpid()}"


class _Silent:
    def publish(self, experiment_id: uuid.UUID, event_id: int) -> None:
        pass


class RunningJob:
    """The database side of one running experiment (see the module docstring)."""

    def __init__(
        self, experiment_id: uuid.UUID, settings: Settings, publisher: EventPublisher | None = None
    ) -> None:
        self.id = experiment_id
        self.settings = settings
        self.engine = get_engine(settings.database_url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.publisher: EventPublisher = publisher or _Silent()
        self.folder = settings.experiment_dir(experiment_id).expanduser().resolve()
        self.checkpoint_dir = self.folder / "checkpoint"
        self.lock = LockGuard(self.engine, experiment_id)
        self._runner: str | None = None  # set by a successful claim: later writes check ownership

    def _write(self, what: str, change: Callable[[Session], tuple[T, list[int]]], hint: str = "") -> T:
        """``change`` in one transaction, after a claimed job's ownership check; retried; then announce."""

        def once() -> T:
            with self.sessions.begin() as s:
                if self._runner is not None:
                    self.lock.check(s)
                result, events = change(s)
            for ev_id in events:
                self.publisher.publish(self.id, ev_id)
            return result

        return retry_transient(
            once, what=f"{what} (experiment {self.id})", budget=self.settings.db_retry_seconds, hint=hint
        )

    def claim(self, task_id: str | None) -> jobs.Claim | None:
        """Become the job's runner (the caller holds the job lock); None when there is nothing to do."""
        me = runner_name()

        def change(s: Session) -> tuple[jobs.Claim | None, list[int]]:
            claim = jobs.claim(
                db_session=s, experiment_id=self.id, runner=me, task_id=task_id, artifact_dir=str(self.folder)
            )
            if claim is None:
                return None, []
            self.lock.remember(s)  # the job_lock connection: ours
            return claim, claim.events

        claim = self._write("claiming the job", change)
        if claim is not None:
            self._runner = me
        return claim

    def finish(
        self, status: jobs.FinalStatus, *, error: str | None = None, adapter: Path | None = None
    ) -> None:
        """Write the final status (retried); raises NotOwner when the job is no longer ours."""
        self._write(
            f"storing the final status ({status})",
            lambda s: (
                None,
                jobs.finish(
                    db_session=s,
                    experiment_id=self.id,
                    status=status,
                    runner=self._runner,
                    error=error,
                    adapter_path=None if adapter is None else str(adapter),
                ),
            ),
        )

    def fail(self, err: BaseException) -> None:
        """Failed, with a one-line cause and an error id; the traceback goes to this process's log under the id."""
        error_id = failures.new_error_id()
        failures.log_failure(log, f"experiment {self.id}", err, error_id)
        self.finish("failed", error=failures.public_error(err, error_id, self.settings))

    def release(self) -> None:
        """Let go of a job lock that had to be taken again (the original goes with job_lock)."""
        self.lock.release()

    def write_clients(self, ctx: RunContext) -> None:
        """Partition statistics and run facts (idempotent)."""
        clients = [
            {"client_index": i, "examples": n, "label_histogram": h}
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

        def change(s: Session) -> tuple[None, list[int]]:
            jobs.store_run_facts(db_session=s, experiment_id=self.id, clients=clients, info=info)
            return None, []

        self._write("storing the client statistics", change)

    def persist_round(self, record: dict[str, Any]) -> bool:
        """Round row + round event + rounds_done in one transaction; False if the round was already stored.

        Retried while the database is unreachable; after ``db_retry_seconds`` it raises
        DatabaseUnavailable naming the round. Raises NotOwner when the job is no longer ours.
        """
        from fedcore.simulation import checkpoint_file

        rnd = int(record["round"])
        name = checkpoint_file(rnd)
        checkpoint = str(Path("checkpoint") / name) if (self.checkpoint_dir / name).is_file() else None
        return self._write(
            f"storing round {rnd}",
            lambda s: jobs.persist_round(
                db_session=s, experiment_id=self.id, record=record, checkpoint=checkpoint, runner=self._runner
            ),
            hint=f"Round {rnd} is in the checkpoint on disk: resume the experiment to store it and carry on",
        )

    def backfill_from_checkpoint(self) -> int:
        """Store rounds the checkpoint holds but the database lacks; returns how many were added."""
        from fedcore.simulation import load_checkpoint

        ck = load_checkpoint(self.checkpoint_dir)
        if ck is None:
            return 0
        return sum(self.persist_round(rec) for rec in ck[3])


class CancelFlag:
    """``should_stop`` for fedcore: true once the job is cancelled, finished, gone or run by another runner.

    Re-read at most once per interval (:func:`app.services.jobs.should_stop`). While the database
    is unreachable the last answer stands; the round write that follows retries.
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
                    stop = jobs.should_stop(db_session=s, experiment_id=self._id, runner=runner_name())
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
            self._stop = stop
        return self._stop
