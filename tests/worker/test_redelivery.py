"""acks_late + reject_on_worker_lost: a killed worker process's job resumes; no round repeated or lost."""

from __future__ import annotations

import os
import signal

import httpx

from tests.app.stack import HOST, LONG_JOB, Stack, figures, reference_records, wait_for


def test_job_resumes_from_its_last_stored_round_when_the_worker_process_is_killed(
    api: httpx.Client, stack: Stack
) -> None:
    exp = api.post("/api/v1/experiments", json={"preset": "smoke", "overrides": LONG_JOB}).json()
    url = f"/api/v1/experiments/{exp['id']}"
    running = wait_for(
        lambda: (b := api.get(url).json())["progress"]["rounds_done"] >= 1 and b,
        90,
        "the first round",
        logs=stack.logs(),
    )
    host, pid = running["runner"].rsplit(":", 1)
    assert host == HOST
    os.kill(int(pid), signal.SIGKILL)  # the worker process dies mid-job

    final = stack.wait_status(api, exp["id"], {"succeeded", "failed", "cancelled"}, timeout=120)
    assert final["status"] == "succeeded", final["error"]
    assert final["runner"] != running["runner"]  # another process finished it
    assert running["progress"]["rounds_done"] < LONG_JOB["rounds"]

    records = [r["record"] for r in api.get(f"{url}/rounds").json()["items"]]
    assert [r["round"] for r in records] == list(range(1, LONG_JOB["rounds"] + 1))
    assert figures(records) == figures(reference_records(LONG_JOB))
    round_events = [e[2]["round"] for e in stack.events(exp["id"]) if e[1] == "round"]
    assert round_events == list(range(1, LONG_JOB["rounds"] + 1))
