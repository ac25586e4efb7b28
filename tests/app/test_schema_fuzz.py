"""Property-based fuzz of the OpenAPI schema (schemathesis): no 5xx, every response as documented.

The app runs in-process on a temp SQLite database with an executor that keeps jobs queued
(tests/app/held.py), so valid random specs are recorded but never train. Bounded: at most
MAX_EXAMPLES generated requests per operation and TIME_BUDGET seconds; the SSE stream is left out (it never ends
while an experiment is queued).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from app.main import create_app
from tests.app.held import HeldExecutor, held_settings

MAX_EXAMPLES = 25
# No 5xx, every status code / content type / body / header as documented. Left out: "positive data
# accepted" (a spec's cross-field relations, e.g. clients_per_round <= num_clients, and the one-of
# spec/preset rule are not JSON Schema, so a schema-valid body may rightly get a 422).
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]
TIME_BUDGET = 90.0  # seconds for all operations together; past it the remaining ones are skipped (and named)


@pytest.fixture(scope="module")
def fuzz_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    app = create_app(held_settings(folder), background=False, executor_factory=HeldExecutor)
    with TestClient(app):  # runs the lifespan: the held executor is in place for every request
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        yield schema.exclude(path_regex=r".*/events$")


def test_api_answers_as_documented_when_given_generated_requests(fuzz_schema: schemathesis.BaseSchema) -> None:
    failures: list[str] = []
    tested: list[str] = []
    deadline = time.monotonic() + TIME_BUDGET
    for result in fuzz_schema.get_all_operations():
        operation = result.ok()
        if time.monotonic() > deadline:
            failures.append(f"{operation.label}: not fuzzed, the time budget ran out")
            continue

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=CHECKS)

        try:
            check()
        except Exception as err:  # every operation is tried; all failures are reported together
            failures.append(f"{operation.label}: {err}")
        tested.append(operation.label)
    assert len(tested) >= 12, tested
    assert not failures, "\n\n".join(failures)
