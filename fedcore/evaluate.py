"""Evaluation of the global model on the held-out test split.

Classification: accuracy (and mean loss). Generation: ROUGE (``rouge-score``)
and BLEU (``sacrebleu``) of greedy decodes, and mean loss.
"""

from __future__ import annotations

import torch

from fedcore.client import load_global, to_device
from fedcore.context import RunContext
from fedcore.lora_state import State
from fedcore.metrics import accuracy, bleu, rouge


def evaluate(ctx: RunContext, state: State) -> dict[str, float]:
    """Metrics of the global model ``state`` on the first ``eval_size`` test examples."""
    spec = ctx.spec
    load_global(ctx, state)
    model = ctx.model
    model.eval()
    test = ctx.data.test[: spec.eval_size]
    preds: list = []
    total_loss, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(test), spec.eval_batch_size):
            exs = test[i : i + spec.eval_batch_size]
            batch = to_device(ctx.family.collate(ctx.tokenizer, exs, task=ctx.task, label_names=ctx.label_names,
                                                 max_len=spec.max_seq_len, max_target_len=spec.max_target_len),
                              ctx.device)
            losses, batch_preds = ctx.family.eval_batch(model, batch, task=ctx.task, label_names=ctx.label_names,
                                                        tokenizer=ctx.tokenizer, max_target_len=spec.max_target_len)
            total_loss += float(losses.sum())
            n += losses.numel()
            preds += batch_preds
    out: dict[str, float] = {"loss": total_loss / max(n, 1), "examples": float(len(test))}
    if ctx.task == "classification":
        out["accuracy"] = accuracy(preds, [e.label for e in test])  # type: ignore[misc]
    else:
        out.update(rouge(preds, [e.target or "" for e in test]))
        out["bleu"] = bleu(preds, [e.target or "" for e in test])
    return out
