"""worker.runner and its RunningJob called as functions, on a PostgreSQL schema of their own (no API, no broker).

A job is idempotent: run twice, resumed after its runner died, or re-delivered after the
checkpoint got ahead of the database, it stores every round exactly once and the same figures.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, delete, func, select, text, update

from app.core.config import Settings
from app.core.db import get_engine, session_scope
from app.core.locks import job_lock
from app.models import Client, Event, Experiment, Round
from app.services.dispatch import recover_lost
from app.services.experiments import create_experiment
from app.services.running import CancelFlag, RunningJob
from fedcore.client import ClientTask, ClientUpdate, train_client
from fedcore.spec import preset
from tests.app.stack import TEST_JOB, clean_rows, figures, fresh_schema, reference_records
from worker.runner import run_job


class Died(BaseException):
    """Stands in for the runner's process being killed: nothing in the runner catches it."""


@pytest.fixture(scope="module")
def db_url() -> str:
    return fresh_schema("fedheads_test_runner")


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Iterator[Settings]:
    clean_rows(db_url)
    yield Settings(database_url=db_url, artifact_root=tmp_path / "artifacts", cancel_poll_interval=0.1)


def _new_job(settings: Settings, **overrides: Any) -> uuid.UUID:
    with session_scope(settings.database_url) as s:
        exp = create_experiment(
            db_session=s,
            name="t",
            spec=preset("smoke", **(overrides or TEST_JOB)),
            artifact_root=settings.artifact_root,
        )
        return exp.id


def _records(settings: Settings, exp_id: uuid.UUID) -> list[dict[str, Any]]:
    with session_scope(settings.database_url) as s:
        return list(
            s.scalars(select(Round.record).where(Round.experiment_id == exp_id).order_by(Round.round))
        )


def _events(settings: Settings, exp_id: uuid.UUID) -> list[tuple[str, dict[str, Any]]]:
    with session_scope(settings.database_url) as s:
        return [
            (e.type, e.data)
            for e in s.scalars(select(Event).where(Event.experiment_id == exp_id).order_by(Event.id))
        ]


def _experiment(settings: Settings, exp_id: uuid.UUID) -> Experiment:
    with session_scope(settings.database_url) as s:
        exp = s.get(Experiment, exp_id)
        assert exp is not None
        s.expunge(exp)
        return exp


def test_run_job_stores_each_round_with_its_event_then_the_final_status(settings: Settings) -> None:
    exp_id = _new_job(settings)
    assert run_job(exp_id, settings=settings, task_id="t-1") == "succeeded"

    assert figures(_records(settings, exp_id)) == figures(reference_records(TEST_JOB))
    events = _events(settings, exp_id)
    assert [d["round"] for k, d in events if k == "round"] == [1, 2, 3]
    assert [d["status"] for k, d in events if k == "status"] == ["queued", "running", "succeeded"]
    exp = _experiment(settings, exp_id)
    assert exp.rounds_done == 3 and exp.task_id == "t-1" and exp.finished_at is not None
    assert exp.adapter_path and (Path(exp.adapter_path) / "adapter_config.json").is_file()
    assert exp.info and exp.info["label_names"] == ["alpha", "beta", "gamma"]
    with session_scope(settings.database_url) as s:
        assert s.scalar(select(func.count()).select_from(Client).where(Client.experiment_id == exp_id)) == 6


def test_run_job_does_nothing_when_the_job_already_finished(settings: Settings) -> None:
    exp_id = _new_job(settings, **{**TEST_JOB, "rounds": 1})
    run_job(exp_id, settings=settings)
    before = _events(settings, exp_id)
    assert run_job(exp_id, settings=settings) == "skipped"  # a duplicate message
    assert _events(settings, exp_id) == before
    assert len(_records(settings, exp_id)) == 1


def test_run_job_leaves_the_job_alone_when_another_runner_holds_it(settings: Settings) -> None:
    exp_id = _new_job(settings)
    engine = get_engine(settings.database_url)
    with job_lock(engine, settings.experiment_dir(exp_id), exp_id) as held:
        assert held
        assert run_job(exp_id, settings=settings) == "busy"
    assert _experiment(settings, exp_id).status == "queued"


def test_run_job_resumes_after_the_last_stored_round_when_its_runner_died(settings: Settings) -> None:
    exp_id = _new_job(settings)

    def dies_in_round_3(ctx: Any, should_stop: Any, on_progress: Any = None) -> Any:
        def run(tasks: Sequence[ClientTask]) -> list[ClientUpdate]:
            if tasks[0].round == 3:
                raise Died
            return [train_client(ctx, t, should_stop=should_stop) for t in tasks]

        return run

    with pytest.raises(Died):
        run_job(exp_id, settings=settings, task_id="t-1", client_pool_factory=dies_in_round_3)
    exp = _experiment(settings, exp_id)
    assert exp.status == "running" and exp.rounds_done == 2  # as a killed process leaves it

    assert run_job(exp_id, settings=settings, task_id="t-1") == "succeeded"  # the re-delivered message
    records = _records(settings, exp_id)
    assert [r["round"] for r in records] == [1, 2, 3]
    assert figures(records) == figures(reference_records(TEST_JOB))
    running = [d for k, d in _events(settings, exp_id) if k == "status" and d["status"] == "running"]
    assert running[-1]["takeover"] is True and running[-1]["resumed_from"] == 2


def test_run_job_stores_a_round_that_only_the_checkpoint_holds(settings: Settings) -> None:
    exp_id = _new_job(settings)
    run_job(exp_id, settings=settings)
    stored = _records(settings, exp_id)
    # the runner died after writing round 3's checkpoint but before its database transaction
    with session_scope(settings.database_url) as s:
        s.execute(delete(Round).where(Round.experiment_id == exp_id, Round.round == 3))
        s.execute(update(Experiment).where(Experiment.id == exp_id).values(status="running", rounds_done=2))

    assert run_job(exp_id, settings=settings) == "succeeded"
    assert _records(settings, exp_id) == stored
    assert _experiment(settings, exp_id).rounds_done == 3


def test_persist_round_is_a_no_op_when_the_round_is_already_stored(settings: Settings) -> None:
    exp_id = _new_job(settings)
    record = reference_records(TEST_JOB)[0]
    job = RunningJob(exp_id, settings, publisher=_NoPublisher())
    assert job.persist_round(record) is True
    assert job.persist_round(record) is False
    assert len(_records(settings, exp_id)) == 1
    assert [k for k, _ in _events(settings, exp_id)].count("round") == 1


def test_recover_lost_requeues_a_running_job_only_when_no_runner_holds_it(settings: Settings) -> None:
    exp_id = _new_job(settings)
    with session_scope(settings.database_url) as s:
        s.execute(update(Experiment).where(Experiment.id == exp_id).values(status="running"))
    sessions = _sessions(settings)
    engine = get_engine(settings.database_url)
    with job_lock(engine, settings.experiment_dir(exp_id), exp_id):
        assert recover_lost(sessions=sessions, settings=settings) == []
    assert recover_lost(sessions=sessions, settings=settings) == [exp_id]
    assert _experiment(settings, exp_id).status == "queued"
    assert "runner lost" in _events(settings, exp_id)[-1][1]["note"]


def test_cancel_flag_rereads_the_database_at_most_once_per_interval(settings: Settings) -> None:
    exp_id = _new_job(settings)
    url = settings.database_url
    with session_scope(url) as s:
        s.execute(update(Experiment).where(Experiment.id == exp_id).values(status="running"))
    flag = CancelFlag(_sessions(settings), exp_id, interval=0.5)
    assert flag() is False
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE experiments SET cancel_requested = true WHERE id = :i"), {"i": exp_id})
    engine.dispose()
    assert flag() is False  # within the interval: not re-read
    time.sleep(0.6)
    assert flag() is True
    assert flag() is True


class _NoPublisher:
    def publish(self, experiment_id: uuid.UUID, event_id: int) -> None:
        pass


def _sessions(settings: Settings) -> Any:
    from app.core.db import session_factory

    return session_factory(settings.database_url)
