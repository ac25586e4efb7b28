# Over ~400 lines: one client's round read top to bottom (importance, kept heads, local training, upload) with the helpers only it uses.
"""One client's work in one round: importance, kept heads, local training, upload.

The result depends only on (global state, client id, round, spec): every random
choice is seeded from those, so a client trained in another process, on another
worker or twice gives the same update.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from peft import get_peft_model_state_dict, set_peft_model_state_dict
from torch import Tensor, nn

from fedcore.accounting import OpsCount, payload_bytes, serialize_payload, step_ops
from fedcore.context import RunContext
from fedcore.importance import confidence_and_loss, gradient_importance
from fedcore.lora_state import PEFT_PREFIX, LoraLayout, State, state_to
from fedcore.models.families import Batch
from fedcore.pruning import choose_kept, compute_heads, edge_blocks, ramped, sampled_keys, top_blocks
from fedcore.redraw import REDRAW_SEED_OFFSET, carry_optimizer_state, dropped_copy, redraw_compute
from fedcore.spec import ExperimentSpec

LR_FLOOR = 0.1  # lr_schedule 'cosine' ends at this fraction of learning_rate


class Cancelled(RuntimeError):
    """Raised inside local training when the run was asked to stop."""


@dataclass
class ClientTask:
    round: int
    client: int
    global_state: State


@dataclass
class ClientUpdate:
    """What a client returns: the serialised upload plus figures for the record."""

    round: int
    client: int
    num_examples: int
    payload: bytes  # safetensors bytes of the upload, exactly what is sent
    bytes_up: int
    bytes_up_dense: int
    bytes_down: int
    kept: list[list[bool]]
    importance: list[list[float]]
    loss_global: float
    loss_local: float
    loss_pruned: float  # the received global model as the client trains it (heads removed) on its sample
    compute: list[list[bool]]  # heads in the local forward: all in 'mask' mode, a superset of kept in 'drop'
    step_losses: list[float]
    train_loss: float
    steps: int
    ops: float
    ops_dense: float
    ops_attention: float
    ops_attention_dense: float
    wall_time: float
    train_time: float
    extra: dict = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # probe passes not run (spec.probe_passes 'needed'): NaN figures

    def record(self) -> dict:
        """JSON-able figures (everything but the payload)."""
        d = {k: v for k, v in self.__dict__.items() if k != "payload"}
        return d


def skipped_passes(spec: ExperimentSpec) -> list[str]:
    """The probe passes a client skips: none with ``probe_passes='all'``; with 'needed', those whose
    results nothing in the run uses (only the record and the dashboard show them).

    'importance' (with the received model's loss from the same forward: 'loss_global') is used to
    choose the kept heads (sparsity > 0; at 0 every head is kept), by head_weighted aggregation and by
    head_coverage selection; 'loss_global' and 'loss_local' by loss_gap selection; 'loss_pruned'
    (drop mode's extra pass) by nothing.
    """
    if spec.probe_passes == "all":
        return []
    uses_importance = spec.sparsity > 0 or spec.aggregation == "head_weighted" or spec.selection == "head_coverage"
    uses_losses = spec.selection == "loss_gap"
    skip = []
    if not uses_importance:
        skip.append("importance")
    if not uses_losses:
        if not uses_importance or spec.importance == "gradient":  # confidence gives it from its own forward
            skip.append("loss_global")
        skip.append("loss_local")
    if spec.prune_mode == "drop" and spec.sparsity > 0:
        skip.append("loss_pruned")
    return skip


def client_seed(seed: int, round_: int, client: int) -> int:
    return int(np.random.SeedSequence([seed, round_, client]).generate_state(1)[0])


def batches(ctx: RunContext, indices: Sequence[int], batch_size: int) -> Iterator[Batch]:
    spec = ctx.spec
    for i in range(0, len(indices), batch_size):
        exs = [ctx.data.train[j] for j in indices[i : i + batch_size]]
        yield to_device(ctx.family.collate(ctx.tokenizer, exs, task=ctx.task, label_names=ctx.label_names,
                                           max_len=spec.max_seq_len, max_target_len=spec.max_target_len), ctx.device)


def to_device(batch: Batch, device: torch.device) -> Batch:
    return {k: v.to(device) for k, v in batch.items()}


def mean_loss(ctx: RunContext, model: nn.Module, sample: Sequence[Batch]) -> float:
    was = model.training
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for b in sample:
            losses = ctx.family.per_example_loss(model, b)
            total += float(losses.sum())
            n += losses.numel()
    model.train(was)
    return total / max(n, 1)


def load_global(ctx: RunContext, state: State) -> None:
    set_peft_model_state_dict(ctx.model, state_to(state, ctx.device))


def client_probe(ctx: RunContext, client: int, round_: int) -> list[Batch]:
    """The client's seeded local sample used for importance and for loss figures."""
    idx = ctx.client_indices[client]
    rng = np.random.default_rng(client_seed(ctx.spec.seed, round_, client) + 1)
    pick = rng.permutation(len(idx))[: ctx.spec.importance_samples]
    return list(batches(ctx, [idx[i] for i in pick], ctx.spec.eval_batch_size))


def global_loss(ctx: RunContext, state: State, client: int, round_: int) -> float:
    """Loss of the global model on a client's local sample (power-of-choice, loss gap)."""
    load_global(ctx, state)
    return mean_loss(ctx, ctx.model, client_probe(ctx, client, round_))


def _local_steps(ctx: RunContext, n: int) -> int:
    spec = ctx.spec
    if spec.local_steps is not None:
        return spec.local_steps
    return max(1, math.ceil(spec.local_epochs * n / spec.batch_size))  # type: ignore[operator]


def _trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def _freeze_restorer(ctx: RunContext, model: nn.Module, kept: Tensor,
                     present: Tensor | None = None) -> Callable[[], None]:
    """After each optimizer step, put the LoRA slices of heads not ``kept`` back.

    ``present``: the heads a dropped copy still holds (its head tensors hold only their slices);
    None for the full model.
    """
    saved = []
    params = dict(model.named_parameters())
    for hp in ctx.layout.head_params:
        name = hp.key.replace(".weight", ".default.weight")
        p = params[name]
        mask = ctx.layout.unit_mask(hp, kept)
        if present is not None:
            mask = mask[ctx.layout.unit_mask(hp, present)]
        if bool(mask.all()):
            continue
        frozen = (~mask).nonzero().flatten()
        idx = ((frozen[:, None] * hp.unit_size) + torch.arange(hp.unit_size)).flatten().to(p.device)
        saved.append((p, hp.axis, idx, p.detach().index_select(hp.axis, idx).clone()))

    def restore() -> None:
        with torch.no_grad():
            for p, axis, idx, values in saved:
                p.index_copy_(axis, idx, values)

    return restore


def _dropped_state(model: nn.Module, layout: LoraLayout) -> State:
    """The LoRA state of a copy with heads removed: head-specific tensors hold only the kept slices."""
    with warnings.catch_warnings():  # a dropped model's zero-width slices are intended
        warnings.filterwarnings("ignore", message=".*LoRA tensor\\(s\\) have invalid shape")
        local = get_peft_model_state_dict(model)
    return {k: local[k] for k in layout.keys}


def _full_state(ctx: RunContext, dropped: nn.Module, present: Tensor, global_state: State) -> State:
    """A dropped copy's LoRA state at full size: the removed heads' slices hold the received global values."""
    fill = state_to(global_state, ctx.device)
    return ctx.layout.expand_state(_dropped_state(dropped, ctx.layout), present, fill)


def _to_full_model(ctx: RunContext, dropped: nn.Module, present: Tensor, global_state: State) -> nn.Module:
    """Drop mode's dense tail: the shared model, holding what the dropped copy has learned so far.

    The copy's shared halves, classifier and trained slices go into the full LoRA state; the
    removed heads' slices keep the received global values (and stay frozen from here on).
    """
    set_peft_model_state_dict(ctx.model, _full_state(ctx, dropped, present, global_state))
    return ctx.model


def _compute_sparsity(ctx: RunContext, round_: int) -> float:
    """Drop mode's compute sparsity in a round: ``compute_sparsity`` (unset: ``sparsity``), ramped."""
    spec = ctx.spec
    target = spec.sparsity if spec.compute_sparsity is None else spec.compute_sparsity
    return ramped(target, round_, spec.compute_ramp_rounds)


def round_lr(spec: ExperimentSpec, round_: int) -> float:
    """The local learning rate of a round (``lr_schedule``): constant, or a half cosine from
    ``learning_rate`` in round 1 to a tenth of it in round ``rounds``."""
    if spec.lr_schedule == "constant" or spec.rounds <= 1:
        return spec.learning_rate
    t = min(max(round_ - 1, 0), spec.rounds - 1) / (spec.rounds - 1)
    return spec.learning_rate * (LR_FLOOR + (1 - LR_FLOOR) * 0.5 * (1 + math.cos(math.pi * t)))


def step_lr(spec: ExperimentSpec, lr: float, step: int) -> float:
    """The rate of local step ``step`` (from 0) in a round whose rate is ``lr``: a linear rise over the
    first ``warmup_steps`` steps (``lr`` x (step + 1) / warmup_steps), then ``lr``."""
    if step >= spec.warmup_steps:
        return lr
    return lr * (step + 1) / spec.warmup_steps


def _compute_mask(ctx: RunContext, scores: Tensor, kept: Tensor, round_: int, trained: Tensor | None) -> Tensor:
    """The heads of the local forward: every head outside 'drop' mode; in 'drop' mode the
    (ramped) compute sparsity's heads, the edge blocks, the blocks that do not train
    (``train_top_blocks``: they run whole, forward only) and the uploaded heads."""
    spec = ctx.spec
    if spec.prune_mode != "drop" or spec.sparsity <= 0:
        return torch.ones_like(kept)
    s = _compute_sparsity(ctx, round_)
    whole = edge_blocks(ctx.blocks, spec.compute_edge_blocks)
    if trained is not None:
        whole |= ~trained
        return compute_heads(scores.masked_fill(~trained[:, None], -math.inf), kept, s, edge=whole)
    return compute_heads(scores, kept, s, ranking=spec.prune_ranking, min_per_block=spec.min_heads_per_block,
                         edge=whole)


def _freeze_blocks(ctx: RunContext, model: nn.Module, trained: Tensor | None) -> Callable[[], None]:
    """``train_top_blocks``: the LoRA of the blocks that do not train stops requiring grad (so autograd
    runs no backward below the lowest trained block); returns what undoes it."""
    if trained is None:
        return lambda: None
    params = dict(model.named_parameters())
    frozen = []
    for b in ctx.blocks:
        if bool(trained[b.index]):
            continue
        for proj in ("q", "k", "v", "o"):
            for half in ("lora_A", "lora_B"):
                p = params.get(f"{PEFT_PREFIX}{b.projection(proj)}.{half}.default.weight")  # type: ignore[arg-type]
                if p is not None and p.requires_grad:
                    p.requires_grad_(False)
                    frozen.append(p)

    def undo() -> None:
        for p in frozen:
            p.requires_grad_(True)

    return undo


def train_client(
    ctx: RunContext,
    task: ClientTask,
    *,
    should_stop: Callable[[], bool] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> ClientUpdate:
    """Run one client's round and return its upload.

    ``on_step(k, steps)`` is told before local training (k = 0) and after each of its steps; it is for
    progress displays only and changes nothing the client computes.
    """
    t0 = time.perf_counter()
    spec = ctx.spec
    seed = client_seed(spec.seed, task.round, task.client)
    idx = ctx.client_indices[task.client]
    layout = ctx.layout

    load_global(ctx, task.global_state)
    bytes_down = payload_bytes(task.global_state)
    probe = client_probe(ctx, task.client, task.round)

    # 1. importance on local data, with the received global model
    num_blocks, num_heads = len(ctx.blocks), ctx.blocks[0].num_heads
    skip = skipped_passes(spec)
    if "importance" in skip:  # nothing uses the scores: every head kept, NaN in the record and the upload
        importance = torch.full((num_blocks, num_heads), math.nan)
        loss_global = math.nan if "loss_global" in skip else mean_loss(ctx, ctx.model, probe)
    elif spec.importance == "gradient":
        importance = gradient_importance(ctx.family, ctx.model, probe, ctx.blocks, prefix=PEFT_PREFIX)
        loss_global = math.nan if "loss_global" in skip else mean_loss(ctx, ctx.model, probe)
    else:  # the global model's loss on the sample comes from the same forward passes
        exclude = ctx.special_ids if spec.importance_exclude_special else []
        importance, loss_global = confidence_and_loss(ctx.family, ctx.model, probe, num_blocks, num_heads,
                                                      exclude_ids=exclude)

    # 2. heads to keep
    scores = importance
    if spec.head_choice == "sampled" and spec.sparsity > 0:
        scores = sampled_keys(importance, seed + 2)
    warm = task.round <= spec.train_top_blocks_after  # train_top_blocks_after: dense warm-up rounds
    trained = top_blocks(ctx.blocks, 0 if warm else spec.train_top_blocks)  # None: every block trains
    kept = choose_kept(scores, spec.sparsity, ranking=spec.prune_ranking, min_per_block=spec.min_heads_per_block,
                       eligible=trained)
    compute = _compute_mask(ctx, scores, kept, task.round, trained)  # heads of the local forward, a superset of kept

    # 3. the local model: the shared one (mask) or a copy with heads removed (drop); with
    #    drop_dense_steps, the last steps of drop mode switch to the shared one (see _to_full_model)
    steps = _local_steps(ctx, len(idx))
    drop = spec.sparsity > 0 and spec.prune_mode == "drop"
    dense_tail = min(spec.drop_dense_steps, steps) if drop else 0
    dropped = drop and dense_tail < steps  # some steps run on the copy with heads removed
    redraw = spec.compute_redraw_steps if dropped and not bool(torch.equal(compute, kept)) else 0
    restore: Callable[[], None] | None = None
    loss_pruned = loss_global  # 'mask' mode trains the full forward
    if dropped:
        model = dropped_copy(ctx.model, ctx.blocks, compute, prefix=PEFT_PREFIX, scaling=spec.drop_scaling)
        if not bool(torch.equal(compute, kept)):  # heads in the forward but not uploaded: frozen
            restore = _freeze_restorer(ctx, model, kept, present=compute)
        loss_pruned = math.nan if "loss_pruned" in skip else mean_loss(ctx, model, probe)
    else:
        model = ctx.model
        if spec.sparsity > 0:
            restore = _freeze_restorer(ctx, model, kept)

    # 4. local training
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    lr = round_lr(spec, task.round)
    undo = [_freeze_blocks(ctx, model, trained)]  # train_top_blocks: no backward below the trained blocks
    try:
        opt = torch.optim.AdamW(_trainable(model), lr=lr, weight_decay=spec.weight_decay)
        model.train()
        order: list[int] = []
        losses: list[float] = []
        ops = OpsCount(0.0, 0.0)
        ops_dense = OpsCount(0.0, 0.0)
        t_train = time.perf_counter()
        if on_step is not None:
            on_step(0, steps)
        for step in range(steps):
            if should_stop is not None and should_stop():
                raise Cancelled(f"stopped during round {task.round}, client {task.client}")
            if dropped and step == steps - dense_tail:  # the dense tail: carry on on the full model
                model = _to_full_model(ctx, model, compute, task.global_state)
                dropped = False
                restore = _freeze_restorer(ctx, model, kept)
                undo.append(_freeze_blocks(ctx, model, trained))
                opt = torch.optim.AdamW(_trainable(model), lr=lr, weight_decay=spec.weight_decay)
                model.train()
            if dropped and redraw and step and step % redraw == 0:  # structured head dropout (fedcore/redraw.py)
                new_compute = redraw_compute(importance, kept, _compute_sparsity(ctx, task.round), seed + REDRAW_SEED_OFFSET
                                             + step // redraw, ranking=spec.prune_ranking,
                                             min_per_block=spec.min_heads_per_block,
                                             edge=edge_blocks(ctx.blocks, spec.compute_edge_blocks), eligible=trained)
                full = _to_full_model(ctx, model, compute, task.global_state)
                new_model = dropped_copy(full, ctx.blocks, new_compute, prefix=PEFT_PREFIX, scaling=spec.drop_scaling)
                restore = _freeze_restorer(ctx, new_model, kept, present=new_compute)
                undo.append(_freeze_blocks(ctx, new_model, trained))
                new_opt = torch.optim.AdamW(_trainable(new_model), lr=lr, weight_decay=spec.weight_decay)
                carry_optimizer_state(opt, model, new_opt, new_model, layout, compute, new_compute)
                model, opt, compute = new_model, new_opt, new_compute
                model.train()
            if len(order) < spec.batch_size:
                order += [idx[i] for i in rng.permutation(len(idx))]
            chosen, order = order[: spec.batch_size], order[spec.batch_size :]
            batch = next(batches(ctx, chosen, spec.batch_size))
            loss = ctx.family.loss(model, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if spec.warmup_steps:
                for group in opt.param_groups:
                    group["lr"] = step_lr(spec, lr, step)
            opt.step()
            if restore is not None:
                restore()
            losses.append(float(loss.detach()))
            enc_len = int(batch["input_ids"].shape[1])
            dec_len = int(batch["labels"].shape[1]) if ctx.arch.family == "t5" else 0
            n = int(batch["input_ids"].shape[0])
            kw = dict(batch=n, enc_len=enc_len, dec_len=dec_len, lora_r=spec.lora_r, lora_targets=spec.lora_targets,
                      train_classifier=ctx.task == "classification")
            now = compute if dropped else None
            ops = ops + step_ops(ctx.arch, kept=now, trained=trained, **kw)  # type: ignore[arg-type]
            ops_dense = ops_dense + step_ops(ctx.arch, kept=None, **kw)  # type: ignore[arg-type]
            if on_step is not None:
                on_step(step + 1, steps)
    finally:
        for u in undo:
            u()
    train_time = time.perf_counter() - t_train
    model.eval()

    # 5. loss of the trained local model on the same sample (loss-gap selection)
    loss_local = math.nan if "loss_local" in skip else mean_loss(ctx, model, probe)

    # 6. upload: shared halves + kept slices (a dropped copy's tensors are already sliced)
    if dropped and bool(torch.equal(compute, kept)):  # the copy's tensors are already the upload's slices
        sliced = _dropped_state(model, layout)
    elif dropped:
        sliced = layout.slice_state(_full_state(ctx, model, compute, task.global_state), kept)
    else:
        sliced = layout.slice_state(get_peft_model_state_dict(model), kept)
    upload = layout.upload(sliced, kept, importance)
    blob = serialize_payload(upload)
    # the dense counterfactual: a full LoRA state in the same wire format (same shapes as the global one)
    dense_bytes = payload_bytes(layout.compact(task.global_state))
    return ClientUpdate(
        round=task.round, client=task.client, num_examples=len(idx), payload=blob, bytes_up=len(blob),
        bytes_up_dense=dense_bytes, bytes_down=bytes_down, kept=kept.tolist(),
        importance=importance.tolist(), loss_global=loss_global, loss_local=loss_local, loss_pruned=loss_pruned,
        compute=compute.tolist(), step_losses=losses,
        train_loss=float(np.mean(losses)) if losses else float("nan"), steps=steps,
        ops=ops.whole_step, ops_dense=ops_dense.whole_step, ops_attention=ops.attention_lora,
        ops_attention_dense=ops_dense.attention_lora, wall_time=time.perf_counter() - t0, train_time=train_time,
        skipped=skip,
    )
