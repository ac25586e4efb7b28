"""Broker unreachable at submit: 503, the job kept queued, then dispatched once the broker is back."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from app.core.config import Settings
from tests.app.stack import free_port, fresh_schema, wait_for
from worker.serve import create_app


class RedisServer:
    """A private redis-server on a spare port that the test can stop and start again."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self.ping, 10, f"redis-server on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def ping(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5).ping())
        except redis.ConnectionError:
            return False

    def messages(self, queue: str) -> list[dict]:
        raw = redis.Redis(port=self.port).lrange(queue, 0, -1)
        return [json.loads(m) for m in raw]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_submit_returns_503_and_keeps_the_job_queued_until_the_broker_is_back(
    broker: RedisServer, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=fresh_schema("fedheads_test_outage"),
        broker_url=broker.url,
        artifact_root=tmp_path / "artifacts",
        reconcile_interval=0.5,
        redispatch_after=3,
        broker_timeout=1,
    )
    with TestClient(create_app(settings)) as api:
        before = api.post("/api/v1/experiments", json={"preset": "smoke"})
        assert before.status_code == 201
        assert [m["headers"]["id"] for m in broker.messages("experiments")] == [before.json()["task_id"]]

        broker.stop()  # the broker goes away, and with it the first job's message
        resp = api.post("/api/v1/experiments", json={"preset": "smoke"})
        assert resp.status_code == 503
        body = resp.json()
        assert "unreachable" in body["detail"] and "kept queued" in body["detail"]
        exp_id = body["experiment"]["id"]
        stored = api.get(f"/api/v1/experiments/{exp_id}").json()
        assert stored["status"] == "queued" and stored["task_id"] is None
        health = api.get("/api/v1/health").json()
        assert health["status"] == "degraded" and not health["broker"]["ok"]

        wait_for(lambda: not broker.ping(), 2, "the broker to be down")
        broker.start()  # back, empty

        def dispatched() -> bool:
            ids = {m["headers"]["argsrepr"] for m in broker.messages("experiments")}
            return any(exp_id in a for a in ids) and any(before.json()["id"] in a for a in ids)

        wait_for(dispatched, 20, "the reconciler to enqueue both queued jobs")
        after = api.get(f"/api/v1/experiments/{exp_id}").json()
        assert after["status"] == "queued" and after["task_id"] is not None
        queued_ids = {m["headers"]["id"] for m in broker.messages("experiments")}
        assert after["task_id"] in queued_ids
        assert api.get("/api/v1/health").json()["broker"]["ok"]
