"""Evaluation metrics, thin wrappers over the reference libraries.

- accuracy: fraction of exact label matches (classification: MultiNLI/SNLI, 20 Newsgroups/BBC).
- ROUGE-1/2/L F-measure [Lin, 2004] via Google's ``rouge-score`` package, with Porter
  stemming, averaged over the pairs (summarisation: XL-Sum/BBC headlines).
- corpus BLEU [Papineni et al., 2002] via ``sacrebleu`` [Post, 2018] with its default
  13a tokenisation (generation: E2E NLG).

These are the metrics the evaluated paper (Venkatesha et al., arXiv 2506.00743) reports
for its tasks; fedheads writes no metric of its own where a library exists.
"""

from __future__ import annotations

from collections.abc import Sequence

import sacrebleu
from rouge_score import rouge_scorer

ROUGE_TYPES: tuple[str, ...] = ("rouge1", "rouge2", "rougeL")


def _check_pairs(preds: Sequence[object], refs: Sequence[object]) -> None:
    if len(preds) != len(refs):
        raise ValueError(f"got {len(preds)} predictions but {len(refs)} references")
    if len(preds) == 0:
        raise ValueError("no predictions to score")


def accuracy(preds: Sequence[int], labels: Sequence[int]) -> float:
    """Fraction (0..1) of predictions equal to their label."""
    _check_pairs(preds, labels)
    correct = sum(int(p) == int(y) for p, y in zip(preds, labels, strict=True))
    return correct / len(preds)


def rouge(preds: Sequence[str], refs: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L F-measures (0..1), with stemming."""
    _check_pairs(preds, refs)
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for pred, ref in zip(preds, refs, strict=True):
        scores = scorer.score(ref, pred)  # (target, prediction)
        for name in ROUGE_TYPES:
            totals[name] += scores[name].fmeasure
    return {name: total / len(preds) for name, total in totals.items()}


def bleu(preds: Sequence[str], refs: Sequence[str]) -> float:
    """Corpus BLEU (0..100) with one reference per prediction."""
    _check_pairs(preds, refs)
    return float(sacrebleu.corpus_bleu(list(preds), [list(refs)]).score)
