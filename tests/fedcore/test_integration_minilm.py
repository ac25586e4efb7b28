"""Integration: the real MiniLM-L6 on real SNLI (needs `fedheads assets`)."""

from __future__ import annotations

import pytest

from fedcore.context import build_context
from fedcore.evaluate import evaluate
from fedcore.simulation import run_simulation
from fedcore.spec import preset

pytestmark = pytest.mark.integration


def test_minilm_snli_federated_loss_falls() -> None:
    spec = preset("demo", num_clients=4, clients_per_round=1, rounds=2, local_steps=30, eval_size=200,
                  importance_samples=16, sparsity=0.5)
    ctx = build_context(spec)
    assert len(ctx.blocks) == 6 and ctx.blocks[0].num_heads == 12
    before = evaluate(ctx, ctx.initial_state)
    run = run_simulation(spec, context=ctx)
    losses = [r.metrics["loss"] for r in run.rounds]
    assert min(losses) < before["loss"] - 0.005, (before, losses)
    assert run.rounds[-1].metrics["accuracy"] > before["accuracy"] + 0.05
    c = run.rounds[0].clients[0]
    assert sum(map(sum, c["kept"])) == 36
    assert 1.2 < c["bytes_up_dense"] / c["bytes_up"] < 1.4  # 2/(2-0.5) = 1.33, classifier shared


def test_minilm_drop_mode_runs_and_counts_fewer_ops() -> None:
    spec = preset("demo", num_clients=4, clients_per_round=1, rounds=1, local_steps=2, eval_size=64,
                  importance_samples=16, sparsity=0.9, prune_mode="drop")
    run = run_simulation(spec, context=build_context(spec))
    r = run.rounds[0]
    assert r.ops < r.ops_dense and r.ops_attention_dense / r.ops_attention > 3
