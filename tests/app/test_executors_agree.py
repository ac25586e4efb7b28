"""The same tiny job through the local executor, one Celery worker, and fanned out to two worker processes."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi.testclient import TestClient

from tests.app.stack import HOST, TEST_JOB, Stack, figures, reference_records, wait_for

BODY = {"name": "agree", "preset": "smoke", "overrides": TEST_JOB}


def _run(client: httpx.Client | TestClient, stack: Stack) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    exp = client.post("/api/v1/experiments", json=BODY)
    assert exp.status_code == 201, exp.text
    url = f"/api/v1/experiments/{exp.json()['id']}"
    final = wait_for(
        lambda: (b := client.get(url).json())["status"] in ("succeeded", "failed") and b,
        120,
        "the job to finish",
        interval=0.2,
        logs=stack.logs(),
    )
    assert final["status"] == "succeeded", final["error"]
    return final, [r["record"] for r in client.get(f"{url}/rounds").json()["items"]]


def _trained_by(records: list[dict[str, Any]]) -> set[str]:
    return {c["extra"].get("trained_by", "") for r in records for c in r["clients"]}


def test_local_celery_and_fanned_out_runs_give_identical_round_figures(
    api: httpx.Client, stack: Stack, embedded: TestClient
) -> None:
    reference = figures(reference_records(TEST_JOB))

    # 1. one Celery worker: fh-a serves the clients queue too, but never fans out to itself
    one, one_records = _run(api, stack)
    assert _trained_by(one_records) == {""}

    # 2. a second worker with two processes for the clients queue; it warms up while the local executor runs
    worker = stack.start_worker("fh-b", "clients", concurrency=2)
    try:
        local, local_records = _run(embedded, stack)
        assert local["task_id"].startswith("local-")
        wait_for(
            lambda: worker.log.read_text().count("fedcore loaded") >= 2,
            90,
            "fh-b's two processes to load fedcore",
            logs=[worker.log],
        )
        stack.wait_worker("fh-b", "clients")

        fanned, fanned_records = _run(api, stack)
    finally:
        stack.stop_worker("fh-b")

    pids = _trained_by(fanned_records) - {""}  # "": trained by the orchestrating process itself
    assert len(pids) == 2, pids  # clients trained remotely, in fh-b's two processes
    assert all(p.startswith(f"{HOST}:") for p in pids)
    assert fanned["runner"] not in pids

    assert figures(one_records) == reference
    assert figures(local_records) == reference
    assert figures(fanned_records) == reference
