"""Choosing kept heads from importance scores."""

from __future__ import annotations

import torch

from fedcore.pruning import choose_kept


def test_global_ranking_keeps_top_heads_across_blocks() -> None:
    imp = torch.tensor([[0.9, 0.1, 0.2, 0.3], [0.8, 0.7, 0.05, 0.01]])
    kept = choose_kept(imp, 0.5)
    assert kept.tolist() == [[True, False, False, True], [True, True, False, False]]


def test_global_ranking_can_empty_a_block_at_high_sparsity() -> None:
    imp = torch.tensor([[0.9, 0.8, 0.7, 0.6], [0.1, 0.1, 0.1, 0.1]])
    kept = choose_kept(imp, 0.75)  # round(0.25*8)=2 kept
    assert kept[1].sum() == 0 and kept[0].tolist() == [True, True, False, False]


def test_min_heads_per_block_reserves_each_block() -> None:
    imp = torch.tensor([[0.9, 0.8, 0.7, 0.6], [0.1, 0.2, 0.1, 0.1]])
    kept = choose_kept(imp, 0.75, min_per_block=1)
    assert kept.sum() == 2 and kept[1].tolist() == [False, True, False, False] and kept[0, 0]


def test_per_block_ranking_keeps_same_count_per_block() -> None:
    imp = torch.rand(3, 8, generator=torch.Generator().manual_seed(0))
    kept = choose_kept(imp, 0.5, ranking="per_block")
    assert kept.sum(1).tolist() == [4, 4, 4]


def test_sparsity_zero_keeps_everything_and_ties_are_deterministic() -> None:
    imp = torch.zeros(2, 4)
    assert choose_kept(imp, 0.0).all()
    a = choose_kept(imp, 0.5)
    assert torch.equal(a, choose_kept(imp, 0.5)) and a.sum() == 4
    assert a.tolist() == [[True, True, True, True], [False, False, False, False]]


def test_sparsity_090_on_minilm_shape_keeps_seven_of_72() -> None:
    kept = choose_kept(torch.rand(6, 12, generator=torch.Generator().manual_seed(1)), 0.9)
    assert int(kept.sum()) == 7  # round(0.1 * 72)
