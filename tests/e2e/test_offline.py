"""The pages work with no outside network: /docs and /redoc render from local files (the `page` fixture
blocks and counts every request outside 127.0.0.1), and no chart offers to send its data to a cloud."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import InProcessServer


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
