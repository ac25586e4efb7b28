"""Jobs that fail at run time, for reasons no submit-time check can foresee, tell their user one line and an
error id and nothing of the server: every answer about them (API JSON, pages, /ui state, the event stream)
is scanned for the data root, the artifact root, the model root and the repository; the traceback is in
the log under the error id.

The jobs are submitted to the app (SQLite, jobs held), broken after submit, then run by the real job
runner (worker.runner.run_job) in this process against the same database.
"""

from __future__ import annotations

import html
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.services.failures import REPOSITORY
from tests.app.held import held_client
from worker.runner import run_job

FAST = {"rounds": 1, "local_steps": 1, "eval_size": 20, "importance_samples": 8, "max_train_examples": 60}
GOOD_CSV = "text,label\n" + "".join(f"some words {i},{i % 2}\n" for i in range(60))
ERROR_ID = re.compile(r"\(error id ([0-9a-f]{12}); the server log holds the details\)$")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("failed-jobs")
    (base / "data").mkdir()
    broken = base / "models" / "broken-model"
    broken.mkdir(parents=True)
    (broken / "config.json").write_text(json.dumps({"hidden_size": 8}))  # a config no model class accepts
    return base


@pytest.fixture(scope="module")
def client(folder: Path) -> Iterator[TestClient]:
    with held_client(folder, model_root=folder / "models") as c:
        yield c


def _submit(client: TestClient, **overrides: Any) -> str:
    resp = client.post("/api/v1/experiments", json={"name": "doomed", "preset": "smoke", "overrides": {**FAST, **overrides}})
    assert resp.status_code == 201, resp.text  # the submit-time checks pass: the trouble comes later
    return str(resp.json()["id"])


def _delete_the_data_file(client: TestClient, folder: Path) -> str:
    (folder / "data" / "train.csv").write_text(GOOD_CSV)
    exp_id = _submit(client, dataset="local", data_path="train.csv")
    (folder / "data" / "train.csv").unlink()
    return exp_id


def _broken_model(client: TestClient, folder: Path) -> str:
    return _submit(client, model="broken-model")


def _checkpoint_folder_is_a_file(client: TestClient, folder: Path) -> str:
    exp_id = _submit(client)
    job_folder = folder / "artifacts" / exp_id
    job_folder.mkdir(parents=True)
    (job_folder / "checkpoint").write_text("not a folder")
    return exp_id


FAILURES: dict[str, tuple[Callable[[TestClient, Path], str], str]] = {
    "data file deleted after submit": (_delete_the_data_file, "FileNotFoundError: dataset file 'train.csv' not found"),
    "model folder with a broken config": (_broken_model, "<model root>/broken-model"),
    "checkpoint folder taken by a file": (_checkpoint_folder_is_a_file, "<artifact root>/"),
}


@pytest.fixture(scope="module")
def failed(client: TestClient, folder: Path) -> Iterator[dict[str, tuple[str, list[logging.LogRecord]]]]:
    """Each failure's experiment id and the log records its run wrote."""
    settings = client.app.state.settings  # type: ignore[attr-defined]
    runs: dict[str, tuple[str, list[logging.LogRecord]]] = {}
    for name, (make, _) in FAILURES.items():
        exp_id = make(client, folder)
        records: list[logging.LogRecord] = []
        handler = logging.Handler(logging.DEBUG)
        handler.emit = records.append  # type: ignore[method-assign]
        logging.getLogger().addHandler(handler)
        try:
            assert run_job(uuid.UUID(exp_id), settings=settings) == "failed", name
        finally:
            logging.getLogger().removeHandler(handler)
        runs[name] = (exp_id, records)
    yield runs


def _server_paths(client: TestClient, folder: Path) -> set[str]:
    s = client.app.state.settings  # type: ignore[attr-defined]
    places = {s.data_root, s.artifact_root, s.model_root, folder, REPOSITORY}
    return {str(p) for p in places} | {str(p.resolve()) for p in places}


def _answers(client: TestClient, exp_id: str) -> dict[str, str]:
    """Every answer the API and the pages give about a failed experiment."""
    api = f"/api/v1/experiments/{exp_id}"
    gets = {
        "experiment JSON": api,
        "list JSON": "/api/v1/experiments?status=failed",
        "events (SSE)": f"{api}/events",
        "rounds JSON": f"{api}/rounds",
        "clients JSON": f"{api}/clients",
        "final adapter": f"{api}/adapter",
        "round adapter": f"{api}/adapter?round=1",
        "experiment page": f"/experiments/{exp_id}",
        "list page": "/?status=failed",
        "/ui state JSON": f"/ui/experiments/{exp_id}/state",
        "/ui list JSON": "/ui/experiments?status=failed",
        "/ui series JSON": f"/ui/experiments/{exp_id}/series",
        "compare page": f"/compare?ids={exp_id}",
    }
    return {what: client.get(url).text for what, url in gets.items()}


@pytest.mark.parametrize("name", list(FAILURES))
def test_a_failed_job_shows_one_line_and_an_error_id(
    client: TestClient, failed: dict[str, tuple[str, list[logging.LogRecord]]], name: str
) -> None:
    exp_id, _ = failed[name]
    exp = client.get(f"/api/v1/experiments/{exp_id}").json()
    assert exp["status"] == "failed"
    error = exp["error"]
    assert "\n" not in error and "Traceback" not in error, error
    assert ERROR_ID.search(error), error
    assert FAILURES[name][1] in error, error  # the cause, with the server's folder named, not spelled out
    state = client.get(f"/ui/experiments/{exp_id}/state").json()
    assert error in json.dumps(state)
    assert error in html.unescape(client.get(f"/experiments/{exp_id}").text)


@pytest.mark.parametrize("name", list(FAILURES))
def test_no_answer_about_a_failed_job_holds_a_server_path(
    client: TestClient, folder: Path, failed: dict[str, tuple[str, list[logging.LogRecord]]], name: str
) -> None:
    exp_id, _ = failed[name]
    answers = _answers(client, exp_id)
    assert '"failed"' in answers["events (SSE)"] and "error id" in answers["events (SSE)"]
    for what, text in answers.items():
        for path in _server_paths(client, folder):
            assert path not in text, f"{what} of {name!r} shows the server path {path}"
        assert "Traceback" not in text, what


@pytest.mark.parametrize("name", list(FAILURES))
def test_the_log_holds_the_traceback_under_the_error_id(
    client: TestClient, failed: dict[str, tuple[str, list[logging.LogRecord]]], name: str
) -> None:
    exp_id, records = failed[name]
    match = ERROR_ID.search(client.get(f"/api/v1/experiments/{exp_id}").json()["error"])
    assert match
    logged = [r for r in records if match.group(1) in r.getMessage()]
    assert len(logged) == 1, [r.getMessage() for r in records]
    record = logged[0]
    assert record.levelno == logging.ERROR and exp_id in record.getMessage()
    text = logging.Formatter().format(record)
    assert "Traceback (most recent call last)" in text
    assert str(REPOSITORY / "worker" / "runner.py") in text  # the whole stack, with the server's paths


def test_scrub_names_the_servers_folders_and_cuts_other_absolute_paths(tmp_path: Path) -> None:
    from app.core.config import Settings
    from app.services.failures import scrub, server_places

    settings = Settings(data_root=tmp_path / "data", artifact_root=tmp_path / "artifacts")
    text = (f"no file '{tmp_path}/data/x.csv' next to {tmp_path}/artifacts/j/checkpoint or {REPOSITORY}/fedcore/a.py "
            "or /usr/lib/python3/foo.py; see /api/v1/assets, hub:org/name and https://example.org/a/b")
    assert scrub(text, server_places(settings)) == (
        "no file '<data root>/x.csv' next to <artifact root>/j/checkpoint or <fedheads>/fedcore/a.py "
        "or .../foo.py; see /api/v1/assets, hub:org/name and https://example.org/a/b"
    )
