"""Studies over the REST API, on PostgreSQL and SQLite: a grid submitted as JSON or YAML becomes one queued run
per variant and seed, dispatched in order; bad input is one 422 naming the variant and field, with nothing
stored; the table is computed from the runs' stored rounds; cancel, resume and delete act on the whole study."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.core.db import session_factory
from app.models import Experiment, Study
from app.services import jobs
from tests.app.held import HeldExecutor, backend_url, hand_record, held_client_on, run_by_hand

SCHEMA = "fedheads_studies"
TINY = {"rounds": 4, "local_steps": 2, "eval_size": 20, "max_train_examples": 100}
STUDY: dict[str, Any] = {
    "name": "grid",
    "base": {"preset": "smoke", "overrides": TINY},
    "variants": {"dense": {"sparsity": 0.0}, "mask": {"sparsity": 0.9, "prune_mode": "mask"}},
    "seeds": [0, 1],
    "baseline": "dense",
    "targets": [{"metric": "accuracy_vs_baseline", "within": 2.0}, {"metric": "uplink_advantage", "at_least": 1.8}],
}


@pytest.fixture(params=["postgresql", "sqlite"], scope="module")
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    return backend_url(request.param, SCHEMA, tmp_path_factory.mktemp("studies"))


@pytest.fixture
def client(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with held_client_on(db_url, tmp_path, max_study_runs=6) as c:
        yield c


def _counts(db_url: str) -> tuple[int, int]:
    with session_factory(db_url)() as s:
        return (s.scalar(select(func.count()).select_from(Study)) or 0,
                s.scalar(select(func.count()).select_from(Experiment)) or 0)


def test_a_study_becomes_one_queued_run_per_variant_and_seed_dispatched_seed_by_seed(
    client: TestClient, db_url: str
) -> None:
    resp = client.post("/api/v1/studies", json=STUDY)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["status"] == "queued" and body["counts"] == {"queued": 4} and body["runs_total"] == 4
    assert [(r["variant"], r["seed"]) for r in body["runs"]] == [("dense", 0), ("mask", 0), ("dense", 1), ("mask", 1)]
    assert body["definition"]["baseline"] == "dense" and body["aggregate"]["complete"] is False
    executor: HeldExecutor = client.app.state.executor  # type: ignore[attr-defined]
    assert [str(i) for i in executor.dispatched] == [r["id"] for r in body["runs"]]
    run = client.get(f"/api/v1/experiments/{body['runs'][3]['id']}").json()
    assert run["study_id"] == body["id"] and (run["variant"], run["seed"]) == ("mask", 1)
    assert run["spec"]["seed"] == 1 and run["spec"]["sparsity"] == 0.9 and run["spec"]["rounds"] == 4
    listed = client.get("/api/v1/studies").json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == body["id"]
    assert _counts(db_url) == (1, 4)


def test_a_study_posted_as_yaml_is_the_same_study(client: TestClient) -> None:
    resp = client.post("/api/v1/studies", content=yaml.safe_dump(STUDY), headers={"Content-Type": "application/yaml"})
    assert resp.status_code == 201, resp.text
    got = client.get(f"/api/v1/studies/{resp.json()['id']}/spec.yaml")
    assert got.status_code == 200 and got.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(got.text) == {**STUDY, "targets": [
        {"metric": "accuracy_vs_baseline", "within": 2.0}, {"metric": "uplink_advantage", "at_least": 1.8}]}


@pytest.mark.parametrize(
    ("change", "loc", "words"),
    [
        ({"variants": {"dense": {"sparsity": 0.0}, "mask": {"sparsityy": 0.9}}},
         ["body", "variants", "mask", "sparsityy"], "variant 'mask'"),
        ({"variants": {"dense": {"sparsity": 0.0}, "mask": {"sparsity": 0.5, "compute_sparsity": 0.9}}},
         ["body", "variants", "mask"], "compute_sparsity (0.9) must be <= sparsity"),
        ({"variants": {"dense": {}, "mask": {"sparsity": 1.5}}}, ["body", "variants", "mask", "sparsity"], "0.99"),
        ({"variants": {}}, ["body", "variants"], "at least 1"),
        ({"baseline": "sparse"}, ["body", "baseline"], "not one of the variants"),
        ({"seeds": [0, 1, 2, 3]}, ["body", "seeds"], "2 variants x 4 seeds = 8 runs, more than this server's maximum of 6"),
        ({"base": {"preset": "nope"}}, ["body", "base", "preset"], "nope"),
        ({"base": {"preset": "smoke", "overrides": {"rounds": 0}}}, ["body", "base", "overrides", "rounds"], "greater"),
        ({"variants": {"dense": {}, "local": {"dataset": "local", "data_path": "missing.csv"}}},
         ["body", "variants", "local", "data_path"], "variant 'local'"),
    ],
)
def test_a_bad_study_is_one_422_naming_the_variant_and_field_and_nothing_is_stored(
    client: TestClient, db_url: str, change: dict[str, Any], loc: list[Any], words: str
) -> None:
    resp = client.post("/api/v1/studies", json={**STUDY, **change})
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert any(e["loc"] == loc and words in e["msg"] for e in detail), detail
    assert _counts(db_url) == (0, 0)


def test_a_base_fields_problem_is_reported_once_not_per_variant(client: TestClient) -> None:
    resp = client.post("/api/v1/studies", json={**STUDY, "base": {"preset": "smoke", "overrides": {"rounds": 0}}})
    assert [e["loc"] for e in resp.json()["detail"]] == [["body", "base", "overrides", "rounds"]]


def test_a_body_that_is_not_json_or_yaml_is_a_422(client: TestClient) -> None:
    resp = client.post("/api/v1/studies", content=b"name: [", headers={"Content-Type": "text/yaml"})
    assert resp.status_code == 422 and "not valid YAML" in resp.json()["detail"][0]["msg"]


# variant, seed -> per-round accuracy, uplink bytes a round, each client's training seconds a round
HAND = {("dense", 0): ([0.5, 0.6, 0.7, 0.8], 100, 1.0), ("mask", 0): ([0.5, 0.6, 0.7, 0.79], 50, 0.5),
        ("dense", 1): ([0.5, 0.6, 0.7, 0.76], 100, 1.0), ("mask", 1): ([0.5, 0.6, 0.7, 0.72], 40, 1.0)}


def test_the_table_is_the_hand_worked_one_from_the_stored_rounds_and_says_when_partial(
    client: TestClient, db_url: str
) -> None:
    study = client.post("/api/v1/studies", json=STUDY).json()
    runs = {(r["variant"], r["seed"]): r["id"] for r in study["runs"]}
    for key in [("dense", 0), ("mask", 0), ("dense", 1)]:
        run_by_hand(db_url, runs[key], *HAND[key])
    run_by_hand(db_url, runs[("mask", 1)], HAND[("mask", 1)][0][:2], 40, 1.0, finish=False)

    partial = client.get(f"/api/v1/studies/{study['id']}").json()
    assert partial["status"] == "running" and partial["counts"] == {"succeeded": 3, "running": 1}
    assert not partial["aggregate"]["complete"] and partial["aggregate"]["finished"] == 3
    mask = partial["aggregate"]["variants"][1]
    assert mask["vs_baseline"]["accuracy_vs_baseline"] == pytest.approx({"mean": -1.0, "half_range": 0.0, "n": 1})
    assert "partial" in partial["aggregate"]["verdicts"][0]["text"]

    with session_factory(db_url).begin() as s:
        for i, acc in enumerate(HAND[("mask", 1)][0][2:], 3):
            jobs.persist_round(db_session=s, experiment_id=uuid.UUID(runs[("mask", 1)]),
                               record=hand_record(i, acc, 40, 1.0), checkpoint=None, runner="hand:1")
        jobs.finish(db_session=s, experiment_id=uuid.UUID(runs[("mask", 1)]), status="succeeded", runner="hand:1")
    done = client.get(f"/api/v1/studies/{study['id']}").json()
    assert done["status"] == "succeeded" and done["aggregate"]["complete"]
    dense, mask = done["aggregate"]["variants"]
    assert dense["figures"]["final_accuracy"] == pytest.approx({"mean": 78.0, "half_range": 2.0, "n": 2})
    assert mask["figures"]["uplink_advantage"] == pytest.approx({"mean": 2.25, "half_range": 0.25, "n": 2})
    assert mask["vs_baseline"]["accuracy_vs_baseline"] == pytest.approx({"mean": -2.5, "half_range": 1.5, "n": 2})
    acc, up = done["aggregate"]["verdicts"]
    assert (acc["variant"], acc["met"], acc["seeds"]) == ("mask", False, 2) and acc["margin"] == pytest.approx(-0.5)
    assert up["met"] is True and up["margin"] == pytest.approx(0.45)
    by_run = {(r["variant"], r["seed"]): r["figures"] for r in done["runs"]}
    assert by_run[("mask", 1)]["final_accuracy"] == pytest.approx(72.0)


def test_runs_asks_for_some_runs_and_the_table_follows_new_rounds_from_the_kept_ones(
    client: TestClient, db_url: str
) -> None:
    """``?runs=`` (the page's live update) answers the whole study's status, counts and table with only the
    named runs; a round stored after a read shows in the next (the API process keeps decoded rounds)."""
    study = client.post("/api/v1/studies", json=STUDY).json()
    runs = {(r["variant"], r["seed"]): r["id"] for r in study["runs"]}
    for key in [("dense", 0), ("mask", 0), ("dense", 1)]:
        run_by_hand(db_url, runs[key], *HAND[key])
    going = runs[("mask", 1)]
    run_by_hand(db_url, going, HAND[("mask", 1)][0][:2], 40, 1.0, finish=False)
    path = f"/api/v1/studies/{study['id']}"

    full = client.get(path).json()
    some = client.get(path, params={"runs": [going, runs[("dense", 0)]]}).json()
    assert [r["id"] for r in some["runs"]] == [runs[("dense", 0)], going]  # in the grid's order
    assert some["runs"] == [r for r in full["runs"] if r["id"] in (going, runs[("dense", 0)])]
    assert {k: v for k, v in some.items() if k != "runs"} == {k: v for k, v in full.items() if k != "runs"}
    assert client.get(path, params={"runs": [str(uuid.uuid4())]}).json()["runs"] == []
    assert client.get(path, params={"runs": "not-a-uuid"}).status_code == 422
    assert client.get(path, params={"runs": [going] * 101}).status_code == 422  # past that: read the whole study

    with session_factory(db_url).begin() as s:  # round 3 of the running run, as its runner stores it
        jobs.persist_round(db_session=s, experiment_id=uuid.UUID(going), record=hand_record(3, 0.71, 40, 1.0),
                           checkpoint=None, runner="hand:1")
    now = client.get(path, params={"runs": [going]}).json()
    (run,) = now["runs"]
    assert run["progress"]["rounds_done"] == 3 and run["figures"]["final_accuracy"] == pytest.approx(71.0)
    assert run["figures"]["rounds"] == 3 and run["figures"]["train_time"] == pytest.approx(6.0)
    band = now["aggregate"]["variants"][1]["per_round"]
    assert [p["n"] for p in band] == [2, 2, 2, 1] and band[2]["min"] == pytest.approx(70.0)
    assert band[2]["max"] == pytest.approx(71.0)
    assert now["aggregate"] == client.get(path).json()["aggregate"]


def test_cancel_resume_and_delete_act_on_the_whole_study(client: TestClient, db_url: str) -> None:
    study = client.post("/api/v1/studies", json=STUDY).json()
    first = study["runs"][0]["id"]
    run_by_hand(db_url, first, *HAND[("dense", 0)])
    cancelled = client.post(f"/api/v1/studies/{study['id']}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json()["study"]["counts"] == {"succeeded": 1, "cancelled": 3}
    assert cancelled.json()["study"]["status"] == "cancelled"
    assert client.post(f"/api/v1/studies/{study['id']}/cancel").status_code == 409

    executor: HeldExecutor = client.app.state.executor  # type: ignore[attr-defined]
    before = len(executor.dispatched)
    resumed = client.post(f"/api/v1/studies/{study['id']}/resume")
    assert resumed.status_code == 202, resumed.text
    assert resumed.json()["counts"] == {"succeeded": 1, "queued": 3} and resumed.json()["status"] == "running"
    assert [str(i) for i in executor.dispatched[before:]] == [r["id"] for r in study["runs"][1:]]
    assert client.post(f"/api/v1/studies/{study['id']}/resume").status_code == 409

    run_by_hand(db_url, study["runs"][1]["id"], *HAND[("mask", 0)], finish=False)
    assert client.delete(f"/api/v1/studies/{study['id']}").status_code == 409  # a run is running
    with session_factory(db_url).begin() as s:
        jobs.finish(db_session=s, experiment_id=uuid.UUID(study["runs"][1]["id"]), status="failed", runner="hand:1")
    assert client.delete(f"/api/v1/studies/{study['id']}").status_code == 204
    assert client.get(f"/api/v1/studies/{study['id']}").status_code == 404
    assert client.get(f"/api/v1/experiments/{first}").status_code == 404
    assert _counts(db_url) == (0, 0)
