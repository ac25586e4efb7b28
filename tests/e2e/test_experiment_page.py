"""The experiment page over a stored run: the accuracy and loss charts, exports, the round cursor and the
aggregation inspector (rows written straight into the database; no job runs)."""

from __future__ import annotations

import csv
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.models import Event, Round
from tests.e2e.conftest import InProcessServer
from tests.e2e.seed import add_experiment

ROUNDS = 8
ROUND_CHARTS = ["chart-acc", "chart-comm", "chart-cum", "chart-ops", "chart-wall", "chart-sel"]


@pytest.fixture
def stored_run(quiet_server: InProcessServer) -> uuid.UUID:
    with quiet_server.sessions.begin() as s:
        return add_experiment(s, name="=stored, \"run\"", status="succeeded", rounds_done=ROUNDS,
                              rounds_total=ROUNDS).id


def open_run(page: Any, server: InProcessServer, exp_id: uuid.UUID) -> None:
    page.goto(f"{server.url}/experiments/{exp_id}")
    page.wait_for_function(f"window.fedheads && window.fedheads.state.records.length === {ROUNDS}")
    page.evaluate("window.fedheads.flush()")
    page.wait_for_function(f"{ROUND_CHARTS}.every(id => document.getElementById(id).data)")


def rounds_json(server: InProcessServer, exp_id: uuid.UUID) -> list[dict[str, Any]]:
    return httpx.get(f"{server.url}/api/v1/experiments/{exp_id}/rounds", timeout=30).json()["items"]


def read_csv(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_accuracy_and_loss_are_two_charts_with_round_ticks_and_loss_from_zero(
        quiet_server: InProcessServer, stored_run: uuid.UUID, page: Any) -> None:
    open_run(page, quiet_server, stored_run)
    axes = page.evaluate("""() => { const L = document.getElementById('chart-acc')._fullLayout;
        return {acc: L.yaxis.domain, loss: L.yaxis2.domain, overlaying: L.yaxis2.overlaying || null,
                lossRange: L.yaxis2.range, accTitle: L.yaxis.title.text}; }""")
    assert axes["overlaying"] is None and axes["loss"][1] < axes["acc"][0]  # one below the other, not overlaid
    assert axes["lossRange"][0] == 0 and axes["accTitle"] == "accuracy (%)"
    ticks = page.evaluate("""() => { const gd = document.getElementById('chart-acc');
        const t = (cls) => [...gd.querySelectorAll(`.${cls} text`)].map(n => n.textContent);
        return {acc: t('ytick'), loss: t('y2tick')}; }""")
    assert len(ticks["acc"]) >= 2 and len(ticks["loss"]) >= 2, ticks
    assert all(re.fullmatch(r"\d+", v) for v in ticks["acc"]), ticks
    assert all(re.fullmatch(r"\d+(\.\d)?", v) for v in ticks["loss"]), ticks  # 0, 0.2, 0.4: not 0.964


def test_rounds_export_as_csv_and_json_equals_the_rounds_api(
        quiet_server: InProcessServer, stored_run: uuid.UUID, page: Any) -> None:
    open_run(page, quiet_server, stored_run)
    items = rounds_json(quiet_server, stored_run)
    with page.expect_download() as dl:
        page.click("#export-csv")
    assert dl.value.suggested_filename == "stored-run-rounds.csv"
    rows = read_csv(dl.value.path())
    assert [int(r["round"]) for r in rows] == [it["round"] for it in items] == list(range(1, ROUNDS + 1))
    for row, it in zip(rows, items, strict=True):
        rec = it["record"]
        assert row["created_at"] == it["created_at"]
        for key, value in rec["metrics"].items():
            assert float(row[f"metrics.{key}"]) == value, key
        scalars = {k: v for k, v in rec.items() if isinstance(v, int | float) and k != "round"}
        assert {"bytes_up", "bytes_up_dense", "ops", "wall_time", "train_loss"} <= scalars.keys()
        for key, value in scalars.items():
            assert float(row[key]) == value, key
        sel = rec["selection"]
        assert [int(c) for c in row["selection.selected"].split()] == sel["selected"]
        assert [int(c) for c in row["selection.candidates"].split()] == sel["candidates"]
        assert row["selection.strategy"] == sel["strategy"] and row["selection.reason"] == sel["reason"]
    assert page.text_content("#action-note") == f"saved {ROUNDS} rounds as CSV"

    with page.expect_download() as dl:
        page.click("#export-json")
    assert dl.value.suggested_filename == "stored-run-rounds.json"
    assert json.loads(Path(dl.value.path()).read_text())["items"] == items


def test_every_chart_saves_its_own_data_as_csv(quiet_server: InProcessServer, stored_run: uuid.UUID,
                                               page: Any) -> None:
    open_run(page, quiet_server, stored_run)
    page.locator("#chart-acc").hover()
    with page.expect_download() as dl:
        page.click('#chart-acc .modebar-btn[data-title="Download data as CSV"]')
    assert dl.value.suggested_filename == "stored-run-chart-acc.csv"
    rows = read_csv(dl.value.path())
    traces = page.evaluate("document.getElementById('chart-acc').data.map(t => ({name: t.name, x: t.x, y: t.y}))")
    assert [t["name"] for t in traces] == ["accuracy", "loss"]
    for t in traces:
        got = [(int(r["x"]), float(r["y"])) for r in rows if r["trace"] == t["name"]]
        assert got == list(zip(t["x"], t["y"], strict=True)) and len(got) == ROUNDS

    rec = rounds_json(quiet_server, stored_run)[-1]["record"]  # the heatmap shows the cursor's (last) round
    page.locator("#chart-imp").scroll_into_view_if_needed()
    page.locator("#chart-imp").hover()
    with page.expect_download() as dl:
        page.click('#chart-imp .modebar-btn[data-title="Download data as CSV"]')
    cells = {(r["y"], int(r["x"])): float(r["z"]) for r in read_csv(dl.value.path())}
    blocks = [f"enc.{b}" for b in range(len(rec["global_importance"]))]
    assert cells == {(blocks[b], h): v for b, row in enumerate(rec["global_importance"]) for h, v in enumerate(row)}


def test_aggregation_inspector_opens_on_the_most_important_kept_head_and_explains_white_cells(
        quiet_server: InProcessServer, stored_run: uuid.UUID, page: Any) -> None:
    with quiet_server.sessions.begin() as s:  # the most important head of all is one that no client kept
        row = s.scalars(select(Round).where(Round.experiment_id == stored_run, Round.round == ROUNDS)).one()
        rec = json.loads(json.dumps(row.record))
        kept = {(b, h) for c in rec["clients"] for b, r in enumerate(c["kept"]) for h, k in enumerate(r) if k}
        pruned = sorted({(b, h) for b in range(4) for h in range(4)} - kept)
        rec["global_importance"][pruned[0][0]][pruned[0][1]] = 2.0
        row.record = rec
    imp = rec["global_importance"]
    expected = max(kept, key=lambda bh: imp[bh[0]][bh[1]])
    assert expected != (0, 0)
    open_run(page, quiet_server, stored_run)
    assert (int(page.input_value("#agg-block")), int(page.input_value("#agg-head"))) == expected
    assert page.text_content("#agg-head-name") == f"enc.{expected[0]} · head {expected[1]}"
    assert "kept the head" in page.evaluate("document.getElementById('chart-aggw').data[0].customdata.join()")

    blank = sum(v is None for row in rec["agreement"] for v in row)
    assert blank > 0
    assert page.text_content("#agree-note").startswith(f"White cells ({blank} of 16 heads this round)")


def test_the_round_cursor_is_marked_on_every_round_indexed_chart(
        quiet_server: InProcessServer, stored_run: uuid.UUID, page: Any) -> None:
    open_run(page, quiet_server, stored_run)
    marks = "ids => ids.map(id => (document.getElementById(id).layout.shapes || []).map(s => [s.type, s.x0, s.x1]))"
    page.wait_for_function(f"({marks})({ROUND_CHARTS}).every(s => s.length === 1)")
    assert page.evaluate(f"({marks})({ROUND_CHARTS})") == [[["line", ROUNDS, ROUNDS]]] * 5 + [
        [["rect", ROUNDS - 0.5, ROUNDS + 0.5]]]
    page.fill("#round-slider", "3")
    page.evaluate("window.fedheads.flush()")
    page.wait_for_function(f"({marks})({ROUND_CHARTS})[0][0][1] === 3")
    assert page.evaluate(f"({marks})({ROUND_CHARTS})") == [[["line", 3, 3]]] * 5 + [[["rect", 2.5, 3.5]]]


def test_every_event_log_line_has_its_time(quiet_server: InProcessServer, stored_run: uuid.UUID, page: Any) -> None:
    with quiet_server.sessions.begin() as s:
        stored = {str(e.id): e.created_at for e in s.scalars(select(Event).where(
            Event.experiment_id == stored_run, Event.type == "status"))}
    open_run(page, quiet_server, stored_run)
    page.wait_for_function("document.getElementById('stream-state').textContent.includes('stream closed')")
    lines = page.evaluate("""[...document.querySelectorAll('#event-log li')].map(li => ({id: li.dataset.event,
        text: li.textContent, time: li.querySelector('time') && li.querySelector('time').getAttribute('datetime')}))""")
    assert len(lines) == ROUNDS + 3 and all(line["time"] for line in lines), lines  # queued, running, 8 rounds, done
    status_lines = [line for line in lines if "status:" in line["text"]]
    assert {line["id"] for line in status_lines} == stored.keys()
    for line in status_lines:
        want = stored[line["id"]].replace(tzinfo=UTC)
        assert abs(datetime.fromisoformat(line["time"].replace("Z", "+00:00")) - want) < timedelta(milliseconds=1)


THEME = """() => { const L = document.getElementById('chart-acc')._fullLayout;
  return {page: getComputedStyle(document.body).backgroundColor, text: getComputedStyle(document.body).color,
          badge: getComputedStyle(document.getElementById('status')).backgroundColor, paper: L.paper_bgcolor, font: L.font.color, grid: L.xaxis.gridcolor}; }"""


def test_the_theme_follows_the_system_setting(quiet_server: InProcessServer, stored_run: uuid.UUID,
                                              page: Any) -> None:
    page.emulate_media(color_scheme="dark")
    open_run(page, quiet_server, stored_run)
    assert page.evaluate(THEME) == {"page": "rgb(18, 23, 30)", "text": "rgb(227, 232, 239)", "badge": "rgb(22, 54, 33)",
                                    "paper": "#1b222c",
                                    "font": "#e3e8ef", "grid": "#2f3a48"}
    page.emulate_media(color_scheme="light")
    open_run(page, quiet_server, stored_run)
    assert page.evaluate(THEME) == {"page": "rgb(246, 247, 249)", "text": "rgb(29, 36, 48)", "badge": "rgb(226, 244, 230)",
                                    "paper": "#ffffff",
                                    "font": "#1d2430", "grid": "#e6e9ee"}
