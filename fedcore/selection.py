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

import itertools
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
    ``candidates_total`` is how many clients were considered. Strategies that consider
    the whole federation list every client while it has at most :data:`RECORD_LIMIT`;
    above that, only the picks and the :data:`RUNNERS_UP` best-scored others are
    listed (with their scores), so a round's record does not grow with the federation.
    """

    round: int
    strategy: str
    candidates: list[int]
    scores: dict[int, float]
    selected: list[int]
    reason: str
    candidates_total: int | None = None


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


RECORD_LIMIT = 1000
RUNNERS_UP = 100


def _recorded(num_clients: int, picks: Sequence[int], ranked: Sequence[int] | np.ndarray,
              scores: dict[int, float]) -> tuple[list[int], dict[int, float]]:
    """(candidates, scores) to record for a selection that considered all ``num_clients`` clients.

    ``ranked``: the scored clients, best first; ``scores``: their scores (client -> score).
    """
    if num_clients <= RECORD_LIMIT:
        return list(range(num_clients)), scores
    chosen = {int(k) for k in picks}
    runners = list(itertools.islice((int(k) for k in ranked if int(k) not in chosen), RUNNERS_UP))
    listed = sorted(chosen.union(runners))
    return listed, {k: scores[k] for k in listed if k in scores}


def _packed(kept: list[list[bool]]) -> str:
    """A kept mask as text, one row of 0/1 per block: compact in the JSON checkpoint."""
    return "/".join("".join("1" if b else "0" for b in row) for row in kept)


def _unpacked(text: str) -> list[list[bool]]:
    return [[c == "1" for c in row] for row in text.split("/")] if text else []


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
        # each client's last feedback, as arrays (round -1: never seen) and kept masks by client
        self._round = np.full(num_clients, -1, dtype=np.int64)
        self._loss_global = np.zeros(num_clients, dtype=np.float64)
        self._loss_local = np.zeros(num_clients, dtype=np.float64)
        self._kept: dict[int, str] = {}  # packed (see _packed)

    def _rng(self, round: int) -> np.random.Generator:
        if round < 0:
            raise ValueError(f"round must be >= 0, got {round}")
        return np.random.default_rng([self.seed, round, _TAGS[self.strategy]])

    def _seen(self) -> np.ndarray:
        """Clients with feedback, ascending."""
        return np.flatnonzero(self._round >= 0)

    def _unseen(self) -> np.ndarray:
        """Clients never seen, ascending."""
        return np.flatnonzero(self._round < 0)

    def last(self, client: int) -> ClientFeedback | None:
        """Client ``client``'s latest feedback, or None if it never participated."""
        if self._round[client] < 0:
            return None
        kept = self._kept.get(client)
        return ClientFeedback(client=client, round=int(self._round[client]),
                              loss_global=float(self._loss_global[client]),
                              loss_local=float(self._loss_local[client]),
                              kept=_unpacked(kept) if kept is not None else None)

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
            c = fb.client
            if self._round[c] >= 0 and fb.round < self._round[c]:
                continue
            self._round[c] = fb.round
            self._loss_global[c] = float(fb.loss_global)
            self._loss_local[c] = float(fb.loss_local)
            if fb.kept is not None:
                self._kept[c] = _packed([list(map(bool, row)) for row in fb.kept])
            else:
                self._kept.pop(c, None)

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state: the strategy name and each seen client's last feedback, by column."""
        seen = self._seen()
        return {
            "strategy": self.strategy,
            "clients": seen.tolist(),
            "round": self._round[seen].tolist(),
            "loss_global": self._loss_global[seen].tolist(),
            "loss_local": self._loss_local[seen].tolist(),
            "kept": {str(k): v for k, v in self._kept.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("strategy") != self.strategy:
            raise ValueError(f"state is for strategy {state.get('strategy')!r}, not {self.strategy!r}")
        self._round[:] = -1
        self._kept = {}
        if "last" in state:  # the per-client list of fedheads 0.1's first checkpoints
            self.update([ClientFeedback(**item) for item in state["last"]])
            return
        kept = state.get("kept", {})
        for i, c in enumerate(state["clients"]):
            if not 0 <= c < self.num_clients:
                raise ValueError(f"feedback for unknown client {c}")
            self._round[c] = state["round"][i]
            self._loss_global[c] = state["loss_global"][i]
            self._loss_local[c] = state["loss_local"][i]
            if str(c) in kept:
                self._kept[c] = kept[str(c)]


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
        candidates, _ = _recorded(self.num_clients, picked, [], {})
        return SelectionRecord(
            round=round,
            strategy=self.strategy,
            candidates=candidates,
            scores={},
            selected=picked,
            reason=f"uniform random sample of {self.per_round} of {self.num_clients} clients",
            candidates_total=self.num_clients,
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
            candidates_total=len(cands),
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
        reason = f"{_plural(n_unseen, 'unseen client')} first, then {n_top} with the highest loss gap"
        reason += f"; {_plural(n_explore, 'exploration pick')}" if n_explore else ""
        if self.num_clients <= RECORD_LIMIT:
            scores = {int(k): float(g) for k, g in zip(seen_ids, gaps, strict=True)}
        else:  # only what the record keeps: the picks' and the runners-up's gaps
            scores = {}
            for k in [*seen[: RUNNERS_UP + self.per_round].tolist(), *picks]:
                i = int(np.searchsorted(seen_ids, k))
                if i < len(seen_ids) and seen_ids[i] == k:
                    scores[int(k)] = float(gaps[i])
        candidates, scores = _recorded(self.num_clients, picks, seen[: RUNNERS_UP + self.per_round], scores)
        return SelectionRecord(
            round=round,
            strategy=self.strategy,
            candidates=candidates,
            scores=scores,
            selected=picks,
            reason=reason,
            candidates_total=self.num_clients,
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

    def _masks(self, seen: np.ndarray, importance: Tensor | None) -> tuple[Tensor, Tensor]:
        """(importance weight [blocks, heads], kept masks of the ``seen`` clients [seen, blocks, heads])."""
        shape: tuple[int, ...] | None = tuple(importance.shape) if importance is not None else None
        if shape is None:
            for k in seen.tolist():
                if k in self._kept:
                    rows = _unpacked(self._kept[k])
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
                mask = torch.tensor(_unpacked(self._kept[k]), dtype=torch.bool)
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
            f"{_plural(n_unseen, 'unseen client')} first, then {self.per_round - n_unseen} by greedy "
            f"importance-weighted head coverage (seen picks cover {share:.2f} of the total importance)"
        )
        ids = seen[scored]
        ranked = ids[np.lexsort((ids, -gains[scored]))]
        scores = {int(k): float(g) for k, g in zip(ids.tolist(), gains[scored].tolist(), strict=True)}
        candidates, scores = _recorded(self.num_clients, picks, ranked, scores)
        return SelectionRecord(
            round=round,
            strategy=self.strategy,
            candidates=candidates,
            scores=scores,
            selected=picks,
            reason=reason,
            candidates_total=self.num_clients,
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
