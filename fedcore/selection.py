"""Client selection strategies: which M of the K clients train in a round.

- ``random``: uniform sampling without replacement, as in FedAvg
  [McMahan et al., 2017, arxiv.org/abs/1602.05629].
- ``power_of_choice``: Power-of-Choice [Cho, Wang, Joshi, 2020, arxiv.org/abs/2010.01243]:
  sample d candidates in proportion to n_k, keep the M with the highest loss of the
  current global model.
- ``loss_gap``: the selection of Venkatesha, Kundu, Panda, *Assortment of Attention
  Heads* (arXiv 2506.00743, 2025), reconstructed from its abstract ("driven by loss
  differences between the global and local models"): score_k = L_k(global) - L_k(local)
  from the client's last participation, unseen clients first, epsilon exploration.
- ``head_coverage``: fedheads' own: greedily pick clients whose last kept-head sets,
  weighted by global head importance, cover the most importance not yet covered.

Determinism: all randomness of round r comes from
``np.random.default_rng([seed, r, strategy_tag])``, never from RNG state carried
between rounds, so a run resumed from :meth:`Selector.state_dict` selects exactly as
an uninterrupted one. The only carried state is the clients' last feedback.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

Strategy = Literal["random", "power_of_choice", "loss_gap", "head_coverage"]
LossFn = Callable[[list[int]], dict[int, float]]

_TAGS: dict[str, int] = {"random": 0, "power_of_choice": 1, "loss_gap": 2, "head_coverage": 3}


@dataclass
class SelectionRecord:
    """What one round's selection did; JSON-able via :func:`dataclasses.asdict`.

    ``scores`` maps client id to the strategy's score for the candidates that have
    one (never-seen clients have none and are absent); ``selected`` is in pick order.
    """

    round: int
    strategy: str
    candidates: list[int]
    scores: dict[int, float]
    selected: list[int]
    reason: str


@dataclass
class ClientFeedback:
    """What the server learns from a client's participation in a round."""

    client: int
    round: int
    loss_global: float  # loss of the received global model on the client's data, before training
    loss_local: float  # loss of the client's trained local model on the same data
    kept: list[list[bool]] | None = None  # [blocks][heads] mask it kept this round

    @property
    def gap(self) -> float:
        return self.loss_global - self.loss_local


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class Selector:
    """Base class: holds the clients' last feedback and the per-round seeded RNG."""

    strategy: str = "base"

    def __init__(self, *, num_clients: int, per_round: int, num_examples: Sequence[int], seed: int) -> None:
        if num_clients < 1:
            raise ValueError(f"num_clients must be >= 1, got {num_clients}")
        if not 1 <= per_round <= num_clients:
            raise ValueError(f"per_round must be in [1, num_clients={num_clients}], got {per_round}")
        if len(num_examples) != num_clients:
            raise ValueError(f"num_examples has {len(num_examples)} entries for {num_clients} clients")
        if any(n < 0 for n in num_examples):
            raise ValueError("num_examples must be non-negative")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.num_clients = num_clients
        self.per_round = per_round
        self.num_examples = [int(n) for n in num_examples]
        self.seed = seed
        self._last: dict[int, ClientFeedback] = {}

    def _rng(self, round: int) -> np.random.Generator:
        if round < 0:
            raise ValueError(f"round must be >= 0, got {round}")
        return np.random.default_rng([self.seed, round, _TAGS[self.strategy]])

    def _unseen(self) -> list[int]:
        return [k for k in range(self.num_clients) if k not in self._last]

    def select(
        self,
        round: int,
        *,
        loss_fn: LossFn | None = None,
        global_importance: Tensor | None = None,
    ) -> SelectionRecord:
        raise NotImplementedError

    def update(self, feedback: Sequence[ClientFeedback]) -> None:
        """Remember each client's latest participation (a later round replaces an earlier one)."""
        for fb in feedback:
            if not 0 <= fb.client < self.num_clients:
                raise ValueError(f"feedback for unknown client {fb.client}")
            old = self._last.get(fb.client)
            if old is None or fb.round >= old.round:
                self._last[fb.client] = ClientFeedback(
                    client=fb.client,
                    round=fb.round,
                    loss_global=float(fb.loss_global),
                    loss_local=float(fb.loss_local),
                    kept=[list(map(bool, row)) for row in fb.kept] if fb.kept is not None else None,
                )

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state: the strategy name and each client's last feedback."""
        last = [self._last[k] for k in sorted(self._last)]
        return {"strategy": self.strategy, "last": [
            {"client": f.client, "round": f.round, "loss_global": f.loss_global, "loss_local": f.loss_local,
             "kept": f.kept} for f in last]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("strategy") != self.strategy:
            raise ValueError(f"state is for strategy {state.get('strategy')!r}, not {self.strategy!r}")
        self._last = {}
        self.update([ClientFeedback(**item) for item in state["last"]])


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
        picked = rng.choice(self.num_clients, size=self.per_round, replace=False)
        return SelectionRecord(
            round=round,
            strategy=self.strategy,
            candidates=list(range(self.num_clients)),
            scores={},
            selected=[int(k) for k in picked],
            reason=f"uniform random sample of {self.per_round} of {self.num_clients} clients",
        )


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
        )


class LossGapSelector(Selector):
    """Loss-gap selection (Venkatesha et al. 2025, as summarised in the abstract).

    Order: never-seen clients first (seeded random order), then seen clients by
    descending ``loss_global - loss_local`` (ties by id). Take the first M, then
    replace ``floor(epsilon * M + 0.5)`` of the *seen* picks with the lowest gap by
    uniform random picks from the clients not picked (exploration). Unseen picks are
    never replaced: they are already exploration, and the gap needs one visit.
    """

    strategy = "loss_gap"

    def __init__(self, *, epsilon: float = 0.1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.epsilon = epsilon

    def select(
        self,
        round: int,
        *,
        loss_fn: LossFn | None = None,
        global_importance: Tensor | None = None,
    ) -> SelectionRecord:
        rng = self._rng(round)
        unseen = [int(k) for k in rng.permutation(np.asarray(self._unseen(), dtype=np.int64))]
        scores = {k: self._last[k].gap for k in sorted(self._last)}
        seen = sorted(scores, key=lambda k: (-scores[k], k))
        picks = (unseen + seen)[: self.per_round]
        n_unseen = min(len(unseen), self.per_round)
        n_explore = min(math.floor(self.epsilon * self.per_round + 0.5), self.per_round - n_unseen)
        rest = np.asarray(sorted(set(range(self.num_clients)) - set(picks)), dtype=np.int64)
        n_explore = min(n_explore, len(rest))
        explore = [int(k) for k in rng.choice(rest, size=n_explore, replace=False)] if n_explore else []
        picks = picks[: self.per_round - n_explore] + explore
        n_top = self.per_round - n_unseen - n_explore
        reason = f"{_plural(n_unseen, 'unseen client')} first, then {n_top} with the highest loss gap"
        reason += f"; {_plural(n_explore, 'exploration pick')}" if n_explore else ""
        return SelectionRecord(
            round=round,
            strategy=self.strategy,
            candidates=list(range(self.num_clients)),
            scores=scores,
            selected=picks,
            reason=reason,
        )


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

    def _masks(self, importance: Tensor | None) -> tuple[Tensor, dict[int, Tensor]]:
        shape: tuple[int, ...] | None = tuple(importance.shape) if importance is not None else None
        for fb in self._last.values():
            if shape is None and fb.kept is not None:
                shape = (len(fb.kept), len(fb.kept[0]) if fb.kept else 0)
        shape = shape if shape is not None else (1, 1)
        if importance is None:
            weight = torch.ones(shape, dtype=torch.float64)
        else:
            weight = importance.detach().to(torch.float64).clamp_min(0.0)
        masks: dict[int, Tensor] = {}
        for k, fb in self._last.items():
            mask = (
                torch.ones(shape, dtype=torch.bool)
                if fb.kept is None
                else torch.tensor(fb.kept, dtype=torch.bool)
            )
            if tuple(mask.shape) != shape:
                raise ValueError(f"client {k}'s kept mask has shape {tuple(mask.shape)}, expected {shape}")
            masks[k] = mask
        return weight, masks

    def select(
        self,
        round: int,
        *,
        loss_fn: LossFn | None = None,
        global_importance: Tensor | None = None,
    ) -> SelectionRecord:
        rng = self._rng(round)
        weight, masks = self._masks(global_importance)
        unseen = [int(k) for k in rng.permutation(np.asarray(self._unseen(), dtype=np.int64))]
        rank = {int(k): i for i, k in enumerate(rng.permutation(self.num_clients))}
        picks = unseen[: self.per_round]
        covered = torch.zeros_like(weight, dtype=torch.bool)
        scores: dict[int, float] = {}
        remaining = sorted(masks)
        while len(picks) < self.per_round and remaining:
            gains = {k: float((weight * (masks[k] & ~covered)).sum()) for k in remaining}
            best = min(remaining, key=lambda k: (-gains[k], rank[k]))
            scores.update(gains)
            covered |= masks[best]
            picks.append(best)
            remaining.remove(best)
        total = float(weight.sum())
        share = float((weight * covered).sum()) / total if total > 0 else 0.0
        n_unseen = min(len(unseen), self.per_round)
        reason = (
            f"{_plural(n_unseen, 'unseen client')} first, then {self.per_round - n_unseen} by greedy "
            f"importance-weighted head coverage (seen picks cover {share:.2f} of the total importance)"
        )
        return SelectionRecord(
            round=round,
            strategy=self.strategy,
            candidates=list(range(self.num_clients)),
            scores=dict(sorted(scores.items())),
            selected=picks,
            reason=reason,
        )


def make_selector(
    strategy: Strategy,
    *,
    num_clients: int,
    per_round: int,
    num_examples: Sequence[int],
    seed: int,
    candidates: int | None = None,
    epsilon: float = 0.1,
) -> Selector:
    """Build the selector for ``strategy``; ``candidates`` is Power-of-Choice's d, ``epsilon`` loss_gap's."""
    common: dict[str, Any] = {
        "num_clients": num_clients,
        "per_round": per_round,
        "num_examples": num_examples,
        "seed": seed,
    }
    if strategy == "random":
        return RandomSelector(**common)
    if strategy == "power_of_choice":
        return PowerOfChoiceSelector(candidates=candidates, **common)
    if strategy == "loss_gap":
        return LossGapSelector(epsilon=epsilon, **common)
    if strategy == "head_coverage":
        return HeadCoverageSelector(**common)
    raise ValueError(
        f"unknown selection strategy {strategy!r}; expected random, power_of_choice, loss_gap or head_coverage"
    )
