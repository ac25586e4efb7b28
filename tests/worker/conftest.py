"""Fixtures of the worker tests: the same session stack as tests/app (one set of processes)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.app.stack import Stack, clean_rows, get_stack


@pytest.fixture(scope="session")
def stack() -> Stack:
    return get_stack()


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    """An HTTP client of the stack's API, on an empty database."""
    clean_rows(stack.db_url)
    with stack.client() as client:
        yield client
