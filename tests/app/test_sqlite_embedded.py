"""The embedded default: SQLite and a local executor process, no broker; one command shows the product."""

from __future__ import annotations

import io
import sqlite3
import zipfile

from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from app.cli import sse_events
from tests.app.stack import TEST_JOB, wait_for


def test_embedded_sqlite_server_runs_a_submit_run_read_cycle(embedded: TestClient) -> None:
    resp = embedded.post(
        "/api/v1/experiments",
        json={"name": "embedded", "preset": "smoke", "overrides": {**TEST_JOB, "rounds": 2}},
    )
    assert resp.status_code == 201, resp.text
    url = f"/api/v1/experiments/{resp.json()['id']}"

    # the API answers while the job trains in another process
    assert embedded.get("/api/v1/health").json()["executor"] == "local"
    final = wait_for(
        lambda: (b := embedded.get(url).json())["status"] in ("succeeded", "failed") and b,
        120,
        "the embedded job to finish",
        interval=0.2,
    )
    assert final["status"] == "succeeded", final["error"]
    assert final["runner"] and final["task_id"].startswith("local-")
    assert final["summary"]["rounds"] == 2 and final["summary"]["best_accuracy"] is not None

    assert [r["round"] for r in embedded.get(f"{url}/rounds").json()["items"]] == [1, 2]
    assert len(embedded.get(f"{url}/clients").json()["items"]) == 6
    events = list(sse_events(iter(embedded.get(f"{url}/events").text.splitlines())))
    assert [e[1] for e in events].count("round") == 2 and '"succeeded"' in events[-1][2]

    adapter = embedded.get(f"{url}/adapter")
    assert adapter.status_code == 200
    assert "adapter_config.json" in zipfile.ZipFile(io.BytesIO(adapter.content)).namelist()

    db_file = make_url(embedded.app.state.settings.database_url).database
    with sqlite3.connect(db_file) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
