"""Finding and keeping runs in a real headless Chromium: the list searches, filters by tag and sorts; tags and
notes are edited on the experiment page and come back; runs are deleted from the page."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.conftest import InProcessServer
from tests.e2e.seed import add_experiment, add_study

NAMES = "() => [...document.querySelectorAll('#experiments tbody tr')].map((tr) => tr.querySelector('a.name').textContent)"


def listed(page: Any, expected: list[str]) -> None:
    """Wait until the list shows exactly ``expected``, in order."""
    page.wait_for_function(f"(want) => JSON.stringify(({NAMES})()) === JSON.stringify(want)", arg=expected)


def seed_four(srv: InProcessServer) -> dict[str, str]:
    """Fake runs: accuracy grows with the stored rounds; uplink advantage is 1 / (1 - sparsity / 2)."""
    with srv.sessions.begin() as s:
        runs = {
            "alpha dense": add_experiment(s, name="alpha dense", status="succeeded", rounds_done=2, sparsity=0.0,
                                          tags=["baseline"]),
            "beta s=0.9": add_experiment(s, name="beta s=0.9", status="succeeded", rounds_done=1, sparsity=0.9,
                                         spec={"prune_mode": "drop"}),
            "gamma s=0.5": add_experiment(s, name="gamma s=0.5", status="succeeded", rounds_done=4, sparsity=0.5),
            "delta queued": add_experiment(s, name="delta queued", status="queued", rounds_done=0),
        }
        return {name: str(e.id) for name, e in runs.items()}


def test_the_list_sorts_by_a_column_and_searches_by_name(quiet_server: InProcessServer, page: Any) -> None:
    seed_four(quiet_server)
    page.goto(quiet_server.url)
    listed(page, ["delta queued", "gamma s=0.5", "beta s=0.9", "alpha dense"])  # all created together: by id
    row = page.locator("#experiments tbody tr", has_text="beta s=0.9")
    assert [row.locator(f"td.{c}").text_content() for c in ("c-model", "c-dataset", "c-sparsity", "c-mode")] == \
        ["tiny-bert", "synthetic", "0.9", "drop"]
    assert page.locator("#experiments tbody tr", has_text="alpha dense").locator("td.c-mode").text_content() == "dense"

    page.click('th[data-sort="best_accuracy"] a.sort')
    listed(page, ["gamma s=0.5", "alpha dense", "beta s=0.9", "delta queued"])  # no rounds: last
    assert page.get_attribute('th[data-sort="best_accuracy"]', "aria-sort") == "descending"
    page.click('th[data-sort="best_accuracy"] a.sort')  # again: ascending, still without-rounds last
    listed(page, ["beta s=0.9", "alpha dense", "gamma s=0.5", "delta queued"])
    assert page.get_attribute('th[data-sort="best_accuracy"]', "aria-sort") == "ascending"
    page.click('th[data-sort="uplink_advantage"] a.sort')
    listed(page, ["beta s=0.9", "gamma s=0.5", "alpha dense", "delta queued"])
    page.click('th[data-sort="name"] a.sort')
    listed(page, ["alpha dense", "beta s=0.9", "delta queued", "gamma s=0.5"])
    assert "sort=name" in page.url and "order=asc" in page.url

    page.fill("#search", "S=0")  # any case, part of the name; the sort stays
    listed(page, ["beta s=0.9", "gamma s=0.5"])
    assert "q=S%3D0" in page.url
    page.reload()  # the URL keeps the filters and the order
    listed(page, ["beta s=0.9", "gamma s=0.5"])
    assert page.input_value("#search") == "S=0"
    page.fill("#search", "no such run")
    listed(page, [])
    assert page.locator("#empty").is_visible()
    page.fill("#search", "")
    listed(page, ["alpha dense", "beta s=0.9", "delta queued", "gamma s=0.5"])


def test_tags_and_note_round_trip_from_the_experiment_page_and_filter_the_list(
    quiet_server: InProcessServer, page: Any
) -> None:
    ids = seed_four(quiet_server)
    page.goto(f"{quiet_server.url}/experiments/{ids['gamma s=0.5']}")
    assert page.input_value("#tags-input") == ""
    page.fill("#tags-input", " snli ,  mask-0.5, snli,")
    page.fill("#note-input", "looks like dense after 4 rounds\n<b>not bold</b>")
    page.click("#save-keep")
    page.wait_for_function("document.getElementById('keep-note').textContent.startsWith('saved')")
    assert page.input_value("#tags-input") == "snli, mask-0.5"  # trimmed, repeats dropped
    got = httpx.get(f"{quiet_server.url}/api/v1/experiments/{ids['gamma s=0.5']}").json()
    assert got["tags"] == ["snli", "mask-0.5"]
    assert got["note"] == "looks like dense after 4 rounds\n<b>not bold</b>"

    page.reload()  # stored, not just kept in the page
    assert page.input_value("#tags-input") == "snli, mask-0.5"
    assert page.input_value("#note-input") == "looks like dense after 4 rounds\n<b>not bold</b>"
    page.fill("#tags-input", "a, " + "y" * 41)
    page.click("#save-keep")
    page.wait_for_function("document.getElementById('keep-note').textContent.startsWith('not saved')")
    assert "40" in page.text_content("#keep-note")  # the server's reason: at most 40 characters

    page.goto(quiet_server.url)
    listed(page, ["delta queued", "gamma s=0.5", "beta s=0.9", "alpha dense"])
    assert page.locator("#tag-filter option").all_text_contents() == ["any", "baseline", "mask-0.5", "snli"]
    page.select_option("#tag-filter", "snli")
    listed(page, ["gamma s=0.5"])
    assert "tag=snli" in page.url
    page.select_option("#tag-filter", "")
    listed(page, ["delta queued", "gamma s=0.5", "beta s=0.9", "alpha dense"])
    page.locator("#experiments tbody tr", has_text="alpha dense").locator("button.tag", has_text="baseline").click()
    listed(page, ["alpha dense"])
    assert page.input_value("#tag-filter") == "baseline"


def test_runs_are_deleted_from_the_list_and_from_their_page(quiet_server: InProcessServer, page: Any) -> None:
    ids = seed_four(quiet_server)
    with quiet_server.sessions.begin() as s:
        running = str(add_experiment(s, name="epsilon running", status="running", rounds_done=1).id)
    page.goto(quiet_server.url)
    listed(page, ["epsilon running", "delta queued", "gamma s=0.5", "beta s=0.9", "alpha dense"])
    assert page.locator(f'tr[data-id="{running}"] button.delete').is_disabled()  # cancel it first

    dialogs: list[str] = []
    page.once("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.locator(f'tr[data-id="{ids["beta s=0.9"]}"] button.delete').click()
    page.wait_for_timeout(300)
    assert dialogs and "beta s=0.9" in dialogs[0]
    listed(page, ["epsilon running", "delta queued", "gamma s=0.5", "beta s=0.9", "alpha dense"])  # dismissed: kept

    page.once("dialog", lambda d: d.accept())
    page.locator(f'tr[data-id="{ids["beta s=0.9"]}"] button.delete').click()
    listed(page, ["epsilon running", "delta queued", "gamma s=0.5", "alpha dense"])
    page.reload()
    listed(page, ["epsilon running", "delta queued", "gamma s=0.5", "alpha dense"])

    page.goto(f"{quiet_server.url}/experiments/{running}")
    assert page.locator("#btn-delete").is_disabled()
    page.goto(f"{quiet_server.url}/experiments/{ids['alpha dense']}")
    page.once("dialog", lambda d: d.accept())
    page.click("#btn-delete")
    page.wait_for_url(f"{quiet_server.url}/")
    listed(page, ["epsilon running", "delta queued", "gamma s=0.5"])


def test_a_study_run_has_one_link_to_its_study(quiet_server: InProcessServer, page: Any) -> None:
    with quiet_server.sessions.begin() as s:
        run = add_experiment(s, name="run s=0.5", status="succeeded", rounds_done=1)
        study = add_study(s, name="run", runs={("s=0.5", 0): run}, baseline="s=0.5")
    page.goto(quiet_server.url)
    listed(page, ["run s=0.5"])
    page.wait_for_function("document.getElementById('list-note').textContent.includes('updated')")  # a poll ran
    links = page.locator('#experiments a[href^="/compare?sweep"]')
    assert links.count() == 1
    assert links.get_attribute("href") == f"/compare?sweep={study.id}"
