"""Load a model by name: offline assets, tiny random models, hub ids or local folders.

Nothing here downloads from a model hub unless the user named a hub id
(``hub:<id>`` or ``t5-small``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fedcore.models.families import FAMILIES, Family, Task, family_for
from fedcore.models.tokenizer import HashTokenizer

TINY_VOCAB = 1000
KNOWN_MODELS = ("minilm-l6", "tiny-bert", "tiny-t5", "tiny-llama", "smollm2-135m", "t5-small")


@dataclass
class LoadedModel:
    family: Family
    model: nn.Module
    tokenizer: Any
    source: str


def _tiny(name: str, task: Task, num_labels: int) -> LoadedModel:
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        LlamaConfig,
        LlamaForCausalLM,
        LlamaForSequenceClassification,
        T5Config,
        T5ForConditionalGeneration,
    )

    model: nn.Module
    cfg: Any
    if name == "tiny-bert":
        if task != "classification":
            raise ValueError("model 'tiny-bert' supports classification only; use tiny-t5 or tiny-llama")
        cfg = BertConfig(vocab_size=TINY_VOCAB, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                         intermediate_size=128, max_position_embeddings=512, num_labels=num_labels,
                         attn_implementation="eager")  # type: ignore[call-arg]
        model = BertForSequenceClassification(cfg)
        return LoadedModel(FAMILIES["bert"], model, HashTokenizer(TINY_VOCAB, pair_style="bert"), name)
    if name == "tiny-t5":
        cfg = T5Config(vocab_size=TINY_VOCAB, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=2,
                       num_heads=4, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
                       attn_implementation="eager")  # type: ignore[call-arg]
        model = T5ForConditionalGeneration(cfg)
        return LoadedModel(FAMILIES["t5"], model, HashTokenizer(TINY_VOCAB, pair_style="plain"), name)
    if name == "tiny-llama":
        cfg = LlamaConfig(vocab_size=TINY_VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                          pad_token_id=0, bos_token_id=2, eos_token_id=1, num_labels=num_labels,
                          attn_implementation="eager")  # type: ignore[call-arg]
        model = LlamaForSequenceClassification(cfg) if task == "classification" else LlamaForCausalLM(cfg)
        return LoadedModel(FAMILIES["llama"], model, HashTokenizer(TINY_VOCAB, pair_style="plain"), name)
    raise ValueError(f"unknown tiny model {name!r}")


def _from_pretrained(path: str, task: Task, num_labels: int, source: str, **kw: Any) -> LoadedModel:
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForSeq2SeqLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    cfg = AutoConfig.from_pretrained(path, **kw)
    family = family_for(cfg.model_type)
    if task not in family.tasks:
        raise ValueError(f"model {source!r} ({family.name}) does not support {task}; supported: {family.tasks}")
    tokenizer = AutoTokenizer.from_pretrained(path, **kw)
    common = {"attn_implementation": "eager", **kw}
    model: nn.Module
    if family.name == "t5":
        model = AutoModelForSeq2SeqLM.from_pretrained(path, **common)
    elif task == "generation":
        model = AutoModelForCausalLM.from_pretrained(path, **common)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels, **common)
    if family.name == "llama":
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        model.config.pad_token_id = tokenizer.pad_token_id  # type: ignore[union-attr]
        tokenizer.padding_side = "right"
    model.float()
    return LoadedModel(family, model, tokenizer, source)


def load_model(
    name: str,
    *,
    task: Task,
    num_labels: int,
    seed: int = 0,
    cache_dir: Path | None = None,
    model_root: Path | None = None,
) -> LoadedModel:
    """Load the model named in a spec; the classifier head is initialised from ``seed``."""
    torch.manual_seed(seed)
    if name.startswith("tiny-"):
        return _tiny(name, task, num_labels)
    if name == "minilm-l6":
        from fedcore.assets import minilm_model_dir

        return _from_pretrained(str(minilm_model_dir(cache_dir)), task, num_labels, name)
    if name == "smollm2-135m":
        from fedcore.assets import smollm2_gguf

        gguf = smollm2_gguf(cache_dir)
        try:
            import gguf as _gguf  # noqa: F401
        except ImportError as err:
            raise RuntimeError("model 'smollm2-135m' needs the gguf package: pip install 'fedheads[hub]'") from err
        return _from_pretrained(str(gguf.parent), task, num_labels, name, gguf_file=gguf.name)
    if name == "t5-small":
        return _from_pretrained("google-t5/t5-small", task, num_labels, name)
    if name.startswith("hub:"):
        return _from_pretrained(name[4:], task, num_labels, name)
    # a local folder, confined to the model root
    from fedcore.data.paths import confine

    root = model_root or Path.cwd()
    path = confine(name, root, what="model")
    if not (path / "config.json").is_file():
        raise ValueError(
            f"model {name!r} is neither a known name ({', '.join(KNOWN_MODELS)}), 'hub:<id>', "
            f"nor a folder with config.json under the model root {root}"
        )
    return _from_pretrained(str(path), task, num_labels, name)
