"""Submit-time checks of a spec's model and data (fedcore.checks, fedcore.data.header): cheap, and each
problem names its field and what would be accepted, never a server path."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from fedcore.checks import MODEL_FAMILIES, Places, Problem, check_inputs
from fedcore.spec import preset

CSV_OK = "text,label\n" + "".join(f"words number {i},{i % 3}\n" for i in range(60))


def never_asked(kind: str, ident: str) -> Any:
    raise AssertionError(f"the hub was asked about {kind} {ident}")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    return data


def check(root: Path, hub: Any = never_asked, max_bytes: int | None = None, **overrides: Any) -> list[Problem]:
    spec = preset("smoke", **overrides)
    return check_inputs(spec, Places(data_root=root, max_data_bytes=max_bytes), hub=hub)


def local(root: Path, name: str, content: str | bytes, **overrides: Any) -> list[Problem]:
    path = root / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return check(root, dataset="local", data_path=name, **overrides)


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]


def no_server_path(problems: list[Problem], *paths: Path) -> None:
    for p in problems:
        for path in paths:
            assert str(path) not in p.message, p


def test_check_passes_when_a_local_csv_is_good(root: Path) -> None:
    assert local(root, "ok.csv", CSV_OK) == []


def test_check_of_a_local_csv_takes_under_50_ms(root: Path) -> None:
    (root / "ok.csv").write_text(CSV_OK)
    spec = preset("smoke", dataset="local", data_path="ok.csv")
    check_inputs(spec, Places(data_root=root), hub=never_asked)  # warm: imports, the asset markers' page cache
    t0 = time.perf_counter()
    for _ in range(10):
        assert check_inputs(spec, Places(data_root=root), hub=never_asked) == []
    assert (time.perf_counter() - t0) / 10 < 0.050


def test_check_refuses_an_unknown_dataset_listing_the_accepted_ones(root: Path) -> None:
    p = only(check(root, dataset="jsonl"))
    assert p.field == "dataset"
    assert "unknown dataset 'jsonl'" in p.message
    assert all(n in p.message for n in ("snli", "bbc-news", "synthetic", "'local'", "hub:<id>"))


def test_check_refuses_an_unknown_model_listing_the_accepted_ones(root: Path) -> None:
    p = only(check(root, model="bert-huge"))
    assert p.field == "model" and "unknown model 'bert-huge'" in p.message
    assert "minilm-l6" in p.message and "hub:<id>" in p.message


def test_check_names_the_install_command_when_an_asset_is_missing(tmp_path: Path) -> None:
    spec = preset("demo")  # minilm-l6 on snli
    problems = check_inputs(spec, Places(data_root=tmp_path, cache_dir=tmp_path / "empty"), hub=never_asked)
    assert {p.field for p in problems} == {"model", "dataset"}
    messages = " ".join(p.message for p in problems)
    assert "`fedheads assets snli`" in messages and "`fedheads assets minilm-l6`" in messages
    no_server_path(problems, tmp_path)


@pytest.mark.parametrize(
    "data_path,expect",
    [
        ("../../../etc/passwd", "'..' would leave the data root"),
        ("/etc/passwd.csv", "absolute paths are refused"),
        ("missing.csv", "there is no file 'missing.csv' in the data root"),
        ("notes.txt", "unsupported type (.txt)"),
    ],
)
def test_check_refuses_a_data_path_outside_or_missing(root: Path, data_path: str, expect: str) -> None:
    (root / "notes.txt").write_text("x")
    p = only(check(root, dataset="local", data_path=data_path))
    assert p.field == "data_path" and expect in p.message
    no_server_path([p], root)


def test_check_refuses_a_symlink_out_of_the_root(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.csv"
    outside.write_text(CSV_OK)
    os.symlink(outside, root / "link.csv")
    p = only(check(root, dataset="local", data_path="link.csv"))
    assert p.field == "data_path" and "symlink that leads out of the data root" in p.message
    no_server_path([p], tmp_path)


def test_check_refuses_a_file_over_the_size_limit(root: Path) -> None:
    (root / "big.csv").write_text(CSV_OK)
    p = only(check(root, max_bytes=100, dataset="local", data_path="big.csv"))
    assert p.field == "data_path" and "over the limit of 100 bytes" in p.message


@pytest.mark.parametrize(
    "name,content,field,expect",
    [
        ("nohead.csv", "hello world,1\nbye,0\n", "text_field",
         "the columns found are 'hello world', '1' (a .csv file's first line must name its columns)"),
        ("semi.csv", "text;label\na;1\nb;0\n", "data_path", "looks semicolon-separated"),
        ("bin.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "data_path", "not a text file"),
        ("latin.csv", "text,label\ncaf\xe9,1\n".encode("latin-1"), "data_path", "not UTF-8 text"),
        ("empty.csv", "", "data_path", "'empty.csv' is empty"),
        ("header.csv", "text,label\n", "data_path", "has a header line (text, label) but no rows"),
        ("ragged.csv", "text,label\na,1\nb,0,extra\n", "data_path", "row 3 has 3 field(s), the header 2"),
        ("one.csv", "text,label\n" + "a,1\n" * 20, "label_field",
         "holds 1 class(es) ('1'); classification needs at least 2"),
        ("broken.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": \n', "data_path",
         "line 2 is not valid JSON"),
        ("list.jsonl", '["a", 1]\n', "data_path", "line 1 is not a JSON object"),
        ("fake.parquet", "text,label\na,1\n", "data_path", "is not a parquet file"),
    ],
)
def test_check_refuses_a_malformed_file_naming_the_problem(
    root: Path, name: str, content: str | bytes, field: str, expect: str
) -> None:
    problems = local(root, name, content)
    p = problems[0]  # a file without a header misses both the text and the label column
    assert p.field == field and expect in p.message, p
    assert all(repr(name) in q.message for q in problems)


def test_check_lists_the_columns_found_when_a_field_names_none(root: Path) -> None:
    problems = local(root, "pairs.jsonl", '{"premise": "a", "hypothesis": "b", "y": 1}\n' * 5,
                     text_field="premise", text_pair_field="hyp", label_field="label")
    assert {p.field for p in problems} == {"text_pair_field", "label_field"}
    assert all("'premise', 'hypothesis', 'y'" in p.message for p in problems)


def test_check_says_how_many_examples_there_are_when_clients_would_get_none(root: Path) -> None:
    rows = "text,label\n" + "".join(f"t{i},{i % 2}\n" for i in range(10))  # 8 train, 2 test
    p = only(local(root, "small.csv", rows, num_clients=9, clients_per_round=3))
    assert p.field == "num_clients"
    assert "gives 8 training example(s) (10 rows, 2 held out for testing)" in p.message
    assert "use at most 8 clients" in p.message
    assert local(root, "small.csv", rows, num_clients=8, clients_per_round=3) == []


def test_check_reads_only_the_first_bytes_of_a_large_file(root: Path) -> None:
    big = "text,label\n" + "".join(f"row {i},{i % 2}\n" for i in range(40_000))  # ~500 KB
    assert local(root, "big.csv", big + "broken,row,here\n") == []  # the bad last row is beyond the sample
    assert local(root, "big.csv", big.replace("text,label", "txt,label")) != []  # the header is read


def test_check_refuses_data_path_with_a_dataset_that_does_not_read_it(root: Path) -> None:
    (root / "ok.csv").write_text(CSV_OK)
    p = only(check(root, dataset="synthetic", data_path="ok.csv"))
    assert p.field == "data_path" and "only with dataset 'local'" in p.message


def test_check_refuses_a_bert_model_for_a_generation_dataset(root: Path) -> None:
    p = only(check(root, model="tiny-bert", dataset="bbc-headlines"))
    assert p.field == "model" and "classification only" in p.message


def test_check_refuses_mean_pooling_for_a_model_that_is_not_a_bert(root: Path) -> None:
    p = only(check(root, model="tiny-t5", pooling="mean"))
    assert p.field == "pooling" and "model 'tiny-t5' is a t5 model: use pooling 'cls'" in p.message
    assert check(root, model="tiny-bert", pooling="mean") == []


@pytest.mark.parametrize("answer,expect", [
    ("unreachable", "the model hub is not reachable from this machine"),
    ("missing", "the model hub has no model 'someone/nothing'"),
])
def test_check_of_a_hub_model_says_what_the_hub_answered(root: Path, answer: str, expect: str) -> None:
    asked: list[tuple[str, str]] = []

    def hub(kind: str, ident: str) -> Any:
        asked.append((kind, ident))
        return answer

    p = only(check(root, hub=hub, model="hub:someone/nothing"))
    assert p.field == "model" and expect in p.message
    assert asked == [("model", "someone/nothing")]
    assert check(root, hub=lambda kind, ident: "found", model="hub:someone/nothing") == []


def test_hub_probe_answers_unreachable_when_the_hub_cannot_be_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hc

    from fedcore.checks import hub_probe

    monkeypatch.setattr(hc, "ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    assert hub_probe("model", "someone/not-cached-here", timeout=2) == "unreachable"


def test_model_names_agree_with_the_loader() -> None:
    from fedcore.models.loading import KNOWN_MODELS

    assert set(MODEL_FAMILIES) == set(KNOWN_MODELS)
