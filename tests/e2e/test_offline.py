"""The pages work with no outside network: /docs and /redoc render from local files (the `page` fixture
blocks and counts every request outside 127.0.0.1), and no chart offers to send its data to a cloud."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import InProcessServer
from tests.e2e.seed import add_experiment


def test_swagger_ui_renders_offline(quiet_server: InProcessServer, page: Any, outside_requests: list[str]) -> None:
    page.goto(f"{quiet_server.url}/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "fedheads" in page.text_content(".swagger-ui .info .title")
    page.wait_for_selector(".opblock")
    paths = page.locator(".opblock-summary-path").all_text_contents()
    assert any("/api/v1/experiments" in p for p in paths), paths
    page.locator(".opblock-summary").first.click()  # an operation opens with its parameters and examples
    page.wait_for_selector(".opblock-body")
    assert page.locator(".swagger-ui img[src^='http']").count() == 0
    assert outside_requests == []


def test_redoc_renders_offline(quiet_server: InProcessServer, page: Any, outside_requests: list[str]) -> None:
    page.goto(f"{quiet_server.url}/redoc")
    page.wait_for_selector("redoc .api-content h1")
    assert "fedheads" in page.text_content("redoc .api-content h1")
    page.wait_for_selector("[data-section-id^='operation/']", state="attached")
    assert page.locator("[data-section-id^='operation/']").count() >= 5
    fonts = page.evaluate("[...document.querySelectorAll('link[rel=stylesheet]')].map(l => l.href)")
    assert all(f.startswith(quiet_server.url) for f in fonts), fonts
    assert outside_requests == []


MODE_BARS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => ({
  id: gd.id,
  buttons: [...gd.querySelectorAll('.modebar-btn')].map(b => b.getAttribute('data-title') || ''),
  logo: gd.querySelectorAll('.modebar-btn.plotlyjsicon, a[href*="plot.ly"], a[href*="plotly.com"]').length,
  context: {cloud: gd._context.showSendToCloud, logo: gd._context.displaylogo, url: gd._context.plotlyServerURL},
}))"""
EXPERIMENT_CHARTS = ["chart-acc", "chart-data", "chart-imp", "chart-aggw", "chart-agree", "chart-strip", "chart-freq",
                     "chart-sel", "chart-comm", "chart-cum", "chart-ops", "chart-wall"]


def assert_no_cloud_buttons(bars: list[dict[str, Any]]) -> None:
    for bar in bars:
        assert bar["buttons"], f"{bar['id']} has no mode bar (nothing checked)"
        assert "Download plot as a PNG" in bar["buttons"], bar
        offending = [b for b in bar["buttons"] if any(w in b.lower() for w in ("cloud", "share", "studio", "plotly"))]
        assert not offending and bar["logo"] == 0, bar
        assert bar["context"] == {"cloud": False, "logo": False, "url": ""}, bar


def test_no_chart_offers_to_upload_or_shows_the_plotly_logo(quiet_server: InProcessServer, page: Any) -> None:
    with quiet_server.sessions.begin() as s:
        ids = [add_experiment(s, name=f"run {i}", status="succeeded", rounds_done=4, sparsity=sp).id
               for i, sp in enumerate((0.0, 0.5))]
    page.goto(f"{quiet_server.url}/experiments/{ids[1]}")
    page.wait_for_function("window.fedheads && window.fedheads.state.records.length === 4")
    page.evaluate("window.fedheads.flush()")
    page.wait_for_function(f"{EXPERIMENT_CHARTS}.every(id => document.getElementById(id).data)")
    bars = page.evaluate(MODE_BARS)
    assert sorted(b["id"] for b in bars) == sorted(EXPERIMENT_CHARTS)
    assert_no_cloud_buttons(bars)

    page.goto(f"{quiet_server.url}/compare?ids={ids[0]},{ids[1]}")
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 2")
    bars = page.evaluate(MODE_BARS)
    assert {"chart-cacc", "chart-pareto"} <= {b["id"] for b in bars}
    assert_no_cloud_buttons(bars)
