"""A study's tables as CSV and JSON downloads, and its runs' events as one SSE stream, on PostgreSQL and SQLite.

The downloads hold exactly the numbers of ``GET /api/v1/studies/{id}`` (here checked against the hand-worked
table of tests/app/test_studies.py); the stream replays the runs' stored events with each run's variant and
seed, follows new ones, and ends when no run is queued or running.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.cli import sse_events
from tests.app.held import backend_url, held_client_on, run_by_hand

SCHEMA = "fedheads_study_downloads"
STUDY: dict[str, Any] = {
    "name": "=grid, \"quoted\"",  # a name a spreadsheet would run, with a comma and quotes
    "base": {"preset": "smoke", "overrides": {"rounds": 3, "local_steps": 2, "eval_size": 20}},
    "variants": {"dense": {"sparsity": 0.0}, "mask": {"sparsity": 0.9, "prune_mode": "mask"}},
    "seeds": [0, 1],
    "baseline": "dense",
    "targets": [{"metric": "accuracy_vs_baseline", "within": 2.0}, {"metric": "uplink_advantage", "at_least": 2.5}],
}
# variant, seed -> accuracy per round, upload bytes a round (dense: 100), each client's training seconds
HAND = {("dense", 0): ([0.5, 0.6, 0.8], 100, 1.0), ("mask", 0): ([0.5, 0.6, 0.79], 50, 0.5),
        ("dense", 1): ([0.5, 0.6, 0.76], 100, 1.0), ("mask", 1): ([0.5, 0.6, 0.72], 40, 1.0)}


@pytest.fixture(params=["postgresql", "sqlite"], scope="module")
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    return backend_url(request.param, SCHEMA, tmp_path_factory.mktemp("study-downloads"))


@pytest.fixture
def client(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with held_client_on(db_url, tmp_path) as c:
        yield c


def _finished_study(client: TestClient, db_url: str) -> dict[str, Any]:
    study = client.post("/api/v1/studies", json=STUDY).json()
    for run in study["runs"]:
        run_by_hand(db_url, run["id"], *HAND[(run["variant"], run["seed"])])
    return dict(client.get(f"/api/v1/studies/{study['id']}").json())


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_the_aggregate_csv_and_json_hold_the_apis_table_row_by_row(client: TestClient, db_url: str) -> None:
    study = _finished_study(client, db_url)
    got = client.get(f"/api/v1/studies/{study['id']}/aggregate.csv")
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    assert f'filename="study-{study["id"]}-aggregate.csv"' in got.headers["content-disposition"]
    assert got.text.endswith("\r\n")
    rows = _csv(got.text)
    assert [(r["variant"], r["baseline"], r["runs"], r["finished"]) for r in rows] == [
        ("dense", "True", "2", "2"), ("mask", "False", "2", "2")]
    dense, mask = rows
    # the hand-worked figures: dense 80 and 76 points, mask 79 and 72; mask uploads 50 and 40 of 100 bytes
    assert float(dense["final_accuracy.mean"]) == pytest.approx(78.0) and dense["final_accuracy.n"] == "2"
    assert float(dense["final_accuracy.half_range"]) == pytest.approx(2.0)
    assert float(mask["uplink_advantage.mean"]) == pytest.approx(2.25)
    assert float(mask["vs_baseline.accuracy_vs_baseline.mean"]) == pytest.approx(-2.5)
    assert float(mask["vs_baseline.accuracy_vs_baseline.half_range"]) == pytest.approx(1.5)
    assert dense["spread"] == "half-range" and dense["metric"] == "accuracy"
    # every cell is the API's number, at full precision
    for row, v in zip(rows, study["aggregate"]["variants"], strict=True):
        for fig, spread in v["figures"].items():
            for part in ("mean", "half_range", "n"):
                want = spread[part]
                assert row[f"{fig}.{part}"] == ("" if want is None else str(want)), (fig, part)
        for name, spread in v["vs_baseline"].items():
            assert row[f"vs_baseline.{name}.mean"] == ("" if spread["mean"] is None else str(spread["mean"]))

    as_json = client.get(f"/api/v1/studies/{study['id']}/aggregate.json")
    assert as_json.status_code == 200 and as_json.headers["content-type"] == "application/json"
    objects = as_json.json()
    assert [o["variant"] for o in objects] == ["dense", "mask"] and objects[0]["baseline"] is True
    assert objects[1]["vs_baseline.accuracy_vs_baseline.mean"] == study["aggregate"]["variants"][1][
        "vs_baseline"]["accuracy_vs_baseline"]["mean"]
    assert list(objects[0]) == list(rows[0])  # the same columns in the same order


def test_the_verdicts_and_runs_downloads_hold_the_apis_rows(client: TestClient, db_url: str) -> None:
    study = _finished_study(client, db_url)
    verdicts = _csv(client.get(f"/api/v1/studies/{study['id']}/verdicts.csv").text)
    assert [(v["target"], v["variant"], v["met"]) for v in verdicts] == [("0", "mask", "False"), ("1", "mask", "False")]
    assert verdicts[0]["text"] == study["aggregate"]["verdicts"][0]["text"]
    assert float(verdicts[1]["margin"]) == pytest.approx(2.25 - 2.5)
    assert client.get(f"/api/v1/studies/{study['id']}/verdicts.json").json()[0]["seeds"] == 2

    runs = client.get(f"/api/v1/studies/{study['id']}/runs.csv").text
    first = runs.splitlines()[1]
    assert first.startswith(f'{study["runs"][0]["id"]},"\'=grid, ""quoted"" · dense · seed 0",dense,0,succeeded')
    rows = _csv(runs)
    assert [(r["variant"], r["seed"], r["page"]) for r in rows] == [
        (r["variant"], str(r["seed"]), f"/experiments/{r['id']}") for r in study["runs"]]
    assert [float(r["final_accuracy"]) for r in rows] == pytest.approx([80.0, 79.0, 76.0, 72.0])
    assert client.get(f"/api/v1/studies/{study['id']}/runs.json").json()[3]["uplink_mb"] == pytest.approx(120e-6)


def test_an_unknown_table_or_format_or_study_is_refused(client: TestClient, db_url: str) -> None:
    study = client.post("/api/v1/studies", json=STUDY).json()
    assert client.get(f"/api/v1/studies/{study['id']}/secrets.csv").status_code == 422
    assert client.get(f"/api/v1/studies/{study['id']}/aggregate.xlsx").status_code == 422
    assert client.get(f"/api/v1/studies/{uuid.uuid4()}/aggregate.csv").status_code == 404
    assert client.get(f"/api/v1/studies/{study['id']}/spec.yaml").status_code == 200  # not taken for a table
    partial = _csv(client.get(f"/api/v1/studies/{study['id']}/aggregate.csv").text)  # nothing finished yet
    assert [(r["finished"], r["final_accuracy.mean"], r["final_accuracy.n"]) for r in partial] == [("0", "", "0")] * 2


def _follow(client: TestClient, url: str, out: list[tuple[int, str, dict[str, Any]]]) -> None:
    with client.stream("GET", url) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        for ev_id, kind, data in sse_events(resp.iter_lines()):
            out.append((int(ev_id or 0), kind, json.loads(data)))


def test_the_study_stream_follows_every_run_and_ends_when_all_have_finished(client: TestClient, db_url: str) -> None:
    study = client.post("/api/v1/studies", json=STUDY).json()
    url = f"/api/v1/studies/{study['id']}/events"
    live: list[tuple[int, str, dict[str, Any]]] = []
    follower = threading.Thread(target=_follow, args=(client, url, live), daemon=True)
    follower.start()
    for run in study["runs"]:
        run_by_hand(db_url, run["id"], *HAND[(run["variant"], run["seed"])])
    follower.join(timeout=30)
    assert not follower.is_alive(), "the stream did not end once every run had finished"
    ids = [i for i, _, _ in live]
    assert ids == sorted(set(ids))  # in order, each once
    finished = [(d["variant"], d["seed"]) for _, k, d in live if k == "status" and d["status"] == "succeeded"]
    assert sorted(finished) == sorted(HAND)
    rounds = [(d["run"], d["round"]) for _, k, d in live if k == "round"]
    assert len(rounds) == 4 * 3 and {r for r, _ in rounds} == {r["id"] for r in study["runs"]}

    replay: list[tuple[int, str, dict[str, Any]]] = []
    _follow(client, url, replay)  # every run finished: the stored events, then the end
    assert replay == live
    later: list[tuple[int, str, dict[str, Any]]] = []
    _follow(client, f"{url}?after={ids[5]}", later)
    assert [i for i, _, _ in later] == [i for i in ids if i > ids[5]]
    assert client.get(f"/api/v1/studies/{uuid.uuid4()}/events").status_code == 404
