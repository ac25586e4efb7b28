"""The job lifecycle: every status change of an experiment happens here, with its ``status`` event.

::

    queued --claim--> running --finish--> succeeded | failed | cancelled
      ^  \\--request_cancel--> cancelled        |            |
      |                                          v            v
      +-- requeue_lost (runner gone) --+    request_resume: failed | cancelled -> queued

Routes, the reconciler and the runner call these functions and never write a status
themselves. Each takes a keyword-only ``db_session`` and works inside the caller's
transaction; the runner's functions return the ids of the events they wrote, for the
caller to announce (:class:`~app.services.events.EventPublisher`) once it has committed.

A runner names itself (``host:pid``); functions given a ``runner`` first make sure the
job is still that runner's (:func:`ensure_owner`), so a runner that lost the job during
a database outage stops instead of overwriting its successor's rows.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.core.locks import NotOwner
from app.models import TERMINAL, Client, Experiment, Round, utcnow
from app.services.errors import Conflict, NotFound
from app.services.events import add_event, status_event

log = logging.getLogger(__name__)

FinalStatus = Literal["succeeded", "failed", "cancelled"]


def _get(db_session: Session, experiment_id: uuid.UUID, *, lock: bool = False) -> Experiment:
    exp = db_session.get(Experiment, experiment_id, with_for_update=lock)
    if exp is None:
        raise NotFound(f"experiment {experiment_id} not found")
    return exp


# --- requests from the API ---------------------------------------------------------------------


def record_new(*, db_session: Session, experiment: Experiment) -> None:
    """A new experiment starts queued, with its first status event (the caller commits, then dispatches)."""
    experiment.status = "queued"
    experiment.rounds_done = 0
    experiment.cancel_requested = False
    db_session.add(experiment)
    db_session.flush()
    status_event(db_session, experiment)


def request_cancel(*, db_session: Session, experiment_id: uuid.UUID) -> Experiment:
    """Queued: cancelled at once. Running: flag it; the runner stops within one training step."""
    exp = _get(db_session, experiment_id)
    if exp.status in TERMINAL:
        raise Conflict(
            f"experiment {experiment_id} is {exp.status}; only queued or running experiments can be cancelled"
        )
    now = utcnow()
    res = db_session.execute(
        update(Experiment)
        .where(Experiment.id == experiment_id, Experiment.status == "queued")
        .values(status="cancelled", cancel_requested=True, finished_at=now, updated_at=now)
    )
    if res.rowcount == 1:  # type: ignore[attr-defined]
        db_session.refresh(exp)
        status_event(db_session, exp)
    else:  # it started meanwhile (or was running): the runner reads the flag
        db_session.execute(
            update(Experiment)
            .where(Experiment.id == experiment_id, Experiment.status == "running")
            .values(cancel_requested=True, updated_at=now)
        )
        db_session.refresh(exp)
        if exp.status in TERMINAL and exp.status != "cancelled":
            raise Conflict(f"experiment {experiment_id} finished ({exp.status}) before it could be cancelled")
    return exp


def request_resume(*, db_session: Session, experiment_id: uuid.UUID) -> Experiment:
    """Failed or cancelled: queue it again; the runner continues after the last stored round."""
    exp = _get(db_session, experiment_id)
    if exp.status not in ("failed", "cancelled"):
        raise Conflict(
            f"experiment {experiment_id} is {exp.status}; only failed or cancelled experiments can be resumed"
        )
    now = utcnow()
    res = db_session.execute(
        update(Experiment)
        .where(Experiment.id == experiment_id, Experiment.status.in_(("failed", "cancelled")))
        .values(
            status="queued",
            cancel_requested=False,
            error=None,
            finished_at=None,
            task_id=None,
            dispatched_at=None,
            updated_at=now,
        )
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"experiment {experiment_id} changed state meanwhile; try again")
    db_session.refresh(exp)
    status_event(db_session, exp, resumed_from=exp.rounds_done)
    return exp


# --- the reconciler ----------------------------------------------------------------------------


def mark_dispatched(*, db_session: Session, experiment_id: uuid.UUID, task_id: str) -> None:
    """Record the task that carries a queued job (a job that started meanwhile keeps its own)."""
    db_session.execute(
        update(Experiment)
        .where(Experiment.id == experiment_id, Experiment.status == "queued")
        .values(task_id=task_id, dispatched_at=utcnow())
    )


def requeue_lost(*, db_session: Session, experiment_id: uuid.UUID) -> bool:
    """A running job whose runner is gone (the caller saw its lock free) goes back to queued."""
    res = db_session.execute(
        update(Experiment)
        .where(Experiment.id == experiment_id, Experiment.status == "running")
        .values(status="queued", task_id=None, dispatched_at=None, updated_at=utcnow())
    )
    if not res.rowcount:  # type: ignore[attr-defined]
        return False
    status_event(
        db_session,
        _get(db_session, experiment_id),
        note="runner lost; the job resumes from its last stored round",
    )
    return True


# --- the runner --------------------------------------------------------------------------------


@dataclass
class Claim:
    """What a runner needs from a claimed job, and the status events to announce."""

    spec: dict[str, Any]
    cancel_requested: bool
    rounds_done: int
    events: list[int] = field(default_factory=list)


def claim(
    *, db_session: Session, experiment_id: uuid.UUID, runner: str, task_id: str | None, artifact_dir: str
) -> Claim | None:
    """Become the job's runner: queued -> running, or running -> running when the previous runner died.

    The caller holds the job lock. None when the job is gone or finished (nothing to do).
    """
    exp = db_session.get(Experiment, experiment_id, with_for_update=True)
    if exp is None or exp.status in TERMINAL:
        return None
    takeover = exp.status == "running"
    now = utcnow()
    exp.status = "running"
    exp.task_id = task_id or exp.task_id
    exp.runner = runner
    exp.started_at = exp.started_at or now
    exp.heartbeat_at = now
    exp.updated_at = now
    exp.artifact_dir = artifact_dir
    ev = status_event(db_session, exp, runner=runner, resumed_from=exp.rounds_done or None, takeover=takeover)
    return Claim(
        spec=dict(exp.spec),
        cancel_requested=exp.cancel_requested,
        rounds_done=exp.rounds_done,
        events=[ev.id],
    )


def ensure_owner(*, db_session: Session, experiment_id: uuid.UUID, runner: str) -> list[int]:
    """Make sure the job is still ``runner``'s before it writes; returns status events to announce.

    A job the reconciler put back to ``queued`` while the runner could not reach the database
    is claimed again; a finished, deleted or taken-over job raises :class:`NotOwner`.
    """
    exp = db_session.get(Experiment, experiment_id, with_for_update=True)
    if exp is None or exp.status in TERMINAL:
        raise NotOwner(f"the job is {'gone' if exp is None else exp.status}")
    if exp.status == "running" and exp.runner == runner:
        return []
    if exp.status == "running" and exp.runner is not None:
        raise NotOwner(f"runner {exp.runner} took the job over")
    log.warning(
        "experiment %s was %s while this runner could not reach the database; it runs here again",
        experiment_id,
        exp.status,
    )
    now = utcnow()
    exp.status = "running"
    exp.runner = runner
    exp.heartbeat_at = now
    exp.updated_at = now
    return [
        status_event(
            db_session, exp, runner=runner, note="the runner got the database back and carries on"
        ).id
    ]


def _owned(db_session: Session, experiment_id: uuid.UUID, runner: str | None) -> list[int]:
    """:func:`ensure_owner` for a runner; nothing to check for a write made outside a run (tests, tools)."""
    return (
        []
        if runner is None
        else ensure_owner(db_session=db_session, experiment_id=experiment_id, runner=runner)
    )


def should_stop(*, db_session: Session, experiment_id: uuid.UUID, runner: str) -> bool:
    """Whether ``runner`` should stop: the job was cancelled, finished, deleted or taken over.

    A job put back to ``queued`` (the reconciler saw its lock free during a database outage) is
    not a reason to stop: the runner's next write claims it again (:func:`ensure_owner`).
    """
    row = db_session.execute(
        select(Experiment.cancel_requested, Experiment.status, Experiment.runner).where(
            Experiment.id == experiment_id
        )
    ).one_or_none()
    return (
        row is None
        or bool(row.cancel_requested)
        or row.status in TERMINAL
        or (row.status == "running" and row.runner not in (None, runner))
    )


def store_run_facts(
    *, db_session: Session, experiment_id: uuid.UUID, clients: list[dict[str, Any]], info: dict[str, Any]
) -> None:
    """The clients' partition statistics and the run's facts (idempotent)."""
    if clients:
        rows = [{"experiment_id": experiment_id, **c} for c in clients]
        db_session.execute(
            _insert(db_session, Client)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["experiment_id", "client_index"])
        )
    db_session.execute(update(Experiment).where(Experiment.id == experiment_id).values(info=info))


def persist_round(
    *,
    db_session: Session,
    experiment_id: uuid.UUID,
    record: dict[str, Any],
    checkpoint: str | None,
    runner: str | None,
) -> tuple[bool, list[int]]:
    """Round row + round event + ``rounds_done``, in the caller's transaction.

    Returns whether the round was new (a round already stored is left as it is) and the events
    to announce. ``checkpoint`` is the round's checkpoint file relative to the job folder;
    ``runner``, when given, must still own the job (:func:`ensure_owner`).
    """
    events = _owned(db_session, experiment_id, runner)
    rnd = int(record["round"])
    metrics = record.get("metrics") or {}
    values = {
        "experiment_id": experiment_id,
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
        "checkpoint": checkpoint,
        "created_at": utcnow(),
    }
    res = db_session.execute(
        _insert(db_session, Round)
        .values(values)
        .on_conflict_do_nothing(index_elements=["experiment_id", "round"])
    )
    stored = bool(res.rowcount)  # type: ignore[attr-defined]
    if stored:
        total = db_session.scalar(select(Experiment.rounds_total).where(Experiment.id == experiment_id)) or 0
        events.append(add_event(db_session, experiment_id, "round", round_event(record, total)).id)
        now = utcnow()
        db_session.execute(
            update(Experiment)
            .where(Experiment.id == experiment_id, Experiment.rounds_done < rnd)
            .values(rounds_done=rnd, heartbeat_at=now, updated_at=now)
        )
    return stored, events


def finish(
    *,
    db_session: Session,
    experiment_id: uuid.UUID,
    status: FinalStatus,
    runner: str | None,
    error: str | None = None,
    adapter_path: str | None = None,
) -> list[int]:
    """running -> ``status``, with the error text or the adapter's path; returns the events to announce."""
    events = _owned(db_session, experiment_id, runner)
    exp = db_session.get(Experiment, experiment_id, with_for_update=True)
    if exp is None:
        return events
    now = utcnow()
    exp.status = status
    exp.error = error
    exp.finished_at = now
    exp.updated_at = now
    exp.heartbeat_at = now
    if adapter_path is not None:
        exp.adapter_path = adapter_path
    events.append(status_event(db_session, exp).id)
    return events


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


def _insert(db_session: Session, model: type) -> Any:
    dialect = db_session.get_bind().dialect.name
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(model)
