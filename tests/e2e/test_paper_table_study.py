""""Reproduce the paper table" on /studies, in headless Chromium: one click creates the quick version of
bench/studies/paper_table.yaml as a study (the file's variants, baseline and targets; the sizing of
app/services/paper_table.py) and opens its page.

The server is the in-process app with no executor (`quiet_server`): the runs are created and stay queued, so the
test checks what the button creates and shows, not MiniLM training (the study runner is tested with tiny runs in
test_study_page.py); the study is cancelled from its page at the end.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import yaml

from app.services.paper_table import PAPER_TABLE, QUICK_OVERRIDES, QUICK_SEEDS
from fedcore.study import StudySpec, read_study_file
from tests.e2e.conftest import InProcessServer, wait_until

STUDY_URL = re.compile(r"/studies/([0-9a-f-]{36})$")


def test_reproduce_the_paper_table_creates_the_quick_study_of_the_study_file_and_opens_it(
    quiet_server: InProcessServer, page: Any
) -> None:
    full = StudySpec.model_validate(read_study_file(PAPER_TABLE))
    variants = list(full.variants)
    assert len(variants) == 9 and full.baseline == "dense FedAvg"  # the paper table's rows, not the --extra ones

    page.goto(f"{quiet_server.url}/studies")
    offer = page.locator("#paper-table").inner_text()
    assert "bench/studies/paper_table.yaml" in offer and "rounds 3 (the file: 15)" in offer
    shown = yaml.safe_load(page.locator("#paper-table-yaml").text_content())  # what it will create, before the click
    page.click("#btn-paper-table")
    page.wait_for_url(STUDY_URL)
    study_id = STUDY_URL.search(page.url).group(1)  # type: ignore[union-attr]

    with httpx.Client(base_url=quiet_server.url, timeout=30.0) as api:
        detail = api.get(f"/api/v1/studies/{study_id}").json()
    d = detail["definition"]
    assert list(d["variants"]) == variants and d["variants"] == full.model_dump(mode="json")["variants"]
    assert d["baseline"] == full.baseline and d["seeds"] == QUICK_SEEDS == [0]
    assert d["targets"] == full.model_dump(mode="json")["targets"]
    assert d["base"] == {"preset": full.base.preset, "overrides": {**full.base.overrides, **QUICK_OVERRIDES}}
    assert d["base"]["overrides"]["rounds"] == 3 and d["base"]["overrides"]["eval_size"] == 100
    assert StudySpec.model_validate(shown).model_dump(mode="json") == d  # the page said what it would create
    assert [(r["variant"], r["seed"]) for r in detail["runs"]] == [(v, 0) for v in variants]
    assert {r["status"] for r in detail["runs"]} == {"queued"}

    # its page: the name, every variant in the table and every run linked, in the file's order
    assert page.locator("#study-name").text_content() == f"{full.name} (quick)"
    page.wait_for_selector("#runs-table tbody tr[data-run]")
    rows = page.locator("#runs-table tbody tr[data-run]")
    assert [rows.nth(i).get_attribute("data-variant") for i in range(rows.count())] == variants
    table = page.locator("#aggregate-table tbody tr[data-variant]")
    assert [table.nth(i).get_attribute("data-variant") for i in range(table.count())] == variants

    page.click("#btn-cancel")  # nothing trains here, but leave nothing queued
    page.wait_for_function("document.getElementById('status').textContent.trim() === 'cancelled'")
    with httpx.Client(base_url=quiet_server.url, timeout=30.0) as api:
        wait_until(lambda: {r["status"] for r in api.get(f"/api/v1/studies/{study_id}").json()["runs"]}
                   == {"cancelled"}, 20, "every run of the study cancelled")

    page.goto(f"{quiet_server.url}/studies")  # and it is listed
    assert page.locator(f'#studies tr[data-id="{study_id}"] a.name').text_content() == f"{full.name} (quick)"
