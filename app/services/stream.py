"""Server-Sent Events of one experiment (or of a study's runs, :func:`study_event_stream`): replay from an
event id, then follow live.

Events are always read from the events table (ordered by id, so ``Last-Event-ID``
replays exactly what a client missed). Streams do not poll the table themselves:
one :class:`EventWatch` per process reads the newest event id every
``sse_poll_interval`` seconds while any stream waits (and at once when a worker's
Redis pub/sub notice arrives), and a stream re-reads its experiment's events only
when that id has moved. So a hundred open streams cost one cheap query per interval,
not a hundred.

Progress inside a round is never in the table: the newest report of each running
experiment is kept in memory (:data:`LIVE_PROGRESS`), fed by the watch from Redis
pub/sub (Celery workers) and by the embedded executor from its process queue. A
stream opened with ``progress=True`` sends it as a ``progress`` event without an id
(so ``Last-Event-ID`` still counts stored events only) whenever a newer one is there,
looking every :data:`PROGRESS_TICK` seconds while it waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from anyio import CapacityLimiter
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from sse_starlette import ServerSentEvent

from app.core.db import read_session
from app.models import TERMINAL, Event
from app.services.events import PROGRESS_PREFIX, channel, events_after, progress_channel, study_events_after

log = logging.getLogger(__name__)
T = TypeVar("T")

STREAM_THREADS = 4  # threads for the watch's and the streams' reads, apart from the request threads
STREAM_RECHECK = 5.0  # a waiting stream re-reads its events at least this often, watch or not
WATCH_IDLE_STOP = 30.0  # the watch stops after this long without a waiting stream
PROGRESS_TICK = 0.5  # a waiting stream that sends progress looks for a newer report this often (memory only)


class LiveProgress:
    """The newest progress report of each running experiment, in this process's memory (thread-safe).

    A report with phase 'done' forgets the experiment; reports older than ``ttl`` seconds are not handed
    out (a runner that died); at most ``capacity`` experiments are kept (the oldest report goes first).
    """

    def __init__(self, ttl: float = 600.0, capacity: int = 1000) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[int, float, dict[str, Any]]] = {}
        self._seq = 0
        self._ttl = ttl
        self._capacity = capacity

    def put(self, experiment_id: uuid.UUID | str, data: dict[str, Any]) -> None:
        key = str(experiment_id)
        with self._lock:
            self._items.pop(key, None)  # re-inserted last: the dict stays oldest-first
            if data.get("phase") == "done":
                return
            self._seq += 1
            self._items[key] = (self._seq, time.monotonic(), data)
            while len(self._items) > self._capacity:
                self._items.pop(next(iter(self._items)))

    def newer(self, experiment_id: uuid.UUID | str, seen: int) -> tuple[int, dict[str, Any]] | None:
        """(its number, the report) when the experiment's newest report is newer than number ``seen``."""
        with self._lock:
            item = self._items.get(str(experiment_id))
        if item is None or item[0] <= seen or time.monotonic() - item[1] > self._ttl:
            return None
        return item[0], item[2]


LIVE_PROGRESS = LiveProgress()  # one per process: every app and executor of the process share it


def take_progress_notice(name: str | bytes, payload: str | bytes) -> bool:
    """Put a pub/sub message from a :func:`~app.services.events.progress_channel` into :data:`LIVE_PROGRESS`;
    False when the message is something else (an event notice)."""
    name = name.decode() if isinstance(name, bytes) else name
    if not name.startswith(PROGRESS_PREFIX):
        return False
    try:
        data = json.loads(payload)
    except ValueError:
        return True
    if isinstance(data, dict):
        LIVE_PROGRESS.put(name[len(PROGRESS_PREFIX):], data)
    return True


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
                if pubsub is not None:  # an event notice ends the wait early
                    try:
                        await self._listen(pubsub)
                        continue
                    except Exception as err:
                        log.debug("event watch: pub/sub lost, polling only: %s", err)
                        await _close(pubsub, client)
                        pubsub = client = None
                await asyncio.sleep(self._interval)
        finally:
            await _close(pubsub, client)

    async def _listen(self, pubsub: Any) -> None:
        """Take pub/sub messages for one interval: progress reports into LIVE_PROGRESS, until an event notice."""
        loop = asyncio.get_running_loop()
        end = loop.time() + self._interval
        while (left := end - loop.time()) > 0:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
            if msg is None:
                continue
            if not take_progress_notice(msg.get("channel", b""), msg.get("data", b"")):
                return

    async def _subscribe(self) -> tuple[Any, Any]:
        if self._url is None:
            return None, None
        client = pubsub = None
        try:
            import redis.asyncio as aioredis

            client = aioredis.Redis.from_url(self._url, socket_connect_timeout=1)
            pubsub = client.pubsub()
            await pubsub.psubscribe(channel("*"), progress_channel("*"))
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
    *, watch: EventWatch, experiment_id: uuid.UUID, last_event_id: int, progress: bool = False
) -> AsyncIterator[ServerSentEvent]:
    """Stored events after ``last_event_id``, then live; with ``progress``, live progress reports too."""
    after = last_event_id
    seen = 0  # the number of the last progress report sent
    loop = asyncio.get_running_loop()
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
        if not progress:
            await watch.wait_past(mark, STREAM_RECHECK)
            continue
        recheck = loop.time() + STREAM_RECHECK
        while True:  # send newer progress reports until the watch moves past the mark (or the recheck is due)
            report = LIVE_PROGRESS.newer(experiment_id, seen)
            if report is not None:
                seen = report[0]
                yield ServerSentEvent(data=json.dumps(report[1]), event="progress")
            left = recheck - loop.time()
            if watch.latest > mark or left <= 0:
                break
            await watch.wait_past(mark, min(PROGRESS_TICK, left))


def _study_fetch(
    db: Session, study_id: uuid.UUID, after: int
) -> tuple[list[tuple[int, str, dict[str, Any]]], bool | None]:
    return study_events_after(db_session=db, study_id=study_id, after=after)


async def study_event_stream(
    *, watch: EventWatch, study_id: uuid.UUID, last_event_id: int
) -> AsyncIterator[ServerSentEvent]:
    """The stored events of a study's runs after ``last_event_id`` (each with its ``run``, ``variant`` and
    ``seed``), then live, until none of its runs is queued or running. Woken by the same watch as the
    experiments' streams; ids are event-table ids, so ``Last-Event-ID`` resumes it."""
    after = last_event_id
    while True:
        mark = watch.latest  # before the read: anything stored after it moves the watch past the mark
        rows, live = await watch.read(functools.partial(_study_fetch, study_id=study_id, after=after))
        for event_id, type_, data in rows:
            yield ServerSentEvent(data=json.dumps(data), event=type_, id=str(event_id))
            after = event_id
        if rows:
            continue
        if not live:
            return
        await watch.wait_past(mark, STREAM_RECHECK)
