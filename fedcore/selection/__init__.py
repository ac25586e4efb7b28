"""Client selection strategies: which M of the K clients train in a round, one module per strategy
(the shared base in ``base``).

- ``random`` (``uniform``): uniform sampling without replacement, as in FedAvg
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

from collections.abc import Sequence
from typing import Any

from fedcore.selection.base import (
    RECORD_LIMIT,
    RUNNERS_UP,
    ClientFeedback,
    LossFn,
    SelectionRecord,
    Selector,
    Strategy,
)
from fedcore.selection.head_coverage import HeadCoverageSelector
from fedcore.selection.loss_gap import LossGapSelector
from fedcore.selection.power_of_choice import PowerOfChoiceSelector
from fedcore.selection.uniform import RandomSelector

__all__ = [
    "RECORD_LIMIT",
    "RUNNERS_UP",
    "ClientFeedback",
    "HeadCoverageSelector",
    "LossFn",
    "LossGapSelector",
    "PowerOfChoiceSelector",
    "RandomSelector",
    "SelectionRecord",
    "Selector",
    "Strategy",
    "make_selector",
]


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
