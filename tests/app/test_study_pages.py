"""The study pages as the server renders them (PostgreSQL): the list, one study with its data for the script in
the study's own order and the event id its stream starts after, the navigation link, and 404s.
(What the script draws from it is tested in Chromium: tests/e2e/test_study_page.py.)"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import func, select

from app.core.db import session_factory
from app.models import Event
from fedcore.study import Target, TargetMetric
from tests.app.held import held_client_on
from tests.app.stack import fresh_schema

SCHEMA = "fedheads_study_pages"
STUDY: dict[str, Any] = {
    "name": "grid </script><b>&</b>",
    "base": {"preset": "smoke", "overrides": {"rounds": 2}},
    # not in alphabetical order: the page must keep the study's order
    "variants": {"zeta": {"sparsity": 0.0}, "alpha": {"sparsity": 0.5}},
    "seeds": [3, 1],
    "baseline": "zeta",
}


@pytest.fixture(scope="module")
def db_url() -> str:
    return fresh_schema(SCHEMA)


@pytest.fixture
def client(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with held_client_on(db_url, tmp_path) as c:
        yield c


def _page_data(text: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="study-data">(.*?)</script>', text, re.S)
    assert found, "no study-data in the page"
    return dict(json.loads(found.group(1)))


def test_the_study_page_embeds_the_apis_detail_in_the_studys_order_and_its_last_event(
    client: TestClient, db_url: str
) -> None:
    study = client.post("/api/v1/studies", json=STUDY).json()
    page = client.get(f"/studies/{study['id']}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<h1 id="study-name">grid &lt;/script&gt;&lt;b&gt;&amp;&lt;/b&gt;</h1>' in page.text  # text, not markup
    data = _page_data(page.text)
    assert list(data["study"]["definition"]["variants"]) == ["zeta", "alpha"]
    assert [v["variant"] for v in data["study"]["aggregate"]["variants"]] == ["zeta", "alpha"]
    assert data["study"] == client.get(f"/api/v1/studies/{study['id']}").json()
    with session_factory(db_url)() as s:  # each queued run stored its 'queued' status event
        assert data["last_event"] == s.scalar(select(func.max(Event.id))) and data["last_event"] > 0
    for path in ("aggregate.csv", "aggregate.json", "verdicts.csv", "runs.csv", "spec.yaml"):
        assert f'href="/api/v1/studies/{study["id"]}/{path}"' in page.text
    assert 'src="/static/js/study.js"' in page.text and 'src="/static/js/plotly.min.js"' in page.text
    assert data["study"]["name"] == STUDY["name"]  # its '</script>' did not end the script early


def test_the_studies_list_links_each_study_and_the_nav_links_the_list(client: TestClient) -> None:
    assert "No studies yet." in client.get("/studies").text
    first = client.post("/api/v1/studies", json=STUDY).json()
    second = client.post("/api/v1/studies", json={**STUDY, "name": "second"}).json()
    page = client.get("/studies")
    assert page.status_code == 200
    links = re.findall(r'<a class="name" href="/studies/([0-9a-f-]{36})">', page.text)
    assert links == [second["id"], first["id"]]  # newest first
    assert "zeta, alpha" in page.text and "0/4" in page.text
    assert '<a href="/studies" aria-current="page">Studies</a>' in page.text
    assert re.search(r'<a href="/studies"\s*>Studies</a>', client.get("/").text)  # on every page, not current


def test_an_unknown_or_malformed_study_is_the_404_page(client: TestClient) -> None:
    for sid in (str(uuid.uuid4()), "not-a-uuid"):
        page = client.get(f"/studies/{sid}")
        assert page.status_code == 404 and "study" in page.text and page.headers["content-type"].startswith("text/html")


def test_the_forms_targets_offer_every_metric_a_study_judges_with_the_bounds_it_takes(client: TestClient) -> None:
    found = re.search(r'<script type="application/json" id="form-data">(.*?)</script>',
                      client.get("/experiments/new").text, re.S)
    assert found, "no form-data in the form"
    choices = json.loads(found.group(1))["targets"]
    assert [c["metric"] for c in choices] == list(get_args(TargetMetric))  # every one, in the model's order
    for c in choices:
        paired = c["metric"].endswith("_vs_baseline")
        assert c["bounds"] == (["within", "at_least", "at_most"] if paired else ["at_least", "at_most"]), c
        assert c["unit"] == ("points" if "accuracy" in c["metric"] or paired else "×"), c
        assert c["label"] and c["help"]
        for bound in c["bounds"]:  # a new row's value is a valid target with each bound it offers
            Target.model_validate({"metric": c["metric"], bound: c["default"]})
    with pytest.raises(ValidationError):  # and the form offers 'within' only where the model takes it
        Target.model_validate({"metric": "uplink_advantage", "within": 1.0})
