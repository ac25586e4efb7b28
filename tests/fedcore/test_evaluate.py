"""Evaluation batches examples of similar length together; every prediction and loss must still
belong to its own example, and equal what the example gives alone (no padding at all)."""

from __future__ import annotations

import pytest
import torch

from fedcore.client import load_global, to_device
from fedcore.context import build_context
from fedcore.evaluate import evaluate, predict_all
from fedcore.metrics import accuracy
from fedcore.spec import preset


@pytest.mark.parametrize("model", ["tiny-bert", "tiny-t5", "tiny-llama"])
def test_length_sorted_evaluation_matches_one_example_at_a_time(model: str) -> None:
    spec = preset("smoke", model=model, eval_size=40, eval_batch_size=8)
    ctx = build_context(spec)
    # a global state whose LoRA deltas are not zero, so the adapters take part
    g = torch.Generator().manual_seed(3)
    state = {k: v + 0.05 * torch.randn(v.shape, generator=g) for k, v in ctx.initial_state.items()}
    load_global(ctx, state)
    ctx.model.eval()
    test = ctx.data.test[: spec.eval_size]
    sizes = [len(e.text) + len(e.text_pair or "") for e in test]
    assert sorted(sizes) != sizes  # the length order differs from the examples' order

    preds, losses = predict_all(ctx, ctx.model, test)
    alone_preds, alone_losses = [], []
    with torch.no_grad():
        for e in test:
            b = to_device(ctx.family.collate(ctx.tokenizer, [e], task=ctx.task, label_names=ctx.label_names,
                                             max_len=spec.max_seq_len, max_target_len=spec.max_target_len),
                          ctx.device)
            loss, p = ctx.family.eval_batch(ctx.model, b, task=ctx.task, label_names=ctx.label_names,
                                            tokenizer=ctx.tokenizer, max_target_len=spec.max_target_len)
            alone_preds += p
            alone_losses.append(float(loss[0]))
    assert preds == alone_preds
    assert len(set(alone_losses)) > 1
    assert losses.tolist() == pytest.approx(alone_losses, rel=1e-4, abs=1e-5)

    metrics = evaluate(ctx, state)
    assert metrics["accuracy"] == accuracy(alone_preds, [e.label for e in test])  # type: ignore[arg-type]
    assert metrics["loss"] == pytest.approx(sum(alone_losses) / len(test), rel=1e-4)
