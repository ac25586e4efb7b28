"""Presets, assets, health and the OpenAPI document."""

from __future__ import annotations

import httpx

from fedcore.spec import preset, preset_names


def test_presets_lists_every_fedcore_preset_with_its_full_spec(api: httpx.Client) -> None:
    body = api.get("/api/v1/presets").json()
    assert [p["name"] for p in body] == preset_names()
    smoke = next(p for p in body if p["name"] == "smoke")
    assert smoke["spec"] == preset("smoke").model_dump(mode="json")
    assert smoke["about"]


def test_assets_reports_tiny_models_and_synthetic_data_usable_without_downloads(api: httpx.Client) -> None:
    body = api.get("/api/v1/assets").json()
    models = {m["name"]: m for m in body["models"]}
    datasets = {d["name"]: d for d in body["datasets"]}
    assert models["tiny-bert"]["usable"] and datasets["synthetic"]["usable"]
    assert {"minilm-l6", "t5-small"} <= set(models) and {"snli", "bbc-news"} <= set(datasets)
    for item in body["models"] + body["datasets"]:
        if not item["usable"]:
            assert item["detail"]  # says what is missing


def test_health_reports_ok_when_database_broker_and_a_worker_are_up(api: httpx.Client) -> None:
    body = api.get("/api/v1/health").json()
    assert body["status"] == "ok"
    assert body["executor"] == "celery"
    assert body["database"]["ok"] and body["broker"]["ok"]
    assert any(w.startswith("fh-a@") for w in body["workers"])


def test_openapi_documents_every_endpoint_with_examples(api: httpx.Client) -> None:
    doc = api.get("/openapi.json").json()
    base = "/api/v1/experiments"
    for path in (
        base,
        f"{base}/{{experiment_id}}",
        f"{base}/{{experiment_id}}/rounds",
        f"{base}/{{experiment_id}}/rounds/{{round_number}}",
        f"{base}/{{experiment_id}}/clients",
        f"{base}/{{experiment_id}}/events",
        f"{base}/{{experiment_id}}/cancel",
        f"{base}/{{experiment_id}}/resume",
        f"{base}/{{experiment_id}}/adapter",
        "/api/v1/presets",
        "/api/v1/assets",
        "/api/v1/health",
    ):
        assert path in doc["paths"], path
    examples = doc["paths"][base]["post"]["requestBody"]["content"]["application/json"]["examples"]
    assert {"preset", "spec"} <= set(examples)
    assert "ExperimentSpec" in doc["components"]["schemas"]
    assert api.get("/docs").status_code == 200
