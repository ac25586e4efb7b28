"""LoRA state exchange with per-head slices.

PEFT's LoRA on a linear layer W (out x in) is B (out x r) @ A (r x in). For the
q, k and v projections head ``h`` owns rows ``[h*d, (h+1)*d)`` of B (A is shared
by all heads); for o, head ``h`` owns columns ``[h*d, (h+1)*d)`` of A (B is
shared). With grouped-query attention the k/v slices belong to a key/value
group, kept when any of its query heads is kept. (docs/method.md, "Head to LoRA mapping".)

:class:`LoraLayout` maps a PEFT state dict onto that structure once; uploads,
downloads, slicing for drop mode and aggregation all go through it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from fedcore.models.base import AttentionBlock, Projection

PEFT_PREFIX = "base_model.model."
KEPT_KEY = "__kept__"
IMPORTANCE_KEY = "__importance__"

State = dict[str, Tensor]


@dataclass(frozen=True)
class HeadParam:
    """A LoRA tensor whose rows (axis 0) or columns (axis 1) are cut into head slices."""

    key: str
    block: int
    proj: Projection
    axis: int  # 0: rows of lora_B (q/k/v); 1: columns of lora_A (o)
    unit_size: int  # head_dim
    units: int  # heads (q, o) or kv groups (k, v)


class LoraLayout:
    """Which keys of the LoRA state are head-specific, and how they are sliced."""

    def __init__(self, state: Mapping[str, Tensor], blocks: Sequence[AttentionBlock]) -> None:
        self.blocks = list(blocks)
        self.num_heads = blocks[0].num_heads if blocks else 0
        self.head_params: list[HeadParam] = []
        head_keys: set[str] = set()
        for b in self.blocks:
            for proj in ("q", "k", "v", "o"):
                half = "lora_A" if proj == "o" else "lora_B"
                key = f"{PEFT_PREFIX}{b.projection(proj)}.{half}.weight"  # type: ignore[arg-type]
                if key not in state:
                    continue
                hp = HeadParam(key=key, block=b.index, proj=proj, axis=1 if proj == "o" else 0,  # type: ignore[arg-type]
                               unit_size=b.head_dim, units=b.units(proj))  # type: ignore[arg-type]
                if state[key].shape[hp.axis] != hp.units * hp.unit_size:
                    raise ValueError(f"{key}: shape {tuple(state[key].shape)} does not match {hp.units} x {hp.unit_size}")
                self.head_params.append(hp)
                head_keys.add(key)
        self.shared_keys = [k for k in state if k not in head_keys]
        self.keys = list(state)

    # --- masks ---------------------------------------------------------------

    def unit_mask(self, hp: HeadParam, kept: Tensor) -> Tensor:
        """Bool [units] of a head param from the [blocks, heads] kept-head mask."""
        row = kept[hp.block].bool()
        if hp.proj in ("k", "v"):
            b = self.blocks[hp.block]
            return row.view(b.num_kv_heads, b.queries_per_kv).any(dim=1)
        return row

    def unit_index(self, hp: HeadParam, kept: Tensor) -> Tensor:
        """Element indices along ``hp.axis`` covered by the kept units."""
        units = self.unit_mask(hp, kept).nonzero().flatten()
        return (units[:, None] * hp.unit_size + torch.arange(hp.unit_size)).flatten()

    # --- slicing -------------------------------------------------------------

    def slice_state(self, state: Mapping[str, Tensor], kept: Tensor) -> State:
        """Keep only the kept heads' slices of head-specific tensors (for uploads and drop mode)."""
        out: State = {k: state[k] for k in self.shared_keys}
        for hp in self.head_params:
            out[hp.key] = state[hp.key].index_select(hp.axis, self.unit_index(hp, kept).to(state[hp.key].device))
        return {k: out[k] for k in self.keys}

    def expand_state(self, sliced: Mapping[str, Tensor], kept: Tensor, fill: Mapping[str, Tensor]) -> State:
        """Inverse of :meth:`slice_state`: full-size tensors, non-kept slices taken from ``fill``."""
        out: State = {k: sliced[k] for k in self.shared_keys}
        for hp in self.head_params:
            full = fill[hp.key].clone()
            idx = self.unit_index(hp, kept).to(full.device)
            full.index_copy_(hp.axis, idx, sliced[hp.key].to(full.dtype))
            out[hp.key] = full
        return {k: out[k] for k in self.keys}

    # --- uploads -------------------------------------------------------------
    # On the wire a tensor is named by its position in ``self.keys`` ("0", "1", ...):
    # both sides know the layout, so the ~70-character PEFT names need not travel.

    def compact(self, state: Mapping[str, Tensor]) -> State:
        """``state`` keyed by layout position, as sent (also the dense counterfactual's format)."""
        return {str(i): state[k].detach().cpu().contiguous() for i, k in enumerate(self.keys)}

    def upload(self, local_sliced: Mapping[str, Tensor], kept: Tensor, importance: Tensor) -> State:
        """The tensors a client sends: shared halves, kept slices, its kept mask and importance."""
        payload = self.compact(local_sliced)
        payload[KEPT_KEY] = kept.to(torch.uint8).cpu()
        payload[IMPORTANCE_KEY] = importance.float().cpu()
        return payload

    def read_upload(self, payload: Mapping[str, Tensor], fill: Mapping[str, Tensor]) -> tuple[State, Tensor, Tensor]:
        """(full-size state with non-kept slices from ``fill``, kept mask, importance)."""
        kept = payload[KEPT_KEY].bool()
        importance = payload[IMPORTANCE_KEY]
        sliced = {k: payload[str(i)] for i, k in enumerate(self.keys)}
        return self.expand_state(sliced, kept, fill), kept, importance


def state_to(state: Mapping[str, Tensor], device: torch.device | str) -> State:
    return {k: v.detach().to(device) for k, v in state.items()}


def clone_state(state: Mapping[str, Tensor]) -> State:
    return {k: v.detach().clone() for k, v in state.items()}


def init_heads_random(model: torch.nn.Module, layout: LoraLayout, seed: int) -> None:
    """Re-initialise q/k/v LoRA so the head-specific half is random and the shared half zero.

    PEFT starts B at zero and A random. For q/k/v, B is the head-specific half, so a head
    that is never kept keeps a zero update there for the whole run. Swapping the roles (B
    random with A's bound 1/sqrt(in_features), A zero) keeps B A = 0 at the start, and the
    shared A, which every client trains, then moves every head's q/k/v within the fixed
    random subspace of its B rows. The o projection already has its head-specific half (A)
    random and its shared half (B) zero, and is left as it is.
    """
    gen = torch.Generator().manual_seed(seed)
    for hp in layout.head_params:
        if hp.axis != 0:
            continue
        module: Any = model.get_submodule(hp.key.removesuffix(".lora_B.weight"))  # a PEFT LoRA layer
        for name in module.lora_B:
            a, b = module.lora_A[name].weight, module.lora_B[name].weight
            bound = a.shape[1] ** -0.5
            with torch.no_grad():
                b.copy_((torch.rand(b.shape, generator=gen, dtype=torch.float32) * 2 - 1) * bound)
                a.zero_()
