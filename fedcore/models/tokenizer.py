"""A dependency-free word tokenizer for the tiny random test models.

Tiny models (``tiny-bert``, ``tiny-t5``, ``tiny-llama``) have no tokenizer files.
:class:`HashTokenizer` maps each lower-cased word to a stable id with CRC32, so
it needs no vocabulary file and gives the same ids in every process. It speaks
the small part of the transformers tokenizer interface that fedcore uses.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import torch

_WORD = re.compile(r"\w+|[^\w\s]")


class HashTokenizer:
    """Hashes words into ``vocab_size`` ids; ids 0-3 are pad, eos/sep, bos/cls, unk."""

    pad_token_id = 0
    eos_token_id = 1
    sep_token_id = 1
    bos_token_id = 2
    cls_token_id = 2
    unk_token_id = 3
    padding_side = "right"

    def __init__(self, vocab_size: int = 1000, *, pair_style: str = "bert") -> None:
        self.vocab_size = vocab_size
        self.pair_style = pair_style  # "bert": [CLS] a [SEP] b [SEP]; "plain": a [SEP] b </s>
        self._words: dict[int, str] = {}

    @property
    def all_special_ids(self) -> list[int]:
        return [0, 1, 2, 3]

    def word_id(self, word: str) -> int:
        wid = 4 + zlib.crc32(word.lower().encode("utf-8")) % (self.vocab_size - 4)
        self._words.setdefault(wid, word.lower())
        return wid

    def encode_words(self, text: str) -> list[int]:
        return [self.word_id(w) for w in _WORD.findall(text)]

    def _one(self, text: str, pair: str | None, max_length: int) -> tuple[list[int], list[int]]:
        a = self.encode_words(text)
        b = self.encode_words(pair) if pair is not None else []
        if self.pair_style == "bert":
            budget = max_length - (3 if pair is not None else 2)
            a, b = _truncate_pair(a, b, budget)
            ids = [self.cls_token_id, *a, self.sep_token_id]
            types = [0] * len(ids)
            if pair is not None:
                ids += [*b, self.sep_token_id]
                types += [1] * (len(b) + 1)
        else:
            budget = max_length - (2 if pair is not None else 1)
            a, b = _truncate_pair(a, b, budget)
            ids = [*a, self.sep_token_id, *b] if pair is not None else list(a)
            ids.append(self.eos_token_id)
            types = [0] * len(ids)
        return ids, types

    def __call__(
        self,
        text: Sequence[str],
        text_pair: Sequence[str] | None = None,
        *,
        max_length: int = 64,
        truncation: bool = True,
        padding: str | bool = "longest",
        return_tensors: str = "pt",
        add_special_tokens: bool = True,
    ) -> dict[str, torch.Tensor]:
        rows = [
            self._one(t, text_pair[i] if text_pair is not None else None, max_length) for i, t in enumerate(text)
        ]
        width = max(len(r[0]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        types = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (r, t) in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
            types[i, : len(t)] = torch.tensor(t)
        out = {"input_ids": ids, "attention_mask": mask}
        if self.pair_style == "bert":
            out["token_type_ids"] = types
        return out

    def batch_decode(self, sequences: torch.Tensor | Sequence[Sequence[int]], skip_special_tokens: bool = True) -> list[str]:
        out = []
        for seq in sequences:
            ids = seq.tolist() if isinstance(seq, torch.Tensor) else list(seq)
            words = [self._words.get(i, f"<{i}>") for i in ids if not (skip_special_tokens and i < 4)]
            out.append(" ".join(words))
        return out


def _truncate_pair(a: list[int], b: list[int], budget: int) -> tuple[list[int], list[int]]:
    """Trim the longer sequence first until both fit in ``budget`` tokens."""
    a, b = list(a), list(b)
    while len(a) + len(b) > max(budget, 0):
        if len(a) >= len(b):
            a.pop()
        else:
            b.pop()
    return a, b
