"""Evaluation of the global model on the held-out test split.

Classification: accuracy (and mean loss). Generation: ROUGE (``rouge-score``)
and BLEU (``sacrebleu``) of greedy decodes, and mean loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from fedcore.client import load_global, to_device
from fedcore.context import RunContext
from fedcore.data import Example
from fedcore.lora_state import State
from fedcore.metrics import accuracy, bleu, rouge

EvalPart = tuple[list[int], list[Any], torch.Tensor]  # (example positions, predictions, float64 losses)


def evaluate(ctx: RunContext, state: State,
             map_parts: Callable[[State], Sequence[EvalPart]] | None = None) -> dict[str, float]:
    """Metrics of the global model ``state`` on the first ``eval_size`` test examples.

    ``map_parts(state)``: the per-example results from elsewhere, e.g. a process pool whose workers each
    evaluate every n-th batch (:func:`evaluate_part`). The batches are the ones formed here and each runs
    at the spec's thread count, so the figures are bit-identical to this process evaluating them all.
    """
    spec = ctx.spec
    test = ctx.data.test[: spec.eval_size]
    if map_parts is None:
        load_global(ctx, state)
        model = ctx.model
        model.eval()
        preds, losses = predict_all(ctx, model, test)
    else:
        preds, losses = [None] * len(test), torch.zeros(len(test), dtype=torch.float64)
        for ids, part_preds, part_losses in map_parts(state):
            losses[ids] = part_losses
            for j, p in zip(ids, part_preds, strict=True):
                preds[j] = p
    total_loss, n = float(losses.sum()), losses.numel()
    out: dict[str, float] = {"loss": total_loss / max(n, 1), "examples": float(len(test))}
    if ctx.task == "classification":
        out["accuracy"] = accuracy(preds, [e.label for e in test])  # type: ignore[misc]
    else:
        out.update(rouge(preds, [e.target or "" for e in test]))
        out["bleu"] = bleu(preds, [e.target or "" for e in test])
    return out


def evaluate_part(ctx: RunContext, state: State, part: int, parts: int) -> EvalPart:
    """Batches ``part``, ``part + parts``, ... of :func:`evaluate`'s batches, with their examples' positions."""
    load_global(ctx, state)
    ctx.model.eval()
    test = ctx.data.test[: ctx.spec.eval_size]
    ids = [i for b in eval_batches(ctx, test)[part::parts] for i in b]
    preds, losses = predict_all(ctx, ctx.model, test, only=ids)
    return ids, [preds[i] for i in ids], losses[ids]


def eval_batches(ctx: RunContext, examples: Sequence[Example]) -> list[list[int]]:
    """Positions of ``examples`` in evaluation batches: similar lengths together (see :func:`predict_all`)."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].text) + len(examples[i].text_pair or ""))
    size = ctx.spec.eval_batch_size
    return [order[i : i + size] for i in range(0, len(order), size)]


def predict_all(ctx: RunContext, model: torch.nn.Module, examples: Sequence[Example],
                only: Sequence[int] | None = None) -> tuple[list[Any], torch.Tensor]:
    """Predictions and per-example losses of ``model`` on ``examples``, in their order.

    Batches are formed from examples of similar length, since they pad less: on SNLI's first 500 test
    pairs at batch 64 (27 tokens on average), 15,060 token positions instead of 25,012. ``only``: run just
    the batches holding these positions (whole batches of :func:`eval_batches`); the rest stay None / 0.
    """
    spec = ctx.spec
    wanted = None if only is None else set(only)
    preds: list[Any] = [None] * len(examples)
    losses = torch.zeros(len(examples), dtype=torch.float64)
    with torch.no_grad():
        for ids in eval_batches(ctx, examples):
            if wanted is not None and ids[0] not in wanted:
                continue
            batch = to_device(ctx.family.collate(ctx.tokenizer, [examples[j] for j in ids], task=ctx.task,
                                                 label_names=ctx.label_names, max_len=spec.max_seq_len,
                                                 max_target_len=spec.max_target_len), ctx.device)
            batch_losses, batch_preds = ctx.family.eval_batch(
                model, batch, task=ctx.task, label_names=ctx.label_names, tokenizer=ctx.tokenizer,
                max_target_len=spec.max_target_len)
            losses[ids] = batch_losses.detach().double().cpu()
            for j, p in zip(ids, batch_preds, strict=True):
                preds[j] = p
    return preds, losses
