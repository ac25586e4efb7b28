"""ACLSum from its offline asset: a paper's title and sections -> one aspect summary."""

from __future__ import annotations

from pathlib import Path

from fedcore.assets import asset_path
from fedcore.data.sources.local import read_rows
from fedcore.data.types import DatasetSplits, Example

ACLSUM_ASPECTS = ("challenge", "approach", "outcome")
ACLSUM_SECTIONS = ("abstract", "introduction", "conclusion")


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


def load_aclsum(cache_dir: Path | None, *, text_field: str, target_field: str | None) -> DatasetSplits:
    """Text: title + the chosen sections' sentences (abstract, introduction, conclusion by default);
    target: one aspect summary (``target_field``, default "outcome"). The val split is not used."""
    aspect = target_field or "outcome"
    if aspect not in ACLSUM_ASPECTS:
        raise ValueError(f"aclsum target_field {aspect!r}: choose one of {', '.join(ACLSUM_ASPECTS)}")
    sections = _aclsum_sections(text_field)
    folder = asset_path("aclsum", cache_dir) / "aclsum" / "dataset"

    def read(split: str) -> list[Example]:
        out = []
        for row in read_rows(folder / f"{split}.jsonl"):
            sentences = [s for sec in sections for s in row["sentences"].get(sec, [])]
            text = f"{row['title']}\n{' '.join(sentences)}"
            out.append(Example(text=text, target=row["summary"][aspect]))
        return out

    return DatasetSplits(
        name="aclsum", task="generation", label_names=[], train=read("train"), test=read("test")
    )
