"""Dataset loading: synthetic task, local files with field mappings, hub ids, path confinement."""

from __future__ import annotations

import csv
import json
import os
import sys
import types
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedcore.data import PathConfinementError, confine, load_dataset, make_synthetic
from fedcore.data.sources import (
    SYNTHETIC_FILLERS,
    SYNTHETIC_KEYWORDS,
    subsample,
    synthetic_label,
)
from fedcore.data.types import Example

# --- synthetic ------------------------------------------------------------------------------


def test_synthetic_is_identical_when_seed_repeats() -> None:
    assert make_synthetic(seed=3) == make_synthetic(seed=3)


def test_synthetic_differs_when_seed_changes() -> None:
    assert make_synthetic(seed=3).train != make_synthetic(seed=4).train


def test_synthetic_has_default_sizes_and_cuts_to_max() -> None:
    full = load_dataset("synthetic")
    small = load_dataset("synthetic", max_train=50, max_test=10)

    assert (len(full.train), len(full.test)) == (2000, 300)
    assert (len(small.train), len(small.test)) == (50, 10)
    assert small.train == full.train[:50]


def test_synthetic_labels_are_balanced_and_follow_keyword_counts() -> None:
    data = make_synthetic(seed=0)
    shares = [n / len(data.train) for n in Counter(ex.label for ex in data.train).values()]

    assert len(shares) == 3
    assert all(0.28 < s < 0.39 for s in shares)
    for ex in data.train[:200]:
        words = ex.text.rstrip(".").split()
        assert 6 <= len(words) <= 12
        assert ex.label == synthetic_label(words)


def test_synthetic_label_breaks_ties_towards_lowest_group() -> None:
    a, b, c = (group[0] for group in SYNTHETIC_KEYWORDS)
    assert synthetic_label([c, b, "the"]) == 1
    assert synthetic_label([c, a]) == 0
    assert synthetic_label([c, c, a]) == 2


def test_synthetic_vocabulary_has_sixty_distinct_words() -> None:
    words = [w for g in SYNTHETIC_KEYWORDS for w in g] + list(SYNTHETIC_FILLERS)
    assert len(words) == len(set(words)) == 60


def _bag_of_words(examples: list[Example], vocab: dict[str, int]) -> np.ndarray:
    x = np.zeros((len(examples), len(vocab)))
    for i, ex in enumerate(examples):
        for word in ex.text.rstrip(".").split():
            x[i, vocab[word]] += 1
    return x


def test_synthetic_is_learnable_by_linear_model_in_few_dozen_steps() -> None:
    data = make_synthetic(seed=1)
    vocab = {w: i for i, w in enumerate([w for g in SYNTHETIC_KEYWORDS for w in g] + list(SYNTHETIC_FILLERS))}
    x_train, x_test = _bag_of_words(data.train, vocab), _bag_of_words(data.test, vocab)
    y_train = np.array([ex.label for ex in data.train])
    y_test = np.array([ex.label for ex in data.test])
    w = np.zeros((len(vocab), 3))
    for _ in range(40):  # full-batch softmax regression
        logits = x_train @ w
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(y_train)), y_train] -= 1
        w -= 1.0 * x_train.T @ p / len(y_train)

    accuracy = float(((x_test @ w).argmax(axis=1) == y_test).mean())

    assert accuracy > 0.9


# --- subsampling ----------------------------------------------------------------------------


def test_subsample_gives_superset_when_n_grows() -> None:
    examples = [Example(text=str(i), label=i % 3) for i in range(100)]

    small = subsample(examples, 10, seed=5, salt=2)
    large = subsample(examples, 30, seed=5, salt=2)

    assert set(small) <= set(large)
    assert small == sorted(small, key=lambda e: int(e.text))
    assert subsample(examples, 10, seed=6, salt=2) != small


# --- local files ----------------------------------------------------------------------------


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_local_jsonl_maps_fields_and_sorts_string_labels(tmp_path: Path) -> None:
    rows = [
        {"premise": f"p{i}", "hypothesis": f"h{i}", "verdict": "yes" if i % 2 else "no", "split": split}
        for i, split in enumerate(["train"] * 8 + ["test"] * 2)
    ]
    _write_jsonl(tmp_path / "nli.jsonl", rows)

    data = load_dataset(
        "local",
        data_root=tmp_path,
        data_path="nli.jsonl",
        text_field="premise",
        text_pair_field="hypothesis",
        label_field="verdict",
    )

    assert data.task == "classification"
    assert data.label_names == ["no", "yes"]
    assert (len(data.train), len(data.test)) == (8, 2)
    assert data.train[1] == Example(text="p1", text_pair="h1", label=1)
    assert data.test[0] == Example(text="p8", text_pair="h8", label=0)


def test_local_csv_keeps_int_labels_and_drops_unlabelled_rows(tmp_path: Path) -> None:
    with (tmp_path / "d.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["sentence", "label"])
        writer.writeheader()
        for i in range(50):
            writer.writerow({"sentence": f"s{i}", "label": ["0", "2", "-", ""][i % 4]})

    data = load_dataset("d.csv", data_root=tmp_path, text_field="sentence")

    assert data.label_names == ["0", "1", "2"]
    assert {ex.label for ex in data.train + data.test} == {0, 2}
    assert len(data.train) + len(data.test) == 26
    assert len(data.test) == 6  # 20% of each 13-row label group, rounded: 3 + 3


def test_local_split_is_seeded_and_same_for_any_experiment_seed(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "d.jsonl", [{"text": f"t{i}", "label": i % 2} for i in range(40)])

    a = load_dataset("d.jsonl", data_root=tmp_path, seed=0)
    b = load_dataset("d.jsonl", data_root=tmp_path, seed=9)

    assert a.test == b.test
    assert len(a.test) == 8
    assert not set(a.train) & set(a.test)


def test_local_target_field_makes_generation_task(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "g.jsonl", [{"doc": f"d{i}", "summary": f"s{i}"} for i in range(10)])

    data = load_dataset(
        "local", data_root=tmp_path, data_path="g.jsonl", text_field="doc", target_field="summary"
    )

    assert data.task == "generation"
    assert data.label_names == []
    assert Example(text="d3", target="s3") in data.train + data.test


def test_local_missing_field_names_the_field_and_columns(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "d.jsonl", [{"body": "x", "label": 0}] * 5)

    with pytest.raises(ValueError, match=r"'text' not found.*columns: body, label"):
        load_dataset("d.jsonl", data_root=tmp_path)


def test_local_file_requires_data_root(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="data root"):
        load_dataset("d.jsonl")


def test_local_name_without_data_path_asks_for_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs data_path"):
        load_dataset("local", data_root=tmp_path)


def test_local_file_outside_data_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    _write_jsonl(tmp_path / "secret.jsonl", [{"text": "x", "label": 0}] * 5)

    with pytest.raises(PathConfinementError):
        load_dataset("local", data_root=root, data_path="../secret.jsonl")


def test_local_parquet_names_pyarrow_when_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "d.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)

    with pytest.raises(ImportError, match="pip install pyarrow"):
        load_dataset("d.parquet", data_root=tmp_path)


# --- hub ------------------------------------------------------------------------------------


def test_hub_dataset_names_extra_when_datasets_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)

    with pytest.raises(ImportError, match=r"pip install 'fedheads\[hub\]'"):
        load_dataset("hub:multi_nli")


class _FakeClassLabel:
    def __init__(self, names: list[str]) -> None:
        self.names = names


class _FakeHubDataset:
    def __init__(self, columns: dict[str, list[Any]], label_names: list[str]) -> None:
        self._columns = columns
        self.column_names = list(columns)
        self.features = {"label": _FakeClassLabel(label_names)}

    def __len__(self) -> int:
        return len(next(iter(self._columns.values())))

    def __getitem__(self, column: str) -> list[Any]:
        return self._columns[column]


def test_hub_id_with_slash_falls_back_to_config_and_uses_class_names(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []

    def fake_load_dataset(path: str, config: str | None = None, *, split: str) -> _FakeHubDataset:
        calls.append((path, config, split))
        if config is None:
            raise FileNotFoundError(path)
        n = 6 if split == "train" else 3
        return _FakeHubDataset(
            {
                "premise": [f"p{i}" for i in range(n)],
                "hypothesis": ["h"] * n,
                "label": [0, 1, 2, -1, 1, 0][:n],
            },
            ["entailment", "neutral", "contradiction"],
        )

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=fake_load_dataset))

    data = load_dataset(
        "hub:glue/mnli",
        text_field="premise",
        text_pair_field="hypothesis",
        hub_split_test="validation_matched",
    )

    assert ("glue", "mnli", "validation_matched") in calls
    assert data.label_names == ["entailment", "neutral", "contradiction"]
    assert [ex.label for ex in data.train] == [0, 1, 2, 1, 0]  # label -1 dropped
    assert [ex.label for ex in data.test] == [0, 1, 2]


# --- names ----------------------------------------------------------------------------------


def test_unknown_dataset_name_lists_known_names() -> None:
    with pytest.raises(
        ValueError, match=r"unknown dataset 'mnist'.*snli, bbc-news, bbc-headlines, aclsum, synthetic"
    ):
        load_dataset("mnist")


# --- confinement ----------------------------------------------------------------------------


def test_confine_returns_resolved_path_inside_root(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    assert (
        confine("sub/../sub/file.jsonl", tmp_path, what="dataset")
        == (tmp_path / "sub" / "file.jsonl").resolve()
    )


def test_confine_refuses_dotdot_escape(tmp_path: Path) -> None:
    with pytest.raises(PathConfinementError) as err:
        confine("../outside.jsonl", tmp_path, what="dataset")

    message = str(err.value)
    assert "../outside.jsonl" in message
    assert str(tmp_path.resolve()) in message
    assert message.startswith("dataset path")


def test_confine_refuses_absolute_path_even_inside_root(tmp_path: Path) -> None:
    with pytest.raises(PathConfinementError, match="absolute"):
        confine(str(tmp_path / "a.jsonl"), tmp_path, what="model")


def test_confine_refuses_symlink_pointing_outside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", root / "link")

    with pytest.raises(PathConfinementError, match="symlink"):
        confine("link/data.jsonl", root, what="artifact")


def test_confinement_error_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        confine("/etc/passwd", tmp_path, what="dataset")


# --- real assets ----------------------------------------------------------------------------


@pytest.mark.integration
def test_snli_loads_labelled_pairs_from_asset() -> None:
    data = load_dataset("snli")

    assert (len(data.train), len(data.test)) == (99_890, 9_824)
    assert data.label_names == ["entailment", "neutral", "contradiction"]
    assert all(ex.text_pair for ex in data.test[:100])
    assert {ex.label for ex in data.test} == {0, 1, 2}


@pytest.mark.integration
def test_snli_subsample_gives_superset_when_max_grows() -> None:
    small = load_dataset("snli", max_train=100, max_test=50, seed=1)
    large = load_dataset("snli", max_train=300, max_test=200, seed=1)

    assert set(small.test) <= set(large.test)
    assert set(small.train) <= set(large.train)
    assert len(small.test) == 50


@pytest.mark.integration
def test_bbc_news_has_all_articles_in_stratified_split() -> None:
    data = load_dataset("bbc-news")

    assert len(data.train) + len(data.test) == 2_225
    assert (len(data.train), len(data.test)) == (1_781, 444)
    assert data.label_names == ["business", "entertainment", "politics", "sports", "tech"]
    assert Counter(ex.label for ex in data.test) == {0: 102, 1: 77, 2: 83, 3: 102, 4: 80}


@pytest.mark.integration
def test_bbc_headlines_targets_headlines_on_same_split_as_bbc_news() -> None:
    news = load_dataset("bbc-news")
    heads = load_dataset("bbc-headlines")

    assert heads.task == "generation"
    assert len(heads.test) == len(news.test)
    first = heads.test[0]
    assert first.target is not None
    assert news.test[0].text == f"{first.target}\n{first.text}"


@pytest.mark.integration
def test_aclsum_pairs_papers_with_outcome_summaries() -> None:
    data = load_dataset("aclsum")
    approach = load_dataset("aclsum", target_field="approach", text_field="abstract")

    assert (len(data.train), len(data.test)) == (100, 100)
    assert data.task == "generation"
    assert all(ex.target for ex in data.train + data.test)
    assert data.train[0].target != approach.train[0].target
    assert len(approach.train[0].text) < len(data.train[0].text)
