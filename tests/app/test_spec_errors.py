"""A submission with bad fields also hears of the spec's broken rules across fields, in the same 422."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.services.spec_errors import cross_field_errors
from tests.app.held import held_client

CROSS = "clients_per_round (3) must be <= num_clients (2)"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with held_client(tmp_path) as c:
        yield c


def messages(resp: Any) -> list[tuple[list[Any], str]]:
    assert resp.status_code == 422, resp.text
    return [(e["loc"], e["msg"]) for e in resp.json()["detail"]]


@pytest.mark.parametrize("path", ["/api/v1/experiments", "/ui/validate"])
def test_a_spec_with_a_bad_field_also_reports_a_broken_rule_across_fields(client: TestClient, path: str) -> None:
    spec = {"model": "tiny-bert", "dataset": "synthetic", "sparsity": 2, "num_clients": 2, "clients_per_round": 3}
    got = messages(client.post(path, json={"spec": spec}))
    assert (["body", "spec", "sparsity"], "Input should be less than or equal to 0.99") in got
    assert (["body", "spec"], f"Value error, {CROSS}") in got
    assert client.get("/api/v1/experiments").json()["total"] == 0


def test_preset_overrides_with_a_bad_field_also_report_a_broken_rule_across_fields(client: TestClient) -> None:
    got = messages(client.post("/api/v1/experiments",
                               json={"preset": "smoke", "overrides": {"sparsity": 2, "num_clients": 2}}))
    assert [loc for loc, _ in got] == [["body", "overrides", "sparsity"], ["body", "overrides"]]
    assert CROSS in got[1][1]


def test_a_rule_broken_only_by_a_replaced_default_is_not_reported() -> None:
    # clients_per_round is bad; at its default (10) it would exceed num_clients (2): the user did not write that
    assert cross_field_errors({"clients_per_round": "x", "num_clients": 2}, [{"loc": ("clients_per_round",)}]) == []
    assert cross_field_errors({"sparsity": 0.5}, []) == []  # no field errors: pydantic already ran the rules
    found = cross_field_errors({"sparsity": 2, "num_clients": 2, "clients_per_round": 3}, [{"loc": ("sparsity",)}])
    assert [e["msg"] for e in found] == [f"Value error, {CROSS}"]
