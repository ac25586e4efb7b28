"""Studies in a real headless Chromium against a real `fedheads serve` running real (tiny) runs: the form
creates a study, its page fills in place as the runs finish, and what it downloads (the table as CSV, a chart as
SVG and PNG, the spec as YAML) is what the API says."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from fedcore.study import StudySpec
from tests.e2e.conftest import TINY, Server, wait_until

STUDY_URL = re.compile(r"/studies/([0-9a-f-]{36})$")

# the page's state as the test watches it fill: runs finished, study status, mean-curve points per variant
STATE = """() => ({
  finished: Number(document.getElementById('progress').value),
  status: document.getElementById('status').textContent,
  points: (document.getElementById('chart-rounds').data || []).filter((t) => t.mode === 'lines+markers')
    .map((t) => t.x.length),
  marker: window.__samePage === true,
})"""


def open_study_form(page: Any, server: Server, name: str, **fields: int) -> None:
    page.goto(f"{server.url}/experiments/new")
    page.wait_for_selector('#preset option[value="smoke"]', state="attached")
    page.select_option("#preset", "smoke")
    page.wait_for_function("document.getElementById('f-model').value === 'tiny-bert'")
    page.fill("#f-name", name)
    for field, value in {**TINY, "rounds": 2, **fields}.items():
        page.fill(f"#f-{field}", str(value))
    page.check("#study-on")


def variant(page: Any, row: int, name: str, overrides: str) -> None:
    rows = page.locator("#study-variants tbody tr")
    while rows.count() <= row:
        page.click("#study-add")
    rows.nth(row).locator(".v-name").fill(name)
    rows.nth(row).locator(".v-overrides").fill(overrides)


def target(page: Any, row: int, metric: str, bound: str, value: str) -> None:
    """Row ``row`` of the form's targets table (added as needed): its metric, its kind of bound and its value."""
    rows = page.locator("#study-targets tbody tr")
    while rows.count() <= row:
        page.click("#target-add")
    rows.nth(row).locator(".t-metric").select_option(metric)
    rows.nth(row).locator(".t-bound").select_option(bound)
    rows.nth(row).locator(".t-value").fill(value)


STUDY_READ = re.compile(r"/api/v1/studies/[0-9a-f-]{36}(\?.*)?$")


def api_rows(aggregate: dict[str, Any], baseline: str) -> list[dict[str, str]]:
    """The API's table as the CSV must hold it: one row per variant, every spread as Python writes the number."""
    def cell(v: Any) -> str:
        return "" if v is None else str(v)

    out = []
    for v in aggregate["variants"]:
        row = {"variant": v["variant"], "baseline": str(v["variant"] == baseline), "runs": str(v["runs"]),
               "finished": str(v["finished"]), "metric": cell(aggregate["metric"]), "spread": aggregate["spread"]}
        for group, spreads in (("", v["figures"]), ("vs_baseline.", v["vs_baseline"])):
            for name, s in spreads.items():
                row.update({f"{group}{name}.{part}": cell(s[part]) for part in ("mean", "half_range", "n")})
        out.append(row)
    return out


def test_a_study_from_the_form_fills_its_page_live_and_downloads_the_apis_table(
    page: Any, server: Server, tmp_path: Path
) -> None:
    # runs long enough (about a second each on a warm executor) for the page to see them finish one by one
    open_study_form(page, server, "e2e study", local_steps=40)
    variant(page, 0, "dense", "sparsity=0")
    variant(page, 1, "mask", "sparsity=0.5, prune_mode=mask")
    page.fill("#study-seeds", "0, 1")
    target(page, 0, "accuracy_vs_baseline", "within", "50")
    target(page, 1, "uplink_advantage", "at_least", "1.2")
    reads: list[str] = []  # the page's reads of the study: the whole of it, or the runs its events named
    page.on("request", lambda req: reads.append(req.url) if req.method == "GET" and STUDY_READ.search(req.url) else None)
    page.click("#submit")
    page.wait_for_url(STUDY_URL)
    study_id = STUDY_URL.search(page.url).group(1)  # type: ignore[union-attr]
    page.evaluate("window.__samePage = true")  # gone if the page reloads: updates must come in place

    seen: list[tuple[int, str, tuple[int, ...]]] = []

    def finished() -> bool:
        st = page.evaluate(STATE)
        assert st["marker"], "the study page reloaded"
        now = (st["finished"], st["status"], tuple(st["points"]))
        if not seen or seen[-1] != now:
            seen.append(now)
        return st["status"] == "succeeded" and st["finished"] == 4 and st["points"] == [2, 2]

    wait_until(finished, 300, "the study's page to show every run finished", interval=0.1)
    counts = [n for n, _, _ in seen]
    assert counts == sorted(counts) and len(set(counts)) >= 3, seen  # it filled run by run, in place
    assert any(s in ("queued", "running") for _, s, _ in seen), seen
    page.wait_for_function("document.getElementById('stream-state').textContent.includes('every run has finished')")
    assert page.locator("#partial-note").is_hidden()

    with server.api() as api:
        detail = api.get(f"/api/v1/studies/{study_id}").json()
    # live updates read only the runs the events named (with the table); the whole study only now and then
    partial = [parse_qs(urlsplit(u).query)["runs"] for u in reads if "runs=" in u]
    assert len(partial) >= 3 and len(partial) > len(reads) - len(partial), reads
    assert {r for ids in partial for r in ids} <= {r["id"] for r in detail["runs"]}
    assert detail["definition"]["variants"] == {"dense": {"sparsity": 0}, "mask": {"sparsity": 0.5, "prune_mode": "mask"}}
    assert detail["definition"]["seeds"] == [0, 1] and detail["definition"]["baseline"] == "dense"
    assert [t["metric"] for t in detail["definition"]["targets"]] == ["accuracy_vs_baseline", "uplink_advantage"]
    # the page's tables are the API's: a verdict per target on 'mask', every run linked
    verdicts = page.locator("#verdicts-table tbody tr")
    assert verdicts.count() == 2
    for i, v in enumerate(detail["aggregate"]["verdicts"]):
        assert verdicts.nth(i).locator("td").last.text_content() == v["text"]
        assert verdicts.nth(i).locator(".badge").text_content() == ("met" if v["met"] else "not met")
    # each target named as the form names its metric
    within = detail["definition"]["targets"][0]["within"]
    assert verdicts.nth(0).locator("td").first.text_content() == f"Final accuracy vs the baseline within {within:g} points"
    assert verdicts.nth(1).locator("td").first.text_content().startswith("Uplink advantage ≥ ")
    links = page.locator("#runs-table a.name")
    assert [links.nth(i).get_attribute("href") for i in range(links.count())] == [
        f"/experiments/{r['id']}" for r in detail["runs"]]
    mask = page.locator('#aggregate-table tr[data-variant="mask"] td[data-col="uplink_advantage"]').text_content()
    mask = mask.replace("\u00a0", " ")  # the cell breaks before its "±" only
    up = detail["aggregate"]["variants"][1]["figures"]["uplink_advantage"]
    assert mask == f"{up['mean']:.2f} ± {up['half_range']:.2f}×"
    frontier = page.evaluate("document.getElementById('chart-pareto-up').data.filter(t => t.mode === 'markers')"
                             ".map(t => t.name)")
    assert any("frontier" in n for n in frontier) and len(detail["aggregate"]["pareto"]["uplink_mb"]) >= 1

    # downloads: the table as CSV holds the API's aggregate row by row
    with page.expect_download() as got:
        page.click("#dl-aggregate-csv")
    path = tmp_path / "aggregate.csv"
    got.value.save_as(path)
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows == api_rows(detail["aggregate"], "dense")
    assert float(rows[1]["vs_baseline.accuracy_vs_baseline.n"]) == 2

    with page.expect_download() as got:  # the spec as YAML that `fedheads study run` reads
        page.click("#dl-spec")
    spec = yaml.safe_load(Path(got.value.path()).read_text())
    assert StudySpec.model_validate(spec).model_dump(mode="json") == detail["definition"]

    page.locator("#chart-rounds").scroll_into_view_if_needed()
    with page.expect_download() as got:
        page.click("#svg-chart-rounds")
    assert got.value.suggested_filename.endswith(".svg")
    assert Path(got.value.path()).read_text()[:200].lstrip().startswith("<svg")
    with page.expect_download() as got:
        page.click("#png-chart-pareto-up")
    assert Path(got.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    page.click('header a[href="/studies"]')  # the list links it
    page.wait_for_selector(f'#studies a[href="/studies/{study_id}"]')


def test_a_bad_variant_is_shown_in_its_row_naming_variant_and_field_and_nothing_is_created(
    page: Any, server: Server
) -> None:
    with server.api() as api:
        before = api.get("/api/v1/studies").json()["total"], api.get("/api/v1/experiments").json()["total"]
    open_study_form(page, server, "bad study")
    variant(page, 0, "dense", "sparsity=0")
    variant(page, 1, "typo", "sparsityy=0.9")
    variant(page, 2, "rules", "sparsity=0.5, compute_sparsity=0.9")
    page.click("#submit")
    rows = page.locator("#study-variants tbody tr")
    rows.nth(1).locator(".v-error").wait_for(state="visible")
    assert rows.nth(1).locator(".v-error").text_content() == (
        'variant "typo", field sparsityy: Extra inputs are not permitted')
    assert rows.nth(2).locator(".v-error").text_content().startswith(
        'variant "rules": compute_sparsity (0.9) must be <= sparsity (0.5)')
    assert rows.nth(0).locator(".v-error").is_hidden()
    assert "see the variants table" in page.text_content("#form-error")
    assert page.evaluate("document.activeElement.closest('tr') && document.activeElement.classList.contains('v-overrides')")

    rows.nth(1).locator(".v-name").fill("")  # caught in the page: nothing is sent
    rows.nth(2).locator(".v-overrides").fill("sparsity 0.5")
    page.click("#submit")
    page.wait_for_function("document.querySelectorAll('#study-variants tr.invalid').length === 2")
    assert rows.nth(1).locator(".v-error").text_content() == "give the variant a name"
    assert rows.nth(2).locator(".v-error").text_content() == (
        'variant "rules": "sparsity 0.5" is not field=value (write field=value pairs separated by commas)')
    assert STUDY_URL.search(page.url) is None
    with server.api() as api:
        assert (api.get("/api/v1/studies").json()["total"], api.get("/api/v1/experiments").json()["total"]) == before
