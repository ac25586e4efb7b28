"""What every model family shares: the :class:`Family` interface, batches, attention maps, and the
loss and input helpers the families use."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch.nn.functional as F
from torch import Tensor, nn

from fedcore.data.types import Example
from fedcore.models.base import PROJECTIONS, ArchInfo, AttentionBlock, Projection

Task = Literal["classification", "generation"]
Batch = dict[str, Tensor]


@dataclass
class AttentionMap:
    """Attention probabilities of one block, (B, H, Tq, Tk), its valid queries (B, Tq) and,
    where the queries are input tokens, their ids (B, Tq) (for excluding special end tokens)."""

    probs: Tensor
    query_mask: Tensor
    query_ids: Tensor | None = None


class Family:
    """Base class: one model architecture."""

    name: str = ""
    # PEFT target-module suffix of each abstract projection
    peft_names: dict[Projection, str] = {}
    modules_to_save: list[str] | None = None
    tasks: tuple[Task, ...] = ("classification",)

    def peft_targets(self, projections: Sequence[Projection]) -> list[str]:
        return [self.peft_names[p] for p in PROJECTIONS if p in projections]

    def blocks(self, model: nn.Module) -> list[AttentionBlock]:
        raise NotImplementedError

    def arch(self, model: nn.Module, num_labels: int) -> ArchInfo:
        raise NotImplementedError

    def collate(
        self, tokenizer: Any, examples: Sequence[Example], *, task: Task, label_names: Sequence[str],
        max_len: int, max_target_len: int,
    ) -> Batch:
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        return model(**model_inputs(batch)).loss

    def per_example_loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """Loss of each example, (B,)."""
        raise NotImplementedError

    def attention_maps_and_loss(self, model: nn.Module, batch: Batch) -> tuple[list[AttentionMap], Tensor]:
        """The attention maps of every block and the loss of each example, (B,), from one forward pass
        (a client's importance and its global-model loss are measured on the same sample)."""
        raise NotImplementedError

    def predict(self, model: nn.Module, batch: Batch, *, task: Task, label_names: Sequence[str],
                tokenizer: Any, max_target_len: int) -> list[Any]:
        raise NotImplementedError

    def eval_batch(self, model: nn.Module, batch: Batch, *, task: Task, label_names: Sequence[str],
                   tokenizer: Any, max_target_len: int) -> tuple[Tensor, list[Any]]:
        """(per-example loss, predictions); families with a classifier head share one forward pass."""
        losses = self.per_example_loss(model, batch)
        preds = self.predict(model, batch, task=task, label_names=label_names, tokenizer=tokenizer,
                             max_target_len=max_target_len)
        return losses, preds


def classifier_eval(model: nn.Module, batch: Batch) -> tuple[Tensor, list[Any]]:
    inputs = model_inputs(batch)
    labels = inputs.pop("labels")
    logits = model(**inputs).logits.float()
    return F.cross_entropy(logits, labels, reduction="none"), logits.argmax(-1).tolist()


def model_inputs(batch: Batch) -> Batch:
    return {k: v for k, v in batch.items() if not k.startswith("_")}


def text_inputs(examples: Sequence[Example]) -> tuple[list[str], list[str] | None]:
    texts = [e.text for e in examples]
    pairs = [e.text_pair or "" for e in examples] if any(e.text_pair is not None for e in examples) else None
    return texts, pairs


def seq_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean token cross-entropy per sequence; -100 labels ignored. logits (B, T, V), labels (B, T)."""
    tok = F.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=-100, reduction="none")  # (B, T)
    valid = (labels != -100).float()
    return (tok * valid).sum(1) / valid.sum(1).clamp(min=1)
