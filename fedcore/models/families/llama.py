"""Decoder-only models (Llama, Mistral, Qwen2; grouped-query attention)."""

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
    seq_loss,
)


class LlamaFamily(Family):
    """Decoder-only with grouped-query attention: classification head or causal-LM generation."""

    name = "llama"
    peft_names = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj"}
    modules_to_save = ["score"]
    tasks = ("classification", "generation")

    def blocks(self, model: nn.Module) -> list[AttentionBlock]:
        cfg: Any = model.config
        heads, kv = cfg.num_attention_heads, cfg.num_key_value_heads
        d = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
        out = []
        for i in range(cfg.num_hidden_layers):
            p = f"model.layers.{i}.self_attn"
            out.append(AttentionBlock(
                index=i, name=f"dec.{i}", group="decoder", layer=i, module=p,
                q=f"{p}.q_proj", k=f"{p}.k_proj", v=f"{p}.v_proj", o=f"{p}.o_proj",
                num_heads=heads, num_kv_heads=kv, head_dim=d,
            ))
        return out

    def arch(self, model: nn.Module, num_labels: int) -> ArchInfo:
        cfg: Any = model.config
        return ArchInfo(family="llama", hidden=cfg.hidden_size, ffn=cfg.intermediate_size, ffn_matrices=3,
                        vocab=cfg.vocab_size, num_labels=num_labels, blocks=tuple(self.blocks(model)),
                        decoder_layers=cfg.num_hidden_layers)

    def collate(self, tokenizer: Any, examples: Sequence[Example], *, task: Task, label_names: Sequence[str],
                max_len: int, max_target_len: int) -> Batch:
        sources = [f"{e.text}\n{e.text_pair}" if e.text_pair is not None else e.text for e in examples]
        if task == "classification":
            enc = tokenizer(sources, max_length=max_len, truncation=True, padding="longest", return_tensors="pt")
            return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                    "labels": torch.tensor([e.label for e in examples], dtype=torch.long)}
        # causal LM: prompt + target, loss on the target tokens only
        rows, label_rows = [], []
        for src, e in zip(sources, examples, strict=True):
            p = _ids(tokenizer, src)[: max_len]
            t = _ids(tokenizer, e.target or "")[: max_target_len - 1] + [tokenizer.eos_token_id]
            rows.append(p + t)
            label_rows.append([-100] * len(p) + t)
        width = max(len(r) for r in rows)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (r, lab) in enumerate(zip(rows, label_rows, strict=True)):
            ids[i, : len(r)] = torch.tensor(r)
            labels[i, : len(lab)] = torch.tensor(lab)
            mask[i, : len(r)] = 1
        prompts = tokenizer(sources, max_length=max_len, truncation=True, padding="longest", return_tensors="pt")
        return {"input_ids": ids, "attention_mask": mask, "labels": labels,
                "_prompt_ids": prompts["input_ids"], "_prompt_mask": prompts["attention_mask"]}

    def per_example_loss(self, model: nn.Module, batch: Batch) -> Tensor:
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return self._loss_of(out.logits, batch["labels"])

    @staticmethod
    def _loss_of(logits: Tensor, labels: Tensor) -> Tensor:
        if labels.dim() == 1:
            return F.cross_entropy(logits.float(), labels, reduction="none")
        return seq_loss(logits[:, :-1], labels[:, 1:])

    def attention_maps_and_loss(self, model: nn.Module, batch: Batch) -> tuple[list[AttentionMap], Tensor]:
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_attentions=True)
        maps = [AttentionMap(a, batch["attention_mask"], batch["input_ids"]) for a in out.attentions]
        return maps, self._loss_of(out.logits, batch["labels"])

    def eval_batch(self, model: nn.Module, batch: Batch, *, task: Task, label_names: Sequence[str],
                   tokenizer: Any, max_target_len: int) -> tuple[Tensor, list[Any]]:
        if task == "classification":
            return classifier_eval(model, batch)
        return super().eval_batch(model, batch, task=task, label_names=label_names, tokenizer=tokenizer,
                                  max_target_len=max_target_len)

    def predict(self, model: nn.Module, batch: Batch, *, task: Task, label_names: Sequence[str],
                tokenizer: Any, max_target_len: int) -> list[Any]:
        if task == "classification":
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            return out.logits.argmax(-1).tolist()
        # generate from left-padded prompts
        ids, mask = _left_pad(batch["_prompt_ids"], batch["_prompt_mask"], tokenizer.pad_token_id or 0)
        gen = model.generate(  # type: ignore[operator]
            input_ids=ids, attention_mask=mask, max_new_tokens=max_target_len, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
        return tokenizer.batch_decode(gen[:, ids.shape[1]:], skip_special_tokens=True)


def _ids(tokenizer: Any, text: str) -> list[int]:
    if hasattr(tokenizer, "encode_words"):
        return list(tokenizer.encode_words(text))
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _left_pad(ids: Tensor, mask: Tensor, pad: int) -> tuple[Tensor, Tensor]:
    lengths = mask.sum(1)
    width = int(lengths.max())
    new_ids = torch.full((ids.shape[0], width), pad, dtype=ids.dtype, device=ids.device)
    new_mask = torch.zeros((ids.shape[0], width), dtype=mask.dtype, device=ids.device)
    for i, n in enumerate(lengths.tolist()):
        new_ids[i, width - n:] = ids[i, :n]
        new_mask[i, width - n:] = 1
    return new_ids, new_mask
