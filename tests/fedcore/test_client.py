"""One client's round: frozen slices in mask mode, drop mode's dense tail, what is uploaded, seeded repeatability."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from peft import get_peft_model_state_dict

from fedcore.accounting import deserialize_payload
from fedcore.client import (
    ClientTask,
    _dropped_state,
    _to_full_model,
    client_probe,
    load_global,
    round_lr,
    step_lr,
    train_client,
)
from fedcore.context import build_context
from fedcore.drop import drop_heads
from fedcore.lora_state import KEPT_KEY, PEFT_PREFIX, HeadParam
from fedcore.spec import preset


def test_mask_mode_leaves_pruned_slices_at_global_values() -> None:
    spec = preset("smoke", sparsity=0.5, local_steps=3)
    ctx = build_context(spec)
    g = {k: v.clone() for k, v in ctx.initial_state.items()}
    # make the global LoRA B non-zero so a changed slice is visible
    g = {k: (torch.randn_like(v) if "lora_B" in k else v) for k, v in g.items()}
    upd = train_client(ctx, ClientTask(round=1, client=0, global_state=g))
    kept = torch.tensor(upd.kept)
    local = get_peft_model_state_dict(ctx.model)
    changed_kept = 0
    for hp in ctx.layout.head_params:
        mask = ctx.layout.unit_mask(hp, kept)
        units_now = local[hp.key].movedim(hp.axis, 0).reshape(hp.units, -1)
        units_then = g[hp.key].movedim(hp.axis, 0).reshape(hp.units, -1)
        assert torch.equal(units_now[~mask], units_then[~mask]), hp.key
        changed_kept += int((units_now[mask] != units_then[mask]).any())
    assert changed_kept > 0
    payload = deserialize_payload(upd.payload)
    assert torch.equal(payload[KEPT_KEY].bool(), kept)
    assert len(upd.payload) == upd.bytes_up < upd.bytes_up_dense


def test_same_task_twice_gives_identical_update() -> None:
    spec = preset("smoke", local_steps=2, lora_dropout=0.1)
    ctx = build_context(spec)
    task = ClientTask(round=3, client=2, global_state=ctx.initial_state)
    a = train_client(ctx, task)
    b = train_client(ctx, task)
    assert a.payload == b.payload and a.loss_local == b.loss_local and a.kept == b.kept
    c = train_client(ctx, ClientTask(round=4, client=2, global_state=ctx.initial_state))
    assert c.payload != a.payload


def test_local_epochs_sets_steps_from_client_size() -> None:
    spec = preset("smoke", local_steps=None, local_epochs=0.5, num_clients=20, clients_per_round=2)
    ctx = build_context(spec)
    upd = train_client(ctx, ClientTask(round=1, client=0, global_state=ctx.initial_state))
    n = ctx.num_examples[0]
    assert upd.steps == math.ceil(0.5 * n / spec.batch_size) and upd.steps > 1


def test_excluding_special_tokens_changes_confidence_on_encoder_queries() -> None:
    from fedcore.client import client_probe
    from fedcore.importance import confidence_and_loss

    spec = preset("smoke")
    ctx = build_context(spec)
    probe = client_probe(ctx, 0, 1)
    n, h = len(ctx.blocks), ctx.blocks[0].num_heads
    plain, _ = confidence_and_loss(ctx.family, ctx.model, probe, n, h)
    excl, _ = confidence_and_loss(ctx.family, ctx.model, probe, n, h, exclude_ids=ctx.special_ids)
    assert plain.shape == excl.shape == (n, h)
    assert not torch.allclose(plain, excl)
    assert ((plain > 0) & (plain <= 1)).all()


@pytest.mark.parametrize(("model", "generation"), [("tiny-bert", False), ("tiny-t5", False), ("tiny-t5", True),
                                                   ("tiny-llama", False), ("tiny-llama", True)])
def test_confidence_and_loss_share_one_pass_and_equal_the_separate_measurements(
        model: str, generation: bool, tmp_path: Path) -> None:
    """A client reads its importance and the global model's loss from the same forward passes;
    both must equal what the separate functions measure (loss gap compares this loss with
    ``mean_loss`` of the trained model, and power-of-choice with ``global_loss``)."""
    from fedcore.client import client_probe, global_loss, mean_loss
    from fedcore.context import Paths
    from fedcore.importance import confidence_and_loss

    if generation:
        rows = [f'{{"text": "copy the words alpha{i % 5} beta", "summary": "alpha{i % 5} beta"}}' for i in range(60)]
        (tmp_path / "gen.jsonl").write_text("\n".join(rows))
        spec = preset("smoke", model=model, dataset="local", data_path="gen.jsonl", target_field="summary",
                      partition="iid")
    else:
        spec = preset("smoke", model=model)
    ctx = build_context(spec, Paths(data_root=tmp_path))
    load_global(ctx, ctx.initial_state)
    probe = client_probe(ctx, 1, 2)
    n, h = len(ctx.blocks), ctx.blocks[0].num_heads
    importance, loss = confidence_and_loss(ctx.family, ctx.model, probe, n, h)
    assert importance.shape == (n, h) and ((importance > 0) & (importance <= 1)).all()
    separate = mean_loss(ctx, ctx.model, probe)
    assert loss == pytest.approx(separate, rel=1e-6, abs=1e-7) and loss > 0
    assert global_loss(ctx, ctx.initial_state, 1, 2) == pytest.approx(loss, rel=1e-6, abs=1e-7)
    # the client's record carries this loss
    upd = train_client(ctx, ClientTask(round=2, client=1, global_state=ctx.initial_state))
    assert upd.loss_global == pytest.approx(loss, rel=1e-6, abs=1e-7)


def _units(state: dict, hp: HeadParam, kept_mask: torch.Tensor) -> torch.Tensor:
    """The rows of ``hp``'s tensor in ``state``, one per head (or kv group), where ``kept_mask`` is set."""
    return state[hp.key].movedim(hp.axis, 0).reshape(hp.units, -1)[kept_mask]


def test_drop_dense_tail_carries_the_dropped_copy_over_to_the_full_model() -> None:
    ctx = build_context(preset("smoke", sparsity=0.5, prune_mode="drop"))
    g = {k: (torch.randn_like(v) if "lora_B" in k else v.clone()) for k, v in ctx.initial_state.items()}
    load_global(ctx, g)
    kept = torch.zeros(len(ctx.blocks), ctx.blocks[0].num_heads, dtype=torch.bool)
    kept[:, 0] = True
    kept[1, 1] = True
    dropped = copy.deepcopy(ctx.model)
    drop_heads(dropped, ctx.blocks, kept, prefix=PEFT_PREFIX)
    with torch.no_grad():  # stand-in for training the copy: every trainable tensor moves
        for p in dropped.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p))
    trained = _dropped_state(dropped, ctx.layout)
    full = get_peft_model_state_dict(_to_full_model(ctx, dropped, kept, g))
    for k in ctx.layout.shared_keys:
        assert torch.equal(full[k], trained[k]), k
    for hp in ctx.layout.head_params:
        mask = ctx.layout.unit_mask(hp, kept)
        assert torch.equal(_units(full, hp, mask), trained[hp.key].movedim(hp.axis, 0).reshape(int(mask.sum()), -1))
        assert torch.equal(_units(full, hp, ~mask), _units(g, hp, ~mask)), hp.key


def test_drop_dense_tail_as_long_as_the_round_is_mask_mode() -> None:
    steps = 4
    ctx = build_context(preset("smoke", sparsity=0.5, local_steps=steps))
    task = ClientTask(round=2, client=1, global_state=ctx.initial_state)
    mask = train_client(ctx, task)
    ctx_tail = build_context(preset("smoke", sparsity=0.5, local_steps=steps, prune_mode="drop",
                                    drop_dense_steps=steps + 3))
    tail = train_client(ctx_tail, task)
    assert tail.payload == mask.payload and tail.loss_local == mask.loss_local
    assert (tail.ops, tail.ops_attention) == (mask.ops, mask.ops_attention)


def test_drop_dense_tail_trains_both_phases_and_counts_each_phase_ops() -> None:
    steps = 4
    g0 = build_context(preset("smoke")).initial_state
    g = {k: (torch.randn_like(v) if "lora_B" in k else v.clone()) for k, v in g0.items()}
    task = ClientTask(round=2, client=1, global_state=g)
    runs = {}
    for k in (0, 2, steps):
        ctx = build_context(preset("smoke", sparsity=0.5, local_steps=steps, prune_mode="drop", drop_dense_steps=k))
        runs[k] = (ctx, train_client(ctx, task))
    drop, tail, mask = runs[0][1], runs[2][1], runs[steps][1]
    assert drop.kept == tail.kept == mask.kept
    assert len({drop.payload, tail.payload, mask.payload}) == 3  # both phases change the upload
    assert drop.ops < tail.ops < mask.ops and drop.ops_attention < tail.ops_attention < mask.ops_attention
    assert drop.ops_dense == tail.ops_dense == mask.ops_dense
    # the tail trained the full model: its pruned heads' slices are still the global ones, kept ones moved
    ctx = runs[2][0]
    local = get_peft_model_state_dict(ctx.model)
    kept = torch.tensor(tail.kept)
    moved = 0
    for hp in ctx.layout.head_params:
        m = ctx.layout.unit_mask(hp, kept)
        assert torch.equal(_units(local, hp, ~m), _units(g, hp, ~m)), hp.key
        moved += int(not torch.equal(_units(local, hp, m), _units(g, hp, m)))
    assert moved > 0


def _head_delta_norms(ctx, state, proj: str) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """[blocks, heads] Frobenius norm of each head's rows of the q/k/v LoRA update B @ A."""
    rows = []
    for hp in ctx.layout.head_params:
        if hp.proj != proj:
            continue
        a = state[hp.key.replace(".lora_B.", ".lora_A.")]
        delta = state[hp.key] @ a
        rows.append(delta.reshape(hp.units, -1).norm(dim=1))
    return torch.stack(rows)


@pytest.mark.parametrize("model", ["tiny-bert", "tiny-t5", "tiny-llama"])  # tiny-llama has grouped k/v heads
def test_heads_random_init_swaps_the_random_half_and_starts_from_the_base_model(model: str) -> None:
    peft_ctx = build_context(preset("smoke", model=model))
    ctx = build_context(preset("smoke", model=model, lora_init="heads_random"))
    s, p = ctx.initial_state, peft_ctx.initial_state
    for hp in ctx.layout.head_params:
        a_key = hp.key.replace(".lora_B.", ".lora_A.") if hp.axis == 0 else hp.key
        b_key = hp.key if hp.axis == 0 else hp.key.replace(".lora_A.", ".lora_B.")
        if hp.proj == "o":  # already head-specific-random: untouched
            assert torch.equal(s[a_key], p[a_key]) and not (s[b_key] != 0).any()
        else:
            assert not (s[a_key] != 0).any() and (s[b_key] != 0).all()
            bound = s[a_key].shape[1] ** -0.5
            assert s[b_key].abs().max() <= bound
    assert ctx.initial_state.keys() == peft_ctx.initial_state.keys()
    # B A = 0 everywhere: the model starts as the base model, as with PEFT's initialisation
    batch = client_probe(ctx, 0, 1)[0]
    ctx.model.eval()
    with torch.no_grad():
        out = ctx.family.per_example_loss(ctx.model, batch)
        with ctx.model.disable_adapter():
            base = ctx.family.per_example_loss(ctx.model, batch)
    assert torch.equal(out, base)
    again = build_context(preset("smoke", model=model, lora_init="heads_random"))
    assert all(torch.equal(again.initial_state[k], v) for k, v in s.items())  # seeded


@pytest.mark.parametrize("proj", ["q", "k", "v"])
def test_heads_random_init_adapts_the_heads_mask_mode_pruned(proj: str) -> None:
    results = {}
    for init in ("peft", "heads_random"):
        ctx = build_context(preset("smoke", lora_init=init, sparsity=0.5, prune_mode="mask", local_steps=3))
        upd = train_client(ctx, ClientTask(round=1, client=0, global_state=ctx.initial_state))
        pruned = ~torch.tensor(upd.kept).bool()
        assert pruned.any()
        local = get_peft_model_state_dict(ctx.model)
        results[init] = _head_delta_norms(ctx, local, proj)[pruned]
    assert not (results["peft"] != 0).any()  # B rows frozen at zero: no update for a pruned head
    assert (results["heads_random"] > 0).all()  # the shared A moved every pruned head's q/k/v


def test_sampled_head_choice_varies_by_round_is_seeded_and_reports_real_importance() -> None:
    top_ctx = build_context(preset("smoke", sparsity=0.5, local_steps=1))
    ctx = build_context(preset("smoke", sparsity=0.5, local_steps=1, head_choice="sampled"))
    kept_sets = set()
    for round_ in range(1, 7):
        task = ClientTask(round=round_, client=0, global_state=ctx.initial_state)
        upd = train_client(ctx, task)
        top = train_client(top_ctx, ClientTask(round=round_, client=0, global_state=top_ctx.initial_state))
        # the same importance as 'top' reports (it feeds the aggregation weights), only the choice differs
        assert torch.allclose(torch.tensor(upd.importance), torch.tensor(top.importance))
        assert sum(map(sum, upd.kept)) == sum(map(sum, top.kept))
        kept_sets.add(tuple(map(tuple, upd.kept)))
        assert train_client(ctx, task).kept == upd.kept  # seeded by (seed, round, client)
    assert len(kept_sets) > 1  # the untrained global model is the same each round; the draw is not


def test_drop_path_with_every_head_kept_equals_dense_step_for_step() -> None:
    """The drop code path (a copy, drop_heads, the copy's state uploaded) with an all-true mask
    is dense training: the same loss at every step, the same upload bytes."""
    dense_ctx = build_context(preset("smoke", sparsity=0.0, local_steps=5))
    drop_ctx = build_context(preset("smoke", sparsity=0.01, prune_mode="drop", local_steps=5))  # 16 of 16 kept
    g = {k: (torch.randn_like(v) if "lora_B" in k else v.clone()) for k, v in dense_ctx.initial_state.items()}
    dense = train_client(dense_ctx, ClientTask(round=2, client=1, global_state=g))
    drop = train_client(drop_ctx, ClientTask(round=2, client=1, global_state=g))
    assert all(all(row) for row in drop.kept) and drop.compute == drop.kept
    assert len(drop.step_losses) == 5 and drop.step_losses == dense.step_losses
    assert drop.loss_pruned == drop.loss_global == dense.loss_global
    assert drop.loss_local == dense.loss_local and drop.payload == dense.payload


def _head_units(state: dict, ctx, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    return {hp.key: _units(state, hp, ctx.layout.unit_mask(hp, mask)) for hp in ctx.layout.head_params}


def test_compute_sparsity_trains_uploaded_heads_and_freezes_the_other_computed_ones() -> None:
    spec = preset("smoke", sparsity=0.75, compute_sparsity=0.25, prune_mode="drop", local_steps=3)
    ctx = build_context(spec)
    g = {k: (torch.randn_like(v) if "lora_B" in k else v.clone()) for k, v in ctx.initial_state.items()}
    upd = train_client(ctx, ClientTask(round=1, client=0, global_state=g))
    kept, compute = torch.tensor(upd.kept), torch.tensor(upd.compute)
    assert int(kept.sum()) == 4 and int(compute.sum()) == 12 and bool((compute | ~kept).all())
    assert upd.ops < upd.ops_dense and upd.loss_pruned != upd.loss_global
    state, sent_kept, _ = ctx.layout.read_upload(deserialize_payload(upd.payload), g)
    assert torch.equal(sent_kept, kept)
    frozen = compute & ~kept  # in the forward, not uploaded: received values, as if in mask mode
    for key, units in _head_units(state, ctx, frozen).items():
        assert torch.equal(units, _head_units(g, ctx, frozen)[key]), key
    moved = [key for key, units in _head_units(state, ctx, kept).items()
             if not torch.equal(units, _head_units(g, ctx, kept)[key])]
    assert moved  # the uploaded heads' slices trained
    # the upload is as small as a plain 0.75 upload, and the forward cheaper than dense but dearer than 0.75
    plain = train_client(build_context(spec.with_overrides(compute_sparsity=None)),
                         ClientTask(round=1, client=0, global_state=g))
    assert upd.bytes_up == plain.bytes_up and plain.ops < upd.ops < upd.ops_dense
    again = train_client(ctx, ClientTask(round=1, client=0, global_state=g))
    assert again.payload == upd.payload and again.step_losses == upd.step_losses


def test_compute_ramp_starts_dense_and_reaches_the_target() -> None:
    ctx = build_context(preset("smoke", sparsity=0.75, prune_mode="drop", compute_ramp_rounds=2, local_steps=2))
    counts = []
    for rnd in (1, 2, 3, 4):
        upd = train_client(ctx, ClientTask(round=rnd, client=0, global_state=ctx.initial_state))
        assert int(torch.tensor(upd.kept).sum()) == 4  # the upload is pruned from round 1
        counts.append(int(torch.tensor(upd.compute).sum()))
    assert counts == [16, 10, 4, 4]  # s_c = 0, 0.375, 0.75, 0.75 of 16 heads


def test_compute_edge_blocks_keep_first_and_last_block_whole() -> None:
    ctx = build_context(preset("smoke", sparsity=0.75, prune_mode="drop", compute_edge_blocks=1, local_steps=2))
    upd = train_client(ctx, ClientTask(round=1, client=0, global_state=ctx.initial_state))
    compute = torch.tensor(upd.compute)
    assert bool(compute[0].all()) and bool(compute[-1].all()) and int(compute[1:-1].sum()) < 8
    assert int(torch.tensor(upd.kept).sum()) == 4


def test_drop_scaling_changes_training_and_is_seeded() -> None:
    spec = preset("smoke", sparsity=0.5, prune_mode="drop", local_steps=3)
    task_ctx = build_context(spec)
    task = ClientTask(round=1, client=0, global_state=task_ctx.initial_state)
    plain = train_client(task_ctx, task)
    scaled_ctx = build_context(spec.with_overrides(drop_scaling=True))
    scaled = train_client(scaled_ctx, task)
    assert scaled.kept == plain.kept and scaled.step_losses != plain.step_losses
    assert train_client(scaled_ctx, task).payload == scaled.payload


def _block_units(ctx, state, block: int) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    """Every LoRA tensor (both halves) of one attention block."""
    b = ctx.blocks[block]
    paths = [b.projection(p) for p in ("q", "k", "v", "o")]
    return {k: v for k, v in state.items() if any(f"{path}." in k for path in paths)}


@pytest.mark.parametrize("mode", ["mask", "drop"])
def test_train_top_blocks_keeps_heads_only_on_top_and_leaves_lower_blocks_at_global_values(mode: str) -> None:
    # Prepare: a global state with non-zero B, so any change to a lower block would show
    spec = preset("smoke", sparsity=0.75, prune_mode=mode, train_top_blocks=1, local_steps=3)
    ctx = build_context(spec)
    g = {k: (torch.randn_like(v) if "lora_B" in k else v.clone()) for k, v in ctx.initial_state.items()}
    top = max(b.index for b in ctx.blocks)
    # Execute
    upd = train_client(ctx, ClientTask(round=1, client=0, global_state=g))
    # Assert: kept heads only in the top block, as many as the sparsity over all heads allows
    kept = torch.tensor(upd.kept)
    total = kept.numel()
    assert int(kept.sum()) == round(0.25 * total) and bool(kept[top].all())
    assert not bool(kept[:top].any())
    # the lower blocks' LoRA (both halves) is uploaded unchanged; the top block's changed
    state, _, _ = ctx.layout.read_upload(deserialize_payload(upd.payload), g)
    for k, v in _block_units(ctx, state, 0).items():
        assert torch.equal(v, g[k]), k
    assert any(not torch.equal(v, g[k]) for k, v in _block_units(ctx, state, top).items())
    # fewer OPs than dense (no backward below the top block), and the shared model is left trainable
    assert upd.ops < upd.ops_dense
    assert all(p.requires_grad for n, p in ctx.model.named_parameters() if "lora_" in n)


def test_train_top_blocks_at_sparsity_zero_uploads_every_head_with_lower_blocks_unchanged() -> None:
    spec = preset("smoke", sparsity=0.0, train_top_blocks=1, local_steps=2)
    ctx = build_context(spec)
    g = {k: (torch.randn_like(v) if "lora_B" in k else v.clone()) for k, v in ctx.initial_state.items()}
    upd = train_client(ctx, ClientTask(round=1, client=0, global_state=g))
    assert bool(torch.tensor(upd.kept).all())
    state, _, _ = ctx.layout.read_upload(deserialize_payload(upd.payload), g)
    for k, v in _block_units(ctx, state, 0).items():
        assert torch.equal(v, g[k]), k
    assert upd.ops < upd.ops_dense


def test_train_top_blocks_is_refused_with_per_block_ranking() -> None:
    with pytest.raises(Exception, match="train_top_blocks"):
        preset("smoke", sparsity=0.5, train_top_blocks=1, prune_ranking="per_block")


def test_train_top_blocks_after_trains_every_block_in_the_warm_up_rounds_then_only_the_top() -> None:
    spec = preset("smoke", sparsity=0.0, train_top_blocks=1, train_top_blocks_after=1, local_steps=2)
    ctx = build_context(spec)
    g = {k: (torch.randn_like(v) if "lora_B" in k else v.clone()) for k, v in ctx.initial_state.items()}
    warm = train_client(ctx, ClientTask(round=1, client=0, global_state=g))
    after = train_client(ctx, ClientTask(round=2, client=0, global_state=g))
    # round 1 (the warm-up): every block trains, at dense cost; round 2: the lower block comes back unchanged
    assert warm.ops == warm.ops_dense and after.ops < after.ops_dense
    warm_state, _, _ = ctx.layout.read_upload(deserialize_payload(warm.payload), g)
    after_state, _, _ = ctx.layout.read_upload(deserialize_payload(after.payload), g)
    assert any(not torch.equal(v, g[k]) for k, v in _block_units(ctx, warm_state, 0).items())
    assert all(torch.equal(v, g[k]) for k, v in _block_units(ctx, after_state, 0).items())


def test_train_top_blocks_after_needs_train_top_blocks() -> None:
    with pytest.raises(Exception, match="train_top_blocks_after"):
        preset("smoke", train_top_blocks_after=2)


def test_cosine_lr_schedule_falls_from_the_rate_to_a_tenth_and_changes_training_only_after_round_1() -> None:
    spec = preset("smoke", rounds=5, learning_rate=1e-3, lr_schedule="cosine", local_steps=2)
    rates = [round_lr(spec, r) for r in range(1, 6)]
    assert rates[0] == pytest.approx(1e-3) and rates[-1] == pytest.approx(1e-4)
    assert rates[2] == pytest.approx(0.55e-3) and all(a > b for a, b in zip(rates, rates[1:], strict=False))
    assert round_lr(spec.with_overrides(lr_schedule="constant"), 5) == 1e-3
    # the same client and global state: round 1 trains as the constant rate does, round 3 differently
    ctx, flat = build_context(spec), build_context(spec.with_overrides(lr_schedule="constant"))
    for rnd, same in ((1, True), (3, False)):
        a = train_client(ctx, ClientTask(round=rnd, client=0, global_state=ctx.initial_state))
        b = train_client(flat, ClientTask(round=rnd, client=0, global_state=flat.initial_state))
        assert (a.payload == b.payload) is same


def test_warmup_raises_the_rate_linearly_over_the_first_steps_of_every_round() -> None:
    spec = preset("smoke", rounds=2, learning_rate=1e-3, warmup_steps=4, local_steps=6)
    assert [step_lr(spec, 1e-3, s) for s in range(6)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
    assert step_lr(spec.with_overrides(warmup_steps=0), 1e-3, 0) == 1e-3
    # from the same global state: the first step's update is a quarter of the unwarmed one's (AdamW's first
    # step moves every weight by the rate), and every round warms up again
    ctx, flat = build_context(spec.with_overrides(local_steps=1)), build_context(spec.with_overrides(local_steps=1,
                                                                                                    warmup_steps=0))
    g = {k: torch.randn_like(v) if "lora_B" in k else v for k, v in ctx.initial_state.items()}
    moved = {}
    for name, c in (("warm", ctx), ("flat", flat)):
        train_client(c, ClientTask(round=2, client=0, global_state=g))
        local = get_peft_model_state_dict(c.model)
        moved[name] = max(float((local[k] - g[k]).abs().max()) for k in g if "lora_B" in k)
    assert moved["warm"] == pytest.approx(moved["flat"] / 4, rel=1e-3)
