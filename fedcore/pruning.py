"""Choosing which heads a client keeps.

Client k keeps its top (1 - s) heads by its own importance scores
(Venkatesha et al. 2025, arXiv 2506.00743, as summarised in its abstract; the
ranking options are fedheads' reconstruction). The number pruned is
``heads - round((1 - s) * heads)`` (so about ``s`` of them, at
least one head kept); ranking is global across blocks by default, or per block;
``min_heads_per_block`` reserves the top heads of every block first.
Ties are broken by position, so the choice is deterministic.

``sampled_keys`` is fedheads' own alternative to taking the top heads outright
(``head_choice = "sampled"``): ranking the keys it returns instead of the scores
draws the kept heads without replacement with probability proportional to their
importance (the Gumbel top-k trick: the first pick is head h with probability
w_h / sum w, the next from the rest in the same way, and so on). The draw is seeded,
so a client's choice in a round is reproducible.

In ``drop`` mode a client may remove fewer heads from its local compute than it
prunes from its upload (``compute_sparsity``, fedheads' own): ``compute_heads``
gives that larger set, optionally ramped up over the first rounds
(``compute_ramp_rounds``, after PruneFL, Jiang et al. 2022, arXiv 1909.12326) and
with the first and last blocks of each stack kept whole (``compute_edge_blocks``,
after Offsite-tuning, Xiao et al. 2023, arXiv 2302.04870).

``train_top_blocks`` (fedheads' own) restricts the kept heads to the top blocks of
each stack (``top_blocks``); the client leaves the blocks below frozen, so its local
training back-propagates only through the top blocks while its forward stays whole.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from fedcore.models.base import AttentionBlock


def _top(scores: Tensor, n: int) -> Tensor:
    """Indices of the n largest scores, ties to the lower index."""
    if n <= 0:
        return torch.zeros(0, dtype=torch.long)
    order = sorted(range(scores.numel()), key=lambda i: (-float(scores[i]), i))
    return torch.tensor(order[:n], dtype=torch.long)


def sampled_keys(importance: Tensor, seed: int) -> Tensor:
    """Keys whose ranking draws heads without replacement, with probability proportional to importance.

    ``log w + Gumbel noise`` per head, with ``w`` the importance clamped at 0 (NaN as 0).
    Heads of zero importance get ``-inf`` (drawn only after every positive one, by
    position); if no head has positive importance every head gets weight 1 (a uniform draw).
    """
    w = torch.nan_to_num(importance.float(), nan=0.0).clamp(min=0.0)
    if not bool((w > 0).any()):
        w = torch.ones_like(w)
    gen = torch.Generator().manual_seed(int(seed))
    u = torch.rand(w.shape, generator=gen, dtype=torch.float64).clamp(min=1e-300)
    gumbel = -torch.log(-torch.log(u))
    return (torch.log(w.double()) + gumbel).float()


def _keep_count(n: int, sparsity: float) -> int:
    """Heads kept out of n: the nearest whole number to (1 - s) * n, at least 1."""
    return max(1, math.floor((1 - sparsity) * n + 0.5))


def choose_kept(
    importance: Tensor,
    sparsity: float,
    *,
    ranking: str = "global",
    min_per_block: int = 0,
    eligible: Tensor | None = None,
) -> Tensor:
    """Bool [blocks, heads]: the heads a client keeps at sparsity ``s``.

    ``eligible`` (bool [blocks], ``train_top_blocks``): only these blocks' heads may be
    kept; the budget is still counted over every head (``s`` of all heads are pruned).
    At ``s = 0`` every head is kept (and uploaded) whatever ``eligible`` says.
    """
    blocks, heads = importance.shape
    kept = torch.zeros(blocks, heads, dtype=torch.bool)
    if eligible is not None and sparsity > 0:
        if ranking == "per_block" or min_per_block:
            raise ValueError("train_top_blocks ranks heads globally: per-block ranking and min_heads_per_block "
                             "would keep heads in blocks that do not train")
        budget = _keep_count(blocks * heads, sparsity)
        room = int(eligible.sum()) * heads
        if budget > room:
            raise ValueError(f"sparsity {sparsity} keeps {budget} heads but the trained blocks hold only {room}")
        flat = torch.nan_to_num(importance.float(), nan=0.0).clone()
        flat[~eligible.bool()] = -math.inf
        kept.view(-1)[_top(flat.flatten(), budget)] = True
        return kept
    if sparsity <= 0:
        return kept | True
    scores = torch.nan_to_num(importance.float(), nan=0.0)
    min_per_block = min(min_per_block, heads)
    if ranking == "per_block":
        keep = max(_keep_count(heads, sparsity), min_per_block)
        for b in range(blocks):
            kept[b, _top(scores[b], keep)] = True
        return kept
    total = blocks * heads
    budget = _keep_count(total, sparsity)
    for b in range(blocks):
        kept[b, _top(scores[b], min_per_block)] = True
    remaining = budget - int(kept.sum())
    if remaining > 0:
        flat = scores.flatten().clone()
        flat[kept.flatten()] = -math.inf
        kept.view(-1)[_top(flat, remaining)] = True
    return kept


def ramped(sparsity: float, round_: int, ramp_rounds: int) -> float:
    """The sparsity of round ``round_`` (1-based) on a linear ramp: 0 in round 1, ``sparsity`` from round 1 + N."""
    if ramp_rounds <= 0:
        return sparsity
    return sparsity * min(1.0, (round_ - 1) / ramp_rounds)


def edge_blocks(blocks: Sequence[AttentionBlock], n: int) -> Tensor:
    """Bool [blocks]: the first and the last ``n`` blocks of each stack (``group``: encoder, decoder, cross)."""
    edge = torch.zeros(len(blocks), dtype=torch.bool)
    if n <= 0:
        return edge
    for group in {b.group for b in blocks}:
        layers = sorted(b.layer for b in blocks if b.group == group)
        ends = set(layers[:n]) | set(layers[-n:])
        for i, b in enumerate(blocks):
            if b.group == group and b.layer in ends:
                edge[i] = True
    return edge


def top_blocks(blocks: Sequence[AttentionBlock], n: int) -> Tensor | None:
    """Bool [blocks]: the last ``n`` blocks of each stack (``train_top_blocks``); None when ``n`` is 0 (all train)."""
    if n <= 0:
        return None
    top = torch.zeros(len(blocks), dtype=torch.bool)
    for group in {b.group for b in blocks}:
        layers = sorted(b.layer for b in blocks if b.group == group)
        if n > len(layers):
            raise ValueError(f"train_top_blocks is {n} but the {group} stack has only {len(layers)} blocks")
        for i, b in enumerate(blocks):
            if b.group == group and b.layer in set(layers[-n:]):
                top[i] = True
    return top


def compute_heads(
    scores: Tensor,
    kept: Tensor,
    sparsity: float,
    *,
    ranking: str = "global",
    min_per_block: int = 0,
    edge: Tensor | None = None,
) -> Tensor:
    """Bool [blocks, heads]: the heads of a client's local forward, a superset of its uploaded ``kept`` heads.

    The top (1 - ``sparsity``) heads by the same ``scores`` (so, ranked alike, they contain
    ``kept``), every head of the ``edge`` blocks, and ``kept`` itself.
    """
    compute = choose_kept(scores, sparsity, ranking=ranking, min_per_block=min_per_block) | kept
    if edge is not None:
        compute |= edge[:, None]
    return compute
