"""A job over HTTP on a real Celery worker: rounds in PostgreSQL, every event over SSE, a loadable adapter."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from peft import PeftModel, get_peft_model_state_dict
from safetensors.torch import load_file
from sqlalchemy import create_engine, text

from fedcore.models.loading import load_model
from tests.app.stack import TEST_JOB, Stack, clean_rows, figures, reference_records


def _submit(api: httpx.Client, **overrides: Any) -> dict[str, Any]:
    resp = api.post("/api/v1/experiments", json={"name": "tiny", "preset": "smoke", "overrides": overrides})
    assert resp.status_code == 201, resp.text
    return resp.json()


def _load_adapter(zip_bytes: bytes, folder: Path) -> dict[str, torch.Tensor]:
    """Unzip, load onto a freshly built base model with PeftModel.from_pretrained, return its LoRA state."""
    zipfile.ZipFile(io.BytesIO(zip_bytes)).extractall(folder)
    base = load_model("tiny-bert", task="classification", num_labels=3, seed=0).model
    model = PeftModel.from_pretrained(base, str(folder))
    return {k: v.detach() for k, v in get_peft_model_state_dict(model).items()}


def _assert_same_state(loaded: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert set(loaded) == set(expected)
    for key, value in expected.items():
        assert torch.equal(loaded[key], value), key


def test_submitted_job_runs_on_celery_and_streams_every_round_in_order(
    api: httpx.Client, stack: Stack, tmp_path: Path
) -> None:
    exp = _submit(api, **TEST_JOB)
    assert exp["status"] in ("queued", "running")  # the worker may have claimed it before the reply
    assert exp["progress"]["rounds_total"] == 3 and exp["task_id"]

    events = stack.events(exp["id"])  # returns when the server closes the stream: the job finished

    rounds = [data["round"] for _, kind, data in events if kind == "round"]
    statuses = [data["status"] for _, kind, data in events if kind == "status"]
    ids = [i for i, _, _ in events]
    assert rounds == [1, 2, 3]
    assert statuses[0] == "queued" and "running" in statuses and statuses[-1] == "succeeded"
    assert ids == sorted(ids) and len(set(ids)) == len(ids)

    # the rounds are rows in PostgreSQL, one per round, with the full record
    engine = create_engine(stack.db_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT round, accuracy, record FROM rounds WHERE experiment_id = :e ORDER BY round"),
            {"e": exp["id"]},
        ).all()
    engine.dispose()
    assert [r.round for r in rows] == [1, 2, 3]
    assert figures([r.record for r in rows]) == figures(reference_records(TEST_JOB))
    assert [r.accuracy for r in rows] == [e[2]["accuracy"] for e in events if e[1] == "round"]

    detail = api.get(f"/api/v1/experiments/{exp['id']}").json()
    assert detail["status"] == "succeeded" and detail["progress"]["fraction"] == 1.0
    assert detail["latest_round"]["round"] == 3
    summary = detail["summary"]
    assert summary["rounds"] == 3 and summary["uplink_advantage"] > 1.0
    assert summary["best_accuracy"] == max(r.accuracy for r in rows)
    assert {"ops_reduction", "total_advantage"} <= set(summary)

    # a reconnect with Last-Event-ID gets exactly what came after that event
    first_round_id = next(i for i, kind, _ in events if kind == "round")
    replay = stack.events(exp["id"], last_event_id=first_round_id)
    assert replay == [e for e in events if e[0] > first_round_id]

    # the final adapter loads with PeftModel.from_pretrained and holds the last round's global state
    resp = api.get(f"/api/v1/experiments/{exp['id']}/adapter")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/zip"
    loaded = _load_adapter(resp.content, tmp_path / "final")
    folder = Path(stack.settings.artifact_root) / exp["id"] / "checkpoint"
    _assert_same_state(loaded, load_file(str(folder / "global_round_0003.safetensors")))


@pytest.fixture(scope="module")
def finished(stack: Stack) -> Iterator[tuple[httpx.Client, dict[str, Any]]]:
    """One finished job that the read-only tests below share."""
    clean_rows(stack.db_url)
    with stack.client() as client:
        exp = _submit(client, **TEST_JOB)
        stack.wait_status(client, exp["id"], {"succeeded"})
        yield client, exp


def test_round_adapter_is_built_from_that_rounds_stored_checkpoint(
    finished: tuple[httpx.Client, dict[str, Any]], stack: Stack, tmp_path: Path
) -> None:
    api, exp = finished
    resp = api.get(f"/api/v1/experiments/{exp['id']}/adapter", params={"round": 1}, timeout=120)
    assert resp.status_code == 200, resp.text
    loaded = _load_adapter(resp.content, tmp_path / "round1")
    folder = Path(stack.settings.artifact_root) / exp["id"] / "checkpoint"
    _assert_same_state(loaded, load_file(str(folder / "global_round_0001.safetensors")))
    assert api.get(f"/api/v1/experiments/{exp['id']}/adapter", params={"round": 9}).status_code == 404


def test_rounds_and_clients_endpoints_return_full_records_and_partition(
    finished: tuple[httpx.Client, dict[str, Any]],
) -> None:
    api, exp = finished
    rounds = api.get(f"/api/v1/experiments/{exp['id']}/rounds").json()
    assert rounds["total"] == 3
    one = api.get(f"/api/v1/experiments/{exp['id']}/rounds/2").json()
    assert one == rounds["items"][1]
    record = one["record"]
    assert record["round"] == 2
    assert {"candidates", "scores", "selected", "reason"} <= set(record["selection"])
    assert len(record["clients"]) == 3 and record["clients"][0]["kept"] and record["clients"][0]["importance"]
    assert record["global_importance"] and record["head_weights"]

    clients = api.get(f"/api/v1/experiments/{exp['id']}/clients").json()
    assert [c["client"] for c in clients["items"]] == list(range(6))
    assert sum(c["examples"] for c in clients["items"]) == 600
    assert all(sum(c["label_histogram"]) == c["examples"] for c in clients["items"])
    assert clients["label_names"] == ["alpha", "beta", "gamma"]

    listed = api.get("/api/v1/experiments").json()
    assert listed["items"][0]["latest_round"]["round"] == 3


def test_delete_removes_a_finished_experiment_and_its_artifacts(api: httpx.Client, stack: Stack) -> None:
    exp = _submit(api, **{**TEST_JOB, "rounds": 1})
    stack.wait_status(api, exp["id"], {"succeeded"})
    folder = Path(stack.settings.artifact_root) / exp["id"]
    assert folder.is_dir()

    assert api.delete(f"/api/v1/experiments/{exp['id']}").status_code == 204
    assert api.get(f"/api/v1/experiments/{exp['id']}").status_code == 404
    assert not folder.exists()
    engine = create_engine(stack.db_url)
    with engine.connect() as conn:
        left = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM rounds) + (SELECT count(*) FROM events) "
                "+ (SELECT count(*) FROM clients)"
            )
        ).scalar()
    engine.dispose()
    assert left == 0
