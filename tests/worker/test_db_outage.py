"""The database goes away while a worker writes a round: retried with backoff, or failed naming the round.

Three levels, all on the real PostgreSQL:

- ``retry_transient`` with real driver errors and an injected clock and sleep (no waiting);
- ``run_job`` in this process while the job lock's connection is killed under it
  (``pg_terminate_backend``), as an outage does, and the reconciler queues the job again;
- a Celery worker whose every database connection goes through a TCP proxy that the test
  cuts after round 1 (open connections closed, new ones refused), then restores.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.db import (
    DatabaseUnavailable,
    is_transient,
    retry_transient,
    session_factory,
    session_scope,
)
from app.core.locks import lock_holder, lock_key, runner_alive
from app.models import Event, Experiment, Round
from app.services.dispatch import recover_lost
from app.services.experiments import create_experiment
from fedcore.client import ClientTask, ClientUpdate, train_client
from fedcore.spec import preset
from tests.app.stack import (
    PG_URL,
    REDIS_URL,
    ROOT,
    TEST_JOB,
    Stack,
    figures,
    fresh_schema,
    reference_records,
    wait_for,
)
from tests.proxy import TcpProxy
from worker.runner import run_job
from worker.serve import create_app

TERMINAL = {"succeeded", "failed", "cancelled"}
RETRY_BUDGET = 5.0  # FEDHEADS_DB_RETRY_SECONDS of the proxied worker (the default is 30)


# --- retry_transient, with real driver errors and no real sleeping -------------------------------


@pytest.fixture(scope="module")
def refused() -> DBAPIError:
    """A real connection-level error: PostgreSQL's driver connecting to a port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: connecting is refused
    engine = create_engine(f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres")
    try:
        with pytest.raises(DBAPIError) as info:
            engine.connect()
    finally:
        engine.dispose()
    return info.value


class FakeClock:
    """``clock`` and ``sleep`` for retry_transient: sleeping moves the clock, nothing waits."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def failing(times: int, err: BaseException, result: Any = "stored") -> Callable[[], Any]:
    calls = {"n": 0}

    def operation() -> Any:
        calls["n"] += 1
        if calls["n"] <= times:
            raise err
        return result

    return operation


def test_is_transient_accepts_connection_and_lock_errors_only(refused: DBAPIError, tmp_path: Path) -> None:
    assert is_transient(refused)

    db = tmp_path / "locked.db"
    holder = create_engine(f"sqlite:///{db}")
    waiter = create_engine(f"sqlite:///{db}", connect_args={"timeout": 0})
    try:
        with holder.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER PRIMARY KEY)"))
        with holder.connect() as conn:
            conn.exec_driver_sql("BEGIN EXCLUSIVE")
            with pytest.raises(DBAPIError) as locked:
                waiter.connect().execute(text("SELECT * FROM t"))
            conn.rollback()
        with holder.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
            with pytest.raises(IntegrityError) as duplicate:
                conn.execute(text("INSERT INTO t VALUES (1)"))
        with pytest.raises(DBAPIError) as no_table, holder.connect() as conn:
            conn.execute(text("SELECT * FROM missing"))
    finally:
        holder.dispose()
        waiter.dispose()
    assert "database is locked" in str(locked.value)
    assert is_transient(locked.value)
    assert not is_transient(duplicate.value)
    assert not is_transient(no_table.value)  # an OperationalError too, but the SQL is wrong
    assert not is_transient(ValueError("not a database error"))


def test_retry_transient_retries_with_doubling_delays_and_logs_each_attempt(
    refused: DBAPIError, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeClock()
    caplog.set_level(logging.WARNING, logger="app.core.db")

    out = retry_transient(
        failing(4, refused), what="storing round 2", budget=30, sleep=fake.sleep, clock=fake.clock
    )

    assert out == "stored"
    assert fake.sleeps == [0.1, 0.2, 0.4, 0.8]
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 4
    for attempt, (msg, delay) in enumerate(zip(messages, fake.sleeps, strict=True), start=1):
        assert msg.startswith(f"storing round 2: attempt {attempt} failed (OperationalError: ")
        assert msg.endswith(f"retrying in {delay:.2f} s")


def test_retry_transient_caps_the_delay_and_gives_up_after_the_budget(refused: DBAPIError) -> None:
    fake = FakeClock()

    with pytest.raises(DatabaseUnavailable) as info:
        retry_transient(
            failing(1000, refused),
            what="storing round 7",
            budget=10,
            max_delay=2.0,
            hint="Round 7 is in the checkpoint",
            sleep=fake.sleep,
            clock=fake.clock,
        )

    # 0.1 + 0.2 + 0.4 + 0.8 + 1.6 = 3.1, then 2.0 (capped) three times = 9.1, then the 0.9 left
    assert fake.sleeps == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0, 0.9])
    assert sum(fake.sleeps) == pytest.approx(10)
    message = str(info.value)
    assert message.startswith(
        "storing round 7 failed: the database stayed unreachable for 10.0 s (10 attempt(s)"
    )
    assert "last error: OperationalError: " in message and "refused" in message
    assert message.endswith("Round 7 is in the checkpoint")
    assert info.value.__cause__ is refused


def test_retry_transient_raises_a_statement_error_at_once() -> None:
    fake = FakeClock()
    wrong = IntegrityError("INSERT ...", {}, Exception("duplicate key value"))

    with pytest.raises(IntegrityError):
        retry_transient(failing(1, wrong), what="x", budget=30, sleep=fake.sleep, clock=fake.clock)
    assert fake.sleeps == []


def test_retry_transient_with_no_budget_tries_once(refused: DBAPIError) -> None:
    fake = FakeClock()
    with pytest.raises(DatabaseUnavailable, match=r"\(1 attempt\(s\)"):
        retry_transient(failing(1, refused), what="x", budget=0, sleep=fake.sleep, clock=fake.clock)
    assert fake.sleeps == []


# --- run_job in this process: the lock's connection dies under a running job ---------------------


@pytest.fixture(scope="module")
def runner_db() -> str:
    return fresh_schema("fedheads_test_db_outage_runner")


@pytest.fixture
def settings(runner_db: str, tmp_path: Path) -> Settings:
    return Settings(database_url=runner_db, artifact_root=tmp_path / "artifacts", cancel_poll_interval=0.1)


@pytest.fixture
def admin(runner_db: str) -> Iterator[Engine]:
    """A connection pool of the test's own (the runner's engine is the one under test)."""
    engine = create_engine(runner_db)
    yield engine
    engine.dispose()


def _new_job(settings: Settings) -> uuid.UUID:
    with session_scope(settings.database_url) as s:
        return create_experiment(
            db_session=s,
            name="outage",
            spec=preset("smoke", **TEST_JOB),
            artifact_root=settings.artifact_root,
        ).id


def _cut_lock_connection(admin: Engine, exp_id: uuid.UUID) -> int:
    """What an outage does to the runner's job lock: its connection dies, the server frees the lock."""
    with Session(admin) as s:
        pid = lock_holder(s, exp_id)
        assert pid is not None, "the runner holds no job lock"
        # with a timeout (ms) the call waits until the backend has exited, and so has freed the lock;
        # without one it only signals, and the lock can still be held for a moment after it returns
        ended = s.scalar(text("SELECT pg_terminate_backend(:p, 10000)"), {"p": pid})
        s.commit()
        assert ended, f"backend {pid} was still running 10 s after it was told to end"
    return pid


def _in_round(n: int, action: Callable[[], None]) -> Callable[[Any, Any], Any]:
    """A client pool that calls ``action`` once, before round ``n``'s clients train."""

    def factory(ctx: Any, should_stop: Any, on_progress: Any = None) -> Any:
        done = []

        def run(tasks: Sequence[ClientTask]) -> list[ClientUpdate]:
            if tasks[0].round == n and not done:
                done.append(True)
                action()
            return [train_client(ctx, t, should_stop=should_stop) for t in tasks]

        return run

    return factory


def _status_events(db_url: str, exp_id: uuid.UUID) -> list[dict[str, Any]]:
    with session_scope(db_url) as s:
        return list(
            s.scalars(
                select(Event.data)
                .where(Event.experiment_id == exp_id, Event.type == "status")
                .order_by(Event.id)
            )
        )


def _round_numbers(db_url: str, exp_id: uuid.UUID) -> tuple[list[int], list[int]]:
    """(stored rounds, round events), both in order."""
    with session_scope(db_url) as s:
        rounds = list(
            s.scalars(select(Round.round).where(Round.experiment_id == exp_id).order_by(Round.round))
        )
        events = list(
            s.scalars(
                select(Event.data)
                .where(Event.experiment_id == exp_id, Event.type == "round")
                .order_by(Event.id)
            )
        )
    return rounds, [e["round"] for e in events]


def test_runner_takes_its_lock_back_and_carries_on_after_the_reconciler_requeued_the_job(
    settings: Settings, admin: Engine
) -> None:
    exp_id = _new_job(settings)
    requeued: list[uuid.UUID] = []

    def outage() -> None:
        _cut_lock_connection(admin, exp_id)
        requeued.extend(recover_lost(sessions=session_factory(settings.database_url), settings=settings))

    result = run_job(exp_id, settings=settings, task_id="t-1", client_pool_factory=_in_round(2, outage))

    assert requeued == [exp_id]  # the reconciler saw the lock free and queued the job again
    assert result == "succeeded"
    rounds, round_events = _round_numbers(settings.database_url, exp_id)
    assert rounds == round_events == [1, 2, 3]
    with session_scope(settings.database_url) as s:
        records = list(
            s.scalars(select(Round.record).where(Round.experiment_id == exp_id).order_by(Round.round))
        )
    assert figures(records) == figures(reference_records(TEST_JOB))
    statuses = _status_events(settings.database_url, exp_id)
    assert [e["status"] for e in statuses] == ["queued", "running", "queued", "running", "succeeded"]
    assert statuses[3]["note"] == "the runner got the database back and carries on"
    assert not runner_alive(admin, settings.experiment_dir(exp_id), exp_id)  # the re-taken lock is released


def test_runner_stops_and_writes_nothing_when_another_runner_took_the_job_over(
    settings: Settings, admin: Engine
) -> None:
    exp_id = _new_job(settings)
    other = admin.connect()

    def outage_then_takeover() -> None:  # another runner gets the job while this one is cut off
        _cut_lock_connection(admin, exp_id)
        assert other.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": lock_key(exp_id)}).scalar()
        other.execute(
            update(Experiment).where(Experiment.id == exp_id).values(status="running", runner="elsewhere:1")
        )
        other.commit()

    try:
        result = run_job(exp_id, settings=settings, client_pool_factory=_in_round(2, outage_then_takeover))
        assert result == "superseded"
        with session_scope(settings.database_url) as s:
            exp = s.get(Experiment, exp_id)
            assert exp is not None
            assert (exp.status, exp.runner, exp.rounds_done) == ("running", "elsewhere:1", 1)
        assert [e["status"] for e in _status_events(settings.database_url, exp_id)] == ["queued", "running"]
    finally:
        other.close()


# --- a Celery worker behind a TCP proxy that the test cuts ---------------------------------------


@dataclass
class Outage:
    stack: Stack  # its env and procs: the proxied worker
    proxy: TcpProxy
    api: TestClient
    db_url: str

    @property
    def log(self) -> Path:
        return self.stack.procs["fh-dbo"].log


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    """A schema, a worker (own queues) whose database URL points at the proxy, and an in-process API."""
    folder = tmp_path_factory.mktemp("db-outage")
    db_url = fresh_schema("fedheads_test_db_outage")
    pg = make_url(PG_URL)
    proxy = TcpProxy((pg.host or "127.0.0.1", pg.port or 5432))
    proxied = make_url(db_url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    queues = {"experiments_queue": "dbo-experiments", "clients_queue": "dbo-clients"}
    settings = Settings(  # the API's: straight to PostgreSQL
        database_url=db_url,
        broker_url=REDIS_URL,
        artifact_root=folder / "artifacts",
        data_root=folder / "data",
        reconcile_interval=0.5,  # so the reconciler does see the lock go with the outage
        cancel_poll_interval=0.1,
        **queues,
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "FEDHEADS_DATABASE_URL": proxied,
        "FEDHEADS_BROKER_URL": REDIS_URL,
        "FEDHEADS_ARTIFACT_ROOT": str(folder / "artifacts"),
        "FEDHEADS_DATA_ROOT": str(folder / "data"),
        "FEDHEADS_EXPERIMENTS_QUEUE": queues["experiments_queue"],
        "FEDHEADS_CLIENTS_QUEUE": queues["clients_queue"],
        "FEDHEADS_CANCEL_POLL_INTERVAL": "0.1",
        "FEDHEADS_DB_RETRY_SECONDS": str(RETRY_BUDGET),
        "PYTHONWARNINGS": "ignore::FutureWarning",
    }
    stack = Stack(folder=folder, db_url=proxied, env=env, settings=settings)
    try:
        stack.start_worker("fh-dbo", queues["experiments_queue"])
        stack.wait_worker("fh-dbo", queues["experiments_queue"], timeout=120)
        with TestClient(create_app(settings)) as api:
            yield Outage(stack=stack, proxy=proxy, api=api, db_url=db_url)
    finally:
        stack.close()
        proxy.close()


def _log_after(path: Path, offset: int) -> str:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def _submit_and_cut_after_round_1(o: Outage) -> tuple[str, int, dict[str, Any]]:
    """Submit TEST_JOB; cut the proxy as soon as round 1 is stored. Returns (id, log offset, body)."""
    offset = o.log.stat().st_size
    resp = o.api.post("/api/v1/experiments", json={"preset": "smoke", "overrides": TEST_JOB})
    assert resp.status_code == 201, resp.text
    exp_id = resp.json()["id"]
    url = f"/api/v1/experiments/{exp_id}"
    body = wait_for(
        lambda: (b := o.api.get(url).json())["progress"]["rounds_done"] >= 1 and b,
        120,
        "round 1",
        interval=0.05,
        logs=[o.log],
    )
    assert o.proxy.cut() >= 1  # at least the job lock's connection was open
    return exp_id, offset, body


def test_job_stores_every_round_once_when_the_database_drops_out_for_a_few_seconds(outage: Outage) -> None:
    o = outage
    exp_id, offset, running = _submit_and_cut_after_round_1(o)
    retry = re.compile(
        r"WARNING/[^\]]*\] "
        rf"storing round (\d+) \(experiment {exp_id}\): attempt (\d+) failed \((.*?)\); retrying in ([\d.]+) s"
    )
    try:
        first = wait_for(
            lambda: retry.search(_log_after(o.log, offset)),
            60,
            "the worker to retry a round write",
            logs=[o.log],
        )
        time.sleep(1.5)  # a few more attempts against the dead database (down ~2.5 s in all, measured)
    finally:
        o.proxy.restore()

    final = o.stack.wait_status(o.api, exp_id, TERMINAL, timeout=120)
    assert final["status"] == "succeeded", final["error"]
    rounds, round_events = _round_numbers(o.db_url, uuid.UUID(exp_id))
    assert rounds == round_events == list(range(1, TEST_JOB["rounds"] + 1))
    records = [r["record"] for r in o.api.get(f"/api/v1/experiments/{exp_id}/rounds").json()["items"]]
    assert figures(records) == figures(reference_records(TEST_JOB))
    assert final["runner"] == running["runner"]  # the same worker process carried on

    attempts = [m for m in retry.finditer(_log_after(o.log, offset)) if m.group(1) == first.group(1)]
    assert [int(m.group(2)) for m in attempts] == list(range(1, len(attempts) + 1))
    assert len(attempts) >= 2
    assert [float(m.group(4)) for m in attempts[:3]] == [0.1, 0.2, 0.4][: len(attempts[:3])]
    assert "OperationalError" in first.group(3)
    statuses = _status_events(o.db_url, uuid.UUID(exp_id))
    assert statuses[-1]["status"] == "succeeded"
    assert all(e["status"] in ("queued", "running") for e in statuses[:-1])
    assert {e["runner"] for e in statuses if e["status"] == "running"} == {running["runner"]}


def test_job_fails_naming_the_round_when_the_outage_outlasts_the_retry_budget_then_resumes(
    outage: Outage,
) -> None:
    o = outage
    exp_id, offset, _ = _submit_and_cut_after_round_1(o)
    gave_up = re.compile(
        rf"storing round (\d+) \(experiment {exp_id}\) failed: the database stayed unreachable"
    )
    try:
        match = wait_for(
            lambda: gave_up.search(_log_after(o.log, offset)),
            RETRY_BUDGET + 60,
            "the worker to give up on a round",
            logs=[o.log],
        )
    finally:
        o.proxy.restore()  # so that the final status can be written (it is retried too)
    lost = int(match.group(1))

    final = o.stack.wait_status(o.api, exp_id, TERMINAL, timeout=60)
    assert final["status"] == "failed"
    head = final["error"].splitlines()[0]
    assert f"DatabaseUnavailable: storing round {lost} (experiment {exp_id}) failed: " in head
    assert "last error: OperationalError: " in head
    assert f"Round {lost} is in the checkpoint on disk" in head
    rounds, round_events = _round_numbers(o.db_url, uuid.UUID(exp_id))
    assert rounds == round_events == list(range(1, lost))  # no gap, nothing half-written

    # the checkpoint holds the lost round: a resume stores it and finishes the job
    assert o.api.post(f"/api/v1/experiments/{exp_id}/resume").status_code == 202
    final = o.stack.wait_status(o.api, exp_id, {"succeeded", "failed", "cancelled"}, timeout=120)
    assert final["status"] == "succeeded", final["error"]
    rounds, round_events = _round_numbers(o.db_url, uuid.UUID(exp_id))
    assert rounds == round_events == list(range(1, TEST_JOB["rounds"] + 1))
    records = [r["record"] for r in o.api.get(f"/api/v1/experiments/{exp_id}/rounds").json()["items"]]
    assert figures(records) == figures(reference_records(TEST_JOB))
