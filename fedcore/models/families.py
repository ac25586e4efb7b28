"""Model families: encoder (BERT/MiniLM), encoder-decoder (T5), decoder-only (Llama, GQA).

A :class:`Family` knows, for one architecture, where its attention blocks are,
which module names PEFT should wrap, how to turn examples into a batch, how to
compute the training loss, attention maps and predictions. Everything else in
fedcore works from the :class:`~fedcore.models.base.AttentionBlock` list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
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
        return model(**_model_inputs(batch)).loss

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


def _classifier_eval(model: nn.Module, batch: Batch) -> tuple[Tensor, list[Any]]:
    inputs = _model_inputs(batch)
    labels = inputs.pop("labels")
    logits = model(**inputs).logits.float()
    return F.cross_entropy(logits, labels, reduction="none"), logits.argmax(-1).tolist()


def _model_inputs(batch: Batch) -> Batch:
    return {k: v for k, v in batch.items() if not k.startswith("_")}


def _text_inputs(examples: Sequence[Example]) -> tuple[list[str], list[str] | None]:
    texts = [e.text for e in examples]
    pairs = [e.text_pair or "" for e in examples] if any(e.text_pair is not None for e in examples) else None
    return texts, pairs


# --- BERT / MiniLM -------------------------------------------------------------


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
        texts, pairs = _text_inputs(examples)
        enc = tokenizer(texts, pairs, max_length=max_len, truncation=True, padding="longest", return_tensors="pt")
        batch: Batch = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
        batch["labels"] = torch.tensor([e.label for e in examples], dtype=torch.long)
        return batch

    def per_example_loss(self, model: nn.Module, batch: Batch) -> Tensor:
        inputs = _model_inputs(batch)
        labels = inputs.pop("labels")
        logits = model(**inputs).logits
        return F.cross_entropy(logits.float(), labels, reduction="none")

    def attention_maps_and_loss(self, model: nn.Module, batch: Batch) -> tuple[list[AttentionMap], Tensor]:
        inputs = _model_inputs(batch)
        labels = inputs.pop("labels")
        out = model(**inputs, output_attentions=True)
        mask = batch["attention_mask"]
        maps = [AttentionMap(a, mask, batch["input_ids"]) for a in out.attentions]
        return maps, F.cross_entropy(out.logits.float(), labels, reduction="none")

    def predict(self, model: nn.Module, batch: Batch, *, task: Task, label_names: Sequence[str],
                tokenizer: Any, max_target_len: int) -> list[Any]:
        inputs = _model_inputs(batch)
        inputs.pop("labels", None)
        return model(**inputs).logits.argmax(-1).tolist()

    def eval_batch(self, model: nn.Module, batch: Batch, *, task: Task, label_names: Sequence[str],
                   tokenizer: Any, max_target_len: int) -> tuple[Tensor, list[Any]]:
        return _classifier_eval(model, batch)


# --- T5 ------------------------------------------------------------------------


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
        return _seq_loss(out.logits, labels)

    def attention_maps_and_loss(self, model: nn.Module, batch: Batch) -> tuple[list[AttentionMap], Tensor]:
        labels = batch["labels"]
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels,
                    output_attentions=True)
        enc_mask, dec_mask = batch["attention_mask"], batch["_decoder_mask"]
        maps = [AttentionMap(a, enc_mask, batch["input_ids"]) for a in out.encoder_attentions]
        maps += [AttentionMap(a, dec_mask) for a in out.decoder_attentions]
        maps += [AttentionMap(a, dec_mask) for a in out.cross_attentions]
        return maps, _seq_loss(out.logits, labels)

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
                losses.append(_seq_loss(out.logits, labels))
            return torch.stack(losses, dim=1).argmin(dim=1).tolist()
        gen = model.generate(  # type: ignore[operator]
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
            max_new_tokens=max_target_len, do_sample=False,
        )
        return tokenizer.batch_decode(gen, skip_special_tokens=True)


def _seq_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean token cross-entropy per sequence; -100 labels ignored. logits (B, T, V), labels (B, T)."""
    tok = F.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=-100, reduction="none")  # (B, T)
    valid = (labels != -100).float()
    return (tok * valid).sum(1) / valid.sum(1).clamp(min=1)


# --- Llama -----------------------------------------------------------------------


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
        return _seq_loss(logits[:, :-1], labels[:, 1:])

    def attention_maps_and_loss(self, model: nn.Module, batch: Batch) -> tuple[list[AttentionMap], Tensor]:
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_attentions=True)
        maps = [AttentionMap(a, batch["attention_mask"], batch["input_ids"]) for a in out.attentions]
        return maps, self._loss_of(out.logits, batch["labels"])

    def eval_batch(self, model: nn.Module, batch: Batch, *, task: Task, label_names: Sequence[str],
                   tokenizer: Any, max_target_len: int) -> tuple[Tensor, list[Any]]:
        if task == "classification":
            return _classifier_eval(model, batch)
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
