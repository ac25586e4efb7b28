"""Structured head dropout (compute_redraw_steps): what a re-draw changes and what it must not."""

from __future__ import annotations

import pytest
import torch

from fedcore.accounting import deserialize_payload
from fedcore.client import ClientTask, train_client
from fedcore.context import build_context
from fedcore.lora_state import PEFT_PREFIX
from fedcore.redraw import carry_optimizer_state, dropped_copy, redraw_compute
from fedcore.spec import preset


def _global(ctx) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    torch.manual_seed(3)  # non-zero B, so a slice that moved (or not) shows
    return {k: (torch.randn_like(v) if "lora_B" in k else v.clone()) for k, v in ctx.initial_state.items()}


def _units(state, ctx, mask):  # type: ignore[no-untyped-def]
    out = {}
    for hp in ctx.layout.head_params:
        units = state[hp.key].movedim(hp.axis, 0).reshape(hp.units, -1)
        out[hp.key] = units[ctx.layout.unit_mask(hp, mask)]
    return out


def test_redraw_of_every_head_trains_exactly_as_a_single_draw() -> None:
    # compute sparsity 0: every draw is every head, so a re-draw before each step rebuilds the copy and
    # carries AdamW's state without changing anything: same losses, same upload, bit for bit
    spec = preset("smoke", sparsity=0.75, compute_sparsity=0.0, prune_mode="drop", local_steps=4)
    ctx = build_context(spec)
    task = ClientTask(round=1, client=0, global_state=_global(ctx))
    once = train_client(ctx, task)
    every_step = train_client(build_context(spec.with_overrides(compute_redraw_steps=1)), task)
    assert every_step.step_losses == once.step_losses and every_step.payload == once.payload


def test_redraw_changes_the_computed_heads_not_the_uploaded_ones() -> None:
    spec = preset("smoke", sparsity=0.75, compute_sparsity=0.5, prune_mode="drop", local_steps=4)
    ctx = build_context(spec.with_overrides(compute_redraw_steps=1))
    g = _global(ctx)
    task = ClientTask(round=1, client=0, global_state=g)
    single = train_client(build_context(spec), task)
    upd = train_client(ctx, task)
    kept, compute = torch.tensor(upd.kept), torch.tensor(upd.compute)  # compute: the last draw
    assert upd.kept == single.kept and int(compute.sum()) == 8 and bool((compute | ~kept).all())
    assert upd.compute != single.compute and upd.step_losses != single.step_losses
    assert upd.bytes_up == single.bytes_up
    state, _, _ = ctx.layout.read_upload(deserialize_payload(upd.payload), g)
    for key, units in _units(state, ctx, ~kept).items():  # never trained, whatever ran in the forward
        assert torch.equal(units, _units(g, ctx, ~kept)[key]), key
    assert any(not torch.equal(u, _units(g, ctx, kept)[k]) for k, u in _units(state, ctx, kept).items())
    assert train_client(ctx, task).payload == upd.payload  # seeded


def test_redraw_keeps_the_uploaded_heads_and_the_compute_budget() -> None:
    importance = torch.rand(4, 4, generator=torch.Generator().manual_seed(0))
    kept = torch.zeros(4, 4, dtype=torch.bool)
    kept[3, :2] = True
    draws = [redraw_compute(importance, kept, 0.5, seed) for seed in range(20)]
    assert all(int(d.sum()) == 8 and bool((d | ~kept).all()) for d in draws)
    assert len({tuple(d.flatten().tolist()) for d in draws}) > 1
    assert torch.equal(redraw_compute(importance, kept, 0.5, 7), draws[7])
    per_block = redraw_compute(importance, kept, 0.5, 3, ranking="per_block")
    assert per_block[:3].sum(dim=1).tolist() == [2, 2, 2] and bool(per_block[3, :2].all())
    edge = torch.tensor([True, False, False, False])
    assert bool(redraw_compute(importance, kept, 0.5, 1, edge=edge)[0].all())


def test_optimizer_state_follows_each_head_slice_to_its_new_position() -> None:
    ctx = build_context(preset("smoke", sparsity=0.75, prune_mode="drop"))
    heads = ctx.blocks[0].num_heads
    old_present = torch.ones(len(ctx.blocks), heads, dtype=torch.bool)
    old_present[0, 0] = False  # block 0 computes heads 1.. before the re-draw
    new_present = torch.ones_like(old_present)
    new_present[0, 1] = False  # and heads 0, 2.. after it
    old = dropped_copy(ctx.model, ctx.blocks, old_present, prefix=PEFT_PREFIX, scaling=False)
    new = dropped_copy(ctx.model, ctx.blocks, new_present, prefix=PEFT_PREFIX, scaling=False)
    params = [p for p in old.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params)
    for p in params:
        opt.state[p] = {"step": torch.tensor(1.0), "exp_avg": torch.randn_like(p), "exp_avg_sq": torch.rand_like(p)}
    new_opt = torch.optim.AdamW([p for p in new.parameters() if p.requires_grad])
    carry_optimizer_state(opt, old, new_opt, new, ctx.layout, old_present, new_present)
    hp = next(h for h in ctx.layout.head_params if h.block == 0 and h.proj == "q")
    name = hp.key.replace(".weight", ".default.weight")
    before = opt.state[dict(old.named_parameters())[name]]["exp_avg"]
    after = new_opt.state[dict(new.named_parameters())[name]]["exp_avg"]
    d = hp.unit_size
    assert torch.equal(after[:d], torch.zeros_like(after[:d]))  # head 0: new to the copy
    assert torch.equal(after[d:], before[d:])  # heads 2..: were at rows d.. before (head 1 dropped out)
    assert int(after.shape[0]) == int(before.shape[0])
    shared = next(n for n, p in old.named_parameters() if p.requires_grad and "lora_A" in n and ".query." in n)
    assert torch.equal(new_opt.state[dict(new.named_parameters())[shared]]["exp_avg"],
                       opt.state[dict(old.named_parameters())[shared]]["exp_avg"])


def test_redraw_needs_a_compute_sparsity_below_the_sparsity() -> None:
    with pytest.raises(Exception, match="compute_redraw_steps"):
        preset("smoke", sparsity=0.75, prune_mode="drop", compute_redraw_steps=2)
    preset("smoke", sparsity=0.75, prune_mode="mask", compute_redraw_steps=2)  # mask mode: not used, accepted
