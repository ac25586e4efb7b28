"""A smoke study (3 variants x 2 seeds, tiny BERT) on the real stack: its runs spread over two Celery
workers, one worker is SIGKILLed in the middle of a run and the study still completes with every run
stored once; the table equals one computed by hand from the stored rows; the embedded executor (SQLite,
local processes) gives the same per-run records."""

from __future__ import annotations

import os
import signal
import statistics
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.core.db import session_scope
from app.models import Event, Experiment, Round
from tests.app.stack import Stack, clean_rows, figures, start_worker_with, wait_for

RUN: dict[str, Any] = {"rounds": 3, "local_steps": 6, "eval_size": 60, "max_train_examples": 300}
STUDY: dict[str, Any] = {
    "name": "smoke study",
    "base": {"preset": "smoke", "overrides": RUN},
    "variants": {"dense": {"sparsity": 0.0}, "mask": {"sparsity": 0.5, "prune_mode": "mask"},
                 "drop": {"sparsity": 0.5, "prune_mode": "drop"}},
    "seeds": [0, 1],
    "baseline": "dense",
    "targets": [{"metric": "uplink_advantage", "at_least": 1.5},
                {"metric": "accuracy_vs_baseline", "within": 50.0}],
}


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def _rows(db_url: str, study_id: str) -> dict[tuple[str, int], dict[str, Any]]:
    """Each run's row and its stored rounds, straight from the database."""
    with session_scope(db_url) as s:
        runs = s.scalars(select(Experiment).where(Experiment.study_id == uuid.UUID(study_id))).all()
        out = {}
        for r in runs:
            rounds = s.execute(select(Round.round, Round.accuracy, Round.bytes_up, Round.bytes_up_dense, Round.record)
                               .where(Round.experiment_id == r.id).order_by(Round.round)).all()
            statuses = [e.data["status"] for e in s.scalars(
                select(Event).where(Event.experiment_id == r.id, Event.type == "status").order_by(Event.id))]
            out[(r.variant or "", r.seed or 0)] = {"id": str(r.id), "status": r.status, "rounds": rounds,
                                                   "statuses": statuses}
    return out


@pytest.fixture(scope="module")
def celery_study(stack: Stack) -> Iterator[dict[str, Any]]:
    """The study run on workers fh-a and fh-b, fh-b killed with SIGKILL while it runs one of them."""
    clean_rows(stack.db_url)
    worker = start_worker_with(stack, "fh-b", "experiments", {"FEDHEADS_FANOUT": "false"})
    try:
        stack.wait_worker("fh-b", "experiments", timeout=120)
        with stack.client() as api:
            resp = api.post("/api/v1/studies", json=STUDY)
            assert resp.status_code == 201, resp.text
            study = resp.json()

            def fh_b_mid_run() -> str | None:
                with session_scope(stack.db_url) as s:
                    rows = s.execute(select(Experiment.id, Experiment.runner, Experiment.rounds_done).where(
                        Experiment.study_id == uuid.UUID(study["id"]), Experiment.status == "running")).all()
                for r in rows:
                    pid = int((r.runner or ":0").rsplit(":", 1)[1])
                    if r.rounds_done >= 1 and worker.popen.pid in (pid, _parent(pid)):
                        return str(r.id)
                return None

            killed = wait_for(fh_b_mid_run, 240, "worker fh-b to be in the middle of a run", interval=0.05,
                              logs=stack.logs())
            os.killpg(worker.popen.pid, signal.SIGKILL)
            worker.popen.wait(timeout=10)

            def finished() -> dict[str, Any] | None:
                body = api.get(f"/api/v1/studies/{study['id']}").json()
                return body if body["status"] not in ("queued", "running") else None

            done = wait_for(finished, 600, "the study to finish", interval=1.0, logs=stack.logs())
        yield {"study": done, "killed": killed, "rows": _rows(stack.db_url, study["id"])}
    finally:
        stack.stop_worker("fh-b")


@pytest.mark.integration
def test_a_study_on_two_celery_workers_survives_a_killed_worker_with_every_run_stored_once(
    celery_study: dict[str, Any],
) -> None:
    study, rows = celery_study["study"], celery_study["rows"]
    assert study["status"] == "succeeded", study["counts"]
    assert study["counts"] == {"succeeded": 6} and study["aggregate"]["complete"]
    assert sorted(rows) == sorted((v, s) for v in STUDY["variants"] for s in STUDY["seeds"])
    for key, row in rows.items():
        assert [r.round for r in row["rounds"]] == [1, 2, 3], key  # each round once, none lost
    killed = next(row for row in rows.values() if row["id"] == celery_study["killed"])
    assert "running" in killed["statuses"][killed["statuses"].index("running") + 1:], killed["statuses"]


def _pm(values: list[float]) -> dict[str, Any]:
    return {"mean": sum(values) / len(values), "half_range": (max(values) - min(values)) / 2, "n": len(values)}


@pytest.mark.integration
def test_the_study_table_equals_one_computed_by_hand_from_the_stored_rows(celery_study: dict[str, Any]) -> None:
    study, rows = celery_study["study"], celery_study["rows"]
    table = {v["variant"]: v for v in study["aggregate"]["variants"]}
    assert list(table) == ["dense", "mask", "drop"]
    final = {k: r["rounds"][-1].accuracy * 100 for k, r in rows.items()}
    last3 = {k: statistics.fmean(x.accuracy * 100 for x in r["rounds"][-3:]) for k, r in rows.items()}
    uplink = {k: sum(x.bytes_up_dense for x in r["rounds"]) / sum(x.bytes_up for x in r["rounds"])
              for k, r in rows.items()}
    for variant in STUDY["variants"]:
        mine = [(variant, s) for s in STUDY["seeds"]]
        got = table[variant]
        assert got["figures"]["final_accuracy"] == pytest.approx(_pm([final[k] for k in mine]))
        assert got["figures"]["last3_accuracy"] == pytest.approx(_pm([last3[k] for k in mine]))
        assert got["figures"]["uplink_advantage"] == pytest.approx(_pm([uplink[k] for k in mine]))
        diffs = [final[(variant, s)] - final[("dense", s)] for s in STUDY["seeds"]]
        assert got["vs_baseline"]["accuracy_vs_baseline"] == pytest.approx(_pm(diffs))
    verdicts = {(v["target"], v["variant"]): v for v in study["aggregate"]["verdicts"]}
    assert set(verdicts) == {(t, v) for t in (0, 1) for v in ("mask", "drop")}
    for v in ("mask", "drop"):
        adv = table[v]["figures"]["uplink_advantage"]["mean"]
        assert verdicts[(0, v)]["met"] is (adv >= 1.5) and verdicts[(0, v)]["margin"] == pytest.approx(adv - 1.5)
        gap = table[v]["vs_baseline"]["accuracy_vs_baseline"]["mean"]
        assert verdicts[(1, v)]["met"] is (gap >= -50.0) and verdicts[(1, v)]["seeds"] == 2


@pytest.mark.integration
def test_the_same_study_on_the_embedded_executor_gives_identical_per_run_records(
    celery_study: dict[str, Any], embedded: TestClient
) -> None:
    resp = embedded.post("/api/v1/studies", json=STUDY)
    assert resp.status_code == 201, resp.text
    study_id = resp.json()["id"]
    deadline = time.monotonic() + 600
    while (body := embedded.get(f"/api/v1/studies/{study_id}").json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, body["counts"]
        time.sleep(1.0)
    assert body["status"] == "succeeded", body["counts"]
    for run in body["runs"]:
        local = embedded.get(f"/api/v1/experiments/{run['id']}/rounds").json()["items"]
        remote = celery_study["rows"][(run["variant"], run["seed"])]["rounds"]
        assert figures([r["record"] for r in local]) == figures([r.record for r in remote]), run["variant"]
