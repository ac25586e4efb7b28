"""One client's round: frozen slices in mask mode, what is uploaded, seeded repeatability."""

from __future__ import annotations

import math

import torch
from peft import get_peft_model_state_dict

from fedcore.accounting import deserialize_payload
from fedcore.client import ClientTask, train_client
from fedcore.context import build_context
from fedcore.lora_state import KEPT_KEY
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
    from fedcore.importance import confidence_importance

    spec = preset("smoke")
    ctx = build_context(spec)
    probe = client_probe(ctx, 0, 1)
    n, h = len(ctx.blocks), ctx.blocks[0].num_heads
    plain = confidence_importance(ctx.family, ctx.model, probe, n, h)
    excl = confidence_importance(ctx.family, ctx.model, probe, n, h, exclude_ids=ctx.special_ids)
    assert plain.shape == excl.shape == (n, h)
    assert not torch.allclose(plain, excl)
    assert ((plain > 0) & (plain <= 1)).all()
