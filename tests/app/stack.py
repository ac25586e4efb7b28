"""The real service stack the service tests talk to: PostgreSQL, Redis, Celery workers, uvicorn.

Its process and schema helpers (``free_port``, ``reset_schema``, ``start_process``, ``Proc``,
``wait_for``) are also the ones bench/api_load.py starts its own stack with.

One stack per test session (a module-level singleton, shared by tests/app and
tests/worker): a fresh PostgreSQL schema migrated by Alembic, a flushed Redis
database, one Celery worker process (queues experiments + clients, like
``fedheads worker``'s default) and the API started with ``fedheads serve``.
PostgreSQL or Redis being unreachable is an error, never a skip.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from app.cli import sse_events
from app.core.config import Settings
from app.core.migrate import upgrade

ROOT = Path(__file__).resolve().parents[2]
PG_URL = os.environ.get("FEDHEADS_TEST_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("FEDHEADS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
MAIN_SCHEMA = "fedheads_test"
HOST = socket.gethostname()

# A tiny job: tiny random BERT on synthetic data, ~1 s a round on 2 CPU cores.
TEST_JOB: dict[str, Any] = {"rounds": 3, "local_steps": 4, "eval_size": 60, "max_train_examples": 600}
# Long enough to cancel or kill in the middle (~1.5 s a round on 2 cores).
LONG_JOB: dict[str, Any] = {"rounds": 4, "local_steps": 10, "eval_size": 60, "max_train_examples": 600}


def wait_for(
    predicate: Callable[[], Any],
    timeout: float,
    what: str,
    interval: float = 0.1,
    logs: list[Path] | None = None,
) -> Any:
    """Poll ``predicate`` until it is truthy; fail naming ``what`` (with log tails) after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            tails = "".join(f"\n--- {p.name} ---\n{tail(p)}" for p in logs or [])
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{tails}")
        time.sleep(interval)


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def schema_url(schema: str, base: str = PG_URL) -> str:
    """The base URL with ``search_path`` set to ``schema`` (psycopg2 ``options``)."""
    parts = urlsplit(base)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-csearch_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query)))


def reset_schema(schema: str, base: str = PG_URL, create: bool = True) -> str:
    """Drop (and re-create, empty) ``schema`` in the PostgreSQL database ``base``; its URL (search_path set)."""
    engine = create_engine(base)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            if create:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    finally:
        engine.dispose()
    return schema_url(schema, base)


def fresh_schema(schema: str) -> str:
    """Drop and re-create ``schema`` in the test database, migrate it with Alembic; returns its URL."""
    url = reset_schema(schema)
    upgrade(url)
    return url


def clean_rows(url: str, attempts: int = 5) -> None:
    """Empty the tables. The API's reconciler may be writing at that moment (re-queueing a
    "running" row a test inserted: it updates ``experiments``, then adds an ``events`` row);
    TRUNCATE takes ``experiments`` first, the same order, and a deadlock PostgreSQL still
    detects against some other writer (the fixture is then its victim) is retried."""
    engine = create_engine(url)
    try:
        for attempt in range(attempts):
            try:
                with engine.begin() as conn:
                    if engine.dialect.name == "postgresql":
                        conn.execute(text("TRUNCATE experiments, events, rounds, clients, studies CASCADE"))
                    else:
                        for table in ("events", "rounds", "clients", "experiments", "studies"):
                            conn.execute(text(f"DELETE FROM {table}"))
                return
            except OperationalError as err:
                if "deadlock detected" not in str(err) or attempt == attempts - 1:
                    raise
                time.sleep(0.1 * (attempt + 1))
    finally:
        engine.dispose()


@dataclass
class Proc:
    """A child process with its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def stop(self, timeout: float = 15, group: bool = False) -> None:
        """SIGTERM (to its whole process group with ``group``: it and its children), SIGKILL after ``timeout``."""
        if self.popen.poll() is not None:
            return
        if group:
            os.killpg(self.popen.pid, signal.SIGTERM)
        else:
            self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=5)

    def alive(self) -> bool:
        return self.popen.poll() is None


def start_process(name: str, argv: list[str], env: dict[str, str], folder: Path) -> Proc:
    log = folder / f"{name}.log"
    out = log.open("ab")
    popen = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    out.close()
    return Proc(name, popen, log)


@dataclass
class Stack:
    folder: Path
    db_url: str
    env: dict[str, str]
    settings: Settings
    procs: dict[str, Proc] = field(default_factory=dict)
    api_url: str = ""

    # -- processes -----------------------------------------------------------------------

    def start_worker(self, name: str, queues: str, concurrency: int = 1) -> Proc:
        argv = [
            sys.executable,
            "-m",
            "worker.cli",
            "worker",
            "--hostname",
            f"{name}@%h",
            "--queue",
            queues,
            "--concurrency",
            str(concurrency),
            "--loglevel",
            "info",
        ]
        proc = start_process(name, argv, self.env, self.folder)
        self.procs[name] = proc
        return proc

    def wait_worker(self, name: str, queue: str, timeout: float = 60) -> None:
        from worker.celery_app import make_celery

        app = make_celery(self.settings, results=False)
        node = f"{name}@{HOST}"

        def serving() -> bool:
            replies = app.control.inspect(destination=[node], timeout=0.5).active_queues() or {}
            return any(q["name"] == queue for q in replies.get(node, []))

        try:
            wait_for(serving, timeout, f"worker {node} to serve {queue}", logs=[self.procs[name].log])
        finally:
            app.close()

    def stop_worker(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None:
            proc.stop()

    def start_api(self) -> None:
        port = free_port()
        argv = [sys.executable, "-m", "worker.cli", "serve", "--port", str(port), "--log-level", "warning"]
        self.procs["api"] = start_process("api", argv, self.env, self.folder)
        self.api_url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{self.api_url}/api/v1/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, 60, "the API to answer", interval=0.2, logs=[self.procs["api"].log])

    def logs(self) -> list[Path]:
        return [p.log for p in self.procs.values()]

    def close(self) -> None:
        for proc in list(self.procs.values()):
            proc.stop()
        self.procs.clear()

    # -- talking to it -----------------------------------------------------------------------

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, timeout=30)

    def wait_status(
        self, client: httpx.Client, exp_id: str, statuses: set[str], timeout: float = 90
    ) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            body = client.get(f"/api/v1/experiments/{exp_id}").json()
            return body if body["status"] in statuses else None

        return wait_for(
            done, timeout, f"experiment {exp_id} to reach {statuses}", interval=0.2, logs=self.logs()
        )

    def events(
        self, exp_id: str, last_event_id: int | None = None, timeout: float = 90
    ) -> list[tuple[int, str, dict[str, Any]]]:
        """Follow the SSE stream until the server ends it (the experiment finished)."""
        import json

        headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
        out = []
        with (
            httpx.Client(base_url=self.api_url, timeout=httpx.Timeout(10, read=timeout)) as c,
            c.stream("GET", f"/api/v1/experiments/{exp_id}/events", headers=headers) as resp,
        ):
            assert resp.status_code == 200, resp.read()
            assert resp.headers["content-type"].startswith("text/event-stream")
            for ev_id, ev_type, data in sse_events(resp.iter_lines()):
                out.append((int(ev_id or 0), ev_type, json.loads(data)))
        return out


_stack: Stack | None = None


def _redis_ping() -> None:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
        client.flushdb()  # stale messages of an earlier, aborted session
    finally:
        client.close()


def get_stack() -> Stack:
    """The session's stack: schema, Redis database, worker ``fh-a`` and the API (started once)."""
    global _stack
    if _stack is not None:
        return _stack
    _redis_ping()
    folder = Path(tempfile.mkdtemp(prefix="fedheads-stack-"))
    db_url = fresh_schema(MAIN_SCHEMA)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "FEDHEADS_DATABASE_URL": db_url,
        "FEDHEADS_BROKER_URL": REDIS_URL,
        "FEDHEADS_ARTIFACT_ROOT": str(folder / "artifacts"),
        "FEDHEADS_DATA_ROOT": str(folder / "data"),
        "FEDHEADS_RECONCILE_INTERVAL": "1",
        "FEDHEADS_CANCEL_POLL_INTERVAL": "0.1",
        "FEDHEADS_FANOUT_CHECK_INTERVAL": "2",
        "FEDHEADS_CLIENT_TASK_TIMEOUT": "120",
        "PYTHONWARNINGS": "ignore::FutureWarning",
    }
    settings = Settings(
        database_url=db_url,
        broker_url=REDIS_URL,
        artifact_root=folder / "artifacts",
        data_root=folder / "data",
    )
    stack = Stack(folder=folder, db_url=db_url, env=env, settings=settings)
    atexit.register(_shutdown)
    stack.start_worker("fh-a", "experiments,clients")
    stack.start_api()
    stack.wait_worker("fh-a", "experiments")
    _stack = stack
    return stack


def _shutdown() -> None:
    global _stack
    if _stack is not None:
        _stack.close()
        shutil.rmtree(_stack.folder, ignore_errors=True)
        _stack = None


def stack_session() -> Iterator[Stack]:
    """Body of the session fixtures in tests/app and tests/worker."""
    stack = get_stack()
    yield stack


def new_id() -> str:
    return str(uuid.uuid4())


# --- data helpers --------------------------------------------------------------------------------

ROUND_KEYS = (
    "round",
    "metrics",
    "selection",
    "global_importance",
    "agreement",
    "head_weights",
    "bytes_up",
    "bytes_up_dense",
    "bytes_down",
    "ops",
    "ops_dense",
    "ops_attention",
    "ops_attention_dense",
    "train_loss",
)
CLIENT_KEYS = (
    "client",
    "num_examples",
    "kept",
    "importance",
    "loss_global",
    "loss_local",
    "train_loss",
    "bytes_up",
    "bytes_up_dense",
    "bytes_down",
    "ops",
    "ops_dense",
    "ops_attention",
    "ops_attention_dense",
    "steps",
)


def figures(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What must agree between executors: everything but timings and who trained a client."""
    return [
        {**{k: r[k] for k in ROUND_KEYS}, "clients": [{k: c[k] for k in CLIENT_KEYS} for c in r["clients"]]}
        for r in records
    ]


_references: dict[str, list[dict[str, Any]]] = {}


def reference_records(overrides: dict[str, Any]) -> list[dict[str, Any]]:
    """The round records of the smoke preset with ``overrides``, run by fedcore in this process (cached)."""
    import json

    key = json.dumps(overrides, sort_keys=True)
    if key not in _references:
        from fedcore.simulation import run_simulation
        from fedcore.spec import preset

        result = run_simulation(preset("smoke", **overrides))
        _references[key] = [r.to_dict() for r in result.rounds]
    return _references[key]


def insert_experiment(
    db_url: str,
    status: str,
    rounds_done: int = 0,
    name: str = "fixture",
    spec_overrides: dict[str, Any] | None = None,
) -> str:
    """An experiment row in a given state, for tests of state rules (no job behind it)."""
    from app.core.db import session_scope
    from app.models import Experiment, utcnow
    from fedcore.spec import preset

    spec = preset("smoke", **(spec_overrides or TEST_JOB))
    exp_id = uuid.uuid4()
    now = utcnow()
    with session_scope(db_url) as s:
        s.add(
            Experiment(
                id=exp_id,
                name=name,
                spec=spec.model_dump(mode="json"),
                status=status,
                rounds_done=rounds_done,
                rounds_total=spec.rounds,
                cancel_requested=False,
                created_at=now,
                updated_at=now,
            )
        )
    return str(exp_id)


# --- an API process of a test's own (issue 6: restarts under a live job) --------------------------


def start_api_process(stack: Stack, name: str, port: int, timeout: float = 120) -> Proc:
    """Another ``fedheads serve`` on the stack's database, broker and artifact root, listening on ``port``.

    Waits until it answers /api/v1/health (failing at once if it exits). It is registered in
    ``stack.procs`` under ``name``, so the session's shutdown stops it if the test does not; it is
    never the session's API (``stack.api_url``), which other tests share.
    """
    argv = [sys.executable, "-m", "worker.cli", "serve", "--port", str(port), "--log-level", "warning"]
    proc = start_process(name, argv, stack.env, stack.folder)
    stack.procs[name] = proc
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if not proc.alive():
            raise AssertionError(f"{name} exited with {proc.popen.returncode}:\n{tail(proc.log)}")
        try:
            return httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(up, timeout, f"{name} to answer on port {port}", interval=0.2, logs=[proc.log])
    return proc


def start_worker_with(
    stack: Stack, name: str, queues: str, env: dict[str, str], concurrency: int = 1
) -> Proc:
    """``stack.start_worker`` with some settings of this worker changed (``env``: FEDHEADS_* overrides)."""
    shared = stack.env
    stack.env = {**shared, **env}
    try:
        return stack.start_worker(name, queues, concurrency)
    finally:
        stack.env = shared
