"""Issue 6: the API process restarts while a job runs on a Celery worker; SSE clients lose nothing.

A client follows a job's event stream on an API process of this test's own, the process is
stopped (SIGTERM: a deploy; SIGKILL: a crash) while the stack's worker keeps running the job,
rounds are stored meanwhile, and the process starts again on the same port. The client
reconnects with ``Last-Event-ID`` and must get every event it missed exactly once, through
the job's final status, so that what it received is the experiment's event log in the database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from app.cli import sse_events
from tests.app.stack import Proc, Stack, free_port, start_api_process, wait_for

pytestmark = pytest.mark.integration

# Long enough that, at each of two outages, rounds are stored while the API is down *and* after
# it is back (~1.5 s a round on 2 idle cores; a loaded machine takes several times that, which only widens the margin).
RESTART_JOB: dict[str, Any] = {"rounds": 14, "local_steps": 10, "eval_size": 60, "max_train_examples": 600}
TERMINAL = {"succeeded", "failed", "cancelled"}

Event = tuple[int, str, dict[str, Any]]


class Follower(threading.Thread):
    """An SSE client of one experiment in a thread: keeps every complete event and how the stream ended."""

    def __init__(self, base_url: str, exp_id: str, last_event_id: int | None = None) -> None:
        super().__init__(daemon=True, name=f"sse-{exp_id[:8]}")
        self.url = f"{base_url}/api/v1/experiments/{exp_id}/events"
        self.headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
        self.events: list[Event] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(10, read=60)) as client,
                client.stream("GET", self.url, headers=self.headers) as resp,
            ):
                resp.raise_for_status()
                for ev_id, kind, data in sse_events(resp.iter_lines()):
                    self.events.append((int(ev_id or 0), kind, json.loads(data)))
        except httpx.HTTPError as err:  # the server went away mid-stream
            self.error = err

    def last_id(self) -> int:
        return self.events[-1][0] if self.events else 0


def _stored_events(db_url: str, exp_id: str) -> list[Event]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id, type, data FROM events WHERE experiment_id = :e ORDER BY id"), {"e": exp_id}
            ).all()
    finally:
        engine.dispose()
    return [(int(r.id), r.type, r.data) for r in rows]


def _stop(proc: Proc, how: signal.Signals) -> None:
    """SIGTERM and wait for a clean exit (failing if it hangs), or SIGKILL the process group."""
    if how == signal.SIGKILL:
        os.killpg(proc.popen.pid, signal.SIGKILL)
        proc.popen.wait(timeout=10)
        return
    proc.popen.send_signal(signal.SIGTERM)
    try:
        proc.popen.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.popen.pid, signal.SIGKILL)
        proc.popen.wait(timeout=10)
        raise AssertionError("the API did not exit within 30 s of SIGTERM while an SSE stream was open") from None


def test_sse_client_gets_every_missed_event_once_when_the_api_restarts_during_a_job(stack: Stack) -> None:
    """One job, two outages of the API: a SIGTERM (a deploy), then a SIGKILL (a crash)."""
    port = free_port()
    name = "api-restart"
    url = f"http://127.0.0.1:{port}"
    proc = start_api_process(stack, name, port)
    followers: list[Follower] = []
    seen_before: list[int] = []  # the last id the client had at each outage
    stored_at_reconnect: list[Event] = []
    try:
        with httpx.Client(base_url=url, timeout=30) as api:
            resp = api.post(
                "/api/v1/experiments", json={"name": name, "preset": "smoke", "overrides": RESTART_JOB}
            )
        assert resp.status_code == 201, resp.text
        exp_id = resp.json()["id"]
        follower = Follower(url, exp_id)
        follower.start()
        for how in (signal.SIGTERM, signal.SIGKILL):
            # 1. follow the stream until a new round has arrived, then take the API away under the client
            had = follower.last_id() if follower.events else 0
            wait_for(lambda f=follower, h=had: any(k == "round" and i > h for i, k, _ in f.events), 300,
                     "a round event over SSE", logs=stack.logs())
            _stop(proc, how)
            follower.join(timeout=30)
            assert not follower.is_alive(), f"the SSE client was not disconnected when the API got {how.name}"
            followers.append(follower)
            seen = follower.last_id()
            seen_before.append(seen)
            assert not any(k == "status" and d["status"] in TERMINAL for _, k, d in follower.events)

            # 2. the worker goes on: wait until a round is stored that the client has not seen
            wait_for(lambda s=seen: any(i > s and k == "round" for i, k, _ in _stored_events(stack.db_url, exp_id)),
                     300, "a round stored while the API was down", logs=stack.logs())

            # 3. the API comes back on the same port; the client reconnects with Last-Event-ID
            proc = start_api_process(stack, name, port)
            stored = _stored_events(stack.db_url, exp_id)
            assert stored[-1][1] != "status" or stored[-1][2]["status"] not in TERMINAL, (
                "the job finished before the API was back: make RESTART_JOB longer for this machine"
            )
            stored_at_reconnect = stored
            follower = Follower(url, exp_id, last_event_id=seen)
            follower.start()
        follower.join(timeout=300)  # returns when the server ends the stream (the job finished)
        assert not follower.is_alive(), "the last stream did not end with the job"
        assert follower.error is None, f"the resumed stream broke: {follower.error!r}"
        followers.append(follower)
    finally:
        stack.procs.pop(name, None)
        proc.stop()

    # what the client received, over its three connections, is exactly the stored event log
    received = [e for f in followers for e in f.events]
    for f, seen in zip(followers[1:], seen_before, strict=True):
        assert all(i > seen for i, _, _ in f.events), "a replay repeated an event the client had"
    ids = [i for i, _, _ in received]
    assert len(set(ids)) == len(ids), "an event was delivered twice"
    assert received == _stored_events(stack.db_url, exp_id), "the events received differ from the stored ones"

    # ... which is every round once, in order, through the final status
    rounds = [d["round"] for _, k, d in received if k == "round"]
    assert rounds == list(range(1, RESTART_JOB["rounds"] + 1))
    assert received[-1][1] == "status" and received[-1][2]["status"] == "succeeded"
    # both kinds of catching up happened after the last outage: rounds stored while the API was
    # down (replayed), and rounds stored after the reconnect (live on the new process)
    assert any(i > seen_before[-1] for i, _, _ in stored_at_reconnect)
    assert any(k == "round" and i > stored_at_reconnect[-1][0] for i, k, _ in followers[-1].events)
