"""SSE streams share one watch of the event table: many open streams cost one poll, and each gets every event once.

Real SQLite file and real sessions; events are written by another thread the way the
runner writes them (the event row in its own committed transaction).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import event, update

from app.core.db import get_engine, session_factory
from app.core.migrate import upgrade
from app.models import Experiment
from app.services.events import add_event
from app.services.stream import STREAM_RECHECK, EventWatch, event_stream
from tests.e2e.seed import add_experiment

STREAMS = 20
INTERVAL = 0.1


def test_many_streams_share_one_poll_and_each_gets_every_event_once_promptly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fedheads.db'}"
    upgrade(url)
    sessions = session_factory(url)
    with sessions() as s, s.begin():
        exp_id = add_experiment(s, name="watched", status="running", rounds_done=0, events=False).id

    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(get_engine(url), "before_cursor_execute", count)
    watch = EventWatch(sessions, INTERVAL, redis_url=None)
    stored: dict[int, float] = {}  # event id -> commit time

    def write(kind: str, data: dict[str, Any], finish: bool = False) -> None:
        with sessions() as s, s.begin():
            if finish:
                s.execute(update(Experiment).where(Experiment.id == exp_id).values(status="succeeded"))
            ev_id = add_event(s, exp_id, kind, data).id
        stored[ev_id] = time.time()

    async def follow(got: list[tuple[int, float]]) -> None:
        async for sse in event_stream(watch=watch, experiment_id=exp_id, last_event_id=0):
            got.append((int(str(sse.id)), time.time()))

    async def main() -> tuple[list[list[tuple[int, float]]], int]:
        received: list[list[tuple[int, float]]] = [[] for _ in range(STREAMS)]
        tasks = [asyncio.create_task(follow(got)) for got in received]
        await asyncio.sleep(0.5)  # every stream has read the (empty) log and waits
        statements.clear()
        await asyncio.sleep(2.0)
        idle_queries = len(statements)
        for rnd in range(1, 6):  # rounds written from another thread while the streams wait
            await asyncio.to_thread(write, "round", {"round": rnd})
            await asyncio.sleep(0.3)
        await asyncio.to_thread(write, "status", {"status": "succeeded"}, True)
        await asyncio.wait_for(asyncio.gather(*tasks), 10)  # every stream ends after the final status
        return received, idle_queries

    received, idle_queries = asyncio.run(main())

    # 20 streams waiting for 2 s: the watch's ~20 polls, plus at most one re-check (two statements) per
    # stream, as each re-reads every STREAM_RECHECK s; streams polling on their own every 0.1 s: ~800
    assert STREAM_RECHECK >= 2
    assert 5 <= idle_queries <= 20 + 2 * STREAMS + 20, idle_queries
    ids = sorted(stored)
    for got in received:
        assert [i for i, _ in got] == ids  # every event, once, in order
        delays = [t - stored[i] for i, t in got]
        assert max(delays) < INTERVAL + 0.4, delays


def test_the_watch_stops_when_nobody_waits_and_starts_again(tmp_path: Path, monkeypatch: Any) -> None:
    import app.services.stream as stream

    monkeypatch.setattr(stream, "WATCH_IDLE_STOP", 0.3)
    url = f"sqlite:///{tmp_path / 'fedheads.db'}"
    upgrade(url)
    sessions = session_factory(url)
    watch = EventWatch(sessions, INTERVAL, redis_url=None)

    async def main() -> None:
        await watch.wait_past(10**9, 0.2)  # starts the watch; nothing passes the mark
        task = watch._task
        assert task is not None and not task.done()
        await asyncio.sleep(1.0)
        assert task.done()  # idle: stopped
        done = threading.Event()

        def store() -> None:
            with sessions() as s, s.begin():
                exp = add_experiment(s, name=f"w-{uuid.uuid4().hex[:4]}", status="running", rounds_done=0,
                                     events=False)
                add_event(s, exp.id, "round", {"round": 1})
            done.set()

        mark = watch.latest
        await asyncio.to_thread(store)
        t0 = time.monotonic()
        await watch.wait_past(mark, 5)  # a new task sees the new event
        assert watch.latest > mark and time.monotonic() - t0 < 1
        assert watch._task is not task

    asyncio.run(main())
