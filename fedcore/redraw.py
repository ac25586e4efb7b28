"""Structured head dropout in ``drop`` mode: re-drawing the heads a client computes.

With ``compute_redraw_steps`` = N (fedheads' own, after LayerDrop, Fan et al. 2019,
arXiv 1909.11556, which drops whole layers at random during training so that the
network learns to work across its sub-networks), a drop-mode client with two
sparsities (``compute_sparsity`` below ``sparsity``) draws a new set of computed heads
every N local steps. The uploaded heads (``kept``) stay fixed for the round, so the
upload is defined as before; the other computed heads are drawn without replacement
with probability proportional to importance (the Gumbel keys of
:func:`fedcore.pruning.sampled_keys`), seeded by (seed, round, client, draw), at the same
compute sparsity. The heads in between are frozen at the received global values as in
plain two-sparsity training, so a re-draw changes which frozen heads run in the forward,
never what is trained or uploaded.

A re-draw builds a fresh dropped copy from the full model holding what the client has
learned so far, and carries AdamW's state over: tensors shared by all heads as they are,
head-specific ones slice by slice (a slice new to the copy starts with zero moments).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from fedcore.lora_state import HeadParam, LoraLayout
from fedcore.models.base import AttentionBlock
from fedcore.pruning import choose_kept, sampled_keys

REDRAW_SEED_OFFSET = 1_000  # draws use seed + offset + k; the first draws of a round use seed + 0..2


def redraw_compute(importance: Tensor, kept: Tensor, compute_sparsity: float, seed: int, *,
                   ranking: str = "global", min_per_block: int = 0,
                   edge: Tensor | None = None, eligible: Tensor | None = None) -> Tensor:
    """Bool [blocks, heads]: ``kept`` plus heads drawn in proportion to importance, (1 - s) of all heads
    (or of each block's, with ``ranking="per_block"``; ``min_per_block`` as in ``choose_kept``).

    ``edge`` blocks keep every head; heads outside ``eligible`` blocks (the blocks that do not
    train, ``train_top_blocks``) always run, as they do without a re-draw.
    """
    keys = sampled_keys(importance, seed).masked_fill(kept.bool(), math.inf)
    compute = choose_kept(keys, compute_sparsity, ranking=ranking, min_per_block=min_per_block) | kept.bool()
    if edge is not None:
        compute |= edge[:, None]
    if eligible is not None:
        compute |= ~eligible[:, None]
    return compute


def _head_rows(layout: LoraLayout) -> dict[str, HeadParam]:
    return {hp.key.replace(".weight", ".default.weight"): hp for hp in layout.head_params}


def carry_optimizer_state(old_opt: torch.optim.Optimizer, old_model: nn.Module, new_opt: torch.optim.Optimizer,
                          new_model: nn.Module, layout: LoraLayout, old_present: Tensor, new_present: Tensor) -> None:
    """Copy AdamW's per-parameter state from a dropped copy to the next one (matched by parameter name).

    Head-specific LoRA tensors hold only their present heads' slices: each slice's moments move to
    its new position; slices absent before start at zero.
    """
    heads = _head_rows(layout)
    old_params = dict(old_model.named_parameters())
    for name, new_p in new_model.named_parameters():
        old_p = old_params.get(name)
        if old_p is None or old_p not in old_opt.state or not new_p.requires_grad:
            continue
        state = old_opt.state[old_p]
        hp = heads.get(name)
        moved = {}
        for key, value in state.items():
            if not isinstance(value, Tensor) or value.dim() == 0 or hp is None:
                moved[key] = value.clone() if isinstance(value, Tensor) else value
                continue
            shape = list(value.shape)
            shape[hp.axis] = hp.units * hp.unit_size
            full = value.new_zeros(shape)
            full.index_copy_(hp.axis, layout.unit_index(hp, old_present).to(value.device), value)
            moved[key] = full.index_select(hp.axis, layout.unit_index(hp, new_present).to(value.device))
        new_opt.state[new_p] = moved


def dropped_copy(full_model: nn.Module, blocks: Sequence[AttentionBlock], compute: Tensor, *, prefix: str,
                 scaling: bool) -> nn.Module:
    """A copy of ``full_model`` with the heads outside ``compute`` removed (and kept heads scaled if asked).

    Frozen parameters (the base weights) are shared with ``full_model``, not copied: nothing
    writes to them in place (the optimizer sees only trainable tensors, and slicing a projection
    replaces its weights with new tensors), so only the trainable LoRA and classifier are copied.
    """
    from fedcore.drop import drop_heads, scale_kept_heads

    shared = {id(p): p for p in full_model.parameters() if not p.requires_grad}
    model = copy.deepcopy(full_model, memo=shared)
    drop_heads(model, blocks, compute, prefix=prefix)
    if scaling:
        scale_kept_heads(model, blocks, compute, prefix=prefix)
    return model
