"""Progress inside a round: published as light reports (Redis pub/sub, or the embedded executor's process queue),
streamed to the pages that ask for it, never stored.

Real parts: a job run by worker.runner on PostgreSQL with its reports on Redis; the embedded server (SQLite, a
spawned local job process) streaming them over SSE; the API's watch reading them from Redis.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.core.config import Settings
from app.core.db import session_factory, session_scope
from app.core.migrate import upgrade
from app.models import Event, Round
from app.services.events import PROGRESS_EVERY, PROGRESS_GAP, ProgressReporter, progress_channel
from app.services.experiments import create_experiment
from app.services.stream import LIVE_PROGRESS, EventWatch, event_stream
from fedcore.spec import preset
from tests.app.stack import REDIS_URL, TEST_JOB, clean_rows, fresh_schema
from tests.e2e.seed import add_experiment
from worker.events import Publisher
from worker.runner import run_job

STEPPY = {**TEST_JOB, "local_steps": 30}  # long enough a round for several step reports


class Kept:
    """A progress publisher that keeps what it is given (the reporter's thinning seen from outside)."""

    def __init__(self) -> None:
        self.reports: list[dict[str, Any]] = []

    def publish_progress(self, experiment_id: uuid.UUID, data: dict[str, Any]) -> None:
        self.reports.append(data)


def test_the_reporter_sends_each_client_and_round_but_steps_only_every_few_seconds() -> None:
    now = [1000.0]
    kept = Kept()
    rep = ProgressReporter(uuid.uuid4(), kept, clock=lambda: now[0])

    def tell(dt: float, **fields: Any) -> None:
        now[0] += dt
        rep({"round": 1, "rounds": 2, "clients": 2, **fields})

    rep.preparing()
    tell(0.01, phase="select")
    tell(0.01, phase="client", client_index=1, step=0, steps=0)  # under PROGRESS_GAP after the select: held
    for _ in range(100):  # 100 steps of 0.1 s: one report every PROGRESS_EVERY s
        tell(0.1, phase="client", client_index=1, step=1, steps=100)
    tell(0.3, phase="client_done", client_index=1, step=100, steps=100)
    tell(0.01, phase="aggregate", client_index=2)
    phases = [r["phase"] for r in kept.reports]
    assert phases[:2] == ["prepare", "select"] and phases[-2:] == ["client_done", "aggregate"]
    steps = [r for r in kept.reports if r["phase"] == "client"]
    assert len(steps) == pytest.approx(10.0 / PROGRESS_EVERY, abs=1)
    gaps = [b["at"] - a["at"] for a, b in zip(steps, steps[1:], strict=False)]
    assert min(gaps) >= PROGRESS_EVERY - 1e-9 and PROGRESS_GAP < PROGRESS_EVERY
    assert steps[0]["round_started"] == kept.reports[1]["at"] and steps[0]["client_started"] is not None


# --- a job's reports on Redis, and nothing of them in the database (PostgreSQL) ---------------------------


@pytest.fixture(scope="module")
def pg_url() -> str:
    return fresh_schema("fedheads_test_progress")


def _listen(exp_id: uuid.UUID, got: list[dict[str, Any]], ready: threading.Event, stop: threading.Event) -> None:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    pubsub = client.pubsub()
    pubsub.subscribe(progress_channel(exp_id))
    ready.set()
    try:
        while not stop.is_set():
            msg = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if msg is not None:
                got.append(json.loads(msg["data"]))
    finally:
        pubsub.close()
        client.close()


def test_a_job_publishes_progress_on_redis_and_stores_only_its_rounds_and_statuses(pg_url: str,
                                                                                   tmp_path: Path) -> None:
    clean_rows(pg_url)
    settings = Settings(database_url=pg_url, artifact_root=tmp_path / "artifacts", cancel_poll_interval=0.1)
    with session_scope(pg_url) as s:
        exp_id = create_experiment(db_session=s, name="progress", spec=preset("smoke", **STEPPY),
                                   artifact_root=settings.artifact_root).id
    got: list[dict[str, Any]] = []
    ready, stop = threading.Event(), threading.Event()
    listener = threading.Thread(target=_listen, args=(exp_id, got, ready, stop), daemon=True)
    listener.start()
    assert ready.wait(10)
    publisher = Publisher(REDIS_URL)
    try:
        assert run_job(exp_id, settings=settings, publisher=publisher, progress=publisher) == "succeeded"
        time.sleep(0.5)  # the last notices are on their way
    finally:
        stop.set()
        listener.join(5)

    phases = [r["phase"] for r in got]
    assert phases[0] == "prepare" and phases[-1] == "done"
    assert {"select", "client", "aggregate"} <= set(phases)
    for rnd in (1, 2, 3):
        assert any(r["phase"] == "select" and r["round"] == rnd and r["rounds"] == 3 for r in got)
    clients = [r for r in got if r["phase"] == "client"]
    assert {r["client_index"] for r in clients} <= {1, 2, 3} and all(r["clients"] == 3 for r in clients)
    assert any(0 < r["step"] <= r["steps"] == 30 for r in clients)  # a step k of S, from inside local training
    assert all(r["at"] >= r["round_started"] for r in clients)

    with session_scope(pg_url) as s:
        kinds = s.execute(select(Event.type, func.count()).where(Event.experiment_id == exp_id)
                          .group_by(Event.type)).all()
        rounds = s.scalar(select(func.count()).select_from(Round).where(Round.experiment_id == exp_id))
    # queued, running, succeeded and one per round: none of the len(got) progress reports is a row
    assert dict(kinds) == {"status": 3, "round": 3} and rounds == 3 and len(got) > 10


# --- the API side: Redis reports into a page's stream; the embedded executor's queue --------------------


def test_the_watch_streams_progress_from_redis_to_streams_that_ask_for_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fedheads.db'}"
    upgrade(url)
    sessions = session_factory(url)
    with sessions() as s, s.begin():
        exp_id = add_experiment(s, name="live", status="running", rounds_done=0, events=False).id
    watch = EventWatch(sessions, 0.1, redis_url=REDIS_URL)
    report = {"phase": "client", "round": 1, "rounds": 3, "client_index": 2, "clients": 3, "step": 7, "steps": 20}

    async def first(progress: bool) -> list[tuple[str | None, Any, dict[str, Any]]]:
        out = []

        async def follow() -> None:
            async for sse in event_stream(watch=watch, experiment_id=exp_id, last_event_id=0, progress=progress):
                out.append((sse.event, sse.id, json.loads(str(sse.data))))
                return

        task = asyncio.create_task(follow())
        publisher = Publisher(REDIS_URL)
        # pub/sub keeps nothing for a subscriber that is not there yet: publish until the stream has one
        # (a loaded machine may take seconds to subscribe); a stream that did not ask gets none in 3 s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (15 if progress else 3)
        while not task.done() and loop.time() < deadline:
            await asyncio.to_thread(publisher.publish_progress, exp_id, report)
            await asyncio.sleep(0.2)
        assert task.done() == progress
        task.cancel()
        return out

    assert asyncio.run(first(False)) == []  # a stream that did not ask gets stored events only
    assert asyncio.run(first(True)) == [("progress", None, report)]  # no id: Last-Event-ID counts stored events


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from worker.serve import create_app

    folder = tmp_path_factory.mktemp("embedded-progress")
    settings = Settings(database_url=f"sqlite:///{folder / 'fedheads.db'}", broker_url=None,
                        artifact_root=folder / "artifacts", data_root=folder / "data", reconcile_interval=1,
                        cancel_poll_interval=0.1)
    upgrade(settings.database_url)
    with TestClient(create_app(settings)) as client:
        yield client


def _sse(text: str) -> list[tuple[str | None, str, dict[str, Any]]]:
    """(id or None, event, data) of each event of a text/event-stream (ids are not carried over)."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line and not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
        if "data" in fields:
            out.append((fields.get("id"), fields.get("event", "message"), json.loads(fields["data"])))
    return out


def test_the_embedded_executor_streams_its_jobs_progress_and_stores_none_of_it(embedded: TestClient) -> None:
    resp = embedded.post("/api/v1/experiments", json={"name": "embedded progress", "preset": "smoke",
                                                      "overrides": STEPPY})
    assert resp.status_code == 201, resp.text
    exp_id = resp.json()["id"]
    events = _sse(embedded.get(f"/api/v1/experiments/{exp_id}/events?progress=true").text)
    progress = [d for i, kind, d in events if kind == "progress"]
    stored = [(i, kind) for i, kind, _ in events if kind != "progress"]
    assert stored[-1][1] == "status" and events[-1][2]["status"] == "succeeded"
    assert all(i is not None for i, _ in stored)  # stored events keep their ids...
    assert all(i is None for i, kind, _ in events if kind == "progress")  # ...progress has none
    assert any(d["phase"] == "client" and d["steps"] == 30 and d["round"] >= 1 for d in progress), progress
    # the job said 'done': the board forgets it (its queue is read by another thread: allow it a moment)
    deadline = time.monotonic() + 15
    while LIVE_PROGRESS.newer(exp_id, 0) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert LIVE_PROGRESS.newer(exp_id, 0) is None

    with session_scope(embedded.app.state.settings.database_url) as s:
        kinds = s.scalars(select(Event.type).where(Event.experiment_id == uuid.UUID(exp_id))).all()
    assert sorted(set(kinds)) == ["round", "status"] and len(kinds) == len(stored)
    # a client that does not ask gets exactly the stored events
    plain = _sse(embedded.get(f"/api/v1/experiments/{exp_id}/events").text)
    assert [(i, kind) for i, kind, _ in plain] == stored
