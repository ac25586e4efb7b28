"""``head_coverage``: fedheads' own: greedily pick clients whose last kept-head sets, weighted by
global head importance, cover the most importance not yet covered."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from fedcore.selection.base import LossFn, SelectionRecord, Selector, plural, recorded, unpacked


class HeadCoverageSelector(Selector):
    """Importance-weighted head coverage (fedheads' own).

    Never-seen clients first (seeded order; their masks are unknown, so they cover
    nothing). Then, greedily, the seen client whose last kept mask adds the most
    global importance over heads not yet covered by this round's picks; ties go to the
    earlier client in a seeded random permutation. A feedback without a mask counts
    as keeping every head. ``scores[k]`` is k's marginal gain when it was picked, or,
    for a seen client never picked, its gain at the last greedy step.
    """

    strategy = "head_coverage"

    def _masks(self, seen: np.ndarray, importance: Tensor | None) -> tuple[Tensor, Tensor]:
        """(importance weight [blocks, heads], kept masks of the ``seen`` clients [seen, blocks, heads])."""
        shape: tuple[int, ...] | None = tuple(importance.shape) if importance is not None else None
        if shape is None:
            for k in seen.tolist():
                if k in self._kept:
                    rows = unpacked(self._kept[k])
                    shape = (len(rows), len(rows[0]) if rows else 0)
                    break
        shape = shape if shape is not None else (1, 1)
        if importance is None:
            weight = torch.ones(shape, dtype=torch.float64)
        else:
            weight = importance.detach().to(torch.float64).clamp_min(0.0)
        masks = torch.ones((len(seen), *shape), dtype=torch.bool)  # no mask: every head kept
        for i, k in enumerate(seen.tolist()):
            if k in self._kept:
                mask = torch.tensor(unpacked(self._kept[k]), dtype=torch.bool)
                if tuple(mask.shape) != shape:
                    raise ValueError(f"client {k}'s kept mask has shape {tuple(mask.shape)}, expected {shape}")
                masks[i] = mask
        return weight, masks

    def select(
        self,
        round: int,
        *,
        loss_fn: LossFn | None = None,
        global_importance: Tensor | None = None,
    ) -> SelectionRecord:
        rng = self._rng(round)
        seen = self._seen()
        weight, masks = self._masks(seen, global_importance)
        unseen = [int(k) for k in rng.permutation(self._unseen())]
        rank = np.empty(self.num_clients, dtype=np.int64)
        rank[rng.permutation(self.num_clients)] = np.arange(self.num_clients)
        picks = unseen[: self.per_round]
        covered = torch.zeros_like(weight, dtype=torch.bool)
        gains = np.zeros(len(seen), dtype=np.float64)  # each seen client's last computed gain
        scored = np.zeros(len(seen), dtype=bool)
        remaining = np.ones(len(seen), dtype=bool)
        while len(picks) < self.per_round and remaining.any():
            step = (weight * (masks & ~covered)).sum(dim=(1, 2)).numpy()
            gains[remaining] = step[remaining]
            scored |= remaining
            idx = np.flatnonzero(remaining)
            best = int(idx[np.lexsort((rank[seen[idx]], -step[idx]))[0]])  # highest gain, then seeded rank
            covered |= masks[best]
            picks.append(int(seen[best]))
            remaining[best] = False
        total = float(weight.sum())
        share = float((weight * covered).sum()) / total if total > 0 else 0.0
        n_unseen = min(len(unseen), self.per_round)
        reason = (
            f"{plural(n_unseen, 'unseen client')} first, then {self.per_round - n_unseen} by greedy "
            f"importance-weighted head coverage (seen picks cover {share:.2f} of the total importance)"
        )
        ids = seen[scored]
        ranked = ids[np.lexsort((ids, -gains[scored]))]
        scores = {int(k): float(g) for k, g in zip(ids.tolist(), gains[scored].tolist(), strict=True)}
        candidates, scores = recorded(self.num_clients, picks, ranked, scores)
        return SelectionRecord(
            round=round,
            strategy=self.strategy,
            candidates=candidates,
            scores=scores,
            selected=picks,
            reason=reason,
            candidates_total=self.num_clients,
        )
