"""Mean pooling for BERT-family classifiers: padding is left out, and a deep copy pools its own batches."""

from __future__ import annotations

import copy

import pytest
import torch

from fedcore.client import ClientTask, train_client
from fedcore.context import build_context
from fedcore.data.types import Example
from fedcore.models.families import MeanPooler
from fedcore.spec import preset

TEXTS = [("a short one", "yes"), ("a much longer sentence with many more words in it", "no it is not")]


def _batch(ctx, examples):
    return ctx.family.collate(ctx.tokenizer, examples, task="classification", label_names=ctx.label_names,
                              max_len=32, max_target_len=8)


def test_mean_pooling_ignores_padding_and_survives_a_deep_copy() -> None:
    ctx = build_context(preset("smoke", pooling="mean"))
    model = ctx.model.eval()
    assert isinstance(model.get_submodule("base_model.model.bert.pooler"), MeanPooler)
    examples = [Example(text=t, text_pair=p, label=0) for t, p in TEXTS]
    padded = _batch(ctx, examples)
    assert (padded["attention_mask"] == 0).any()
    with torch.no_grad():
        together = ctx.family.per_example_loss(model, padded)
        alone = torch.cat([ctx.family.per_example_loss(model, _batch(ctx, [e])) for e in examples])
        copied = copy.deepcopy(model)
        from_copy = ctx.family.per_example_loss(copied, padded)
    assert torch.allclose(together, alone, atol=1e-5)
    assert torch.equal(from_copy, together)
    assert copied.get_submodule("base_model.model.bert.pooler").mask is not None


def test_mean_pooling_changes_the_classifier_input_and_trains_in_drop_mode() -> None:
    cls_ctx = build_context(preset("smoke", sparsity=0.5, prune_mode="drop", local_steps=2))
    mean_ctx = build_context(preset("smoke", sparsity=0.5, prune_mode="drop", local_steps=2, pooling="mean"))
    task = ClientTask(round=1, client=0, global_state=cls_ctx.initial_state)
    a, b = train_client(cls_ctx, task), train_client(mean_ctx, task)
    assert a.loss_global != b.loss_global and b.ops < a.ops  # no dense pooler to run
    assert train_client(mean_ctx, task).payload == b.payload


def test_mean_pooling_is_refused_for_other_families() -> None:
    with pytest.raises(ValueError, match="pooling 'mean' applies to BERT-family"):
        build_context(preset("smoke", model="tiny-llama", pooling="mean"))
