"""``random``: uniform sampling without replacement, as in FedAvg
[McMahan et al., 2017, arxiv.org/abs/1602.05629]."""

from __future__ import annotations

from torch import Tensor

from fedcore.selection.base import LossFn, SelectionRecord, Selector, recorded


class RandomSelector(Selector):
    """FedAvg's uniform sampling without replacement."""

    strategy = "random"

    def select(
        self,
        round: int,
        *,
        loss_fn: LossFn | None = None,
        global_importance: Tensor | None = None,
    ) -> SelectionRecord:
        rng = self._rng(round)
        picked = [int(k) for k in rng.choice(self.num_clients, size=self.per_round, replace=False)]
        candidates, _ = recorded(self.num_clients, picked, [], {})
        return SelectionRecord(
            round=round,
            strategy=self.strategy,
            candidates=candidates,
            scores={},
            selected=picked,
            reason=f"uniform random sample of {self.per_round} of {self.num_clients} clients",
            candidates_total=self.num_clients,
        )
