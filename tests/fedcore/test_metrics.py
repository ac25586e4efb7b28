"""Tests for fedcore.metrics."""

from __future__ import annotations

import math

import pytest

from fedcore.metrics import accuracy, bleu, rouge


def test_accuracy_hand_checked_three_of_four() -> None:
    # Prepare
    preds, labels = [0, 1, 2, 2], [0, 1, 1, 2]
    # Execute
    acc = accuracy(preds, labels)
    # Assert
    assert acc == 0.75


def test_accuracy_raises_when_lengths_differ() -> None:
    # Prepare / Execute / Assert
    with pytest.raises(ValueError):
        accuracy([0, 1], [0])


def test_rouge_identical_strings_score_one() -> None:
    # Prepare
    texts = ["the cat sat on the mat", "markets rallied on friday"]
    # Execute
    scores = rouge(texts, texts)
    # Assert
    assert set(scores) == {"rouge1", "rouge2", "rougeL"}
    assert all(math.isclose(v, 1.0) for v in scores.values())


def test_rouge_disjoint_strings_score_zero() -> None:
    # Prepare / Execute
    scores = rouge(["alpha beta gamma"], ["delta epsilon zeta"])
    # Assert
    assert all(v == 0.0 for v in scores.values())


def test_rouge_uses_stemming_when_word_forms_differ() -> None:
    # Prepare / Execute
    scores = rouge(["runs"], ["running"])
    # Assert
    assert math.isclose(scores["rouge1"], 1.0)


def test_bleu_identical_strings_score_hundred() -> None:
    # Prepare
    texts = ["the cat sat on the mat", "the dog ran in the park today"]
    # Execute
    score = bleu(texts, texts)
    # Assert
    assert math.isclose(score, 100.0, abs_tol=1e-9)


def test_bleu_disjoint_strings_score_zero() -> None:
    # Prepare / Execute
    score = bleu(["a b c d e"], ["f g h i j"])
    # Assert
    assert score == 0.0
