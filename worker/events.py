"""Publish "new event" notices after a commit, so SSE streams wake up at once; and progress reports.

The event itself is already in the events table (the one source of truth); the
notice on Redis pub/sub only carries its id. Without a broker (embedded mode) or
when Redis is down, streams still see the event on their next table poll.

Progress reports inside a round are never stored: :class:`Publisher` puts them on
Redis pub/sub (a Celery worker's job), :class:`QueueProgress` on the embedded
executor's process queue (a local job; the executor hands them to the API's
in-memory board). A report lost on the way is replaced by the next one.
"""

from __future__ import annotations

import json
import logging
import queue
import uuid
from typing import Any

from app.services.events import channel, progress_channel

log = logging.getLogger(__name__)


class Publisher:
    """Best-effort notices on ``fedheads:events:<experiment id>`` (the app's EventPublisher, on Redis)."""

    def __init__(self, redis_url: str | None) -> None:
        self._url = (
            redis_url if redis_url and redis_url.startswith(("redis://", "rediss://", "unix://")) else None
        )
        self._client: Any = None

    def publish(self, experiment_id: uuid.UUID, event_id: int) -> None:
        self._publish(channel(experiment_id), str(event_id))

    def publish_progress(self, experiment_id: uuid.UUID, data: dict[str, Any]) -> None:
        self._publish(progress_channel(experiment_id), json.dumps(data))

    def _publish(self, name: str, message: str) -> None:
        if self._url is None:
            return
        try:
            if self._client is None:
                import redis

                self._client = redis.Redis.from_url(self._url, socket_connect_timeout=1, socket_timeout=2)
            self._client.publish(name, message)
        except Exception as err:  # the table poll delivers an event anyway; the next report replaces a lost one
            log.debug("notice on %s not published: %s", name, err)
            self._client = None


class QueueProgress:
    """Progress reports of a job in an embedded executor's process, onto the executor's queue (never blocks)."""

    def __init__(self, q: Any) -> None:
        self._q = q

    def publish_progress(self, experiment_id: uuid.UUID, data: dict[str, Any]) -> None:
        try:
            self._q.put_nowait((str(experiment_id), data))
        except (queue.Full, OSError, ValueError) as err:  # full, or the server's end is gone
            log.debug("progress of %s dropped: %s", experiment_id, err)
