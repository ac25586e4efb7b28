"""Model families, one module each: encoder (``bert``: BERT/MiniLM), encoder-decoder (``t5``), decoder-only
(``llama``: Llama, GQA); the shared interface in ``base``.

A :class:`Family` knows, for one architecture, where its attention blocks are,
which module names PEFT should wrap, how to turn examples into a batch, how to
compute the training loss, attention maps and predictions. Everything else in
fedcore works from the :class:`~fedcore.models.base.AttentionBlock` list.
"""

from __future__ import annotations

from torch import nn

from fedcore.models.families.base import AttentionMap, Batch, Family, Task
from fedcore.models.families.bert import BertFamily, MeanPooler, use_mean_pooling
from fedcore.models.families.llama import LlamaFamily
from fedcore.models.families.t5 import T5Family

__all__ = [
    "FAMILIES",
    "AttentionMap",
    "Batch",
    "BertFamily",
    "Family",
    "LlamaFamily",
    "MeanPooler",
    "T5Family",
    "Task",
    "family_for",
    "get_module",
    "set_dropout",
    "use_mean_pooling",
]

FAMILIES: dict[str, Family] = {"bert": BertFamily(), "t5": T5Family(), "llama": LlamaFamily()}


def family_for(model_type: str) -> Family:
    """The family of a transformers ``config.model_type``."""
    if model_type in ("bert",):
        return FAMILIES["bert"]
    if model_type in ("t5", "mt5"):
        return FAMILIES["t5"]
    if model_type in ("llama", "mistral", "qwen2"):
        return FAMILIES["llama"]
    raise ValueError(f"model type {model_type!r} is not supported; fedheads supports BERT, T5 and Llama families")


def get_module(root: nn.Module, path: str) -> nn.Module:
    return root.get_submodule(path)


def set_dropout(root: nn.Module, p: float) -> None:
    """Set every dropout inside ``root`` to ``p``: the ``nn.Dropout`` modules (BERT's hidden, attention and
    classifier dropout, T5's) and the rates attention modules keep as plain floats for their attention function
    (Llama's ``attention_dropout``, T5's ``dropout``). Call it before PEFT wraps the model, so that LoRA's own
    dropout (``lora_dropout``) keeps its rate."""
    for module in root.modules():
        if isinstance(module, nn.Dropout):
            module.p = p
        for name in ("dropout", "attention_dropout"):
            if isinstance(getattr(module, name, None), float):
                setattr(module, name, p)
