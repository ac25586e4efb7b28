"""Evaluation of the global model on the held-out test split.

Classification: accuracy (and mean loss). Generation: ROUGE (``rouge-score``)
and BLEU (``sacrebleu``) of greedy decodes, and mean loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from fedcore.client import load_global, to_device
from fedcore.context import RunContext
from fedcore.data import Example
from fedcore.lora_state import State
from fedcore.metrics import accuracy, bleu, rouge


def evaluate(ctx: RunContext, state: State) -> dict[str, float]:
    """Metrics of the global model ``state`` on the first ``eval_size`` test examples."""
    spec = ctx.spec
    load_global(ctx, state)
    model = ctx.model
    model.eval()
    test = ctx.data.test[: spec.eval_size]
    preds, losses = predict_all(ctx, model, test)
    total_loss, n = float(losses.sum()), losses.numel()
    out: dict[str, float] = {"loss": total_loss / max(n, 1), "examples": float(len(test))}
    if ctx.task == "classification":
        out["accuracy"] = accuracy(preds, [e.label for e in test])  # type: ignore[misc]
    else:
        out.update(rouge(preds, [e.target or "" for e in test]))
        out["bleu"] = bleu(preds, [e.target or "" for e in test])
    return out


def predict_all(ctx: RunContext, model: torch.nn.Module, examples: Sequence[Example]) -> tuple[list[Any], torch.Tensor]:
    """Predictions and per-example losses of ``model`` on ``examples``, in their order.

    Batches are formed from examples of similar length, since they pad less: on SNLI's first 500 test
    pairs at batch 64 (27 tokens on average), 15,060 token positions instead of 25,012.
    """
    spec = ctx.spec
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].text) + len(examples[i].text_pair or ""))
    preds: list[Any] = [None] * len(examples)
    losses = torch.zeros(len(examples), dtype=torch.float64)
    with torch.no_grad():
        for i in range(0, len(order), spec.eval_batch_size):
            ids = order[i : i + spec.eval_batch_size]
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
