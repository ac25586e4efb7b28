"""Server-Sent Events of one experiment: replay from an event id, then follow live.

Events are always read from the events table (ordered by id, so ``Last-Event-ID``
replays exactly what a client missed). The stream polls the table every
``sse_poll_interval`` seconds; with a Redis broker it also listens on the
experiment's pub/sub channel and re-reads at once when a worker announces an
event. It ends once the experiment is in a final state and everything was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from anyio import to_thread
from sqlalchemy.orm import Session, sessionmaker
from sse_starlette import ServerSentEvent

from app.core.config import Settings
from app.models import TERMINAL
from app.services.events import events_after
from worker.events import channel

log = logging.getLogger(__name__)


class _Waker:
    """Sleeps until the poll interval passes or a pub/sub notice arrives."""

    def __init__(self, redis_url: str | None, experiment_id: uuid.UUID) -> None:
        self._url = redis_url if redis_url and redis_url.startswith(("redis://", "rediss://")) else None
        self._channel = channel(experiment_id)
        self._client: Any = None
        self._pubsub: Any = None

    async def start(self) -> None:
        if self._url is None:
            return
        try:
            import redis.asyncio as aioredis

            self._client = aioredis.Redis.from_url(self._url, socket_connect_timeout=1)
            self._pubsub = self._client.pubsub()
            await self._pubsub.subscribe(self._channel)
        except Exception as err:
            log.debug("SSE falls back to polling only: %s", err)
            await self.close()

    async def wait(self, timeout: float) -> None:
        if self._pubsub is None:
            await asyncio.sleep(timeout)
            return
        try:
            await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        except Exception as err:
            log.debug("pub/sub lost, polling only: %s", err)
            await self.close()
            await asyncio.sleep(timeout)

    async def close(self) -> None:
        pubsub, client, self._pubsub, self._client = self._pubsub, self._client, None, None
        for closer in (pubsub, client):
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer.aclose()


def _fetch(
    sessions: sessionmaker[Session], experiment_id: uuid.UUID, after: int
) -> tuple[list[tuple[int, str, dict[str, Any]]], str | None]:
    with sessions() as s:
        rows, status = events_after(db_session=s, experiment_id=experiment_id, after=after)
        return [(ev.id, ev.type, ev.data) for ev in rows], status


async def event_stream(
    *, sessions: sessionmaker[Session], settings: Settings, experiment_id: uuid.UUID, last_event_id: int
) -> AsyncIterator[ServerSentEvent]:
    waker = _Waker(settings.broker_url, experiment_id)
    await waker.start()
    after = last_event_id
    try:
        while True:
            rows, status = await to_thread.run_sync(_fetch, sessions, experiment_id, after)
            for event_id, type_, data in rows:
                yield ServerSentEvent(data=json.dumps(data), event=type_, id=str(event_id))
                after = event_id
            if rows:
                continue
            if status is None or status in TERMINAL:
                return
            await waker.wait(settings.sse_poll_interval)
    finally:
        await waker.close()
