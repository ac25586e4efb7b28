"""The event log: ``round`` and ``status`` events, written in the same transaction as the change they report.

Readers (SSE streams) ask for everything after an event id, so a client that
reconnects with ``Last-Event-ID`` gets exactly what it missed, in order.

After the commit, a writer announces each new event's id on the experiment's
:func:`channel` through an :class:`EventPublisher` (the worker's publishes on Redis
pub/sub); streams wake up at once instead of at their next poll of the table.

Progress inside a round (client j of M, step k of S) is lighter: never a row. A job's
:class:`ProgressReporter` stamps and thins fedcore's progress reports and hands them to a
:class:`ProgressPublisher` (Redis pub/sub on :func:`progress_channel`, or the embedded
executor's process queue); the API process keeps the newest one per experiment in memory
(:mod:`app.services.stream`) and streams it to the pages that ask for it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import TERMINAL, Event, Experiment, Study, utcnow


def channel(experiment_id: uuid.UUID | str) -> str:
    """The pub/sub channel that carries the ids of an experiment's new events (``*``: every experiment)."""
    return f"fedheads:events:{experiment_id}"


class EventPublisher(Protocol):
    """Announces a committed event on its experiment's :func:`channel`; best effort, never raises."""

    def publish(self, experiment_id: uuid.UUID, event_id: int) -> None: ...


PROGRESS_PREFIX = "fedheads:progress:"
PROGRESS_EVERY = 2.0  # seconds: a report that only moves the step waits at least this long after the last one
PROGRESS_GAP = 0.25  # seconds: and any report (a client started or finished) at least this long


def progress_channel(experiment_id: uuid.UUID | str) -> str:
    """The pub/sub channel of an experiment's progress reports (JSON; ``*``: every experiment)."""
    return f"{PROGRESS_PREFIX}{experiment_id}"


class ProgressPublisher(Protocol):
    """Carries a job's progress report to the API processes; best effort, never raises, never blocks."""

    def publish_progress(self, experiment_id: uuid.UUID, data: dict[str, Any]) -> None: ...


class ProgressReporter:
    """One job's progress, thinned and stamped, to a :class:`ProgressPublisher` (nothing is stored).

    Called with fedcore's progress fields (``phase``, ``round``, ``rounds``, ``client_index``, ``clients``,
    ``client``, ``step``, ``steps``). A round's start and its aggregation always go out; a client's reports when
    the client changed (at most every :data:`PROGRESS_GAP` s) or when :data:`PROGRESS_EVERY` s passed since the
    last one (so step k of S every few seconds). Each carries ``at`` (now),
    ``round_started`` and ``client_started`` (seconds since the epoch) for the page's estimates.
    """

    def __init__(self, experiment_id: uuid.UUID, publisher: ProgressPublisher,
                 clock: Callable[[], float] = time.time) -> None:
        self._id = experiment_id
        self._publisher = publisher
        self._clock = clock
        self._sent_at = float("-inf")
        self._key: tuple[Any, ...] | None = None
        self._round_started: float | None = None
        self._client_started: float | None = None
        self.sent = 0

    def _send(self, data: dict[str, Any]) -> None:
        self._publisher.publish_progress(self._id, data)
        self.sent += 1

    def preparing(self) -> None:
        """The runner took the job and builds the model and data (before round 1 or a resumed round)."""
        self._sent_at = self._clock()
        self._send({"phase": "prepare", "at": self._sent_at})

    def done(self) -> None:
        """The run stopped (any final status): the API forgets its progress."""
        self._send({"phase": "done", "at": self._clock()})

    def __call__(self, fields: dict[str, Any]) -> None:
        now = self._clock()
        phase = fields.get("phase")
        if phase == "select":
            self._round_started = now
        if phase == "client" and not fields.get("steps"):
            self._client_started = now
        key = (phase, fields.get("round"), fields.get("client_index"))
        gap = now - self._sent_at
        per_round = phase in ("select", "aggregate")  # two a round: always told
        if not per_round and (gap < PROGRESS_GAP or (key == self._key and gap < PROGRESS_EVERY)):
            return
        self._key, self._sent_at = key, now
        self._send({**fields, "at": now, "round_started": self._round_started,
                    "client_started": self._client_started})


def add_event(db_session: Session, experiment_id: uuid.UUID, type_: str, data: dict[str, Any]) -> Event:
    """Append an event inside the caller's transaction (flushed, so its id is known)."""
    ev = Event(experiment_id=experiment_id, type=type_, data=data, created_at=utcnow())
    db_session.add(ev)
    db_session.flush()
    return ev


def status_event(db_session: Session, exp: Experiment, **extra: Any) -> Event:
    """Record the experiment's current status as an event."""
    data: dict[str, Any] = {
        "status": exp.status,
        "rounds_done": exp.rounds_done,
        "rounds_total": exp.rounds_total,
        "error": exp.error,
    }
    data.update(extra)
    return add_event(db_session, exp.id, "status", data)


def events_after(
    *, db_session: Session, experiment_id: uuid.UUID, after: int, limit: int = 500
) -> tuple[Sequence[Event], str | None]:
    """Events with id > ``after`` in id order, and the experiment's status (None if it is gone)."""
    status = db_session.scalar(select(Experiment.status).where(Experiment.id == experiment_id))
    rows = db_session.scalars(
        select(Event)
        .where(Event.experiment_id == experiment_id, Event.id > after)
        .order_by(Event.id)
        .limit(limit)
    ).all()
    return rows, status


def study_events_after(
    *, db_session: Session, study_id: uuid.UUID, after: int, limit: int = 500
) -> tuple[list[tuple[int, str, dict[str, Any]]], bool | None]:
    """The events of a study's runs with id > ``after``, in id order, as (id, type, data) with the run's
    ``run`` id, ``variant`` and ``seed`` added to the data; and whether any of its runs is still queued or
    running (None when the study is gone). The statuses are read first: a run that finished before that
    read has its final status event among the rows."""
    statuses = db_session.scalars(select(Experiment.status).where(Experiment.study_id == study_id)).all()
    if not statuses and db_session.get(Study, study_id) is None:
        return [], None
    rows = db_session.execute(
        select(Event.id, Event.type, Event.data, Experiment.id, Experiment.variant, Experiment.seed)
        .join(Experiment, Experiment.id == Event.experiment_id)
        .where(Experiment.study_id == study_id, Event.id > after)
        .order_by(Event.id)
        .limit(limit)
    ).all()
    out = [(i, t, {**(d or {}), "run": str(run), "variant": v, "seed": s}) for i, t, d, run, v, s in rows]
    return out, any(s not in TERMINAL for s in statuses)


def study_latest_event(db_session: Session, study_id: uuid.UUID) -> int:
    """The newest event id of a study's runs (0 when none): a page that read the study after this reads
    its stream from here on."""
    return int(db_session.scalar(
        select(func.max(Event.id)).join(Experiment, Experiment.id == Event.experiment_id)
        .where(Experiment.study_id == study_id)
    ) or 0)
