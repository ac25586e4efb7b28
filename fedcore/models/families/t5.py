"""Encoder-decoder generation (and classification as generation) with T5."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from fedcore.data.types import Example
from fedcore.models.base import ArchInfo, AttentionBlock
from fedcore.models.families.base import (
    AttentionMap,
    Batch,
    Family,
    Task,
    seq_loss,
)


class T5Family(Family):
    """Encoder-decoder, text to text: classification by ranking label words, and generation."""

    name = "t5"
    peft_names = {"q": "q", "k": "k", "v": "v", "o": "o"}
    modules_to_save = None
    tasks = ("classification", "generation")

    def blocks(self, model: nn.Module) -> list[AttentionBlock]:
        cfg: Any = model.config
        heads, d = cfg.num_heads, cfg.d_kv
        out: list[AttentionBlock] = []

        def add(name: str, group: Any, layer: int, path: str) -> None:
            out.append(AttentionBlock(
                index=len(out), name=name, group=group, layer=layer, module=path,
                q=f"{path}.q", k=f"{path}.k", v=f"{path}.v", o=f"{path}.o",
                num_heads=heads, num_kv_heads=heads, head_dim=d,
            ))

        for i in range(cfg.num_layers):
            add(f"enc.{i}", "encoder", i, f"encoder.block.{i}.layer.0.SelfAttention")
        for i in range(cfg.num_decoder_layers):
            add(f"dec.{i}", "decoder", i, f"decoder.block.{i}.layer.0.SelfAttention")
        for i in range(cfg.num_decoder_layers):
            add(f"cross.{i}", "cross", i, f"decoder.block.{i}.layer.1.EncDecAttention")
        return out

    def arch(self, model: nn.Module, num_labels: int) -> ArchInfo:
        cfg: Any = model.config
        gated = bool(getattr(cfg, "is_gated_act", False))
        return ArchInfo(family="t5", hidden=cfg.d_model, ffn=cfg.d_ff, ffn_matrices=3 if gated else 2,
                        vocab=cfg.vocab_size, num_labels=0, blocks=tuple(self.blocks(model)),
                        encoder_layers=cfg.num_layers, decoder_layers=cfg.num_decoder_layers)

    @staticmethod
    def _source(e: Example) -> str:
        return f"{e.text} </s> {e.text_pair}" if e.text_pair is not None else e.text

    def collate(self, tokenizer: Any, examples: Sequence[Example], *, task: Task, label_names: Sequence[str],
                max_len: int, max_target_len: int) -> Batch:
        enc = tokenizer([self._source(e) for e in examples], max_length=max_len, truncation=True,
                        padding="longest", return_tensors="pt")
        if task == "classification":
            targets = [label_names[e.label] for e in examples]  # type: ignore[index]
        else:
            targets = [e.target or "" for e in examples]
        tgt = tokenizer(targets, max_length=max_target_len, truncation=True, padding="longest",
                        return_tensors="pt")
        labels = tgt["input_ids"].masked_fill(tgt["attention_mask"] == 0, -100)
        return {
            "input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels,
            "_decoder_mask": tgt["attention_mask"],
            "_class": torch.tensor([e.label if e.label is not None else -1 for e in examples]),
        }

    def per_example_loss(self, model: nn.Module, batch: Batch) -> Tensor:
        labels = batch["labels"]
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels)
        return seq_loss(out.logits, labels)

    def attention_maps_and_loss(self, model: nn.Module, batch: Batch) -> tuple[list[AttentionMap], Tensor]:
        labels = batch["labels"]
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels,
                    output_attentions=True)
        enc_mask, dec_mask = batch["attention_mask"], batch["_decoder_mask"]
        maps = [AttentionMap(a, enc_mask, batch["input_ids"]) for a in out.encoder_attentions]
        maps += [AttentionMap(a, dec_mask) for a in out.decoder_attentions]
        maps += [AttentionMap(a, dec_mask) for a in out.cross_attentions]
        return maps, seq_loss(out.logits, labels)

    def predict(self, model: nn.Module, batch: Batch, *, task: Task, label_names: Sequence[str],
                tokenizer: Any, max_target_len: int) -> list[Any]:
        if task == "classification":
            # rank classification: the label word whose target sequence has the lowest loss
            bsz = batch["input_ids"].shape[0]
            losses = []
            for name in label_names:
                tgt = tokenizer([name] * bsz, max_length=max_target_len, truncation=True, padding="longest",
                                return_tensors="pt")
                labels = tgt["input_ids"].to(batch["input_ids"].device)
                out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels)
                losses.append(seq_loss(out.logits, labels))
            return torch.stack(losses, dim=1).argmin(dim=1).tolist()
        gen = model.generate(  # type: ignore[operator]
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
            max_new_tokens=max_target_len, do_sample=False,
        )
        return tokenizer.batch_decode(gen, skip_special_tokens=True)
