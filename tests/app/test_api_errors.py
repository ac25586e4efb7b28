"""Bad input is a 422 naming the field; an unknown id is a 404; an illegal state change is a 409."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.app.stack import TEST_JOB, Stack, insert_experiment


def _locs(resp: httpx.Response) -> list[list[str]]:
    return [e["loc"] for e in resp.json()["detail"]]


def test_create_returns_422_naming_the_field_when_a_spec_value_is_out_of_range(api: httpx.Client) -> None:
    resp = api.post("/api/v1/experiments", json={"name": "x", "spec": {"model": "tiny-bert", "rounds": 0}})
    assert resp.status_code == 422
    assert ["body", "spec", "rounds"] in _locs(resp)
    assert "greater than or equal to 1" in resp.text


def test_create_returns_422_naming_the_override_when_it_breaks_the_preset(api: httpx.Client) -> None:
    resp = api.post("/api/v1/experiments", json={"preset": "smoke", "overrides": {"sparsity": 2, "bogus": 1}})
    assert resp.status_code == 422
    locs = _locs(resp)
    assert ["body", "overrides", "sparsity"] in locs
    assert ["body", "overrides", "bogus"] in locs
    assert "0.99" in resp.text


def test_create_returns_422_naming_both_fields_when_a_relation_is_violated(api: httpx.Client) -> None:
    resp = api.post(
        "/api/v1/experiments",
        json={"preset": "smoke", "overrides": {"clients_per_round": 9, "num_clients": 4}},
    )
    assert resp.status_code == 422
    assert "clients_per_round (9) must be <= num_clients (4)" in resp.text


def test_create_returns_422_when_the_preset_is_unknown(api: httpx.Client) -> None:
    resp = api.post("/api/v1/experiments", json={"preset": "nope"})
    assert resp.status_code == 422
    assert _locs(resp) == [["body", "preset"]]
    assert "smoke" in resp.text  # names the presets to choose from


def test_create_returns_422_when_both_spec_and_preset_are_given(api: httpx.Client) -> None:
    resp = api.post("/api/v1/experiments", json={"preset": "smoke", "spec": {"model": "tiny-bert"}})
    assert resp.status_code == 422
    assert "exactly one of 'spec' and 'preset'" in resp.text


def test_create_keeps_nothing_when_the_input_is_invalid(api: httpx.Client) -> None:
    api.post("/api/v1/experiments", json={"preset": "smoke", "overrides": {"rounds": -1}})
    assert api.get("/api/v1/experiments").json()["total"] == 0


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", ""),
        ("GET", "/rounds"),
        ("GET", "/rounds/1"),
        ("GET", "/clients"),
        ("GET", "/events"),
        ("GET", "/adapter"),
        ("POST", "/cancel"),
        ("POST", "/resume"),
        ("DELETE", ""),
    ],
)
def test_experiment_endpoints_return_404_when_the_id_is_unknown(
    api: httpx.Client, method: str, path: str
) -> None:
    unknown = uuid.uuid4()
    resp = api.request(method, f"/api/v1/experiments/{unknown}{path}")
    assert resp.status_code == 404
    assert str(unknown) in resp.json()["detail"]


def test_experiment_endpoints_return_422_when_the_id_is_not_a_uuid(api: httpx.Client) -> None:
    resp = api.get("/api/v1/experiments/not-a-uuid")
    assert resp.status_code == 422
    assert _locs(resp) == [["path", "experiment_id"]]


def test_round_returns_404_when_that_round_is_not_stored(api: httpx.Client, stack: Stack) -> None:
    exp_id = insert_experiment(stack.db_url, "running", rounds_done=0)
    resp = api.get(f"/api/v1/experiments/{exp_id}/rounds/2")
    assert resp.status_code == 404
    assert "no stored round 2" in resp.json()["detail"]


@pytest.mark.parametrize(
    "status,method,path",
    [
        ("succeeded", "POST", "/cancel"),
        ("failed", "POST", "/cancel"),
        ("cancelled", "POST", "/cancel"),
        ("running", "POST", "/resume"),
        ("queued", "POST", "/resume"),
        ("succeeded", "POST", "/resume"),
        ("running", "DELETE", ""),
    ],
)
def test_state_change_returns_409_when_illegal(
    api: httpx.Client, stack: Stack, status: str, method: str, path: str
) -> None:
    exp_id = insert_experiment(stack.db_url, status)
    resp = api.request(method, f"/api/v1/experiments/{exp_id}{path}")
    assert resp.status_code == 409
    assert status in resp.json()["detail"]
    assert api.get(f"/api/v1/experiments/{exp_id}").json()["status"] == status


def test_adapter_returns_409_when_the_experiment_has_no_final_adapter(
    api: httpx.Client, stack: Stack
) -> None:
    exp_id = insert_experiment(stack.db_url, "cancelled", rounds_done=2)
    resp = api.get(f"/api/v1/experiments/{exp_id}/adapter")
    assert resp.status_code == 409
    assert "?round=N" in resp.json()["detail"]


def test_list_filters_by_status_and_pages(api: httpx.Client, stack: Stack) -> None:
    for status in ("succeeded", "succeeded", "failed", "cancelled", "succeeded"):
        insert_experiment(stack.db_url, status, spec_overrides=TEST_JOB)
    page = api.get("/api/v1/experiments", params={"status": "succeeded", "limit": 2, "offset": 0}).json()
    rest = api.get("/api/v1/experiments", params={"status": "succeeded", "limit": 2, "offset": 2}).json()
    assert page["total"] == rest["total"] == 3
    assert len(page["items"]) == 2 and len(rest["items"]) == 1
    assert {e["status"] for e in page["items"] + rest["items"]} == {"succeeded"}
    assert api.get("/api/v1/experiments").json()["total"] == 5
    assert api.get("/api/v1/experiments", params={"status": "bogus"}).status_code == 422
    assert api.get("/api/v1/experiments", params={"limit": 0}).status_code == 422
