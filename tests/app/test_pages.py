"""Dashboard pages: every route answers 200 with well-formed HTML in every experiment state, 404 for unknown ids.

Rows are written straight through the app's DB session (no job runs); the app runs
without its lifespan, so no executor or reconciler starts.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.core.migrate import upgrade
from app.main import create_app
from app.models import STATUSES
from fedcore.spec import ExperimentSpec
from tests.e2e.seed import T5_BLOCKS, add_experiment, add_study

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _WellFormed(HTMLParser):
    """Every non-void element closed, in order; ids unique."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, tuple[int, int]]] = []
        self.errors: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for k, v in attrs:
            if k == "id" and v is not None:
                if v in self.ids:
                    self.errors.append(f"duplicate id {v!r} at {self.getpos()}")
                self.ids.add(v)
        if tag not in VOID:
            self.stack.append((tag, self.getpos()))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1][0] != tag:
            self.errors.append(
                f"</{tag}> at {self.getpos()} closes {self.stack[-1] if self.stack else 'nothing'}"
            )
            return
        self.stack.pop()


def assert_well_formed(html: str) -> set[str]:
    assert html.lstrip().lower().startswith("<!doctype html>")
    parser = _WellFormed()
    parser.feed(html)
    parser.close()
    assert not parser.errors, parser.errors[:5]
    assert not parser.stack, f"unclosed: {parser.stack[:5]}"
    return parser.ids


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder = tmp_path_factory.mktemp("pages")
    settings = Settings(
        database_url=f"sqlite:///{folder / 'pages.db'}",
        broker_url=None,
        artifact_root=folder / "artifacts",
        data_root=folder / "data",
    )
    upgrade(settings.database_url)
    app = create_app(settings, background=False)
    yield TestClient(app)  # no lifespan: no executor, no reconciler


@pytest.fixture(scope="module")
def seeded(app_client: TestClient) -> dict[str, uuid.UUID]:
    sessions = app_client.app.state.sessions  # type: ignore[attr-defined]
    out = {}
    with sessions.begin() as s:
        for status, done in (
            ("queued", 0),
            ("running", 2),
            ("succeeded", 4),
            ("failed", 1),
            ("cancelled", 3),
        ):
            exp = add_experiment(
                s,
                name=f"exp-{status}",
                status=status,
                rounds_done=done,
                error="RuntimeError: boom\n\ntraceback" if status == "failed" else None,
            )
            out[status] = exp.id
        out["t5"] = add_experiment(
            s, name="t5 run", status="succeeded", rounds_done=2, blocks=T5_BLOCKS, heads=8
        ).id
        out["xss"] = add_experiment(
            s, name='<script>alert("x")</script> & co', status="running", rounds_done=1
        ).id
        dense = add_experiment(s, name="sw dense", status="succeeded", rounds_done=4, sparsity=0.0)
        pruned = add_experiment(s, name="sw s=0.9", status="running", rounds_done=2, sparsity=0.9)
        # a run whose name looks like an old sweep's is no member of anything: membership is study_id only
        add_experiment(s, name="sw [sweep ab12cd] s=0.5", status="succeeded", rounds_done=1)
        out["dense"], out["pruned"] = dense.id, pruned.id
        out["study"] = add_study(s, name="sw", runs={("dense", 0): dense, ("s=0.9", 0): pruned}, baseline="dense").id
    return out


@pytest.mark.parametrize("status", STATUSES)
def test_experiment_page_renders_when_experiment_is(
    status: str, app_client: TestClient, seeded: dict[str, uuid.UUID]
) -> None:
    resp = app_client.get(f"/experiments/{seeded[status]}")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    ids = assert_well_formed(resp.text)
    assert f"exp-{status}" in resp.text
    assert f'class="badge big st-{status}"' in resp.text
    for panel in (
        "chart-acc",
        "chart-imp",
        "chart-strip",
        "chart-freq",
        "chart-sel",
        "chart-comm",
        "chart-cum",
        "chart-ops",
        "chart-wall",
        "chart-aggw",
        "chart-agree",
        "chart-data",
        "event-log",
        "round-slider",
        "btn-cancel",
        "btn-resume",
        "copy-json",
        "copy-curl",
        "dl-round",
    ):
        assert panel in ids
    cancel = re.search(r'<button type="button" id="btn-cancel"([^>]*)>', resp.text)
    assert cancel is not None and ("disabled" in cancel.group(1)) == (status not in ("queued", "running"))
    if status == "failed":
        assert "RuntimeError: boom" in resp.text


def test_experiment_page_is_404_for_an_unknown_or_malformed_id(app_client: TestClient) -> None:
    for raw in (str(uuid.uuid4()), "not-a-uuid"):
        resp = app_client.get(f"/experiments/{raw}")
        assert resp.status_code == 404
        assert_well_formed(resp.text)
        assert "Not found" in resp.text


def test_experiments_page_lists_every_status_and_filters(
    app_client: TestClient, seeded: dict[str, uuid.UUID]
) -> None:
    resp = app_client.get("/")
    assert resp.status_code == 200
    assert_well_formed(resp.text)
    for status in STATUSES:
        assert f"exp-{status}" in resp.text
    assert '<progress max="4" value="2"' in resp.text  # the running one: 2 of 4 rounds
    only = app_client.get("/", params={"status": "failed"})
    assert "exp-failed" in only.text and "exp-succeeded" not in only.text
    assert_well_formed(only.text)


def test_user_names_are_escaped_everywhere(app_client: TestClient, seeded: dict[str, uuid.UUID]) -> None:
    for url in ("/", f"/experiments/{seeded['xss']}", f"/compare?ids={seeded['xss']}"):
        text = app_client.get(url).text
        assert '<script>alert("x")</script>' not in text
        assert "&lt;script&gt;" in text or "\\u003cscript\\u003e" in text
    assert_well_formed(app_client.get(f"/experiments/{seeded['xss']}").text)


def test_new_form_has_a_labelled_input_for_every_spec_field(app_client: TestClient) -> None:
    resp = app_client.get("/experiments/new")
    assert resp.status_code == 200
    ids = assert_well_formed(resp.text)
    for name, info in ExperimentSpec.model_fields.items():
        assert f"f-{name}" in ids, name
        assert f"err-{name}" in ids and f"help-{name}" in ids
        label = f'for="f-{name}"' in resp.text or f'aria-labelledby="l-{name}"' in resp.text
        assert label, f"{name} has no label"
        assert info.description and info.description.split("(")[0][:30].replace("'", "&#39;") in resp.text
    for title in (
        "Model &amp; data",
        "Federation",
        "Head importance &amp; pruning",
        "Aggregation &amp; selection",
        "Training &amp; LoRA",
        "Sweep",
    ):
        assert f"<legend>{title}</legend>" in resp.text


def test_new_form_starts_from_an_experiment_spec(
    app_client: TestClient, seeded: dict[str, uuid.UUID]
) -> None:
    resp = app_client.get("/experiments/new", params={"from": str(seeded["succeeded"])})
    assert resp.status_code == 200 and "exp-succeeded (copy)" in resp.text
    assert '"start_spec": {' in resp.text


def test_detail_page_links_the_dense_sibling_of_a_sweep(
    app_client: TestClient, seeded: dict[str, uuid.UUID]
) -> None:
    text = app_client.get(f"/experiments/{seeded['pruned']}").text
    assert f'href="/experiments/{seeded["dense"]}" id="dense-link"' in text
    assert str(seeded["dense"]) in text and "compare the sweep" in text
    alone = app_client.get(f"/experiments/{seeded['running']}").text
    assert "dense-link" not in alone


def test_compare_page_by_ids_by_sweep_and_empty(app_client: TestClient, seeded: dict[str, uuid.UUID]) -> None:
    ids = f"{seeded['succeeded']},{seeded['t5']}"
    resp = app_client.get("/compare", params={"ids": ids})
    assert resp.status_code == 200
    assert_well_formed(resp.text)
    assert "exp-succeeded" in resp.text and "t5 run" in resp.text and "chart-pareto" in resp.text
    study = app_client.get("/compare", params={"study": str(seeded["study"])}).text
    assert study.count('<tr data-id="') == 2 and "sw dense" in study and "sw s=0.9" in study
    assert app_client.get("/compare", params={"sweep": str(seeded["study"])}).text.count('<tr data-id="') == 2
    assert app_client.get("/compare", params={"sweep": "ab12cd"}).text.count('<tr data-id="') == 0
    empty = app_client.get("/compare")
    assert empty.status_code == 200 and "chart-pareto" not in empty.text
    assert_well_formed(empty.text)
    missing = app_client.get("/compare", params={"ids": f"{uuid.uuid4()},junk"})
    assert missing.status_code == 200 and "Not found" in missing.text


def test_list_data_sums_headline_figures_like_summarize(
    app_client: TestClient, seeded: dict[str, uuid.UUID]
) -> None:
    items = {i["id"]: i for i in app_client.get("/ui/experiments").json()["items"]}
    done = items[str(seeded["succeeded"])]
    rounds = app_client.get(f"/api/v1/experiments/{seeded['succeeded']}/rounds").json()["items"]
    records = [r["record"] for r in rounds]
    assert done["figures"]["rounds"] == 4
    assert done["figures"]["best_accuracy"] == pytest.approx(max(r["metrics"]["accuracy"] for r in records))
    up = sum(r["bytes_up"] for r in records)
    assert done["figures"]["uplink_advantage"] == pytest.approx(
        sum(r["bytes_up_dense"] for r in records) / up
    )
    assert done["figures"]["ops_reduction"] == pytest.approx(1.0)
    queued = items[str(seeded["queued"])]["figures"]
    assert queued["rounds"] == 0 and queued["best_accuracy"] is None and queued["uplink_advantage"] is None
    assert items[str(seeded["dense"])]["sweep"] == str(seeded["study"])
    assert items[str(seeded["succeeded"])]["sweep"] is None
    running = app_client.get("/ui/experiments", params={"status": "running"}).json()["items"]
    assert {i["status"] for i in running} == {"running"}


def test_series_gives_per_round_columns_and_404(app_client: TestClient, seeded: dict[str, uuid.UUID]) -> None:
    data = app_client.get(f"/ui/experiments/{seeded['cancelled']}/series").json()
    assert data["round"] == [1, 2, 3] and len(data["accuracy"]) == 3 and len(data["bytes_up"]) == 3
    assert app_client.get(f"/ui/experiments/{uuid.uuid4()}/series").status_code == 404


def test_validate_checks_like_the_api_and_creates_nothing(app_client: TestClient) -> None:
    before = app_client.get("/ui/experiments").json()["total"]
    ok = app_client.post("/ui/validate", json={"preset": "smoke", "overrides": {"rounds": 2}})
    assert ok.status_code == 200 and ok.json()["spec"]["rounds"] == 2
    bad = app_client.post("/ui/validate", json={"spec": {"sparsity": 2}})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "spec", "sparsity"]
    relation = app_client.post("/ui/validate", json={"spec": {"num_clients": 2, "clients_per_round": 3}})
    assert relation.status_code == 422 and "clients_per_round" in relation.text
    assert app_client.get("/ui/experiments").json()["total"] == before


def test_validate_returns_the_warnings_of_measured_results(app_client: TestClient) -> None:
    drop = app_client.post("/ui/validate", json={"preset": "paper-pruned",
                                                 "overrides": {"prune_mode": "drop", "pooling": "cls"}})
    assert drop.status_code == 200
    tables = {w["table"]: w for w in drop.json()["warnings"]}
    assert tables["paper_table-cls"]["row"] == "drop s=0.9"
    assert tables["paper_table-cls"]["link"] == "/results/paper_table-cls"
    mask = app_client.post("/ui/validate", json={"preset": "paper-pruned", "overrides": {"pooling": "cls"}})
    assert mask.status_code == 200 and mask.json()["warnings"] == []


def test_results_pages_serve_only_committed_tables_and_their_plots(app_client: TestClient) -> None:
    page = app_client.get("/results/paper_table-cls")
    assert page.status_code == 200
    ids = assert_well_formed(page.text)
    assert "results" in ids and "<table>" in page.text and "drop s=0.9" in page.text
    plot = app_client.get("/results/paper_table-cls.svg")
    assert plot.status_code == 200 and plot.headers["content-type"].startswith("image/svg+xml")
    assert plot.headers["content-security-policy"].startswith("default-src 'none'")
    for bad in ("paper_table-cls.json", "nothing", "..%2FREADME", "%2e%2e"):
        assert app_client.get(f"/results/{bad}").status_code == 404, bad


def test_static_files_are_served_and_confined(app_client: TestClient) -> None:
    css = app_client.get("/static/css/app.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    plotly = app_client.get("/static/js/plotly.min.js")
    assert plotly.status_code == 200 and plotly.headers["content-type"].startswith("text/javascript")
    assert b"plotly.js" in plotly.content[:400]
    for bad in (
        "/static/%2e%2e/app/main.py",
        "/static/..%2fapp%2fmain.py",
        "/static/.hidden",
        "/static/js/nope.js",
        "/static/css",
    ):
        assert app_client.get(bad).status_code == 404, bad


def test_every_page_script_exists() -> None:
    root = Path(__file__).resolve().parents[2]
    for template in (root / "templates").glob("*.html"):
        for src in re.findall(r'src="/static/([^"]+)"', template.read_text()):
            assert src == "js/plotly.min.js" or (root / "static" / src).is_file(), (template.name, src)


def test_api_docs_pages_load_only_local_files(app_client: TestClient) -> None:
    """/docs and /redoc name no CDN, font or favicon host; their files are served (the browser test renders them)."""
    for url in ("/docs", "/redoc"):
        html = app_client.get(url).text
        linked = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert linked and all(u.startswith("/api-docs/") for u in linked), (url, linked)
        for u in linked:
            resp = app_client.get(u)
            assert resp.status_code == 200 and len(resp.content) > 1000, u
    redoc = app_client.get("/api-docs/redoc.standalone.js").content
    assert b"cdn.redoc.ly" not in redoc and b"API docs by Redocly" in redoc
    assert app_client.get("/api-docs/../app/main.py").status_code == 404
    assert app_client.get("/api-docs/nope.js").status_code == 404
