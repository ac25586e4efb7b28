"""The event log: ``round`` and ``status`` events, written in the same transaction as the change they report.

Readers (SSE streams) ask for everything after an event id, so a client that
reconnects with ``Last-Event-ID`` gets exactly what it missed, in order.

After the commit, a writer announces each new event's id on the experiment's
:func:`channel` through an :class:`EventPublisher` (the worker's publishes on Redis
pub/sub); streams wake up at once instead of at their next poll of the table.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Event, Experiment, utcnow


def channel(experiment_id: uuid.UUID | str) -> str:
    """The pub/sub channel that carries the ids of an experiment's new events (``*``: every experiment)."""
    return f"fedheads:events:{experiment_id}"


class EventPublisher(Protocol):
    """Announces a committed event on its experiment's :func:`channel`; best effort, never raises."""

    def publish(self, experiment_id: uuid.UUID, event_id: int) -> None: ...


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
