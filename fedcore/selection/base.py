"""What every selection strategy shares: the round's record, a client's feedback, the base
:class:`Selector` (the clients' last feedback and the per-round seeded RNG) and the record's size limit.

Determinism: all randomness of round r comes from
``np.random.default_rng([seed, r, strategy_tag])``, never from RNG state carried
between rounds, so a run resumed from :meth:`Selector.state_dict` selects exactly as
an uninterrupted one. The only carried state is the clients' last feedback.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
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


def recorded(num_clients: int, picks: Sequence[int], ranked: Sequence[int] | np.ndarray,
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


def packed(kept: list[list[bool]]) -> str:
    """A kept mask as text, one row of 0/1 per block: compact in the JSON checkpoint."""
    return "/".join("".join("1" if b else "0" for b in row) for row in kept)


def unpacked(text: str) -> list[list[bool]]:
    return [[c == "1" for c in row] for row in text.split("/")] if text else []


def plural(n: int, word: str) -> str:
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
        self._kept: dict[int, str] = {}  # packed (see packed)

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
                              kept=unpacked(kept) if kept is not None else None)

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
                self._kept[c] = packed([list(map(bool, row)) for row in fb.kept])
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
