"""The dashboard in a real headless Chromium against a real `fedheads serve` running real (tiny) jobs."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from tests.e2e.conftest import TINY, InProcessServer, Server, wait_until
from tests.e2e.seed import add_experiment, fake_record, round_event, round_row
from tests.proxy import TcpProxy

EXP_URL = re.compile(r"/experiments/[0-9a-f-]{36}$")

POINTS_AND_PROGRESS = """() => {
  const gd = document.getElementById('chart-acc');
  const n = gd && gd.data ? gd.data[0].x.length : 0;
  return [n, Number(document.getElementById('progress').value), document.getElementById('status').textContent];
}"""


def open_form(page: Any, server: Server, preset: str = "smoke") -> None:
    page.goto(f"{server.url}/experiments/new")
    page.wait_for_selector(f'#preset option[value="{preset}"]', state="attached")
    page.select_option("#preset", preset)
    page.wait_for_function("document.getElementById('f-model').value === 'tiny-bert'")


def fill(page: Any, values: dict[str, Any]) -> None:
    for name, value in values.items():
        page.fill(f"#f-{name}", str(value))


def experiment_id(page: Any) -> str:
    return page.url.rstrip("/").rsplit("/", 1)[-1]


def chart(page: Any, chart_id: str, condition: str = "true") -> None:
    """Scroll a chart into view (charts are drawn when on screen) and wait until ``condition`` holds of gd."""
    page.locator(f"#{chart_id}").scroll_into_view_if_needed()
    page.wait_for_function(f"(() => {{ const gd = document.getElementById('{chart_id}'); "
                           f"return gd.data && gd.data.length > 0 && ({condition}); }})()")


def wait_status(page: Any, status: str, timeout: float) -> None:
    page.wait_for_function(f"document.getElementById('status').textContent === '{status}'", timeout=timeout * 1000)


def test_form_shows_the_servers_validation_errors_next_to_the_fields(page: Any, server: Server) -> None:
    with server.api() as api:
        before = api.get("/api/v1/experiments").json()["total"]
    open_form(page, server)
    # a bad field and a broken rule across fields (clients_per_round 3 > num_clients): both in one submit
    fill(page, {"sparsity": 2, "num_clients": 2})
    page.click("#submit")
    err = page.locator("#err-sparsity")
    err.wait_for(state="visible")
    assert "0.99" in err.text_content()
    assert page.get_attribute("#f-sparsity", "aria-invalid") == "true"
    assert "clients_per_round (3) must be <= num_clients (2)" in page.text_content("#form-error")
    assert page.get_attribute("#f-num_clients", "aria-invalid") == "true"  # the field the rule names
    assert page.evaluate("document.activeElement.id") == "f-num_clients"  # focus: the first bad field, form order

    fill(page, {"sparsity": 0.5})  # the field fixed, the rule across fields still broken
    page.click("#submit")
    page.locator("#form-error").wait_for(state="visible")
    assert "clients_per_round" in page.text_content("#form-error")
    assert page.locator("#err-sparsity").is_hidden()
    assert page.locator("#err-num_clients").is_visible()
    assert EXP_URL.search(page.url) is None
    with server.api() as api:
        assert api.get("/api/v1/experiments").json()["total"] == before


def test_form_submits_a_tiny_preset_and_the_page_follows_it_live(page: Any, server: Server, artifacts: Path) -> None:
    name = "e2e <b>smoke</b> & 'quotes'"
    open_form(page, server)
    page.fill("#f-name", name)
    fill(page, TINY)
    page.click("#submit")
    page.wait_for_url(EXP_URL)
    exp_id = experiment_id(page)
    assert page.text_content("h1") == name and page.locator("h1 b").count() == 0

    seen: list[tuple[int, int, str]] = []

    def finished() -> bool:
        points, progress, status = page.evaluate(POINTS_AND_PROGRESS)
        if not seen or seen[-1] != (points, progress, status):
            seen.append((points, progress, status))
        return status in ("succeeded", "failed", "cancelled") and points == progress

    wait_until(finished, 150, "the experiment to finish on its page", interval=0.05)
    statuses = [s for _, _, s in seen]
    assert "running" in statuses and statuses[-1] == "succeeded", seen
    counts = sorted({p for p, _, _ in seen})
    assert counts[-1] == TINY["rounds"] and counts == list(range(counts[0], counts[-1] + 1)), seen
    assert len(counts) >= 2, f"no round arrived live: {seen}"  # it grew in place, one point per round
    assert all(0 <= progress - points <= 1 for points, progress, _ in seen), seen

    with server.api() as api:
        info = api.get(f"/api/v1/experiments/{exp_id}").json()["info"]
    chart(page, "chart-imp", "gd.data[0].z.length > 0")
    heat = page.evaluate("""() => document.getElementById('chart-imp').data.map(
        t => ({y: t.y, rows: t.z.length, cols: t.z[0].length}))""")
    assert [b for t in heat for b in t["y"]] == info["blocks"]
    assert all(t["cols"] == info["heads_per_block"] for t in heat)
    assert sum(t["rows"] for t in heat) == len(info["blocks"])
    chart(page, "chart-sel", f"gd.data[0].z[0].length === {TINY['rounds']}")
    chart(page, "chart-data", "gd.data[0].x.length === 6")
    assert "status: succeeded" in page.text_content("#event-log")
    assert page.locator("#dl-final").is_visible()
    assert page.text_content("#fig-adv").endswith("×")

    page.fill("#round-slider", "1")  # the round cursor moves the head panels back in time
    page.wait_for_function("document.getElementById('round-out').textContent.startsWith('1 /')")
    page.fill("#round-slider", str(TINY["rounds"]))
    page.evaluate("window.scrollTo(0, 0); window.fedheads.flush()")  # draw the charts below the fold too
    page.wait_for_timeout(300)
    shot = artifacts / "experiment-page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000


def test_a_sweep_launches_a_study_of_dense_and_pruned_runs_and_overlays_the_dense_one(
    page: Any, server: Server
) -> None:
    open_form(page, server)
    page.fill("#f-name", "sweep")
    fill(page, {**TINY, "rounds": 2})
    page.check("#sweep-on")
    page.fill("#sweep-values", "0.5")
    page.click("#submit")
    page.wait_for_url(EXP_URL)
    assert re.fullmatch(r"sweep · s=0\.5 · seed \d+", page.text_content("h1"))
    assert page.locator("#dense-link").is_visible()
    with server.api() as api:  # one study, its runs linked by key
        studies = api.get("/api/v1/studies").json()["items"]
        study = api.get(f"/api/v1/studies/{studies[0]['id']}").json()
    assert [s["name"] for s in studies] == ["sweep"] and study["definition"]["baseline"] == "s=0"
    assert [r["variant"] for r in study["runs"]] == ["s=0", "s=0.5"]
    assert page.url.endswith(study["runs"][1]["id"])
    wait_status(page, "succeeded", 150)
    # the dense sibling ran first; its two points are overlaid (traces 2 and 3) next to this run's two
    page.wait_for_function("""() => { const d = document.getElementById('chart-acc').data;
        return d.length === 4 && d[2].x.length === 2 && d[0].x.length === 2; }""")
    assert "dense" in page.evaluate("document.getElementById('chart-acc').data[2].name")

    page.click("#sweep-compare")
    page.wait_for_function("document.getElementById('chart-pareto') && document.getElementById('chart-pareto').data")
    assert page.locator("#compare-table tbody tr").count() == 2
    assert page.evaluate("document.getElementById('chart-pareto').data.length") == 2
    assert page.evaluate("document.getElementById('chart-cacc').data.map(t => t.x.length)") == [2, 2]


def test_a_sweep_the_server_refuses_says_why_next_to_the_sparsities(page: Any, server: Server) -> None:
    open_form(page, server)
    page.fill("#f-name", "bad sweep")
    fill(page, {**TINY, "rounds": 2})
    page.check("#sweep-on")
    page.fill("#sweep-values", "1.5")  # above the spec's bound: the server's 422 names variant s=1.5, field sparsity
    page.click("#submit")
    page.wait_for_function("!document.getElementById('err-sweep-values').hidden")
    said = page.text_content("#err-sweep-values") or ""
    assert said.startswith("variant s=1.5: ") and "less than or equal to" in said, said
    assert "[object Object]" not in (page.text_content("#form-error") or "")
    with server.api() as api:
        assert "bad sweep" not in [s["name"] for s in api.get("/api/v1/studies").json()["items"]]


def test_cancel_a_running_job_from_its_page(page: Any, server: Server) -> None:
    with server.api() as api:
        resp = api.post("/api/v1/experiments", json={
            "name": "long", "preset": "smoke",
            "overrides": {"rounds": 40, "local_steps": 20, "eval_size": 60, "max_train_examples": 600}})
        assert resp.status_code == 201, resp.text
    page.goto(f"{server.url}/experiments/{resp.json()['id']}")
    page.wait_for_function("document.getElementById('chart-acc').data", timeout=120_000)  # it is mid-run
    assert page.text_content("#status") == "running"
    page.click("#btn-cancel")
    wait_status(page, "cancelled", 60)
    page.wait_for_function("document.getElementById('stream-state').textContent.includes('stream closed')")
    points, progress, _ = page.evaluate(POINTS_AND_PROGRESS)
    assert 1 <= progress < 40 and points == progress
    assert page.is_enabled("#btn-resume") and page.is_disabled("#btn-cancel")
    assert "status: cancelled" in page.text_content("#event-log")


def test_experiments_list_refreshes_live_and_filters(page: Any, server: Server) -> None:
    page.goto(f"{server.url}/")
    page.wait_for_selector("#list-note")
    with server.api() as api:
        exp = api.post("/api/v1/experiments", json={"name": "listed <i>row</i>", "preset": "smoke",
                                                    "overrides": TINY}).json()
        api.post(f"/api/v1/experiments/{exp['id']}/cancel")
    row = page.locator(f'tr[data-id="{exp["id"]}"]')
    row.wait_for(timeout=10_000)  # appears without a reload
    assert row.locator("a.name").text_content() == "listed <i>row</i>"
    page.wait_for_function(f"""document.querySelector('tr[data-id="{exp["id"]}"] .badge').textContent
        === 'cancelled'""", timeout=10_000)
    page.select_option("#status-filter", "succeeded")
    page.wait_for_function(f"""!document.querySelector('tr[data-id="{exp["id"]}"]')""", timeout=10_000)
    assert "status=succeeded" in page.url
    assert all(b == "succeeded" for b in page.locator("#experiments tbody .badge").all_text_contents())


def test_a_200_round_100_client_run_loads_once_then_appends(quiet_server: InProcessServer, page: Any) -> None:
    blocks = [f"enc.{i}" for i in range(6)]
    shape = {"num_clients": 100, "per_round": 10, "blocks": blocks, "heads": 12, "sparsity": 0.5}
    with quiet_server.sessions.begin() as s:
        exp = add_experiment(s, name="big", status="running", rounds_done=200, rounds_total=201, **shape)
        exp_id = exp.id
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    start = time.monotonic()
    page.goto(f"{quiet_server.url}/experiments/{exp_id}")
    page.wait_for_function("() => { const d = document.getElementById('chart-acc').data; "
                           "return d && d[0].x.length === 200; }", timeout=60_000)
    loaded = time.monotonic() - start
    page.wait_for_function("document.getElementById('stream-state').textContent.startsWith('live')")

    rec = fake_record(201, seed=0, **shape)
    with quiet_server.sessions.begin() as s:
        s.add(round_row(exp_id, rec))
        s.add(round_event(exp_id, rec, 201))
    t0 = time.monotonic()
    page.wait_for_function("document.getElementById('chart-acc').data[0].x.length === 201", timeout=20_000)
    appended = time.monotonic() - t0
    chart(page, "chart-sel", "gd.data[0].z.length === 100 && gd.data[0].z[0].length === 201")
    rounds_calls = [u for u in requests if re.search(r"/rounds(\?|$)", u)]
    single_calls = [u for u in requests if re.search(r"/rounds/\d+$", u)]
    assert len(rounds_calls) == 1 and single_calls == [f"{quiet_server.url}/api/v1/experiments/{exp_id}/rounds/201"]
    assert loaded < 30 and appended < 5, (loaded, appended)  # generous: a busy 2-core machine, no GPU



def test_a_dropped_stream_reconnects_with_last_event_id_and_misses_nothing(quiet_server: InProcessServer,
                                                                            page: Any) -> None:
    shape = {"num_clients": 6, "per_round": 3}
    with quiet_server.sessions.begin() as s:
        exp_id = add_experiment(s, name="flaky network", status="running", rounds_done=2, rounds_total=6, **shape).id
    proxy = TcpProxy(("127.0.0.1", quiet_server.port))
    streams: list[Any] = []
    page.on("request", lambda r: streams.append(r) if r.url.split("?")[0].endswith("/events") else None)
    try:
        page.goto(f"{proxy.url}/experiments/{exp_id}")
        page.wait_for_function("document.getElementById('stream-state').textContent.startsWith('live')")
        page.wait_for_function("document.getElementById('chart-acc').data[0].x.length === 2")

        proxy.drop()  # the network goes away mid-stream; two rounds are stored meanwhile
        page.wait_for_function("document.getElementById('stream-state').textContent.includes('reconnecting')")
        with quiet_server.sessions.begin() as s:
            for rnd in (3, 4):
                rec = fake_record(rnd, blocks=["enc.0", "enc.1", "enc.2", "enc.3"], heads=4, sparsity=0.5, **shape)
                s.add(round_row(exp_id, rec))
                s.add(round_event(exp_id, rec, 6))
        page.wait_for_function("document.getElementById('chart-acc').data[0].x.length === 4", timeout=30_000)
    finally:
        proxy.close()
    assert page.evaluate("document.getElementById('chart-acc').data[0].x") == [1, 2, 3, 4]
    first, last = streams[0].all_headers(), streams[-1].all_headers()
    assert len(streams) >= 2 and "last-event-id" not in first and int(last["last-event-id"]) > 0
    assert page.locator("#event-log li").count() == 2 + 4  # queued, running, four rounds: none twice
