"""Publish "new event" notices after a commit, so SSE streams wake up at once.

The event itself is already in the events table (the one source of truth); the
notice on Redis pub/sub only carries its id. Without a broker (embedded mode) or
when Redis is down, streams still see the event on their next table poll.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from app.services.events import channel

log = logging.getLogger(__name__)


class Publisher:
    """Best-effort notices on ``fedheads:events:<experiment id>`` (the app's EventPublisher, on Redis)."""

    def __init__(self, redis_url: str | None) -> None:
        self._url = (
            redis_url if redis_url and redis_url.startswith(("redis://", "rediss://", "unix://")) else None
        )
        self._client: Any = None

    def publish(self, experiment_id: uuid.UUID, event_id: int) -> None:
        if self._url is None:
            return
        try:
            if self._client is None:
                import redis

                self._client = redis.Redis.from_url(self._url, socket_connect_timeout=1, socket_timeout=2)
            self._client.publish(channel(experiment_id), str(event_id))
        except Exception as err:  # the table poll delivers it anyway
            log.debug("event notice for %s not published: %s", experiment_id, err)
            self._client = None
