"""Cancel stops a running job within a training step and keeps its rounds; resume continues after them."""

from __future__ import annotations

import time

import httpx
from sqlalchemy import create_engine, text

from tests.app.stack import LONG_JOB, Stack, figures, reference_records, wait_for


def _stored_rounds(stack: Stack, exp_id: str) -> list[int]:
    engine = create_engine(stack.db_url)
    with engine.connect() as conn:
        rows = (
            conn.execute(
                text("SELECT round FROM rounds WHERE experiment_id = :e ORDER BY round"), {"e": exp_id}
            )
            .scalars()
            .all()
        )
    engine.dispose()
    return list(rows)


def test_cancel_stops_a_running_job_quickly_and_resume_continues_after_the_last_stored_round(
    api: httpx.Client, stack: Stack
) -> None:
    exp = api.post("/api/v1/experiments", json={"preset": "smoke", "overrides": LONG_JOB}).json()
    url = f"/api/v1/experiments/{exp['id']}"
    wait_for(
        lambda: api.get(url).json()["progress"]["rounds_done"] >= 1, 90, "the first round", logs=stack.logs()
    )

    resp = api.post(f"{url}/cancel")
    assert resp.status_code == 202
    assert resp.json()["experiment"]["cancel_requested"] is True
    asked = time.monotonic()
    cancelled = stack.wait_status(api, exp["id"], {"cancelled", "succeeded"}, timeout=30)
    took = time.monotonic() - asked
    assert cancelled["status"] == "cancelled"
    assert took < 5, (
        f"cancel took {took:.1f} s"
    )  # one local step is milliseconds; the flag is re-read every 0.1 s
    done = cancelled["progress"]["rounds_done"]
    assert 1 <= done < LONG_JOB["rounds"]
    time.sleep(0.5)
    assert _stored_rounds(stack, exp["id"]) == list(range(1, done + 1))  # kept, and nothing after the cancel

    assert api.post(f"{url}/cancel").status_code == 409  # already cancelled
    resp = api.post(f"{url}/resume")
    assert resp.status_code == 202
    assert resp.json()["experiment"]["status"] in ("queued", "running")  # a worker may claim it at once
    final = stack.wait_status(api, exp["id"], {"succeeded", "failed", "cancelled"})
    assert final["status"] == "succeeded", final["error"]

    assert _stored_rounds(stack, exp["id"]) == list(range(1, LONG_JOB["rounds"] + 1))
    records = [r["record"] for r in api.get(f"{url}/rounds").json()["items"]]
    assert figures(records) == figures(reference_records(LONG_JOB))  # as if it had never stopped

    kinds = [(e[1], e[2].get("round") or e[2].get("status")) for e in stack.events(exp["id"])]
    round_events = [v for k, v in kinds if k == "round"]
    assert round_events == list(range(1, LONG_JOB["rounds"] + 1))  # no round repeated or skipped
    statuses = [v for k, v in kinds if k == "status"]
    assert statuses.count("cancelled") == 1 and statuses[-1] == "succeeded"


def test_cancel_of_a_queued_job_takes_effect_at_once(api: httpx.Client, stack: Stack) -> None:
    # occupy the only worker process, so the second job waits in the queue
    first = api.post("/api/v1/experiments", json={"preset": "smoke", "overrides": LONG_JOB}).json()
    second = api.post("/api/v1/experiments", json={"preset": "smoke", "overrides": LONG_JOB}).json()
    resp = api.post(f"/api/v1/experiments/{second['id']}/cancel")
    assert resp.status_code == 202
    assert resp.json()["experiment"]["status"] == "cancelled"
    api.post(f"/api/v1/experiments/{first['id']}/cancel")
    stack.wait_status(api, first["id"], {"cancelled", "succeeded"})
    time.sleep(1.0)  # the worker takes the second message and must leave it alone
    body = api.get(f"/api/v1/experiments/{second['id']}").json()
    assert body["status"] == "cancelled" and body["progress"]["rounds_done"] == 0
    assert _stored_rounds(stack, second["id"]) == []
