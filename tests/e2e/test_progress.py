"""The experiment page while a job runs inside a round (a real job in the embedded server's local process), and
its curves against elapsed wall time (a stored run). Headless Chromium; requests outside 127.0.0.1 are blocked and
counted by the `page` fixture."""

from __future__ import annotations

import itertools
import re
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import TINY, InProcessServer, Server, wait_until
from tests.e2e.seed import add_experiment

ROUNDS = 6
LINE = re.compile(r"round (\d+)/3 · client (\d)/(\d) \(#\d+\) · (?:step (\d+)/(\d+)|scoring its heads|done)")


def _finish(server: Server, exp_id: str, timeout: float = 120) -> str:
    with server.api() as api:
        return str(wait_until(lambda: (s := api.get(f"/api/v1/experiments/{exp_id}").json()["status"])
                              in ("succeeded", "failed", "cancelled") and s, timeout, "the job to end"))


def test_the_live_page_shows_progress_inside_a_round_within_5_s_of_the_job_starting(page: Any,
                                                                                     server: Server) -> None:
    with server.api() as api:  # a tiny job first, so the executor's process has loaded torch (as after any job)
        warm = api.post("/api/v1/experiments", json={"name": "warm-up", "preset": "smoke", "overrides": TINY})
        assert warm.status_code == 201, warm.text
        assert _finish(server, warm.json()["id"]) == "succeeded"
        resp = api.post("/api/v1/experiments", json={
            "name": "progress", "preset": "smoke",
            "overrides": {**TINY, "local_steps": 60, "max_train_examples": 600}})
        assert resp.status_code == 201, resp.text
    exp_id = resp.json()["id"]
    page.goto(f"{server.url}/experiments/{exp_id}")
    page.wait_for_function("document.getElementById('status').textContent === 'running'", timeout=60_000)
    started = time.monotonic()
    page.wait_for_function("/round \\d+\\/3 · client \\d\\/\\d/.test(document.getElementById('live-progress')"
                           ".textContent) && !document.getElementById('live-progress').hidden", timeout=5_000)
    assert time.monotonic() - started < 5.0

    # the line moves inside the round (client or step), and soon carries an estimate of the time left
    seen: list[str] = []
    for _ in range(40):
        text = page.text_content("#live-progress") or ""
        if seen[-1:] != [text]:
            seen.append(text)
        if len(seen) >= 3 and re.search(r"~\d+ s left in the round, ~[\d a-z]+ in the run", text):
            break
        time.sleep(0.25)
    parsed = [m.groups() for t in seen if (m := LINE.search(t))]
    assert len(parsed) >= 2 and all(1 <= int(g[1]) <= int(g[2]) == 3 for g in parsed), seen
    assert any(g[3] is not None and 0 <= int(g[3]) <= int(g[4]) == 60 for g in parsed), seen
    assert any("left in the round" in t for t in seen), seen

    # "created … ago" ticks without a reload
    first = page.text_content("#created-ago")
    page.wait_for_function(f"document.getElementById('created-ago').textContent !== {first!r}", timeout=5_000)
    assert re.fullmatch(r"\d+ s ago|\d+ min ago", page.text_content("#created-ago") or ""), first

    with server.api() as api:
        api.post(f"/api/v1/experiments/{exp_id}/cancel")
    assert _finish(server, exp_id) in ("cancelled", "succeeded")
    page.wait_for_function("document.getElementById('live-progress').hidden", timeout=10_000)


@pytest.fixture
def stored_run(quiet_server: InProcessServer) -> uuid.UUID:
    with quiet_server.sessions.begin() as s:
        return add_experiment(s, name="timed", status="succeeded", rounds_done=ROUNDS, rounds_total=ROUNDS).id


TIME_CHARTS = ["chart-acc", "chart-comm", "chart-cum", "chart-ops"]


def _axes(page: Any) -> dict[str, Any]:
    page.evaluate("window.fedheads.flush()")
    return page.evaluate(f"""() => Object.fromEntries({TIME_CHARTS + ['chart-wall']}.map(id => {{
        const gd = document.getElementById(id);
        return [id, {{title: gd.layout.xaxis.title.text, x: gd.data.map(t => Array.from(t.x)),
                      cursor: (gd.layout.shapes || []).map(s => s.x0)}}];
    }}))""")


def test_the_curves_switch_to_elapsed_wall_time_and_back(quiet_server: InProcessServer, stored_run: uuid.UUID,
                                                          page: Any) -> None:
    page.goto(f"{quiet_server.url}/experiments/{stored_run}")
    page.wait_for_function(f"window.fedheads && window.fedheads.state.records.length === {ROUNDS}")
    rounds = httpx.get(f"{quiet_server.url}/api/v1/experiments/{stored_run}/rounds", timeout=30).json()["items"]
    walls = [r["record"]["wall_time"] for r in rounds]
    elapsed = list(itertools.accumulate(walls))
    numbers = list(range(1, ROUNDS + 1))

    before = _axes(page)
    for cid in TIME_CHARTS:
        assert before[cid]["title"] == "round" and all(x == numbers for x in before[cid]["x"]), cid

    page.select_option("#x-axis", "time")
    page.wait_for_function("document.getElementById('chart-acc').layout.xaxis.title.text.startsWith('elapsed')")
    after = _axes(page)
    for cid in TIME_CHARTS:
        assert after[cid]["title"] == "elapsed wall time (s)", cid
        for xs in after[cid]["x"]:  # every line, each point once, at the sum of the measured round times
            assert xs == pytest.approx(elapsed), (cid, xs)
        assert after[cid]["cursor"] == pytest.approx([elapsed[-1]]), cid  # the cursor's round, at its time
    assert after["chart-wall"]["title"] == "round" and after["chart-wall"]["x"] == [numbers]  # bars stay per round
    hover = page.evaluate("document.getElementById('chart-acc').data[0].hovertemplate")
    assert "%{x:.1f} s" in hover and page.evaluate("document.getElementById('chart-acc').data[0].text[0]") == "round 1"

    page.select_option("#x-axis", "round")
    page.wait_for_function("document.getElementById('chart-acc').layout.xaxis.title.text === 'round'")
    back = _axes(page)
    for cid in TIME_CHARTS:
        assert all(x == numbers for x in back[cid]["x"]) and back[cid]["cursor"] == [ROUNDS], cid
