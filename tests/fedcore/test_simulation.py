"""The round loop: records, determinism across client pools, checkpoints and resume, cancel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from fedcore.client_pool import ProcessClientPool
from fedcore.context import build_context
from fedcore.simulation import RoundResult, run_simulation, save_adapter
from fedcore.spec import preset

TIMING = {"wall_time", "finished_at", "train_time"}


def _figures(rounds: list[RoundResult]) -> list[dict[str, Any]]:
    """Per-round records without wall-clock timings."""
    out = []
    for r in rounds:
        d = r.to_dict()
        for k in TIMING:
            d.pop(k, None)
        d["clients"] = [{k: v for k, v in c.items() if k not in TIMING} for c in d["clients"]]
        out.append(d)
    return out


@pytest.fixture(scope="module")
def smoke_spec():
    return preset("smoke", rounds=3, local_steps=4, eval_size=100)


@pytest.fixture(scope="module")
def sequential_run(smoke_spec):
    return run_simulation(smoke_spec, context=build_context(smoke_spec))


def test_round_records_hold_every_figure(sequential_run, smoke_spec) -> None:
    rounds = sequential_run.rounds
    assert [r.round for r in rounds] == [1, 2, 3]
    r = rounds[0]
    assert len(r.selection["selected"]) == smoke_spec.clients_per_round
    assert r.selection["candidates"] and r.selection["reason"]
    assert 0.0 <= r.metrics["accuracy"] <= 1.0
    assert len(r.global_importance) == 4 and len(r.global_importance[0]) == 4
    c = r.clients[0]
    assert sum(map(sum, c["kept"])) == 8  # s=0.5 of 16 heads
    assert c["bytes_up"] < c["bytes_up_dense"] and c["bytes_down"] > 0
    assert r.bytes_up == sum(x["bytes_up"] for x in r.clients)
    assert c["ops"] > 0 and c["ops_dense"] >= c["ops"]


def test_same_seed_gives_identical_rounds_sequential_and_parallel(sequential_run, smoke_spec) -> None:
    with ProcessClientPool(smoke_spec, workers=2) as pool:
        parallel = run_simulation(smoke_spec, context=build_context(smoke_spec), client_pool=pool)
    assert _figures(parallel.rounds) == _figures(sequential_run.rounds)
    assert all(torch.equal(parallel.final_state[k], sequential_run.final_state[k]) for k in parallel.final_state)


def test_drop_options_give_identical_rounds_sequential_and_parallel() -> None:
    spec = preset("smoke", rounds=2, local_steps=3, eval_size=60, prune_mode="drop", sparsity=0.75,
                  compute_sparsity=0.5, compute_ramp_rounds=1, drop_scaling=True,
                  head_choice="sampled", compute_redraw_steps=1)
    sequential = run_simulation(spec, context=build_context(spec))
    with ProcessClientPool(spec, workers=2) as pool:
        parallel = run_simulation(spec, client_pool=pool, context=build_context(spec))
    assert _figures(parallel.rounds) == _figures(sequential.rounds)
    assert sequential.rounds[1].ops < sequential.rounds[0].ops  # round 1 ran dense (the ramp), round 2 pruned


def test_round_schedules_give_identical_rounds_sequential_and_parallel() -> None:
    spec = preset("smoke", rounds=2, local_steps=2, eval_size=60, sparsity=0.75, lr_schedule="cosine",
                  warmup_steps=2, train_top_blocks=1, train_top_blocks_after=1, model_dropout=0.2)
    sequential = run_simulation(spec, context=build_context(spec))
    with ProcessClientPool(spec, workers=2) as pool:
        parallel = run_simulation(spec, client_pool=pool, context=build_context(spec))
    assert _figures(parallel.rounds) == _figures(sequential.rounds)
    assert sequential.rounds[1].ops < sequential.rounds[0].ops == sequential.rounds[0].ops_dense  # warm-up: dense


def test_stop_at_round_2_and_resume_equals_uninterrupted(sequential_run, smoke_spec, tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    first = run_simulation(smoke_spec, context=build_context(smoke_spec), checkpoint_dir=ck, stop_after_round=2)
    assert first.status == "stopped" and len(first.rounds) == 2
    resumed = run_simulation(smoke_spec, context=build_context(smoke_spec), checkpoint_dir=ck)
    assert resumed.status == "succeeded" and [r.round for r in resumed.rounds] == [1, 2, 3]
    assert _figures(resumed.rounds) == _figures(sequential_run.rounds)
    assert all(torch.equal(resumed.final_state[k], sequential_run.final_state[k]) for k in resumed.final_state)


def test_different_seed_gives_different_selection(smoke_spec) -> None:
    other = smoke_spec.with_overrides(seed=7, rounds=1)
    run = run_simulation(other, context=build_context(other))
    base = run_simulation(smoke_spec.with_overrides(rounds=1), context=build_context(smoke_spec))
    assert run.rounds[0].clients[0]["importance"] != base.rounds[0].clients[0]["importance"]


def test_should_stop_cancels_within_a_round(smoke_spec) -> None:
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 3  # lets the loop start, stops inside the first client's training

    run = run_simulation(smoke_spec, context=build_context(smoke_spec), should_stop=stop)
    assert run.status == "cancelled" and run.rounds == []


def test_smoke_training_lowers_eval_loss() -> None:
    spec = preset("smoke", sparsity=0.0, aggregation="fedavg", selection="random")
    run = run_simulation(spec, context=build_context(spec))
    losses = [r.metrics["loss"] for r in run.rounds]
    assert losses[-1] < losses[0]


@pytest.mark.parametrize(
    "overrides",
    [
        {"prune_mode": "drop", "sparsity": 0.9},
        {"aggregation": "masked_fedavg", "selection": "power_of_choice"},
        {"aggregation": "fedavg", "selection": "head_coverage", "importance": "gradient"},
        {"model": "tiny-llama", "selection": "random", "prune_mode": "drop", "sparsity": 0.5},
        {"model": "tiny-t5", "prune_mode": "drop"},
        {"prune_mode": "drop", "sparsity": 0.9, "compute_sparsity": 0.5, "compute_ramp_rounds": 1,
         "drop_scaling": True},
        {"model": "tiny-t5", "prune_mode": "drop", "sparsity": 0.75, "compute_sparsity": 0.5, "drop_scaling": True},
        {"model": "tiny-t5", "prune_mode": "drop", "sparsity": 0.75, "compute_sparsity": 0.25, "compute_redraw_steps": 1},
        {"model": "tiny-llama", "prune_mode": "drop", "sparsity": 0.75, "compute_sparsity": 0.5,
         "compute_redraw_steps": 1},
        {"model": "tiny-t5", "dataset": "synthetic", "partition": "dirichlet", "dirichlet_alpha": 0.3},
    ],
)
def test_options_run_end_to_end(overrides: dict[str, Any]) -> None:
    spec = preset("smoke", rounds=2, local_steps=2, eval_size=40, **overrides)
    run = run_simulation(spec, context=build_context(spec))
    assert len(run.rounds) == 2 and run.status == "succeeded"
    r = run.rounds[-1]
    assert r.metrics["accuracy"] is not None and r.bytes_up > 0
    if spec.prune_mode == "drop" and spec.sparsity > 0:
        assert r.ops < r.ops_dense and r.ops_attention < r.ops_attention_dense


def test_generation_task_reports_rouge_and_bleu(tmp_path: Path) -> None:
    data = tmp_path / "gen.jsonl"
    rows = [f'{{"text": "copy the words alpha{i % 5} beta", "summary": "alpha{i % 5} beta"}}' for i in range(60)]
    data.write_text("\n".join(rows))
    spec = preset("smoke", model="tiny-t5", dataset="local", data_path="gen.jsonl", target_field="summary",
                  rounds=1, local_steps=2, eval_size=10, partition="iid")
    from fedcore.context import Paths

    run = run_simulation(spec, context=build_context(spec, Paths(data_root=tmp_path)))
    m = run.rounds[0].metrics
    assert {"rouge1", "rouge2", "rougeL", "bleu", "loss"} <= set(m)


def test_final_adapter_loads_with_peft(sequential_run, smoke_spec, tmp_path: Path) -> None:
    from peft import PeftModel, get_peft_model_state_dict

    from fedcore.models.loading import load_model

    ctx = build_context(smoke_spec)
    path = save_adapter(ctx, sequential_run.final_state, tmp_path / "adapter")
    base = load_model(smoke_spec.model, task="classification", num_labels=3, seed=smoke_spec.seed).model
    loaded = PeftModel.from_pretrained(base, str(path))
    sd = get_peft_model_state_dict(loaded)
    for k, v in sequential_run.final_state.items():
        assert torch.equal(sd[k], v), k


def _contexts_loaded(_: int) -> int:
    """In a pool worker: how many run contexts the process holds."""
    from fedcore import context

    return len(context._CACHE)


def test_process_pool_starts_warm(smoke_spec) -> None:
    """The pool's processes start when it is made and load the model and data in their initializer, so the
    first round's tasks find them loaded (the caller loads its own context meanwhile)."""
    with ProcessClientPool(smoke_spec, workers=2) as pool:
        assert len(pool._pool._processes) == 2  # started at construction, before any round
        assert list(pool._pool.map(_contexts_loaded, range(4))) == [1, 1, 1, 1]


SKIPPED_FIELDS = {"importance": ("importance",), "loss_global": ("loss_global", "loss_pruned"),
                  "loss_local": ("loss_local",)}


@pytest.mark.parametrize(("overrides", "skipped"), [
    ({"sparsity": 0.0, "selection": "random", "aggregation": "fedavg"}, ["importance", "loss_global", "loss_local"]),
    ({"sparsity": 0.0, "selection": "loss_gap", "aggregation": "fedavg"}, ["importance"]),
    ({"sparsity": 0.5, "selection": "random", "aggregation": "head_weighted"}, ["loss_local"]),
    ({"sparsity": 0.5, "selection": "random", "aggregation": "fedavg", "importance": "gradient"},
     ["loss_global", "loss_local"]),
])
def test_needed_probe_passes_skip_what_nothing_uses_and_change_no_other_figure(overrides, skipped) -> None:
    """probe_passes='needed' runs only the passes the run uses: the round record names the skipped ones,
    their figures are null, and every other figure (accuracy, losses, bytes, OPs, selections, state) is
    the one of probe_passes='all', bit for bit."""
    base = dict(rounds=2, local_steps=3, eval_size=60, **overrides)
    full_spec, lean_spec = preset("smoke", **base), preset("smoke", probe_passes="needed", **base)
    full = run_simulation(full_spec, context=build_context(full_spec))
    lean = run_simulation(lean_spec, context=build_context(lean_spec))
    assert all(r.skipped == [] for r in full.rounds)
    assert all(r.skipped == sorted(skipped) for r in lean.rounds)
    a, b = _figures(full.rounds), _figures(lean.rounds)
    gone = {f for p in skipped for f in SKIPPED_FIELDS[p]}
    for ra, rb in zip(a, b, strict=True):
        if "importance" in skipped:
            assert all(v is None for row in rb["global_importance"] for v in row)
            ra.pop("global_importance"), rb.pop("global_importance")
        for ca, cb in zip(ra.pop("clients"), rb.pop("clients"), strict=True):
            for f in gone:
                assert cb[f] is None or (isinstance(cb[f], list) and all(v is None for row in cb[f] for v in row))
                assert ca[f] is not None
            assert cb.pop("skipped") == sorted(skipped) and ca.pop("skipped") == []
            assert {k: v for k, v in ca.items() if k not in gone} == {k: v for k, v in cb.items() if k not in gone}
        ra.pop("skipped"), rb.pop("skipped")
        assert ra == rb  # accuracy, eval loss, bytes, OPs, selection, agreement, weights
    assert all(torch.equal(full.final_state[k], lean.final_state[k]) for k in full.final_state)


def test_process_pool_shares_evaluation_with_identical_figures() -> None:
    """The pool's workers evaluate every n-th batch each (odd batch count, a trained state): the metrics are
    those of one process evaluating every batch, to the bit."""
    from fedcore.evaluate import evaluate

    spec = preset("smoke", eval_size=60, eval_batch_size=8)
    ctx = build_context(spec)
    g = torch.Generator().manual_seed(7)
    state = {k: v + 0.05 * torch.randn(v.shape, generator=g) for k, v in ctx.initial_state.items()}
    with ProcessClientPool(spec, workers=2) as pool:
        shared = evaluate(ctx, state, pool.evaluate_parts)
    assert shared == evaluate(ctx, state)
