"""Choosing kept heads from importance scores."""

from __future__ import annotations

import pytest
import torch

from fedcore.pruning import choose_kept, sampled_keys


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


def test_sampled_keys_are_seeded_and_keep_the_budget() -> None:
    imp = torch.rand(6, 12, generator=torch.Generator().manual_seed(2)) + 0.1
    a = choose_kept(sampled_keys(imp, 7), 0.9)
    assert torch.equal(a, choose_kept(sampled_keys(imp, 7), 0.9)) and int(a.sum()) == 7
    draws = {tuple(choose_kept(sampled_keys(imp, seed), 0.9).flatten().tolist()) for seed in range(20)}
    assert len(draws) > 10  # another seed, another draw


def test_sampled_keys_draw_in_proportion_to_importance() -> None:
    # one kept head of two: head 0 (weight 3) is drawn with probability 3/4
    imp = torch.tensor([[3.0, 1.0]])
    n = 4000
    first = sum(bool(choose_kept(sampled_keys(imp, seed), 0.5)[0, 0]) for seed in range(n))
    assert abs(first / n - 0.75) < 0.03  # 4.4 standard deviations
    # without replacement: keeping 2 of [2, 1, 1] keeps head 0 with 2/4 + 1/4 * 2/3 * 2 = 5/6
    imp = torch.tensor([[2.0, 1.0, 1.0]])
    kept0 = sum(bool(choose_kept(sampled_keys(imp, seed), 1 / 3)[0, 0]) for seed in range(n))
    assert abs(kept0 / n - 5 / 6) < 0.027


def test_sampled_keys_draw_zero_importance_last_and_uniformly_when_all_zero() -> None:
    imp = torch.tensor([[0.0, 0.5, float("nan"), 0.2]])
    for seed in range(50):
        assert choose_kept(sampled_keys(imp, seed), 0.5)[0].tolist() == [False, True, False, True]
    zeros = torch.zeros(1, 4)
    counts = torch.stack([choose_kept(sampled_keys(zeros, s), 0.75)[0] for s in range(2000)]).sum(0)
    assert counts.sum() == 2000 and int(counts.min()) > 400  # each about 500


def test_sampled_keys_respect_per_block_and_min_per_block() -> None:
    imp = torch.rand(3, 8, generator=torch.Generator().manual_seed(3)) + 0.05
    for seed in range(10):
        assert choose_kept(sampled_keys(imp, seed), 0.5, ranking="per_block").sum(1).tolist() == [4, 4, 4]
        kept = choose_kept(sampled_keys(imp, seed), 0.9, min_per_block=1)
        assert (kept.sum(1) >= 1).all() and int(kept.sum()) == max(3, round(0.1 * 24))


def test_min_per_block_fill_never_picks_a_reserved_head_when_keys_are_minus_infinity() -> None:
    # zero importance gives -inf keys (nan_to_num makes them the lowest finite float, below the -inf that marks
    # reserved heads): the global fill still reaches the budget with unreserved heads
    imp = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0]])
    for seed in range(5):
        kept = choose_kept(sampled_keys(imp, seed), 0.5, min_per_block=1)
        assert int(kept.sum()) == 4 and kept[1, 0] and kept.sum(1).min() >= 1


def test_choose_kept_with_eligible_blocks_ranks_only_their_heads_against_the_whole_budget() -> None:
    from fedcore.pruning import choose_kept

    imp = torch.tensor([[9.0, 8.0, 7.0], [1.0, 2.0, 3.0], [0.5, 0.2, 0.1]])
    eligible = torch.tensor([False, True, True])
    kept = choose_kept(imp, 0.67, eligible=eligible)  # keep round(0.33 * 9) = 3 of all 9 heads
    assert kept.tolist() == [[False, False, False], [True, True, True], [False, False, False]]
    assert bool(choose_kept(imp, 0.0, eligible=eligible).all())  # s = 0: every head, as dense
    with pytest.raises(ValueError, match="trained blocks hold only 3"):
        choose_kept(imp, 0.5, eligible=torch.tensor([False, False, True]))  # 4 heads kept, 3 eligible


def test_top_blocks_takes_the_last_blocks_of_each_stack() -> None:
    from fedcore.models.base import AttentionBlock
    from fedcore.pruning import top_blocks

    def blk(i: int, group: str, layer: int) -> AttentionBlock:
        return AttentionBlock(index=i, name=f"{group}.{layer}", group=group, layer=layer,  # type: ignore[arg-type]
                              module="m", q="q", k="k", v="v", o="o", num_heads=2, num_kv_heads=2, head_dim=4)

    blocks = [blk(0, "encoder", 0), blk(1, "encoder", 1), blk(2, "encoder", 2), blk(3, "decoder", 0),
              blk(4, "cross", 0), blk(5, "decoder", 1), blk(6, "cross", 1)]
    assert top_blocks(blocks, 0) is None
    top = top_blocks(blocks, 1)
    assert top is not None and top.tolist() == [False, False, True, False, False, True, True]
    with pytest.raises(ValueError, match="has only 2 blocks"):
        top_blocks(blocks, 3)
