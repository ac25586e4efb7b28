"""``model_dropout``: the model's own dropout rates replaced before PEFT wraps it, in every family, with LoRA's
dropout left at ``lora_dropout``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fedcore.client import batches
from fedcore.context import build_context
from fedcore.spec import preset

MODELS = [("tiny-bert", "synthetic"), ("tiny-t5", "synthetic"), ("tiny-llama", "synthetic")]


def _train_mode_losses(ctx, times: int = 2) -> list[float]:  # type: ignore[no-untyped-def]
    batch = next(batches(ctx, ctx.client_indices[0][:8], 8))
    ctx.model.train()
    with torch.no_grad():
        return [float(ctx.family.loss(ctx.model, batch)) for _ in range(times)]


def _rates(model: nn.Module) -> tuple[set[float], set[float]]:
    """The model's own rates, and LoRA's (the modules PEFT added under 'lora_dropout')."""
    own: set[float] = set()
    lora: set[float] = set()
    for name, module in model.named_modules():
        if isinstance(module, nn.Dropout):
            (lora if "lora_dropout" in name else own).add(module.p)
        for attr in ("dropout", "attention_dropout"):
            if isinstance(getattr(module, attr, None), float):
                own.add(getattr(module, attr))
    return own, lora


@pytest.mark.parametrize(("model", "dataset"), MODELS)
def test_model_dropout_sets_every_rate_of_the_model_and_leaves_loras_own(model: str, dataset: str) -> None:
    spec = preset("smoke", model=model, dataset=dataset, lora_dropout=0.25, model_dropout=0.4)
    own, lora = _rates(build_context(spec).model)
    assert own == {0.4} and lora == {0.25}


@pytest.mark.parametrize(("model", "dataset"), MODELS)
def test_model_dropout_zero_makes_the_training_forward_deterministic(model: str, dataset: str) -> None:
    ctx = build_context(preset("smoke", model=model, dataset=dataset, model_dropout=0.0))
    first, second = _train_mode_losses(ctx)
    assert first == second
    ctx.model.eval()
    batch = next(batches(ctx, ctx.client_indices[0][:8], 8))
    with torch.no_grad():
        assert float(ctx.family.loss(ctx.model, batch)) == pytest.approx(first, rel=1e-6)


def test_without_model_dropout_the_checkpoints_rates_stay() -> None:
    ctx = build_context(preset("smoke"))  # tiny-bert: BertConfig's 0.1
    assert _rates(ctx.model)[0] == {0.1}
    first, second = _train_mode_losses(ctx)
    assert first != second  # dropout draws anew in train mode
