"""Tests for fedcore.selection."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import torch

from fedcore.selection import ClientFeedback, SelectionRecord, Selector, make_selector

STRATEGIES = ["random", "power_of_choice", "loss_gap", "head_coverage"]
NUM_CLIENTS = 12
NUM_EXAMPLES = [10, 50, 20, 5, 80, 30, 60, 15, 25, 40, 70, 35]


def _loss_fn(cands: list[int]) -> dict[int, float]:
    return {k: float((k * 7) % 5) + 0.1 * k for k in cands}


def _feedback(round: int) -> list[ClientFeedback]:
    """Feedback for half the clients, with varied gaps and masks over 2 blocks x 3 heads."""
    out = []
    for k in range(0, NUM_CLIENTS, 2):
        mask = [[(k + b + h) % 3 == 0 for h in range(3)] for b in range(2)]
        out.append(
            ClientFeedback(client=k, round=round, loss_global=1.0 + 0.1 * k, loss_local=0.5, kept=mask)
        )
    return out


def _selector(strategy: str, seed: int, per_round: int = 4) -> Selector:
    return make_selector(
        strategy,  # type: ignore[arg-type]
        num_clients=NUM_CLIENTS,
        per_round=per_round,
        num_examples=NUM_EXAMPLES,
        seed=seed,
        epsilon=0.25,
    )


def _select(sel: Selector, round: int) -> SelectionRecord:
    return sel.select(round, loss_fn=_loss_fn, global_importance=torch.ones(2, 3))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_select_is_deterministic_for_seed_including_after_state_reload(strategy: str) -> None:
    # Prepare
    sel = _selector(strategy, seed=3)
    sel.update(_feedback(0))
    fresh = _selector(strategy, seed=3)
    fresh.load_state_dict(json.loads(json.dumps(sel.state_dict())))
    # Execute
    first, second, resumed = _select(sel, 5), _select(sel, 5), _select(fresh, 5)
    # Assert
    assert first == second
    assert first == resumed
    json.dumps(asdict(first))  # JSON-able


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_select_differs_when_seeds_differ(strategy: str) -> None:
    # Prepare
    a, b = _selector(strategy, seed=1), _selector(strategy, seed=2)
    # Execute: over several rounds at least one selection must differ
    picks_a = [_select(a, r).selected for r in range(5)]
    picks_b = [_select(b, r).selected for r in range(5)]
    # Assert
    assert picks_a != picks_b


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_select_returns_per_round_distinct_ids_in_range(strategy: str) -> None:
    # Prepare
    sel = _selector(strategy, seed=0, per_round=5)
    sel.update(_feedback(0))
    # Execute
    rec = _select(sel, 1)
    # Assert
    assert len(rec.selected) == 5
    assert len(set(rec.selected)) == 5
    assert all(0 <= k < NUM_CLIENTS for k in rec.selected)
    assert set(rec.selected) <= set(rec.candidates)
    assert rec.strategy == strategy and rec.round == 1 and rec.reason


def test_power_of_choice_picks_highest_loss_candidates() -> None:
    # Prepare
    sel = make_selector(
        "power_of_choice",
        num_clients=NUM_CLIENTS,
        per_round=3,
        num_examples=NUM_EXAMPLES,
        seed=4,
        candidates=7,
    )
    # Execute
    rec = sel.select(0, loss_fn=_loss_fn)
    # Assert
    assert len(rec.candidates) == 7
    assert set(rec.scores) == set(rec.candidates)
    top = sorted(rec.candidates, key=lambda k: -_loss_fn([k])[k])[:3]
    assert rec.selected == top


def test_power_of_choice_raises_when_loss_fn_missing() -> None:
    # Prepare
    sel = _selector("power_of_choice", seed=0)
    # Execute / Assert
    with pytest.raises(ValueError):
        sel.select(0)


def test_loss_gap_prefers_unseen_then_highest_gap() -> None:
    # Prepare: 6 clients; 0..4 seen with gaps 0.1, 0.5, 0.3, 0.9, 0.2; client 5 unseen
    gaps = [0.1, 0.5, 0.3, 0.9, 0.2]
    sel = make_selector("loss_gap", num_clients=6, per_round=3, num_examples=[1] * 6, seed=0, epsilon=0.0)
    sel.update(
        [ClientFeedback(client=k, round=0, loss_global=1.0 + g, loss_local=1.0) for k, g in enumerate(gaps)]
    )
    # Execute
    rec = sel.select(1)
    # Assert
    assert rec.selected == [5, 3, 1]
    assert rec.scores[3] == pytest.approx(0.9)
    assert 5 not in rec.scores
    assert "1 unseen client" in rec.reason


def test_loss_gap_replaces_lowest_seen_pick_when_exploring() -> None:
    # Prepare: all seen; epsilon 0.25 of 4 -> 1 exploration pick
    sel = make_selector("loss_gap", num_clients=8, per_round=4, num_examples=[1] * 8, seed=9, epsilon=0.25)
    sel.update([ClientFeedback(client=k, round=0, loss_global=float(k), loss_local=0.0) for k in range(8)])
    # Execute
    rec = sel.select(1)
    # Assert: the three highest gaps stay, the fourth is a random one of 0..4
    assert rec.selected[:3] == [7, 6, 5]
    assert rec.selected[3] in {0, 1, 2, 3, 4}
    assert "1 exploration pick" in rec.reason


def test_head_coverage_prefers_disjoint_heads_over_duplicate() -> None:
    # Prepare: client 0 has the most important heads; 1 duplicates 0; 2 covers the others
    imp = torch.tensor([[3.0, 3.0, 1.0, 1.0]])
    masks = {
        0: [[True, True, False, False]],
        1: [[True, True, False, False]],
        2: [[False, False, True, True]],
    }
    sel = make_selector("head_coverage", num_clients=3, per_round=2, num_examples=[1, 1, 1], seed=0)
    sel.update(
        [ClientFeedback(client=k, round=0, loss_global=1.0, loss_local=0.5, kept=m) for k, m in masks.items()]
    )
    # Execute
    rec = sel.select(1, global_importance=imp)
    # Assert
    assert set(rec.selected) == {2, rec.selected[0]}
    assert rec.selected[0] in {0, 1}
    assert rec.selected[1] == 2
    assert rec.scores[2] == 2.0


def test_head_coverage_picks_unseen_first() -> None:
    # Prepare
    sel = make_selector("head_coverage", num_clients=4, per_round=2, num_examples=[1] * 4, seed=5)
    sel.update(
        [ClientFeedback(client=k, round=0, loss_global=1.0, loss_local=0.5, kept=[[True]]) for k in (0, 1, 2)]
    )
    # Execute
    rec = sel.select(1)
    # Assert
    assert rec.selected[0] == 3


def test_load_state_dict_raises_when_strategy_differs() -> None:
    # Prepare
    state = _selector("loss_gap", seed=0).state_dict()
    # Execute / Assert
    with pytest.raises(ValueError):
        _selector("head_coverage", seed=0).load_state_dict(state)


@pytest.mark.parametrize("strategy", ["random", "loss_gap", "head_coverage"])
def test_a_large_federation_records_the_picks_and_runners_up_not_every_client(strategy: str) -> None:
    from fedcore.selection import RECORD_LIMIT, RUNNERS_UP

    k = RECORD_LIMIT + 500
    sel = make_selector(strategy, num_clients=k, per_round=10, num_examples=[1] * k, seed=0)  # type: ignore[arg-type]
    gaps = {c: ((c * 7919) % 1000) / 1000 for c in range(k)}
    sel.update([ClientFeedback(client=c, round=0, loss_global=1.0 + gaps[c], loss_local=1.0,
                               kept=[[c % 2 == 0, c % 3 == 0]]) for c in range(k)])

    rec = sel.select(1, global_importance=torch.ones(1, 2))

    assert rec.candidates_total == k
    assert set(rec.selected) <= set(rec.candidates)
    assert len(rec.candidates) <= 10 + RUNNERS_UP and rec.candidates == sorted(rec.candidates)
    assert set(rec.scores) <= set(rec.candidates)
    if strategy == "loss_gap":  # the runners-up are the best unpicked gaps, with their exact scores
        best = sorted(range(k), key=lambda c: (-gaps[c], c))
        unpicked = [c for c in best if c not in rec.selected][:RUNNERS_UP]
        assert set(unpicked) <= set(rec.candidates)
        assert all(rec.scores[c] == pytest.approx(gaps[c]) for c in rec.candidates)


def test_a_small_federation_still_records_every_client_and_score() -> None:
    sel = _selector("loss_gap", seed=1)
    sel.update(_feedback(0))
    rec = _select(sel, 1)
    assert rec.candidates == list(range(NUM_CLIENTS)) and rec.candidates_total == NUM_CLIENTS
    assert rec.scores == {fb.client: pytest.approx(fb.loss_global - fb.loss_local) for fb in _feedback(0)}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_state_written_per_client_by_the_first_checkpoints_still_loads(strategy: str) -> None:
    legacy = {"strategy": strategy, "last": [
        {"client": fb.client, "round": fb.round, "loss_global": fb.loss_global, "loss_local": fb.loss_local,
         "kept": fb.kept} for fb in _feedback(0)]}
    old, new = _selector(strategy, seed=2), _selector(strategy, seed=2)
    old.load_state_dict(legacy)
    new.update(_feedback(0))
    assert old.state_dict() == new.state_dict()
    assert _select(old, 3) == _select(new, 3)
    assert old.last(2) == _feedback(0)[1] and old.last(1) is None


def test_loss_gap_explores_epsilon_of_picks_on_average_when_epsilon_m_is_fractional() -> None:
    # Prepare: 20 clients, all seen, fixed gaps; M = 4 and epsilon = 0.1 -> 0.4 random picks per round
    sel = make_selector("loss_gap", num_clients=20, per_round=4, num_examples=[1] * 20, seed=0, epsilon=0.1)
    sel.update([ClientFeedback(client=k, round=0, loss_global=1.0 + k / 100, loss_local=1.0) for k in range(20)])
    top = {19, 18, 17, 16}
    # Execute
    explored = [len(set(sel.select(r).selected) - top) for r in range(1, 401)]
    # Assert: rounding 0.4 to the nearest integer would never explore; stochastic rounding does, 0.4 on average
    assert set(explored) == {0, 1}
    assert 0.3 < sum(explored) / len(explored) < 0.5
    assert sel.select(7) == sel.select(7)  # still a pure function of (seed, round, feedback)


def test_loss_gap_exploration_count_is_exact_when_epsilon_m_is_whole() -> None:
    sel = make_selector("loss_gap", num_clients=20, per_round=4, num_examples=[1] * 20, seed=0, epsilon=0.5)
    sel.update([ClientFeedback(client=k, round=0, loss_global=1.0 + k / 100, loss_local=1.0) for k in range(20)])
    for r in range(1, 30):
        rec = sel.select(r)
        assert rec.selected[:2] == [19, 18] and len(set(rec.selected) - {19, 18, 17, 16}) == 2
        assert "2 exploration picks" in rec.reason
