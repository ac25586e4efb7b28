"""What pruning does to learning, shown to the user: the experiment page's client-loss chart and sparsities on a
real drop-mode smoke run, "not recorded" on a run stored without them, and the form's warning from the committed
benchmark results with a link to their table."""

from __future__ import annotations

import json
import statistics
import uuid
from pathlib import Path
from typing import Any

from app.services.advice import RESULTS_DIR
from tests.e2e.conftest import TINY, InProcessServer, Server, wait_until
from tests.e2e.seed import add_experiment

LOSSES = ["loss_global", "loss_pruned", "loss_local"]
NAMES = ["global model received", "as the client trains it (pruned)", "after local training"]


def run_drop_smoke(server: Server) -> tuple[str, list[dict[str, Any]]]:
    """A finished smoke run in drop mode: half the heads not uploaded, a quarter removed from the local forward."""
    body = {"name": "drop smoke", "preset": "smoke",
            "overrides": {**TINY, "prune_mode": "drop", "sparsity": 0.5, "compute_sparsity": 0.25}}
    with server.api() as api:
        exp_id = api.post("/api/v1/experiments", json=body).raise_for_status().json()["id"]
        wait_until(lambda: api.get(f"/api/v1/experiments/{exp_id}").json()["status"] in ("succeeded", "failed"),
                   150, "the drop-mode smoke run to finish")
        assert api.get(f"/api/v1/experiments/{exp_id}").json()["status"] == "succeeded", server.log_tail()
        items = api.get(f"/api/v1/experiments/{exp_id}/rounds").json()["items"]
    return exp_id, [it["record"] for it in items]


def share_off(mask: list[list[bool]]) -> float:
    cells = [k for row in mask for k in row]
    return sum(not k for k in cells) / len(cells)


def pct(x: float) -> str:  # the page's fmt.pct(x, 0)
    return f"{100 * x:.0f} %"


def test_a_drop_mode_run_plots_the_clients_global_pruned_and_local_losses_and_both_sparsities(
        page: Any, server: Server, artifacts: Path) -> None:
    exp_id, recs = run_drop_smoke(server)
    assert len(recs) == TINY["rounds"]
    clients = [c for r in recs for c in r["clients"]]
    assert any(c["loss_pruned"] != c["loss_global"] for c in clients)  # drop mode: the trained network differs

    page.goto(f"{server.url}/experiments/{exp_id}")
    page.wait_for_function(f"window.fedheads && window.fedheads.state.records.length === {len(recs)}")
    page.locator("#chart-pl").scroll_into_view_if_needed()
    page.wait_for_function("(() => { const gd = document.getElementById('chart-pl'); "
                           f"return gd.data && gd.data[0].x.length === {len(recs)}; }})()")
    traces = page.evaluate("document.getElementById('chart-pl').data.map(t => ({name: t.name, x: t.x, y: t.y}))")
    assert [t["name"] for t in traces] == NAMES
    for t, key in zip(traces, LOSSES, strict=True):
        assert t["x"] == [r["round"] for r in recs]
        want = [statistics.fmean(c[key] for c in r["clients"]) for r in recs]
        assert all(abs(a - b) < 1e-9 for a, b in zip(t["y"], want, strict=True)), (key, t["y"], want)
    assert page.locator("#pl-note").text_content().startswith("Mean loss of the round's clients")

    last = recs[-1]["clients"]  # the cursor follows the last round
    assert page.text_content("#sparsity-round") == str(recs[-1]["round"])
    assert page.text_content("#sparsity-comm") == pct(statistics.fmean(share_off(c["kept"]) for c in last))
    assert page.locator("#sparsity-compute-part").is_visible()
    compute = statistics.fmean(share_off(c["compute"]) for c in last)
    assert 0 < compute < statistics.fmean(share_off(c["kept"]) for c in last)
    assert page.text_content("#sparsity-compute") == pct(compute)

    page.evaluate("window.fedheads.flush()")
    page.locator("#h-pl").scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    page.locator("section[aria-labelledby=h-pl]").screenshot(path=str(artifacts / "pruning-losses.png"))
    page.locator("section[aria-labelledby=h-masks]").screenshot(path=str(artifacts / "pruning-sparsity.png"))


def test_a_run_stored_without_the_pruned_loss_says_not_recorded(quiet_server: InProcessServer, page: Any) -> None:
    with quiet_server.sessions.begin() as s:  # seed records have loss_global and loss_local, no loss_pruned
        exp_id: uuid.UUID = add_experiment(s, name="old run", status="succeeded", rounds_done=3, rounds_total=3).id
    page.goto(f"{quiet_server.url}/experiments/{exp_id}")
    page.wait_for_function("window.fedheads && window.fedheads.state.records.length === 3")
    page.evaluate("window.fedheads.flush()")
    assert page.locator("#chart-pl").is_hidden()
    assert page.text_content("#pl-note").startswith("Not recorded:")
    assert page.evaluate("document.getElementById('chart-pl').data === undefined")
    assert page.locator("#sparsity-compute-part").is_hidden()  # no compute masks: only the communication sparsity
    assert page.text_content("#sparsity-comm").endswith("%")


def measured(table: str, row: str, rounds: int) -> tuple[float, float, int]:
    """(mean final accuracy of a row, of the file's dense FedAvg with the same rounds, the row's seeds)."""
    runs = json.loads((RESULTS_DIR / f"{table}.json").read_text())

    def finals(name: str) -> list[float]:
        return [r["final_accuracy"] for r in runs if r["name"] == name and len(r["accuracy"]) == rounds]

    return statistics.fmean(finals(row)), statistics.fmean(finals("dense FedAvg")), len(finals(row))


def test_the_form_warns_with_the_measured_figure_when_drop_mode_did_not_learn(
        page: Any, server: Server, artifacts: Path) -> None:
    acc, dense, seeds = measured("paper_table-cls", "drop s=0.9", 15)
    page.goto(f"{server.url}/experiments/new")
    page.wait_for_selector('#preset option[value="paper-pruned"]', state="attached")
    page.select_option("#preset", "paper-pruned")
    page.wait_for_function("document.getElementById('f-model').value === 'minilm-l6'")
    page.select_option("#f-pooling", "cls")
    page.fill("#f-sparsity", "0.9")
    advice = page.locator("#advice")
    page.wait_for_timeout(600)
    assert advice.is_hidden()  # mask mode at 0.9 learned in the benchmark: nothing to say

    page.select_option("#f-prune_mode", "drop")
    line = advice.locator("p", has_text="table paper_table-cls)")
    line.wait_for(state="visible")
    text = line.text_content()
    assert f"{100 * acc:.1f}% mean final accuracy vs {100 * dense:.1f}% for dense FedAvg" in text, text
    assert f"({seeds} seeds, 15 rounds, table paper_table-cls)" in text and "drop s=0.9" in text
    assert line.locator("a").get_attribute("href") == "/results/paper_table-cls"
    assert page.locator("#submit").is_enabled() and page.locator("#form-error").is_hidden()  # a warning, not an error
    page.locator(".actions").scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "form-advice.png"))

    page.select_option("#f-prune_mode", "mask")  # back to mask mode: the warning goes
    advice.wait_for(state="hidden")
    page.select_option("#f-prune_mode", "drop")
    line.wait_for(state="visible")
    line.locator("a").click()
    page.wait_for_url(f"{server.url}/results/paper_table-cls")
    assert page.locator("#results table").first.is_visible()
    assert page.locator("#results td", has_text="drop s=0.9").count() >= 1
