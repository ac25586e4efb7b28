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
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


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
) -> Tensor:
    """Bool [blocks, heads]: the heads a client keeps at sparsity ``s``."""
    blocks, heads = importance.shape
    kept = torch.zeros(blocks, heads, dtype=torch.bool)
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
