"""Everything one process needs to train clients or evaluate: model, data, layout.

A :class:`RunContext` is built from a spec alone (plus where assets and data
live), so any process — the server loop, a pool worker, a Celery worker — builds
the same one and gets the same results. Contexts are cached per process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict
from torch import nn

from fedcore.data import DatasetSplits, label_histogram, load_dataset, partition
from fedcore.lora_state import LoraLayout, State, clone_state, init_heads_random
from fedcore.models.base import ArchInfo, AttentionBlock
from fedcore.models.families import Family, Task, set_dropout, use_mean_pooling
from fedcore.models.loading import load_model
from fedcore.spec import ExperimentSpec


@dataclass
class Paths:
    """Where a run finds its inputs (all optional; defaults are the user's cache and cwd)."""

    cache_dir: Path | None = None
    data_root: Path | None = None
    model_root: Path | None = None


@dataclass
class RunContext:
    spec: ExperimentSpec
    family: Family
    model: nn.Module  # PEFT-wrapped
    tokenizer: Any
    data: DatasetSplits
    task: Task
    label_names: list[str]
    client_indices: list[list[int]]
    blocks: list[AttentionBlock]
    arch: ArchInfo
    layout: LoraLayout
    initial_state: State
    device: torch.device
    special_ids: list[int] = field(default_factory=list)

    @property
    def num_examples(self) -> list[int]:
        return [len(ix) for ix in self.client_indices]

    def label_histograms(self) -> list[list[int]]:
        labels = [e.label if e.label is not None else 0 for e in self.data.train]
        n = max(len(self.label_names), 1)
        return [label_histogram(labels, ix, n) for ix in self.client_indices]


def resolve_device(name: str) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' requested but torch sees no CUDA device")
        return torch.device("cuda")
    return torch.device("cpu")


def build_context(spec: ExperimentSpec, paths: Paths | None = None) -> RunContext:
    paths = paths or Paths()
    torch.set_num_threads(spec.num_threads)
    data = load_dataset(
        spec.dataset,
        cache_dir=paths.cache_dir,
        data_root=paths.data_root,
        data_path=spec.data_path,
        text_field=spec.text_field,
        text_pair_field=spec.text_pair_field,
        label_field=spec.label_field,
        target_field=spec.target_field,
        max_train=spec.max_train_examples,
        max_test=spec.eval_size,
        seed=spec.seed,
    )
    task: Task = data.task
    label_names = list(data.label_names)
    labels = [e.label for e in data.train]
    has_labels = all(lab is not None for lab in labels)
    clients = partition(
        labels if has_labels else None,  # type: ignore[arg-type]
        len(data.train),
        spec.num_clients,
        spec.partition,
        seed=spec.seed,
        alpha=spec.dirichlet_alpha,
        shards_per_client=spec.shards_per_client,
        quantity_sigma=spec.quantity_sigma,
    )
    loaded = load_model(spec.model, task=task, num_labels=max(len(label_names), 1), seed=spec.seed,
                        cache_dir=paths.cache_dir, model_root=paths.model_root)
    family, base = loaded.family, loaded.model
    if spec.pooling == "mean":
        if family.name != "bert" or task != "classification":
            raise ValueError(f"pooling 'mean' applies to BERT-family classifiers; {spec.model} is a {family.name} "
                             "model: use pooling 'cls' (its own head)")
        use_mean_pooling(base)
    if spec.model_dropout is not None:
        set_dropout(base, spec.model_dropout)
    blocks = family.blocks(base)
    if spec.min_heads_per_block > blocks[0].num_heads:
        raise ValueError(
            f"min_heads_per_block ({spec.min_heads_per_block}) must be <= the model's heads per block "
            f"({blocks[0].num_heads})"
        )
    arch = family.arch(base, len(label_names) if task == "classification" else 0)
    modules_to_save = family.modules_to_save if task == "classification" else None
    if family.name == "llama" and task == "generation":
        modules_to_save = None
    torch.manual_seed(spec.seed)
    cfg = LoraConfig(r=spec.lora_r, lora_alpha=spec.lora_alpha,  # type: ignore[arg-type]
                      lora_dropout=spec.lora_dropout,
                     target_modules=family.peft_targets(spec.lora_targets), modules_to_save=modules_to_save)
    device = resolve_device(spec.device)
    model = get_peft_model(base, cfg).to(device)
    layout = LoraLayout(get_peft_model_state_dict(model), blocks)
    if spec.lora_init == "heads_random":
        init_heads_random(model, layout, spec.seed)
    state = clone_state(get_peft_model_state_dict(model))
    tok = loaded.tokenizer
    special = [i for i in (getattr(tok, "sep_token_id", None), getattr(tok, "eos_token_id", None)) if i is not None]
    return RunContext(spec=spec, family=family, model=model, tokenizer=tok, data=data, task=task,
                      label_names=label_names, client_indices=clients, blocks=blocks, arch=arch, layout=layout,
                      initial_state=state, device=device, special_ids=special)


_CACHE: dict[str, RunContext] = {}


def get_context(spec: ExperimentSpec, paths: Paths | None = None) -> RunContext:
    """Build once per process and spec; later calls reuse the loaded model and data.

    A process that serves many jobs (the embedded executor's job process, a Celery worker) keeps the
    contexts of its last two specs. torch's thread count is process-wide and figures are bit-identical
    only at the spec's own count, so every call sets it again: a job whose context was cached before
    another job with other threads ran gets the figures of a fresh process.
    """
    key = f"{os.getpid()}:{spec.model_dump_json()}:{paths}"
    if key not in _CACHE:
        while len(_CACHE) >= 2:  # the least recently used goes
            del _CACHE[next(iter(_CACHE))]
        _CACHE[key] = build_context(spec, paths)
    else:
        _CACHE[key] = _CACHE.pop(key)  # now the most recently used
        if torch.get_num_threads() != spec.num_threads:
            torch.set_num_threads(spec.num_threads)
    return _CACHE[key]
