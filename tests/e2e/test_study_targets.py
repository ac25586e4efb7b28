"""The new-experiment form's targets table in a real headless Chromium against a real `fedheads serve`: targets of
any metric with the bound it takes become the created study's targets exactly, and a target the server refuses is
shown in its own row with nothing created."""

from __future__ import annotations

from typing import Any

from fedcore.study import Target
from tests.e2e.conftest import Server
from tests.e2e.test_study_page import STUDY_URL, open_study_form, target, variant

ROWS = "#study-targets tbody tr"


def counts(server: Server) -> tuple[int, int]:
    with server.api() as api:
        return api.get("/api/v1/studies").json()["total"], api.get("/api/v1/experiments").json()["total"]


def test_three_targets_of_different_kinds_become_the_studys_targets(page: Any, server: Server) -> None:
    open_study_form(page, server, "targets study")
    page.fill("#f-rounds", "1")
    variant(page, 0, "dense", "sparsity=0")
    variant(page, 1, "mask", "sparsity=0.5, prune_mode=mask")
    page.fill("#study-seeds", "0")

    assert page.locator(ROWS).count() == 0  # no target unless asked for
    page.click("#target-add")  # a new row: the first metric, its first bound and a sensible value, with its unit
    row = page.locator(ROWS).nth(0)
    assert row.locator(".t-metric").input_value() == "accuracy_vs_baseline"
    assert row.locator(".t-bound").input_value() == "within" and row.locator(".t-value").input_value() == "2"
    assert row.locator(".t-unit").text_content() == "points below the baseline"
    row.locator(".t-metric").select_option("ops_attention_reduction")  # a ratio: no 'within', unit ×
    assert row.locator(".t-bound option").all_text_contents() == ["at least", "at most"]
    assert row.locator(".t-value").input_value() == "1.5" and row.locator(".t-unit").text_content() == "×"
    assert "attention" in row.locator(".t-help").text_content()

    target(page, 0, "accuracy_vs_baseline", "within", "1.5")
    target(page, 1, "ops_attention_reduction", "at_least", "1.1")
    target(page, 2, "final_accuracy", "at_most", "99")
    target(page, 3, "train_speedup", "at_least", "2")
    page.locator(ROWS).nth(3).locator(".t-remove").click()  # removed: not sent
    assert page.locator(ROWS).nth(2).locator(".t-unit").text_content() == "points"
    page.click("#submit")
    page.wait_for_url(STUDY_URL)
    study_id = STUDY_URL.search(page.url).group(1)  # type: ignore[union-attr]

    with server.api() as api:
        detail = api.get(f"/api/v1/studies/{study_id}").json()
        api.post(f"/api/v1/studies/{study_id}/cancel")  # its runs are not needed here
    entered = [{"metric": "accuracy_vs_baseline", "within": 1.5}, {"metric": "ops_attention_reduction", "at_least": 1.1},
               {"metric": "final_accuracy", "at_most": 99.0}]
    assert detail["definition"]["targets"] == [Target.model_validate(t).model_dump(mode="json") for t in entered]
    # the page judges each target on 'mask' (not yet: no run has finished)
    page.wait_for_selector("#verdicts-table tbody tr")
    assert page.locator("#verdicts-table tbody tr").count() == 3


def test_a_bad_target_is_shown_in_its_row_and_nothing_is_created(page: Any, server: Server) -> None:
    before = counts(server)
    open_study_form(page, server, "bad target")
    variant(page, 0, "dense", "sparsity=0")
    variant(page, 1, "mask", "sparsity=0.5")
    target(page, 0, "uplink_advantage", "at_least", "1.8")
    target(page, 1, "accuracy_vs_baseline", "within", "-1")  # the server's check: within is >= 0
    target(page, 2, "last3_accuracy", "at_least", "60")
    page.click("#submit")
    rows = page.locator(ROWS)
    rows.nth(1).locator(".t-error").wait_for(state="visible")
    assert rows.nth(1).locator(".t-error").text_content() == (
        "target 2 (Final accuracy vs the baseline), within: Input should be greater than or equal to 0")
    assert rows.nth(0).locator(".t-error").is_hidden() and rows.nth(2).locator(".t-error").is_hidden()
    assert page.locator("#study-variants tr.invalid").count() == 0
    assert "see the targets table" in page.text_content("#form-error")
    assert page.evaluate("document.activeElement.classList.contains('t-value')")
    assert STUDY_URL.search(page.url) is None and counts(server) == before

    rows.nth(1).locator(".t-value").fill("")  # caught in the page: nothing is sent
    page.click("#submit")
    page.wait_for_function("document.querySelectorAll('#study-targets tr.invalid').length === 1")
    assert rows.nth(1).locator(".t-error").text_content() == "give the target's value (a number)"
    assert STUDY_URL.search(page.url) is None and counts(server) == before
