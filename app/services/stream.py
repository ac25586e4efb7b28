"""Server-Sent Events of one experiment: replay from an event id, then follow live.

Events are always read from the events table (ordered by id, so ``Last-Event-ID``
replays exactly what a client missed). Streams do not poll the table themselves:
one :class:`EventWatch` per process reads the newest event id every
``sse_poll_interval`` seconds while any stream waits (and at once when a worker's
Redis pub/sub notice arrives), and a stream re-reads its experiment's events only
when that id has moved. So a hundred open streams cost one cheap query per interval,
not a hundred.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from anyio import CapacityLimiter
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from sse_starlette import ServerSentEvent

from app.core.db import read_session
from app.models import TERMINAL, Event
from app.services.events import channel, events_after

log = logging.getLogger(__name__)
T = TypeVar("T")

STREAM_THREADS = 4  # threads for the watch's and the streams' reads, apart from the request threads
STREAM_RECHECK = 5.0  # a waiting stream re-reads its events at least this often, watch or not
WATCH_IDLE_STOP = 30.0  # the watch stops after this long without a waiting stream


class EventWatch:
    """The newest event id, watched once per process for every SSE stream (see the module docstring)."""

    def __init__(self, sessions: sessionmaker[Session], interval: float, redis_url: str | None) -> None:
        self._sessions = sessions
        self._interval = interval
        self._url = redis_url if redis_url and redis_url.startswith(("redis://", "rediss://")) else None
        self.latest = -1  # the newest event id seen; -1 before the first read
        self._changed: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._waiting = 0
        self._limiter: CapacityLimiter | None = None

    async def read(self, fn: Callable[[Session], T]) -> T:
        """``fn(session)``; where it needs a worker thread, one of the streams' own limiter, so that event
        delivery does not queue behind the requests that fill the default one under load."""
        if self._limiter is None:
            self._limiter = CapacityLimiter(STREAM_THREADS)
        return await read_session(self._sessions, fn, limiter=self._limiter)

    async def wait_past(self, mark: int, timeout: float) -> None:
        """Return once the newest event id is above ``mark``, or after ``timeout`` seconds."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="fedheads-event-watch")
        if self.latest > mark:
            return
        if self._changed is None:
            self._changed = asyncio.Event()
        changed = self._changed
        self._waiting += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout)
        finally:
            self._waiting -= 1

    @staticmethod
    def _max_id(db: Session) -> int:
        return int(db.scalar(select(func.max(Event.id))) or 0)

    async def _run(self) -> None:
        pubsub, client = await self._subscribe()
        idle = 0.0
        try:
            while idle < WATCH_IDLE_STOP:
                try:
                    latest = await self.read(self._max_id)
                except Exception as err:  # the database is down: streams re-check on their own timer
                    log.debug("event watch: %s", err)
                    latest = self.latest
                if latest != self.latest:
                    self.latest = latest
                    changed, self._changed = self._changed, asyncio.Event()
                    if changed is not None:
                        changed.set()
                idle = 0.0 if self._waiting else idle + self._interval
                if pubsub is not None:  # a notice ends the wait early
                    try:
                        await pubsub.get_message(ignore_subscribe_messages=True, timeout=self._interval)
                        continue
                    except Exception as err:
                        log.debug("event watch: pub/sub lost, polling only: %s", err)
                        await _close(pubsub, client)
                        pubsub = client = None
                await asyncio.sleep(self._interval)
        finally:
            await _close(pubsub, client)

    async def _subscribe(self) -> tuple[Any, Any]:
        if self._url is None:
            return None, None
        client = pubsub = None
        try:
            import redis.asyncio as aioredis

            client = aioredis.Redis.from_url(self._url, socket_connect_timeout=1)
            pubsub = client.pubsub()
            await pubsub.psubscribe(channel("*"))
            return pubsub, client
        except Exception as err:
            log.debug("event watch polls only: %s", err)
            await _close(pubsub, client)
            return None, None


async def _close(*closers: Any) -> None:
    for closer in closers:
        if closer is not None:
            with contextlib.suppress(Exception):
                await closer.aclose()


def _fetch(
    db: Session, experiment_id: uuid.UUID, after: int
) -> tuple[list[tuple[int, str, dict[str, Any]]], str | None]:
    rows, status = events_after(db_session=db, experiment_id=experiment_id, after=after)
    return [(ev.id, ev.type, ev.data) for ev in rows], status


async def event_stream(
    *, watch: EventWatch, experiment_id: uuid.UUID, last_event_id: int
) -> AsyncIterator[ServerSentEvent]:
    after = last_event_id
    while True:
        mark = watch.latest  # before the read: anything stored after it moves the watch past the mark
        rows, status = await watch.read(functools.partial(_fetch, experiment_id=experiment_id, after=after))
        for event_id, type_, data in rows:
            yield ServerSentEvent(data=json.dumps(data), event=type_, id=str(event_id))
            after = event_id
        if rows:
            continue
        if status is None or status in TERMINAL:
            return
        await watch.wait_past(mark, STREAM_RECHECK)
