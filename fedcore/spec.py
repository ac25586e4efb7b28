"""The experiment specification: every knob of a federated head-pruning run.

One pydantic model serves the CLI, the REST API, the browser form and the
database, so their schemas cannot drift. Each field carries a description and
its bounds; a bad value fails with a message that names the field and the
allowed range.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fedcore.presets import PRESETS

Projection = Literal["q", "k", "v", "o"]
PROJECTION_NAMES: tuple[Projection, ...] = ("q", "k", "v", "o")


class SpecError(ValueError):
    """A spec that cannot be used; the message names the field and the allowed values."""


class ExperimentSpec(BaseModel):
    """A complete, validated description of one federated experiment."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    # --- model & data -------------------------------------------------------
    model: str = Field(
        "minilm-l6",
        min_length=1,
        max_length=300,
        description=(
            "Model: 'minilm-l6' (offline default), 'tiny-bert', 'tiny-t5', 'tiny-llama' (random, for tests), "
            "'smollm2-135m' (offline GGUF), 't5-small', 'hub:<id>' or a local folder inside the model root."
        ),
    )
    dataset: str = Field(
        "snli",
        min_length=1,
        max_length=300,
        description=(
            "Dataset: 'snli' (offline default), 'bbc-news', 'bbc-headlines', 'aclsum', 'synthetic', "
            "'local' (with data_path) or 'hub:<id>'."
        ),
    )
    data_path: str | None = Field(
        None, max_length=500, description="Local jsonl/csv/parquet file, relative to the data root."
    )
    text_field: str = Field("text", min_length=1, max_length=100, description="Input text field (local/hub data).")
    text_pair_field: str | None = Field(
        None, max_length=100, description="Second input text field, for sentence pairs (local/hub data)."
    )
    label_field: str = Field("label", min_length=1, max_length=100, description="Label field (classification).")
    target_field: str | None = Field(
        None, max_length=100, description="Target text field; setting it makes the task generation."
    )
    max_train_examples: int | None = Field(
        None, ge=10, le=10_000_000, description="Use at most this many training examples (seeded subsample)."
    )
    eval_size: int = Field(1000, ge=10, le=1_000_000, description="Test examples used to evaluate each round.")
    eval_batch_size: int = Field(64, ge=1, le=4096, description="Batch size of evaluation and importance passes.")

    # --- federation ---------------------------------------------------------
    partition: Literal["iid", "dirichlet", "shards", "quantity"] = Field(
        "iid", description="How training data is split across clients."
    )
    dirichlet_alpha: float = Field(
        0.5, gt=0, le=1000, description="Dirichlet concentration for label skew (smaller = more skewed)."
    )
    shards_per_client: int = Field(2, ge=1, le=100, description="Label-sorted shards per client ('shards').")
    quantity_sigma: float = Field(
        1.0, ge=0, le=5, description="Log-normal sigma of client sizes ('quantity' skew)."
    )
    num_clients: int = Field(20, ge=1, le=100_000, description="Number of registered clients K.")
    clients_per_round: int = Field(4, ge=1, le=10_000, description="Clients selected per round M (<= num_clients).")
    rounds: int = Field(8, ge=1, le=10_000, description="Federated rounds.")

    # --- local training -----------------------------------------------------
    local_steps: int | None = Field(
        15, ge=1, le=1_000_000, description="Local optimizer steps per round (set this or local_epochs)."
    )
    local_epochs: float | None = Field(
        None, gt=0, le=100, description="Local epochs per round over the client's data (instead of local_steps)."
    )
    batch_size: int = Field(16, ge=1, le=1024, description="Local training batch size.")
    learning_rate: float = Field(2e-3, gt=0, le=1, description="AdamW learning rate of the local optimizer.")
    weight_decay: float = Field(0.0, ge=0, le=1, description="AdamW weight decay.")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant",
        description="The local learning rate over the rounds: 'constant', or 'cosine': `learning_rate` in round 1 "
        "falling on a half cosine to a tenth of it in the last round (FedAvg on non-IID data needs a decaying "
        "local rate to converge: Li et al. 2020). Every client of a round uses the round's rate.",
    )
    warmup_steps: int = Field(
        0,
        ge=0,
        le=100_000,
        description="Local steps over which a client's rate rises linearly to the round's rate, every round "
        "(AdamW starts afresh each round, and its first updates are its largest: Goyal et al. 2017's warm-up). "
        "0: none.",
    )
    model_dropout: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="Dropout inside the model during local training (hidden states, attention probabilities and "
        "the classifier's input), in place of the checkpoint's own (0.1 in BERT and MiniLM); unset: the "
        "checkpoint's own rates. LoRA's own dropout is `lora_dropout`.",
    )
    pooling: Literal["cls", "mean"] = Field(
        "cls",
        description="BERT-family classification: 'cls' classifies the [CLS] state through the model's dense "
        "pooler (transformers' BertForSequenceClassification); 'mean' classifies the masked mean of the token "
        "states, the pooling a sentence-transformers model such as all-MiniLM-L6-v2 was trained with.",
    )
    max_seq_len: int = Field(64, ge=8, le=8192, description="Maximum input tokens (longer inputs are truncated).")
    max_target_len: int = Field(32, ge=2, le=1024, description="Maximum target tokens (generation tasks).")

    # --- LoRA ---------------------------------------------------------------
    lora_r: int = Field(8, ge=1, le=512, description="LoRA rank r.")
    lora_alpha: float = Field(16.0, gt=0, le=4096, description="LoRA scaling alpha.")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA input.")
    lora_targets: list[Projection] = Field(
        default_factory=lambda: list(PROJECTION_NAMES),
        min_length=1,
        max_length=4,
        description="Attention projections that get LoRA adapters (q, k, v, o).",
    )
    lora_init: Literal["peft", "heads_random"] = Field(
        "peft",
        description="'peft': PEFT's initialisation (A random, B zero) on every projection; 'heads_random': "
        "the head-specific halves start random and the shared halves at zero (q/k/v: B random, A zero; o as "
        "'peft'), so the heads a client prunes are still adapted, in a fixed random subspace, through the "
        "shared halves it trains.",
    )

    # --- head importance & pruning -------------------------------------------
    importance: Literal["confidence", "gradient"] = Field(
        "confidence",
        description="Head importance: 'confidence' (Voita et al. 2019, mean max attention) or "
        "'gradient' (Michel et al. 2019, mean |dL/d gate|).",
    )
    importance_samples: int = Field(
        64, ge=1, le=100_000, description="Local examples each client scores its heads on."
    )
    importance_exclude_special: bool = Field(
        False, description="Exclude special end tokens ([SEP], </s>) from the query positions of confidence."
    )
    probe_passes: Literal["all", "needed"] = Field(
        "all",
        description="'all': every client scores its heads and measures its sample's loss under the received "
        "model, the pruned model (drop mode) and the trained one, for the record and the dashboard; 'needed': "
        "only the passes the run itself uses (importance when heads are pruned, aggregation is head_weighted "
        "or selection is head_coverage; the losses for loss_gap selection); each "
        "round's record names the skipped ones, and every other figure is the same as with 'all'.",
    )
    sparsity: float = Field(0.0, ge=0, le=0.99, description="Fraction s of attention heads each client prunes.")
    prune_mode: Literal["mask", "drop"] = Field(
        "mask",
        description="'mask': pruned heads' LoRA slices are frozen and not uploaded; "
        "'drop': pruned heads are removed from the local model for training.",
    )
    prune_ranking: Literal["global", "per_block"] = Field(
        "global", description="Rank heads across all blocks ('global') or within each block ('per_block')."
    )
    head_choice: Literal["top", "sampled"] = Field(
        "top",
        description="'top': keep the heads with the highest importance (the paper); 'sampled': draw the kept "
        "heads without replacement with probability proportional to importance, seeded per client and round "
        "(fedheads' own), so that over the rounds the head-specific LoRA slices of every head get trained, "
        "not only those of the few heads every client ranks first.",
    )
    min_heads_per_block: int = Field(
        0, ge=0, le=128, description="Keep at least this many heads in every attention block."
    )
    drop_dense_steps: int = Field(
        0, ge=0, le=100_000,
        description="'drop' mode: the last N local steps of a round train the full model instead (pruned "
        "heads' slices frozen, as in 'mask'), so the shared LoRA halves and the classifier also learn on the "
        "network that is evaluated; 0: every step on the pruned copy.",
    )

    compute_sparsity: float | None = Field(
        None, ge=0, le=0.99,
        description="'drop' mode: the fraction of heads removed from local training (forward and backward), "
        "at most `sparsity`; unset: equal to `sparsity`. Heads kept for compute but pruned for communication "
        "stay in the forward with their LoRA slices frozen, as in 'mask' (fedheads' own: two sparsities).",
    )
    compute_ramp_rounds: int = Field(
        0, ge=0, le=10_000,
        description="'drop' mode: the compute sparsity rises linearly from 0 in round 1 to its target in round "
        "1 + N (after PruneFL, Jiang et al. 2022); the communication sparsity holds from round 1. 0: no ramp.",
    )
    compute_edge_blocks: int = Field(
        0, ge=0, le=1000,
        description="'drop' mode: the first and the last N attention blocks of each stack keep every head in "
        "local compute (after Offsite-tuning, Xiao et al. 2023); the other blocks lose heads as usual.",
    )
    drop_scaling: bool = Field(
        False,
        description="'drop' mode: scale a block's attention output (the o-projection input) by heads / kept "
        "heads during local training, so the full model is the expectation of the sub-networks (HeteroFL's "
        "scaler, Diao et al. 2021).",
    )
    compute_redraw_steps: int = Field(
        0, ge=0, le=100_000,
        description="'drop' mode with `compute_sparsity` below `sparsity`: every N local steps, draw again the "
        "computed heads that are not uploaded (in proportion to importance, seeded), so local training runs "
        "on changing sub-networks (structured head dropout, after LayerDrop, Fan et al. 2019; fedheads' own). "
        "0: one draw per round.",
    )
    train_top_blocks: int = Field(
        0, ge=0, le=1000,
        description="Train only the top N attention blocks of each stack: the kept heads are chosen among "
        "them (the sparsity still counts every head) and the LoRA of the blocks below stays at the received "
        "global values, so local training back-propagates only through the top N blocks while the forward "
        "stays whole (fedheads' own). 0: every block trains.",
    )
    train_top_blocks_after: int = Field(
        0, ge=0, le=10_000,
        description="With `train_top_blocks`: the first N rounds train every block (a dense warm-up for the "
        "lower blocks' LoRA), later rounds only the top blocks (fedheads' own). 0: from round 1.",
    )

    # --- aggregation & selection --------------------------------------------
    aggregation: Literal["fedavg", "masked_fedavg", "head_weighted"] = Field(
        "fedavg", description="Server aggregation rule."
    )
    head_weighting: Literal["n_k_importance", "importance", "n_k"] = Field(
        "n_k_importance", description="Weights w_kh of head_weighted aggregation."
    )
    server_momentum: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Server momentum beta (FedAvgM, Hsu et al. 2019): the server keeps v = beta v + (aggregate - "
        "previous global) across rounds and moves the global model by `server_lr` x v instead of to the aggregate. "
        "0 with `server_lr` 1: plain aggregation.",
    )
    server_lr: float = Field(
        1.0,
        gt=0,
        le=10,
        description="Server learning rate: how far the global model moves along the server's update each round "
        "(with `server_momentum` 0, 1 takes the aggregate as it is).",
    )
    selection: Literal["random", "power_of_choice", "loss_gap", "head_coverage"] = Field(
        "random", description="Client selection strategy."
    )
    poc_candidates: int | None = Field(
        None, ge=1, le=100_000, description="Power-of-choice candidate count d (default 2 x clients_per_round)."
    )
    selection_epsilon: float = Field(
        0.1, ge=0, le=1, description="Fraction of exploration picks in loss_gap selection."
    )

    # --- run ----------------------------------------------------------------
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seed for partition, selection and training.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where clients train: 'auto' picks CUDA when available."
    )
    num_threads: int = Field(
        2, ge=1, le=256, description="torch CPU threads per client process (fixed so runs are reproducible)."
    )

    @model_validator(mode="after")
    def _check_relations(self) -> ExperimentSpec:
        if self.clients_per_round > self.num_clients:
            raise ValueError(
                f"clients_per_round ({self.clients_per_round}) must be <= num_clients ({self.num_clients})"
            )
        if (self.local_steps is None) == (self.local_epochs is None):
            raise ValueError("set exactly one of local_steps and local_epochs")
        if self.poc_candidates is not None and not (
            self.clients_per_round <= self.poc_candidates <= self.num_clients
        ):
            raise ValueError(
                f"poc_candidates ({self.poc_candidates}) must be between clients_per_round "
                f"({self.clients_per_round}) and num_clients ({self.num_clients})"
            )
        if len(set(self.lora_targets)) != len(self.lora_targets):
            raise ValueError("lora_targets must not repeat a projection")
        if self.compute_sparsity is not None and self.compute_sparsity > self.sparsity:
            raise ValueError(
                f"compute_sparsity ({self.compute_sparsity}) must be <= sparsity ({self.sparsity}): heads "
                "removed from the forward cannot be trained and uploaded"
            )
        if self.compute_redraw_steps and self.prune_mode == "drop" and self.sparsity > 0 and (
                self.compute_sparsity is None or self.compute_sparsity >= self.sparsity):
            raise ValueError(
                "compute_redraw_steps re-draws the heads computed but not uploaded: set compute_sparsity below "
                f"sparsity ({self.sparsity}), or compute_redraw_steps to 0"
            )
        if self.train_top_blocks and (self.prune_ranking == "per_block" or self.min_heads_per_block):
            raise ValueError(
                "train_top_blocks ranks heads globally: it cannot be combined with prune_ranking 'per_block' "
                "or min_heads_per_block, which keep heads in blocks that do not train"
            )
        if self.train_top_blocks_after and not self.train_top_blocks:
            raise ValueError("train_top_blocks_after is a warm-up before train_top_blocks: set train_top_blocks too")
        if self.dataset == "local" and not self.data_path:
            raise ValueError("dataset 'local' needs data_path")
        return self

    @property
    def pruned(self) -> bool:
        return self.sparsity > 0

    def with_overrides(self, **overrides: Any) -> ExperimentSpec:
        """A new validated spec with some fields replaced."""
        data = self.model_dump()
        data.update(overrides)
        return validate_spec(data)


def format_validation_error(err: ValidationError) -> str:
    """One line per problem: 'field: message (got value)'."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "spec"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        lines.append(f"{loc}: {msg} (got {e.get('input')!r})")
    return "; ".join(lines)


def validate_spec(data: dict[str, Any]) -> ExperimentSpec:
    """Validate a dict into a spec, raising :class:`SpecError` with a readable message."""
    try:
        return ExperimentSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(format_validation_error(err)) from err


def read_mapping_file(path: str | Path, needs: str) -> dict[str, Any]:
    """The mapping a YAML or JSON file holds (YAML with ``safe_load`` only), not yet validated;
    anything else is a :class:`SpecError` ending in ``needs`` (what the file must hold)."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise SpecError(f"{p}: {needs}")
    return data


def read_spec_file(path: str | Path) -> dict[str, Any]:
    """The mapping a YAML or JSON spec file holds (YAML with ``safe_load`` only), not yet validated."""
    return read_mapping_file(path, "a spec file must hold a mapping of field: value")


def split_preset(data: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """A spec mapping that may start from a preset (``preset: NAME``, with its fields under ``overrides:``
    and/or beside it) as (preset or None, the fields given); fields beside ``preset`` win."""
    fields = dict(data)
    if "preset" not in fields:
        return None, fields
    name = fields.pop("preset")
    return name, {**(fields.pop("overrides", {}) or {}), **fields}


def parse_sets(items: Iterable[str] | None) -> dict[str, Any]:
    """``--set key=value`` items as overrides; each value is YAML (``safe_load``): ``rounds=3``,
    ``lora_targets=[q,v]``, ``data_path=null``."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise SpecError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def requested_fields(
    *, preset_name: str | None, spec_path: str | Path | None, overrides: dict[str, Any]
) -> tuple[str | None, dict[str, Any]]:
    """What a command line asks for, as (preset or None, fields over it): ``--preset NAME`` or a spec
    file (which may itself name a preset), then the ``--set`` overrides (:func:`parse_sets`) on top.
    Not yet validated: :func:`merged_fields` and :func:`validate_spec` do that, or the server."""
    if preset_name:
        return preset_name, dict(overrides)
    if spec_path is None:
        raise SpecError("give a spec file or --preset NAME")
    name, fields = split_preset(read_spec_file(spec_path))
    return name, {**fields, **overrides}


def load_spec(path: str | Path) -> ExperimentSpec:
    """Load a spec from a YAML or JSON file (YAML with ``safe_load`` only); it may start from a preset."""
    return validate_spec(merged_fields(*split_preset(read_spec_file(path))))


# --- presets (the data: fedcore/presets.py) ------------------------------------


def preset_names() -> list[str]:
    return list(PRESETS)


def preset_about(name: str) -> str:
    return str(PRESETS[name].get("_about", ""))


class UnknownPreset(SpecError):
    """A preset name that is not in :data:`PRESETS`; ``reason`` says so without the field name."""

    def __init__(self, name: str) -> None:
        self.reason = f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}"
        super().__init__(f"preset: {self.reason}")


def merged_fields(preset_name: str | None, fields: dict[str, Any]) -> dict[str, Any]:
    """The one place a preset and the fields given over it meet: the preset's fields (without its
    ``_about``) updated with ``fields``; ``fields`` alone without a preset. Not yet validated."""
    if preset_name is None:
        return dict(fields)
    if preset_name not in PRESETS:
        raise UnknownPreset(preset_name)
    return {**{k: v for k, v in PRESETS[preset_name].items() if not k.startswith("_")}, **fields}


def preset(name: str, **overrides: Any) -> ExperimentSpec:
    """A named preset, optionally with some fields overridden."""
    return validate_spec(merged_fields(name, overrides))
