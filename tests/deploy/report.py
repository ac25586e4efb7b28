"""Where test_compose_stack.py leaves the lines that conftest.py prints in the terminal summary."""

from __future__ import annotations

import pytest

REPORT_KEY = pytest.StashKey[list[str]]()
