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

# Long enough that rounds are stored while the API is down *and* after it is back (~1.5 s a
# round on 2 idle cores; a loaded machine takes several times that, which only widens the margin).
RESTART_JOB: dict[str, Any] = {"rounds": 8, "local_steps": 10, "eval_size": 60, "max_train_examples": 600}
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


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_sse_client_gets_every_missed_event_once_when_the_api_restarts_during_a_job(
    stack: Stack, how: signal.Signals
) -> None:
    port = free_port()
    name = f"api-restart-{how.name.lower()}"
    url = f"http://127.0.0.1:{port}"
    proc = start_api_process(stack, name, port)
    try:
        with httpx.Client(base_url=url, timeout=30) as api:
            resp = api.post(
                "/api/v1/experiments", json={"name": name, "preset": "smoke", "overrides": RESTART_JOB}
            )
        assert resp.status_code == 201, resp.text
        exp_id = resp.json()["id"]

        # 1. follow the stream until a round has arrived, then take the API away under the client
        first = Follower(url, exp_id)
        first.start()
        wait_for(lambda: any(k == "round" for _, k, _ in first.events), 300,
                 "the first round event over SSE", logs=stack.logs())
        _stop(proc, how)
        first.join(timeout=30)
        assert not first.is_alive(), "the SSE client was not disconnected when the API stopped"
        seen = first.last_id()
        assert not any(k == "status" and d["status"] in TERMINAL for _, k, d in first.events)

        # 2. the worker goes on: wait until a round is stored that the client has not seen
        wait_for(lambda: any(i > seen and k == "round" for i, k, _ in _stored_events(stack.db_url, exp_id)),
                 300, "a round stored while the API was down", logs=stack.logs())

        # 3. the API comes back on the same port; the client reconnects with Last-Event-ID
        proc = start_api_process(stack, name, port)
        stored_at_reconnect = _stored_events(stack.db_url, exp_id)
        assert stored_at_reconnect[-1][1] != "status" or stored_at_reconnect[-1][2]["status"] not in TERMINAL, (
            "the job finished before the API was back: make RESTART_JOB longer for this machine"
        )
        second = Follower(url, exp_id, last_event_id=seen)
        second.run()  # in this thread: returns when the server ends the stream (the job finished)
        assert second.error is None, f"the resumed stream broke: {second.error!r}"
    finally:
        stack.procs.pop(name, None)
        proc.stop()

    # what the client received, both connections together, is exactly the stored event log
    received = first.events + second.events
    ids = [i for i, _, _ in received]
    assert all(i > seen for i in ids[len(first.events):]), "the replay repeated an event the client had"
    assert len(set(ids)) == len(ids), "an event was delivered twice"
    assert received == _stored_events(stack.db_url, exp_id), "the events received differ from the stored ones"

    # ... which is every round once, in order, through the final status
    rounds = [d["round"] for _, k, d in received if k == "round"]
    assert rounds == list(range(1, RESTART_JOB["rounds"] + 1))
    assert received[-1][1] == "status" and received[-1][2]["status"] == "succeeded"
    # both kinds of catching up happened: rounds stored while the API was down (replayed), and
    # rounds stored after the reconnect (live on the new process)
    assert any(i > seen for i, _, _ in stored_at_reconnect)
    assert any(k == "round" and i > stored_at_reconnect[-1][0] for i, k, _ in second.events)
