"""The compose test's timings and image sizes, shown in the terminal summary (outside output capture)."""

from __future__ import annotations

import pytest

from tests.deploy.report import REPORT_KEY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = terminalreporter.config.stash.get(REPORT_KEY, [])
    if lines:
        terminalreporter.section("compose stack")
        for line in lines:
            terminalreporter.write_line(line)
