"""``loss_gap``: the selection of Venkatesha, Kundu, Panda, *Assortment of Attention Heads*
(arXiv 2506.00743, 2025), reconstructed from its abstract ("driven by loss differences between the
global and local models"): score_k = L_k(global) - L_k(local) from the client's last participation,
unseen clients first, epsilon exploration."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from torch import Tensor

from fedcore.selection.base import (
    RECORD_LIMIT,
    RUNNERS_UP,
    LossFn,
    SelectionRecord,
    Selector,
    plural,
    recorded,
)


class LossGapSelector(Selector):
    """Loss-gap selection (Venkatesha et al. 2025, as summarised in the abstract).

    Order: never-seen clients first (seeded random order), then seen clients by
    descending ``loss_global - loss_local`` (ties by id). Take the first M, then
    replace ``epsilon * M`` of the *seen* picks with the lowest gap by uniform random
    picks from the clients not picked (exploration). Unseen picks are never replaced:
    they are already exploration, and the gap needs one visit.

    ``epsilon * M`` is rarely whole: it is rounded stochastically (``floor(epsilon * M)``
    plus one more pick with probability equal to the fractional part, drawn from the
    round's seeded RNG), so the exploration fraction is ``epsilon`` on average for any
    M. Rounding to the nearest integer instead made the default ``epsilon = 0.1`` give
    no exploration at all whenever M < 5: once every client had been seen, the same
    few clients with the largest stale gaps (typically the most label-skewed ones)
    were re-picked every round.
    """

    strategy = "loss_gap"

    def __init__(self, *, epsilon: float = 0.1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.epsilon = epsilon

    def _explore_count(self, rng: np.random.Generator) -> int:
        """``epsilon * M`` rounded stochastically: exact in expectation (a whole number draws nothing)."""
        expected = self.epsilon * self.per_round
        whole = math.floor(expected + 1e-9)
        frac = expected - whole
        if frac <= 1e-9:
            return whole
        return whole + int(rng.random() < frac)

    def select(
        self,
        round: int,
        *,
        loss_fn: LossFn | None = None,
        global_importance: Tensor | None = None,
    ) -> SelectionRecord:
        rng = self._rng(round)
        unseen = [int(k) for k in rng.permutation(self._unseen())]
        seen_ids = self._seen()
        gaps = self._loss_global[seen_ids] - self._loss_local[seen_ids]
        order = np.lexsort((seen_ids, -gaps))  # descending gap, ties by id
        seen = seen_ids[order]
        picks = unseen[: self.per_round] + [int(k) for k in seen[: max(0, self.per_round - len(unseen))]]
        n_unseen = min(len(unseen), self.per_round)
        n_explore = min(self._explore_count(rng), self.per_round - n_unseen)
        rest = np.setdiff1d(np.arange(self.num_clients, dtype=np.int64), np.asarray(picks, dtype=np.int64))
        n_explore = min(n_explore, len(rest))
        explore = [int(k) for k in rng.choice(rest, size=n_explore, replace=False)] if n_explore else []
        picks = picks[: self.per_round - n_explore] + explore
        n_top = self.per_round - n_unseen - n_explore
        reason = f"{plural(n_unseen, 'unseen client')} first, then {n_top} with the highest loss gap"
        reason += f"; {plural(n_explore, 'exploration pick')}" if n_explore else ""
        if self.num_clients <= RECORD_LIMIT:
            scores = {int(k): float(g) for k, g in zip(seen_ids, gaps, strict=True)}
        else:  # only what the record keeps: the picks' and the runners-up's gaps
            scores = {}
            for k in [*seen[: RUNNERS_UP + self.per_round].tolist(), *picks]:
                i = int(np.searchsorted(seen_ids, k))
                if i < len(seen_ids) and seen_ids[i] == k:
                    scores[int(k)] = float(gaps[i])
        candidates, scores = recorded(self.num_clients, picks, seen[: RUNNERS_UP + self.per_round], scores)
        return SelectionRecord(
            round=round,
            strategy=self.strategy,
            candidates=candidates,
            scores=scores,
            selected=picks,
            reason=reason,
            candidates_total=self.num_clients,
        )
