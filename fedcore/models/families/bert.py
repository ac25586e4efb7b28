"""Encoder classification with BERT (MiniLM-L6 is one), with the optional mean pooling."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fedcore.data.types import Example
from fedcore.models.base import ArchInfo, AttentionBlock
from fedcore.models.families.base import (
    AttentionMap,
    Batch,
    Family,
    Task,
    classifier_eval,
    model_inputs,
    text_inputs,
)


class MeanPooler(nn.Module):
    """BERT's pooler replaced by the mean of the last hidden states over the valid tokens.

    all-MiniLM-L6-v2 is a sentence-transformers model trained with mean pooling: its
    sentence representation is the masked mean of the token states, while its [CLS] state
    and the pooler dense layer on it were never trained for a task. The padding mask is
    handed over by a pre-hook on the encoder (:func:`_hand_mask_to_pooler`).
    """

    def __init__(self) -> None:
        super().__init__()
        self.mask: Tensor | None = None

    def forward(self, hidden: Tensor) -> Tensor:  # (B, T, D) -> (B, D)
        if self.mask is None:
            return hidden.mean(dim=1)
        m = self.mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
        return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


def _hand_mask_to_pooler(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Pre-hook on ``BertModel``: give its :class:`MeanPooler` this call's attention mask.

    A module-level function of the module it is called with, so a deep copy of the model
    (drop mode trains one) hands the mask to its own pooler."""
    mask = kwargs.get("attention_mask")
    module.pooler.mask = mask if mask is not None or len(args) < 2 else args[1]  # type: ignore[union-attr]


def use_mean_pooling(model: nn.Module) -> None:
    """Classify from the masked mean of the token states instead of the [CLS] pooler (BERT family)."""
    bert: Any = model.get_submodule("bert")
    bert.pooler = MeanPooler()
    bert.register_forward_pre_hook(_hand_mask_to_pooler, with_kwargs=True)



class BertFamily(Family):
    """Encoder classification: ``BertForSequenceClassification`` (MiniLM-L6 is a BERT)."""

    name = "bert"
    peft_names = {"q": "query", "k": "key", "v": "value", "o": "attention.output.dense"}
    modules_to_save = ["classifier"]
    tasks = ("classification",)

    def blocks(self, model: nn.Module) -> list[AttentionBlock]:
        cfg: Any = model.config
        heads = cfg.num_attention_heads
        d = cfg.hidden_size // heads
        out = []
        for i in range(cfg.num_hidden_layers):
            base = f"bert.encoder.layer.{i}.attention"
            out.append(AttentionBlock(
                index=i, name=f"enc.{i}", group="encoder", layer=i, module=f"{base}.self",
                q=f"{base}.self.query", k=f"{base}.self.key", v=f"{base}.self.value", o=f"{base}.output.dense",
                num_heads=heads, num_kv_heads=heads, head_dim=d,
            ))
        return out

    def arch(self, model: nn.Module, num_labels: int) -> ArchInfo:
        cfg: Any = model.config
        pooler = getattr(getattr(model, "bert", None), "pooler", None)
        return ArchInfo(family="bert", hidden=cfg.hidden_size, ffn=cfg.intermediate_size, ffn_matrices=2,
                        vocab=cfg.vocab_size, num_labels=num_labels, blocks=tuple(self.blocks(model)),
                        encoder_layers=cfg.num_hidden_layers, pooler_dense=not isinstance(pooler, MeanPooler))

    def collate(self, tokenizer: Any, examples: Sequence[Example], *, task: Task, label_names: Sequence[str],
                max_len: int, max_target_len: int) -> Batch:
        texts, pairs = text_inputs(examples)
        enc = tokenizer(texts, pairs, max_length=max_len, truncation=True, padding="longest", return_tensors="pt")
        batch: Batch = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
        batch["labels"] = torch.tensor([e.label for e in examples], dtype=torch.long)
        return batch

    def per_example_loss(self, model: nn.Module, batch: Batch) -> Tensor:
        inputs = model_inputs(batch)
        labels = inputs.pop("labels")
        logits = model(**inputs).logits
        return F.cross_entropy(logits.float(), labels, reduction="none")

    def attention_maps_and_loss(self, model: nn.Module, batch: Batch) -> tuple[list[AttentionMap], Tensor]:
        inputs = model_inputs(batch)
        labels = inputs.pop("labels")
        out = model(**inputs, output_attentions=True)
        mask = batch["attention_mask"]
        maps = [AttentionMap(a, mask, batch["input_ids"]) for a in out.attentions]
        return maps, F.cross_entropy(out.logits.float(), labels, reduction="none")

    def predict(self, model: nn.Module, batch: Batch, *, task: Task, label_names: Sequence[str],
                tokenizer: Any, max_target_len: int) -> list[Any]:
        inputs = model_inputs(batch)
        inputs.pop("labels", None)
        return model(**inputs).logits.argmax(-1).tolist()

    def eval_batch(self, model: nn.Module, batch: Batch, *, task: Task, label_names: Sequence[str],
                   tokenizer: Any, max_target_len: int) -> tuple[Tensor, list[Any]]:
        return classifier_eval(model, batch)
