"""Issue 21: the container stack really runs, driven over REST like an operator would.

deploy/smoke.sh builds the images without a registry (a Debian base from debootstrap, PostgreSQL
and Redis stand-ins from Debian's packages, torch from this host's pip index) and starts api + 2
workers + postgres + redis with docker-compose.yml and docker-compose.local.yml; the host reaches
the API and PostgreSQL on 127.0.0.1, on ports away from its own services. Then: the smoke preset streams to
its end and its adapter loads with PEFT; a worker is killed mid-job and the other one finishes the
job with every round stored once; the API restarts under a connected SSE client, which resumes
with Last-Event-ID. Every job's per-round figures equal the embedded executor's run of the same
spec (SQLite, a local process, on this host). The stack is removed (``down -v``) at the end.

A machine without a Docker engine fails this module with the reason; it is never skipped.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from fastapi.testclient import TestClient
from peft import PeftModel, get_peft_model_state_dict
from sqlalchemy import create_engine, text

from app.cli import sse_events
from app.core.config import Settings
from app.core.migrate import upgrade
from fedcore.models.loading import load_model
from tests.app.stack import figures, wait_for
from tests.deploy.report import REPORT_KEY
from worker.serve import create_app

pytestmark = [pytest.mark.compose, pytest.mark.timeout(3600)]

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "deploy" / "smoke.sh"
API_PORT = int(os.environ.get("FEDHEADS_LOCAL_API_PORT", "58000"))
PG_PORT = int(os.environ.get("FEDHEADS_LOCAL_PG_PORT", "55432"))
BASE_URL = f"http://127.0.0.1:{API_PORT}"
DB_URL = f"postgresql+psycopg2://fedheads:fedheads@127.0.0.1:{PG_PORT}/fedheads"
TERMINAL = {"succeeded", "failed", "cancelled"}
# the smoke preset as it is (4 rounds), and a longer smoke run to kill a worker or restart the API in
SMOKE_JOB: dict[str, Any] = {}
LONG_JOB: dict[str, Any] = {"rounds": 6}

Event = tuple[int, str, dict[str, Any]]


def _smoke(*args: str, timeout: float) -> str:
    """Run deploy/smoke.sh; its output, or the test fails with the output's end."""
    res = subprocess.run(
        [str(SMOKE), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    out = res.stdout + res.stderr
    if res.returncode != 0:
        pytest.fail(f"deploy/smoke.sh {' '.join(args)} exited {res.returncode}:\n{out[-6000:]}")
    return out


def _docker(*args: str, timeout: float = 60) -> str:
    res = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    assert res.returncode == 0, f"docker {' '.join(args)}: {res.stderr}"
    return res.stdout


def _timings(out: str) -> dict[str, float]:
    return {m[1]: float(m[2]) for m in re.finditer(r"^timing: (\S+) ([0-9.]+) s$", out, flags=re.M)}


@dataclass
class ComposeStack:
    timings: dict[str, float] = field(default_factory=dict)
    images: list[str] = field(default_factory=list)

    def containers(self, service: str) -> list[str]:
        return _smoke("compose", "ps", "-q", service, timeout=60).split()

    def container_of(self, runner: str) -> str:
        """The worker container of a job's runner (host:pid, where host is the container's short id)."""
        host = runner.rsplit(":", 1)[0]
        found = [c for c in self.containers("worker") if c.startswith(host)]
        assert len(found) == 1, f"runner {runner} in {found}"
        return found[0]


def _health(client: httpx.Client) -> dict[str, Any]:
    try:
        return client.get("/api/v1/health", timeout=5).json()
    except httpx.HTTPError:
        return {}


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest) -> Iterator[ComposeStack]:
    """Build, start and (at the end) remove the stack; timings and image sizes go to the terminal summary."""
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if info.returncode != 0:
        pytest.fail(
            "no Docker engine answers, so the container stack cannot be checked "
            f"(.ci/run starts one with deploy/dockerd.sh; Debian's docker.io): {info.stderr.strip()[-800:]}"
        )
    result = ComposeStack()
    _smoke("down", timeout=300)  # what a failed earlier run may have left
    out = _smoke("build", timeout=3000)
    result.timings |= _timings(out)
    result.images = [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("image: ")]
    try:
        result.timings |= _timings(_smoke("up", timeout=600))
        with httpx.Client(base_url=BASE_URL) as client:
            wait_for(lambda: len(_health(client).get("workers", [])) >= 2, 240, "two workers to answer the API")
        yield result
    finally:
        # kept for a failure's post-mortem, outside pytest's basetemp (which concurrent sessions prune)
        logs = Path(tempfile.mkdtemp(prefix="fedheads-compose-")) / "logs.txt"
        try:
            logs.write_text(_smoke("compose", "logs", "--no-color", "--tail", "300", timeout=120))
        finally:
            _smoke("down", timeout=300)
        request.config.stash[REPORT_KEY] = [
            "timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items()),
            "images: " + ", ".join(result.images),
            f"compose logs: {logs}",
        ]


@pytest.fixture(scope="module")
def embedded() -> Iterator[TestClient]:
    """The embedded executor on this host: SQLite, no broker, each job in a local process."""
    with tempfile.TemporaryDirectory(prefix="fedheads-embedded-") as tmp, _embedded_client(Path(tmp)) as client:
        yield client


@contextmanager
def _embedded_client(folder: Path) -> Iterator[TestClient]:
    settings = Settings(
        database_url=f"sqlite:///{folder / 'fedheads.db'}",
        broker_url=None,
        artifact_root=folder / "artifacts",
        data_root=folder / "data",
        reconcile_interval=1,
    )
    upgrade(settings.database_url)
    with TestClient(create_app(settings)) as client:
        yield client


_embedded_runs: dict[str, tuple[list[dict[str, Any]], bytes]] = {}


def _embedded_run(client: TestClient, overrides: dict[str, Any]) -> tuple[list[dict[str, Any]], bytes]:
    """The embedded executor's round records and final adapter for the smoke preset with ``overrides``."""
    key = json.dumps(overrides, sort_keys=True)
    if key not in _embedded_runs:
        exp = _submit(client, "embedded", overrides)
        _wait_final(client, exp["id"], 600)
        _embedded_runs[key] = (_records(client, exp["id"]), client.get(f"/api/v1/experiments/{exp['id']}/adapter").content)
    return _embedded_runs[key]


def _submit(client: httpx.Client | TestClient, name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    resp = client.post("/api/v1/experiments", json={"name": name, "preset": "smoke", "overrides": overrides})
    assert resp.status_code == 201, resp.text
    return resp.json()


def _wait_final(client: httpx.Client | TestClient, exp_id: str, timeout: float) -> dict[str, Any]:
    final = wait_for(
        lambda: (b := client.get(f"/api/v1/experiments/{exp_id}").json())["status"] in TERMINAL and b,
        timeout,
        f"experiment {exp_id} to finish",
        interval=0.5,
    )
    assert final["status"] == "succeeded", final.get("error")
    return final


def _records(client: httpx.Client | TestClient, exp_id: str) -> list[dict[str, Any]]:
    return [r["record"] for r in client.get(f"/api/v1/experiments/{exp_id}/rounds").json()["items"]]


def _stored_rounds(exp_id: str) -> list[int]:
    """The experiment's round numbers as rows in the stack's PostgreSQL, duplicates included."""
    engine = create_engine(DB_URL)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT round FROM rounds WHERE experiment_id = :e ORDER BY round"), {"e": exp_id}
            ).all()
    finally:
        engine.dispose()
    return [r.round for r in rows]


def _lora_state(zip_bytes: bytes, folder: Path) -> dict[str, torch.Tensor]:
    """Unzip an adapter and load it onto a fresh tiny-bert with PeftModel.from_pretrained."""
    zipfile.ZipFile(io.BytesIO(zip_bytes)).extractall(folder)
    base = load_model("tiny-bert", task="classification", num_labels=3, seed=0).model
    model = PeftModel.from_pretrained(base, str(folder))
    return {k: v.detach() for k, v in get_peft_model_state_dict(model).items()}


class Follower(threading.Thread):
    """An SSE client of one experiment: every complete event, with the time it arrived."""

    def __init__(self, exp_id: str, last_event_id: int | None = None) -> None:
        super().__init__(daemon=True, name=f"sse-{exp_id[:8]}")
        self.url = f"{BASE_URL}/api/v1/experiments/{exp_id}/events"
        self.headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
        self.events: list[Event] = []
        self.times: list[float] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(10, read=120)) as client,
                client.stream("GET", self.url, headers=self.headers) as resp,
            ):
                resp.raise_for_status()
                for ev_id, kind, data in sse_events(resp.iter_lines()):
                    self.events.append((int(ev_id or 0), kind, json.loads(data)))
                    self.times.append(time.monotonic())
        except httpx.HTTPError as err:  # the server went away mid-stream
            self.error = err

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [data for _, k, data in self.events if k == kind]


def _assert_one_log(events: list[Event]) -> None:
    ids = [i for i, _, _ in events]
    assert ids == sorted(set(ids)), "events repeated or out of order"
    assert events[-1][1] == "status" and events[-1][2]["status"] == "succeeded"


def test_smoke_preset_streams_to_its_end_and_the_adapter_loads_with_peft(
    stack: ComposeStack, embedded: TestClient
) -> None:
    with httpx.Client(base_url=BASE_URL, timeout=30) as api:
        submitted = time.monotonic()
        exp = _submit(api, "smoke", SMOKE_JOB)
        follower = Follower(exp["id"])
        follower.start()
        follower.join(600)
        assert not follower.is_alive(), "the event stream did not end"
        assert follower.error is None, follower.error
        rounds = follower.kinds("round")
        first = next(t for (_, kind, _), t in zip(follower.events, follower.times, strict=True) if kind == "round")
        stack.timings["first-round"] = first - submitted
        assert [r["round"] for r in rounds] == [1, 2, 3, 4]
        _assert_one_log(follower.events)

        records = _records(api, exp["id"])
        assert _stored_rounds(exp["id"]) == [1, 2, 3, 4]
        reference, reference_adapter = _embedded_run(embedded, SMOKE_JOB)
        assert figures(records) == figures(reference)

        resp = api.get(f"/api/v1/experiments/{exp['id']}/adapter")
        assert resp.status_code == 200 and resp.headers["content-type"] == "application/zip"
        with tempfile.TemporaryDirectory(prefix="fedheads-adapter-") as tmp:
            loaded = _lora_state(resp.content, Path(tmp) / "stack")
            expected = _lora_state(reference_adapter, Path(tmp) / "embedded")
        assert loaded and set(loaded) == set(expected)
        for key, value in expected.items():
            assert torch.equal(loaded[key], value), key


def test_a_job_whose_worker_is_killed_finishes_on_the_other_with_every_round_stored_once(
    stack: ComposeStack, embedded: TestClient
) -> None:
    workers = stack.containers("worker")
    assert len(workers) == 2, workers
    with httpx.Client(base_url=BASE_URL, timeout=30) as api:
        exp = _submit(api, "kill", LONG_JOB)
        url = f"/api/v1/experiments/{exp['id']}"
        running = wait_for(
            lambda: (b := api.get(url).json())["status"] == "running" and b["progress"]["rounds_done"] >= 2 and b,
            300,
            "the long job to store two rounds",
            interval=0.2,
        )
        victim = stack.container_of(running["runner"])
        assert running["progress"]["rounds_done"] <= LONG_JOB["rounds"] - 2, "killed too late to tell"
        _docker("kill", victim)
        killed_at = running["progress"]["rounds_done"]

        final = _wait_final(api, exp["id"], 600)
        survivor = stack.container_of(final["runner"])
        assert survivor != victim and survivor in workers
        assert _docker("inspect", "-f", "{{.State.Running}}", victim).strip() == "false"

        assert _stored_rounds(exp["id"]) == list(range(1, LONG_JOB["rounds"] + 1))
        records = _records(api, exp["id"])
        assert figures(records) == figures(_embedded_run(embedded, LONG_JOB)[0])
        assert 0 < killed_at < LONG_JOB["rounds"]


def test_an_sse_client_resumes_with_last_event_id_when_the_api_restarts(
    stack: ComposeStack, embedded: TestClient
) -> None:
    with httpx.Client(base_url=BASE_URL, timeout=30) as api:
        exp = _submit(api, "restart", LONG_JOB)
        before = Follower(exp["id"])
        before.start()
        wait_for(lambda: len(before.kinds("round")) >= 1, 300, "the first round over SSE", interval=0.2)
        _smoke("compose", "restart", "api", timeout=300)
        before.join(60)
        assert not before.is_alive(), "the stream outlived the API"
        assert before.kinds("round") and not any(d.get("status") in TERMINAL for d in before.kinds("status"))

        wait_for(lambda: _health(api).get("status") in ("ok", "degraded"), 240, "the API to come back")
        after = Follower(exp["id"], last_event_id=before.events[-1][0])
        after.start()
        after.join(600)
        assert not after.is_alive() and after.error is None, after.error
        assert after.kinds("round"), "no round arrived after the restart"
        combined = before.events + after.events
        _assert_one_log(combined)

        whole = Follower(exp["id"])  # the experiment's whole log, replayed from the database
        whole.start()
        whole.join(120)
        assert whole.events == combined
        rounds = [d["round"] for d in (before.kinds("round") + after.kinds("round"))]
        assert rounds == list(range(1, LONG_JOB["rounds"] + 1))
        assert _stored_rounds(exp["id"]) == rounds
        assert figures(_records(api, exp["id"])) == figures(_embedded_run(embedded, LONG_JOB)[0])
