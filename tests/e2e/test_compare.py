"""Compare in a real headless Chromium: what differs, warnings for runs that are not comparable, one colour per
run everywhere, legends that name each run once, hover in %, and the loss, upload, OPs and wall-time charts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.e2e.conftest import InProcessServer
from tests.e2e.seed import add_experiment

CHARTS = ["chart-cacc", "chart-pareto", "chart-closs", "chart-cup", "chart-cops", "chart-cwall"]


def drawn(page: Any, chart_id: str, traces: int) -> Any:
    page.locator(f"#{chart_id}").scroll_into_view_if_needed()
    page.wait_for_function(f"(document.getElementById('{chart_id}').data || []).length === {traces}")
    return page.evaluate(f"""(() => {{ const gd = document.getElementById('{chart_id}');
      return {{ names: gd.data.map((t) => t.name), colours: gd.data.map((t) => t.line.color),
               x: gd.data.map((t) => t.x), y: gd.data.map((t) => t.y), hover: gd.data.map((t) => t.hovertemplate),
               xtitle: gd.layout.xaxis.title.text, legendY: gd._fullLayout.legend.y }}; }})()""")


def test_runs_on_different_datasets_are_compared_with_a_warning_and_what_differs(
    quiet_server: InProcessServer, page: Any
) -> None:
    with quiet_server.sessions.begin() as s:
        older = add_experiment(s, name="s=0.5", status="succeeded", rounds_done=3, sparsity=0.5)
        newer = add_experiment(s, name="s=0.5", status="succeeded", rounds_done=4, sparsity=0.5,
                               spec={"dataset": "bbc-news", "seed": 3})
        older.created_at = newer.created_at - timedelta(minutes=1)
        older_id, newer_id = str(older.id), str(newer.id)
    page.goto(f"{quiet_server.url}/compare?ids={newer_id},{older_id}")  # the URL's order does not decide colours

    warnings = page.locator(".compare-warning").all_text_contents()
    assert any("Different datasets" in w and "synthetic" in w and "bbc-news" in w for w in warnings), warnings
    assert any("different test examples" in w and "seed" in w for w in warnings), warnings
    assert not any("Different models" in w for w in warnings)
    assert "dataset, seed" in page.text_content("#differs")  # spec order; sparsity is the same

    heads = page.locator("#compare-table thead th").all_text_contents()
    assert heads[3:6] == ["model", "dataset", "seed"]
    assert page.locator("#compare-table thead th.differs").all_text_contents() == ["dataset", "seed"]
    rows = page.locator("#compare-table tbody tr")
    assert rows.nth(0).get_attribute("data-id") == older_id  # oldest first: the first colour
    assert rows.nth(0).locator('td[data-field="dataset"]').text_content() == "synthetic"
    assert rows.nth(1).locator('td[data-field="dataset"]').text_content() == "bbc-news"
    assert rows.nth(1).locator('td[data-field="seed"]').text_content() == "3"
    labels = rows.locator("th a").all_text_contents()
    assert labels == [f"s=0.5 · {older_id[:8]}", f"s=0.5 · {newer_id[:8]}"]  # same name, told apart

    swatches = page.evaluate("[...document.querySelectorAll('#compare-table .swatch')]"
                             ".map((s) => getComputedStyle(s).backgroundColor)")
    assert len(set(swatches)) == 2
    colours = None
    for chart_id in CHARTS:
        fig = drawn(page, chart_id, 2)
        assert fig["names"] == labels, chart_id  # each run named once, no "(s=0.5)" added
        colours = colours or fig["colours"]
        assert fig["colours"] == colours, chart_id  # one colour per run on every chart
        assert fig["legendY"] > 1, chart_id  # the legend sits above the plot, not on the x axis title
    assert colours[0] != colours[1]
    rgb = page.evaluate("(cs) => cs.map((c) => { const d = document.createElement('div'); d.style.color = c; "
                        "document.body.append(d); const v = getComputedStyle(d).color; d.remove(); return v; })",
                        colours)
    assert rgb == swatches  # the table's swatch is the run's line colour

    acc = drawn(page, "chart-cacc", 2)
    assert all("%{y:.1f} %" in h for h in acc["hover"])
    assert [len(x) for x in acc["x"]] == [3, 4] and acc["xtitle"] == "round"
    assert 30 < acc["y"][0][0] < 100  # percent, not a fraction
    loss = drawn(page, "chart-closs", 2)
    assert [len(y) for y in loss["y"]] == [3, 4] and 0 < loss["y"][0][0] < 2
    up = drawn(page, "chart-cup", 2)
    assert up["y"][0] == sorted(up["y"][0]) and up["y"][0][-1] > up["y"][0][0] > 0  # cumulative MB
    ops = drawn(page, "chart-cops", 2)
    assert ops["y"][0][0] > 0

    page.select_option("#x-axis", "time")  # the curves against elapsed wall time
    page.wait_for_function("document.getElementById('chart-cacc').layout.xaxis.title.text.startsWith('elapsed')")
    acc_t = drawn(page, "chart-cacc", 2)
    wall = drawn(page, "chart-cwall", 2)
    assert acc_t["x"][0][-1] == sum(wall["y"][0]) and acc_t["x"][0] == sorted(acc_t["x"][0])


def test_runs_of_one_dataset_and_model_are_compared_without_a_warning(
    quiet_server: InProcessServer, page: Any
) -> None:
    with quiet_server.sessions.begin() as s:
        a = add_experiment(s, name="dense", status="succeeded", rounds_done=2, sparsity=0.0)
        b = add_experiment(s, name="pruned", status="succeeded", rounds_done=2, sparsity=0.9, spec={"prune_mode": "drop"})
        ids = f"{a.id},{b.id}"
    page.goto(f"{quiet_server.url}/compare?ids={ids}")
    assert page.locator(".compare-warning").count() == 0
    assert "sparsity, prune_mode" in page.text_content("#differs")
    assert page.locator("#compare-table thead th.differs").all_text_contents() == ["sparsity", "prune_mode"]
    assert drawn(page, "chart-cacc", 2)["names"] == ["dense", "pruned"]
