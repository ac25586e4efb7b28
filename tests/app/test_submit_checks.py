"""Bad model or data is refused at submit: a 422 naming the field and what would be accepted, the same
answer from the API and the form's /ui/validate, nothing stored and no job dispatched."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.app.held import held_client

GOOD_CSV = "text,label\n" + "".join(f"some words {i},{i % 2}\n" for i in range(40))
FILES: dict[str, str | bytes] = {
    "good.csv": GOOD_CSV,
    "nohead.csv": "hello world,1\nbye,0\n",
    "semi.csv": "text;label\na;1\nb;0\n",
    "binary.csv": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00",
    "header-only.csv": "text,label\n",
    "one-class.csv": "text,label\n" + "a,1\n" * 30,
    "broken.jsonl": '{"text": "a", "label": 1}\n{"text": "b", "label": \n',
    "fake.parquet": "text,label\na,1\n",
    "big.csv": GOOD_CSV * 20,
}
MAX_DATA_BYTES = 4000

# (overrides of the smoke preset, the field named, words of the message)
BAD: list[tuple[dict[str, Any], str, str]] = [
    ({"dataset": "local", "data_path": "../../../etc/passwd"}, "data_path", "'..' would leave the data root"),
    ({"dataset": "jsonl"}, "dataset", "unknown dataset 'jsonl'; choose one of snli, bbc-news"),
    ({"dataset": "local", "data_path": "/etc/passwd.csv"}, "data_path", "absolute paths are refused"),
    ({"dataset": "local", "data_path": "link.csv"}, "data_path", "a symlink that leads out of the data root"),
    ({"dataset": "local", "data_path": "nohead.csv"}, "text_field", "the columns found are 'hello world', '1'"),
    ({"dataset": "local", "data_path": "semi.csv"}, "data_path", "looks semicolon-separated"),
    ({"dataset": "local", "data_path": "binary.csv"}, "data_path", "is not a text file"),
    ({"dataset": "local", "data_path": "header-only.csv"}, "data_path", "has a header line (text, label) but no rows"),
    ({"dataset": "local", "data_path": "one-class.csv"}, "label_field", "holds 1 class(es) ('1')"),
    ({"dataset": "local", "data_path": "broken.jsonl"}, "data_path", "line 2 is not valid JSON"),
    ({"dataset": "local", "data_path": "fake.parquet"}, "data_path", "is not a parquet file"),
    ({"dataset": "local", "data_path": "big.csv"}, "data_path", "over the limit of 4000 bytes"),
    ({"dataset": "local", "data_path": "good.csv", "num_clients": 40, "clients_per_round": 4}, "num_clients",
     "gives 32 training example(s) (40 rows, 8 held out for testing)"),
    ({"model": "minilm-l6"}, "model", "install it with `fedheads assets minilm-l6`"),
    ({"model": "hub:someone/nothing"}, "model", "the model hub is not reachable from this machine"),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("submit-checks")
    data = base / "data"
    data.mkdir()
    for name, content in FILES.items():
        (data / name).write_bytes(content.encode() if isinstance(content, str) else content)
    (base / "secret.csv").write_text(GOOD_CSV)
    os.symlink(base / "secret.csv", data / "link.csv")
    (base / "no-assets").mkdir()
    return base


@pytest.fixture(scope="module")
def client(folder: Path) -> Iterator[TestClient]:
    with held_client(folder, max_data_file_bytes=MAX_DATA_BYTES, assets_dir=folder / "no-assets") as c:
        yield c


@pytest.fixture(autouse=True)
def offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens: the hub is unreachable


def _dispatched(client: TestClient) -> list[Any]:
    return list(client.app.state.executor.dispatched)  # type: ignore[attr-defined]


@pytest.mark.parametrize("overrides,field,words", BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input_is_a_422_naming_the_field_from_the_api_and_the_form_alike(
    client: TestClient, folder: Path, overrides: dict[str, Any], field: str, words: str
) -> None:
    before = client.get("/api/v1/experiments").json()["total"], _dispatched(client)
    body = {"name": "bad", "preset": "smoke", "overrides": overrides}
    created = client.post("/api/v1/experiments", json=body)
    assert created.status_code == 422, created.text
    detail = created.json()["detail"]
    assert ["body", "overrides", field] in [d["loc"] for d in detail] or (
        field not in overrides and ["body", "preset", field] in [d["loc"] for d in detail]
    ), detail
    assert any(words in d["msg"] for d in detail), detail
    assert str(folder) not in created.text  # no server path in the answer
    validated = client.post("/ui/validate", json=body)
    assert validated.status_code == 422 and validated.json()["detail"] == detail  # the form's words are the API's
    assert (client.get("/api/v1/experiments").json()["total"], _dispatched(client)) == before


def test_a_field_of_a_full_spec_is_named_under_spec(client: TestClient) -> None:
    resp = client.post("/api/v1/experiments", json={"spec": {"model": "tiny-bert", "dataset": "jsonl"}})
    assert resp.status_code == 422
    assert [d["loc"] for d in resp.json()["detail"]] == [["body", "spec", "dataset"]]


def test_good_local_data_is_accepted_and_queued(client: TestClient) -> None:
    body = {"name": "good", "preset": "smoke", "overrides": {"dataset": "local", "data_path": "good.csv"}}
    assert client.post("/ui/validate", json=body).json()["ok"] is True
    created = client.post("/api/v1/experiments", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["id"] in {str(i) for i in _dispatched(client)}
