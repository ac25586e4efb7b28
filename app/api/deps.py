"""Request dependencies: settings, one DB session per request, the executor.

The ones that only read ``app.state`` are ``async def``: FastAPI runs a plain ``def``
dependency in its thread pool, a hop that costs more than the lookup. Opening a
session does no I/O (it connects on first use), so ``get_db`` opens it on the event
loop too. Closing one that holds a connection is blocking I/O (rollback, back to the
pool), done in worker threads of a capacity limiter of its own: with the default
limiter's threads (``api_threads``) all taken by requests waiting for a pooled connection, closes
queued behind them would never give one back (a deadlock until the pool's 30 s
timeout, seen with 50 concurrent readers).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from anyio import CapacityLimiter, to_thread
from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.services.dispatch import Executor
from app.services.round_cache import RoundCache
from app.services.stream import EventWatch


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_sessions(request: Request) -> sessionmaker[Session]:
    return request.app.state.sessions


CLOSERS = 8  # threads that may close sessions at once


def _limiter(request: Request, name: str, tokens: int) -> CapacityLimiter:
    """The app's capacity limiter ``name``, made on first use (on the event loop that uses it)."""
    state = request.app.state
    limiter = getattr(state, name, None)
    if limiter is None:
        limiter = CapacityLimiter(tokens)
        setattr(state, name, limiter)
    return limiter


async def get_read_limiter(request: Request) -> CapacityLimiter:
    return _limiter(request, "read_limiter", request.app.state.settings.api_read_threads)


async def get_db(
    request: Request, sessions: Annotated[sessionmaker[Session], Depends(get_sessions)]
) -> AsyncIterator[Session]:
    session = sessions()
    try:
        yield session
    finally:
        if session.in_transaction():  # a connection to give back
            await to_thread.run_sync(session.close, limiter=_limiter(request, "close_limiter", CLOSERS))
        else:
            session.close()


async def get_round_cache(request: Request) -> RoundCache:
    return request.app.state.round_cache


async def get_event_watch(request: Request) -> EventWatch:
    return request.app.state.event_watch


async def get_executor(request: Request) -> Executor:
    return request.app.state.executor


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionsDep = Annotated[sessionmaker[Session], Depends(get_sessions)]
DbDep = Annotated[Session, Depends(get_db)]
ExecutorDep = Annotated[Executor, Depends(get_executor)]
RoundCacheDep = Annotated[RoundCache, Depends(get_round_cache)]
EventWatchDep = Annotated[EventWatch, Depends(get_event_watch)]
ReadLimiterDep = Annotated[CapacityLimiter, Depends(get_read_limiter)]
