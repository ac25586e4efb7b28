"""``power_of_choice``: Power-of-Choice [Cho, Wang, Joshi, 2020, arxiv.org/abs/2010.01243]: sample d
candidates in proportion to n_k, keep the M with the highest loss of the current global model."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor

from fedcore.selection.base import LossFn, SelectionRecord, Selector


class PowerOfChoiceSelector(Selector):
    """Power-of-Choice (Cho et al. 2020): d candidates by n_k, keep the M with highest global loss."""

    strategy = "power_of_choice"

    def __init__(self, *, candidates: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        d = candidates if candidates is not None else min(self.num_clients, 2 * self.per_round)
        if not self.per_round <= d <= self.num_clients:
            raise ValueError(
                f"candidates must be in [per_round={self.per_round}, num_clients={self.num_clients}], got {d}"
            )
        if sum(1 for n in self.num_examples if n > 0) < d and sum(self.num_examples) > 0:
            raise ValueError(f"only {sum(1 for n in self.num_examples if n > 0)} clients have data; need {d}")
        self.candidates = d

    def select(
        self,
        round: int,
        *,
        loss_fn: LossFn | None = None,
        global_importance: Tensor | None = None,
    ) -> SelectionRecord:
        if loss_fn is None:
            raise ValueError("power_of_choice needs loss_fn (the global model's loss on each candidate)")
        rng = self._rng(round)
        n = np.asarray(self.num_examples, dtype=np.float64)
        p = n / n.sum() if n.sum() > 0 else None
        cands = sorted(int(k) for k in rng.choice(self.num_clients, size=self.candidates, replace=False, p=p))
        losses = loss_fn(cands)
        missing = [k for k in cands if k not in losses]
        if missing:
            raise ValueError(f"loss_fn returned no loss for candidates {missing}")
        scores = {k: float(losses[k]) for k in cands}
        ranked = sorted(cands, key=lambda k: (-scores[k], k))
        return SelectionRecord(
            round=round,
            strategy=self.strategy,
            candidates=cands,
            scores=scores,
            selected=ranked[: self.per_round],
            reason=(
                f"sampled {self.candidates} of {self.num_clients} clients in proportion to n_k, "
                f"kept the {self.per_round} with the highest global-model loss"
            ),
            candidates_total=len(cands),
        )
