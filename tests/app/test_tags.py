"""Tags and notes: accepted on create, replaced by PATCH, returned in every view; the list filters by tag and
name and sorts by the headline figures. On PostgreSQL (jsonb) and SQLite (JSON text) alike."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.db import session_factory
from tests.app.held import backend_url, held_client_on
from tests.e2e.seed import add_experiment

SCHEMA = "fedheads_tags"
TINY = {"rounds": 2, "local_steps": 2, "eval_size": 20, "max_train_examples": 100}


@pytest.fixture(params=["postgresql", "sqlite"], scope="module")
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    return backend_url(request.param, SCHEMA, tmp_path_factory.mktemp("tags"))


@pytest.fixture
def client(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with held_client_on(db_url, tmp_path) as c:
        yield c


def seed(db_url: str, name: str, **kw: Any) -> str:
    with session_factory(db_url)() as s, s.begin():
        return str(add_experiment(s, name=name, **kw).id)


def names(client: TestClient, **params: Any) -> list[str]:
    got = client.get("/api/v1/experiments", params=params)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["total"] == len(body["items"])
    return [e["name"] for e in body["items"]]


def test_tags_and_note_given_on_create_come_back_in_every_view(client: TestClient) -> None:
    created = client.post("/api/v1/experiments", json={
        "name": "tagged", "preset": "smoke", "overrides": TINY,
        "tags": [" baseline ", "snli", "baseline"], "note": "dense reference\nsecond line"})
    assert created.status_code == 201, created.text
    exp = created.json()
    assert exp["tags"] == ["baseline", "snli"]  # trimmed, repeats dropped, order kept
    assert exp["note"] == "dense reference\nsecond line"
    exp_id = exp["id"]
    views = [
        client.get(f"/api/v1/experiments/{exp_id}").json(),
        client.get("/api/v1/experiments").json()["items"][0],
        client.get(f"/ui/experiments/{exp_id}/state").json(),
        client.get("/ui/experiments").json()["items"][0],
        client.post(f"/api/v1/experiments/{exp_id}/cancel").json()["experiment"],
    ]
    for view in views:
        assert (view["tags"], view["note"]) == (["baseline", "snli"], "dense reference\nsecond line")
    untagged = client.post("/api/v1/experiments", json={"preset": "smoke", "overrides": TINY}).json()
    assert (untagged["tags"], untagged["note"]) == ([], "")


def test_patch_replaces_what_it_is_given_and_nothing_else(client: TestClient, db_url: str) -> None:
    exp_id = seed(db_url, "patched", status="running", rounds_done=2, tags=["old"], note="first")
    before = client.get(f"/api/v1/experiments/{exp_id}").json()

    got = client.patch(f"/api/v1/experiments/{exp_id}", json={"tags": ["a", "b"]})
    assert got.status_code == 200, got.text
    assert (got.json()["tags"], got.json()["note"]) == (["a", "b"], "first")
    got = client.patch(f"/api/v1/experiments/{exp_id}", json={"note": ""})
    assert (got.json()["tags"], got.json()["note"]) == (["a", "b"], "")
    after = client.get(f"/api/v1/experiments/{exp_id}").json()
    for key in ("name", "status", "spec", "progress", "created_at", "started_at"):
        assert after[key] == before[key], key  # a running job is not touched
    assert (after["tags"], after["note"]) == (["a", "b"], "")
    assert client.patch(f"/api/v1/experiments/{exp_id}", json={"tags": []}).json()["tags"] == []


@pytest.mark.parametrize(("body", "field"), [
    ({"tags": ["a,b"]}, "tags"),
    ({"tags": [""]}, "tags"),
    ({"tags": ["x" * 41]}, "tags"),
    ({"tags": [f"t{i}" for i in range(21)]}, "tags"),
    ({"note": "x" * 20_001}, "note"),
    ({"status": "succeeded"}, "status"),
    ({"name": "renamed"}, "name"),
])
def test_patch_refuses_bad_tags_notes_and_other_fields_naming_the_field(
    client: TestClient, db_url: str, body: dict[str, Any], field: str
) -> None:
    exp_id = seed(db_url, "kept", status="succeeded", rounds_done=1, tags=["keep"], note="keep")
    got = client.patch(f"/api/v1/experiments/{exp_id}", json=body)
    assert got.status_code == 422, got.text
    assert field in {str(part) for e in got.json()["detail"] for part in e["loc"]}
    exp = client.get(f"/api/v1/experiments/{exp_id}").json()
    assert (exp["tags"], exp["note"], exp["status"], exp["name"]) == (["keep"], "keep", "succeeded", "kept")


def test_patch_of_an_unknown_experiment_is_404(client: TestClient) -> None:
    assert client.patch(f"/api/v1/experiments/{uuid.uuid4()}", json={"note": "x"}).status_code == 404


def test_list_filters_by_tag_and_by_part_of_the_name(client: TestClient, db_url: str) -> None:
    seed(db_url, "SNLI dense", status="succeeded", rounds_done=2, tags=["snli", "baseline"])
    seed(db_url, "snli s=0.9", status="succeeded", rounds_done=2, tags=["snli"])
    seed(db_url, "bbc 100%_done", status="failed", rounds_done=1, tags=["bbc", "snli-like"])
    assert sorted(names(client, tag="snli")) == ["SNLI dense", "snli s=0.9"]  # whole tags, not parts
    assert names(client, tag="baseline") == ["SNLI dense"]
    assert names(client, tag="nothing") == []
    assert sorted(names(client, q="snli")) == ["SNLI dense", "snli s=0.9"]  # any case
    assert names(client, q="100%_") == ["bbc 100%_done"]  # % and _ are literal
    assert names(client, q="0%x") == []
    assert names(client, q="snli", tag="baseline") == ["SNLI dense"]
    assert names(client, tag="snli", status="failed") == []
    page = client.get("/ui/experiments", params={"tag": "bbc"}).json()
    assert [e["name"] for e in page["items"]] == ["bbc 100%_done"]
    assert page["tags"] == ["baseline", "bbc", "snli", "snli-like"]


def test_list_sorts_by_figures_with_runs_without_rounds_last(client: TestClient, db_url: str) -> None:
    # fake rounds: accuracy grows with the round; uplink advantage is 1 / (1 - sparsity / 2)
    seed(db_url, "b-short", status="succeeded", rounds_done=1, sparsity=0.9)
    seed(db_url, "a-long", status="succeeded", rounds_done=4, sparsity=0.5)
    seed(db_url, "c-none", status="queued", rounds_done=0)
    seed(db_url, "d-dense", status="succeeded", rounds_done=2, sparsity=0.0)
    assert names(client, sort="best_accuracy") == ["a-long", "d-dense", "b-short", "c-none"]
    assert names(client, sort="best_accuracy", order="asc") == ["b-short", "d-dense", "a-long", "c-none"]
    assert names(client, sort="uplink_advantage") == ["b-short", "a-long", "d-dense", "c-none"]
    assert names(client, sort="ops_reduction")[-1] == "c-none"
    assert names(client, sort="name", order="asc") == ["a-long", "b-short", "c-none", "d-dense"]
    ui = client.get("/ui/experiments", params={"sort": "uplink_advantage", "order": "asc"}).json()
    assert [e["name"] for e in ui["items"]] == ["d-dense", "a-long", "b-short", "c-none"]
    assert client.get("/api/v1/experiments", params={"sort": "loss"}).status_code == 422
