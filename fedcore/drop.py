"""Physically remove attention heads: the ``drop`` prune mode (fedheads' own code).

transformers 5 has no ``prune_heads`` for the families fedheads supports, so this
module slices the projections itself (docs/method.md, "Pruning"):

- q: output rows of the kept heads; k, v: output rows of the kept key/value groups
  (a group is kept when any of its query heads is kept); o: input columns of the
  kept heads. Base weights and biases alike, and for a PEFT LoRA layer also the
  head-specific half: rows of ``lora_B`` for q/k/v, columns of ``lora_A`` for o
  (the other half is shared by all heads and stays whole).
- The attention module's head-count attributes are updated. Where the stock forward
  cannot run on the sliced module, it is replaced on that instance only:

  * a block that keeps no head (BERT): the stock reshapes with ``-1`` fail on empty
    tensors, so the block returns an empty (B, T, 0) context; the o projection then
    adds only its bias and the residual path carries on.
  * T5: the relative position bias is computed once, by the first layer of each stack,
    for all heads of the *unpruned* model and handed on to later layers. A dropped
    T5 attention keeps receiving and handing on that full (1, H, Tq, Tk) bias and
    adds only its kept heads' slice of it; the first layer keeps its full
    ``relative_attention_bias`` embedding so later layers still get every head's bias.
  * Llama GQA: query heads may be pruned unevenly across key/value groups, which the
    stock ``repeat_kv`` cannot express. A dropped Llama attention gathers its kept
    k/v groups with a ``kv_index`` map (one entry per kept query head) and runs the
    model's configured attention function with ``num_key_value_groups = 1``.

Blocks that keep every head are left untouched. :func:`head_mask_reference` is the
dense reference the tests compare against: it zeroes the pruned heads' inputs to the
o projection of the full model.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from fedcore.models.base import AttentionBlock

Side = Literal["out", "in"]
_KEPT = "fedheads_kept"  # buffer name: kept head indices, (n,)
_KV_INDEX = "fedheads_kv_index"  # buffer name: kept kv group of each kept query head, (n,)


# --- slicing linears ---------------------------------------------------------------


def _feature_index(units: Tensor, size: int) -> Tensor:
    """Feature indices of head (or kv group) ``units``, each ``size`` wide: (n,) -> (n*size,)."""
    offsets = torch.arange(size, device=units.device)  # (d,)
    return (units[:, None] * size + offsets[None, :]).reshape(-1)  # (n*d,)


def _new_param(old: Tensor, value: Tensor) -> nn.Parameter:
    return nn.Parameter(value.contiguous(), requires_grad=old.requires_grad)


def _slice_linear(linear: nn.Linear, index: Tensor, side: Side) -> None:
    """Keep output rows (``side="out"``, bias too) or input columns (``side="in"``) of a linear layer."""
    if not isinstance(linear, nn.Linear):
        raise TypeError(f"expected an nn.Linear to slice, got {type(linear).__name__}")
    weight = linear.weight
    index = index.to(weight.device)
    if side == "out":
        linear.weight = _new_param(weight, weight.detach().index_select(0, index))  # (n*d, in)
        if linear.bias is not None:
            linear.bias = _new_param(linear.bias, linear.bias.detach().index_select(0, index))  # (n*d,)
        linear.out_features = int(index.numel())
    else:
        linear.weight = _new_param(weight, weight.detach().index_select(1, index))  # (out, n*d)
        linear.in_features = int(index.numel())


def _lora_layer_type() -> Any:
    try:
        from peft.tuners.lora import Linear as LoraLinear
    except ImportError:  # peft is a dependency, but slicing plain models does not need it
        return None
    return LoraLinear


def _slice_projection(module: Any, index: Tensor, side: Side) -> None:
    """Slice a projection, plain or PEFT LoRA: base layer plus the head-specific LoRA half."""
    lora_type = _lora_layer_type()
    if lora_type is not None and isinstance(module, lora_type):
        if module.merged:
            raise ValueError("cannot drop heads from a LoRA layer whose adapter is merged; unmerge it first")
        if module.lora_variant:
            raise NotImplementedError(
                f"drop mode supports plain LoRA only, not {sorted(module.lora_variant)} variants (e.g. DoRA)"
            )
        _slice_linear(module.base_layer, index, side)
        for name in module.lora_A:
            if side == "out":
                _slice_linear(module.lora_B[name], index, "out")  # B: (n*d, r); A shared
            else:
                _slice_linear(module.lora_A[name], index, "in")  # A: (r, n*d); B shared
        if side == "out":
            module.out_features = int(index.numel())
        else:
            module.in_features = int(index.numel())
        return
    _slice_linear(module, index, side)


# --- kept heads ---------------------------------------------------------------------


def _kept_units(block: AttentionBlock, row: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Kept query heads (n,), kept kv groups (g,), and each kept head's position among the kept groups (n,)."""
    row = row.detach().to("cpu", torch.bool)
    heads = torch.nonzero(row).flatten()  # (n,)
    group_kept = row.view(block.num_kv_heads, block.queries_per_kv).any(dim=1)  # (H_kv,)
    groups = torch.nonzero(group_kept).flatten()  # (g,)
    position = torch.cumsum(group_kept.long(), 0) - 1  # (H_kv,) index of each group among the kept ones
    kv_index = position[heads // block.queries_per_kv]  # (n,)
    return heads, groups, kv_index


def _check_kept(blocks: Sequence[AttentionBlock], kept: Tensor) -> None:
    width = max((b.num_heads for b in blocks), default=0)
    if kept.dtype != torch.bool or tuple(kept.shape) != (len(blocks), width):
        raise ValueError(
            f"kept must be a bool tensor of shape [{len(blocks)}, {width}] (blocks x heads); "
            f"got {kept.dtype} {tuple(kept.shape)}"
        )


def _attention_kind(module: nn.Module) -> str:
    if hasattr(module, "key_value_proj_dim") and hasattr(module, "n_heads"):
        return "t5"
    if hasattr(module, "num_key_value_groups") and hasattr(module, "head_dim"):
        return "llama"
    if hasattr(module, "all_head_size") and hasattr(module, "num_attention_heads"):
        return "bert"
    raise TypeError(f"drop mode does not know the attention module {type(module).__name__}")


# --- public API ---------------------------------------------------------------------


def drop_heads(model: nn.Module, blocks: Sequence[AttentionBlock], kept: Tensor, *, prefix: str = "") -> None:
    """Remove the pruned heads of ``model`` in place.

    ``kept`` is a bool tensor [len(blocks), num_heads]; row ``i`` belongs to ``blocks[i]``.
    ``prefix`` is prepended to the blocks' module paths when the transformers model is
    wrapped (``"base_model.model."`` for a PEFT ``PeftModel``). Build the optimizer
    after dropping: sliced weights are new parameters (with the old ``requires_grad``).
    A model can be dropped once; blocks that keep every head are left untouched.
    """
    _check_kept(blocks, kept)
    todo = []  # validate every block before changing any
    for block, row in zip(blocks, kept, strict=True):
        if bool(row[: block.num_heads].all()):
            continue
        attn: Any = model.get_submodule(prefix + block.module)  # a transformers attention module
        if hasattr(attn, _KEPT):
            raise ValueError(f"heads of block {block.name} were already dropped; drop from a fresh copy")
        todo.append((block, row[: block.num_heads], attn, _attention_kind(attn)))

    for block, row, attn, kind in todo:
        heads, groups, kv_index = _kept_units(block, row)
        d = block.head_dim
        for name in ("q", "k", "v"):
            units = heads if name == "q" else groups
            _slice_projection(model.get_submodule(prefix + block.projection(name)), _feature_index(units, d), "out")
        _slice_projection(model.get_submodule(prefix + block.o), _feature_index(heads, d), "in")

        device = next(attn.parameters()).device
        attn.register_buffer(_KEPT, heads.to(device), persistent=False)
        if kind == "bert":
            attn.num_attention_heads = int(heads.numel())
            attn.all_head_size = int(heads.numel()) * d
            if heads.numel() == 0:
                _patch_forward(attn, _bert_empty_forward)
        elif kind == "t5":
            attn.fedheads_full_heads = block.num_heads
            attn.n_heads = int(heads.numel())
            attn.inner_dim = int(heads.numel()) * d
            _patch_forward(attn, _t5_forward)
        else:
            attn.register_buffer(_KV_INDEX, kv_index.to(device), persistent=False)
            attn.num_key_value_groups = 1  # k/v are gathered per kept query head before attention
            attn.fedheads_num_heads = int(heads.numel())
            attn.fedheads_num_kv_heads = int(groups.numel())
            attn.fedheads_rotary = _module_function(attn, "apply_rotary_pos_emb")
            attn.fedheads_eager = _module_function(attn, "eager_attention_forward")
            _patch_forward(attn, _llama_forward)


def head_mask_reference(
    model: nn.Module, blocks: Sequence[AttentionBlock], kept: Tensor, *, prefix: str = ""
) -> list[RemovableHandle]:
    """Dense reference of :func:`drop_heads`: zero the pruned heads' inputs to each o projection.

    Registers a forward pre-hook on every block's o projection (through any LoRA
    wrapper, so base and LoRA see the same masked input); remove the returned handles
    to restore the model.
    """
    _check_kept(blocks, kept)
    handles = []
    for block, row in zip(blocks, kept, strict=True):
        o_proj = model.get_submodule(prefix + block.o)
        handles.append(o_proj.register_forward_pre_hook(_head_mask_hook(row[: block.num_heads], block.head_dim)))
    return handles


def scale_kept_heads(
    model: nn.Module, blocks: Sequence[AttentionBlock], kept: Tensor, *, prefix: str = ""
) -> list[RemovableHandle]:
    """Inverted scaling for a dropped model: a block's o-projection input times heads / kept heads.

    HeteroFL's scaler (Diao et al. 2021, arXiv 2010.01264) applied to heads: with a fraction
    of a block's heads removed, scaling the remaining heads' summed contribution makes the
    full block the expectation of its sub-blocks. Blocks that keep every head, or none, are
    left as they are. Returns the hooks' handles.
    """
    _check_kept(blocks, kept)
    handles = []
    for block, row in zip(blocks, kept, strict=True):
        n = int(row[: block.num_heads].sum())
        if n in (0, block.num_heads):
            continue
        factor = block.num_heads / n

        def hook(_module: nn.Module, args: tuple[Any, ...], factor: float = factor) -> tuple[Any, ...]:
            return (args[0] * factor, *args[1:])  # (B, T, n*d)

        handles.append(model.get_submodule(prefix + block.o).register_forward_pre_hook(hook))
    return handles


def _head_mask_hook(row: Tensor, head_dim: int) -> Callable[[nn.Module, tuple[Any, ...]], tuple[Any, ...]]:
    mask = row.detach().to(torch.bool)

    def hook(_module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        x = args[0]  # (B, T, H*d)
        heads = x.reshape(*x.shape[:-1], mask.numel(), head_dim)  # (B, T, H, d)
        keep = mask.to(device=x.device, dtype=x.dtype)[:, None]  # (H, 1)
        return ((heads * keep).reshape(x.shape), *args[1:])  # (B, T, H*d)

    return hook


# --- replacement forwards -------------------------------------------------------------


def _patch_forward(module: nn.Module, forward: Callable[..., Any]) -> None:
    """Replace ``module.forward`` on this instance only (survives ``copy.deepcopy``)."""
    module.forward = types.MethodType(forward, module)  # type: ignore[method-assign]


def _module_function(module: nn.Module, name: str) -> Callable[..., Any]:
    """A function of the transformers file that defines ``module``'s class (rotary, eager attention)."""
    fn = getattr(sys.modules[type(module).__module__], name, None)
    if fn is None:
        raise TypeError(f"{type(module).__module__} has no {name}; drop mode cannot rebuild its attention")
    return fn


def _attention_function(module: Any, eager: Callable[..., Any]) -> Callable[..., Any]:
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    return ALL_ATTENTION_FUNCTIONS.get_interface(module.config._attn_implementation, eager)


def _bert_empty_forward(self: nn.Module, hidden_states: Tensor, *args: Any, **kwargs: Any) -> tuple[Tensor, Tensor]:
    """BERT self-attention with no head left: an empty context; the o projection adds its bias only."""
    bsz, seq = hidden_states.shape[:2]
    context = hidden_states.new_zeros(bsz, seq, 0)  # (B, T, 0)
    weights = hidden_states.new_zeros(bsz, 0, seq, seq)  # (B, 0, T, T)
    return context, weights


def _t5_forward(
    self: Any,
    hidden_states: Tensor,
    mask: Tensor | None = None,
    key_value_states: Tensor | None = None,
    position_bias: Tensor | None = None,
    cache: Any = None,
    **kwargs: Any,
) -> tuple[Tensor, Tensor, Tensor]:
    """``T5Attention.forward`` for a dropped block: full position bias in and out, kept heads' slice used."""
    from transformers.cache_utils import EncoderDecoderCache
    from transformers.models.t5.modeling_t5 import eager_attention_forward

    bsz, q_len = hidden_states.shape[:2]
    n, d = self.n_heads, self.key_value_proj_dim
    past_seen = cache.get_seq_length(self.layer_idx) if cache is not None else 0
    past_seen = past_seen.clone() if isinstance(past_seen, Tensor) else past_seen
    is_cross = key_value_states is not None

    query = self.q(hidden_states).view(bsz, q_len, n, d).transpose(1, 2)  # (B, n, Tq, d)

    is_updated: bool | None = False
    layer_cache = cache
    if isinstance(cache, EncoderDecoderCache):
        is_updated = cache.is_updated.get(self.layer_idx)
        layer_cache = cache.cross_attention_cache if is_cross else cache.self_attention_cache
    key: Tensor
    value: Tensor
    if is_cross and cache is not None and is_updated:
        key = layer_cache.layers[self.layer_idx].keys  # (B, n, Tk, d)
        value = layer_cache.layers[self.layer_idx].values  # (B, n, Tk, d)
    else:
        source: Tensor = key_value_states if key_value_states is not None else hidden_states
        k_len = source.shape[1]
        key = self.k(source).view(bsz, k_len, n, d).transpose(1, 2)  # (B, n, Tk, d)
        value = self.v(source).view(bsz, k_len, n, d).transpose(1, 2)  # (B, n, Tk, d)
        if cache is not None:
            key, value = layer_cache.update(key, value, self.layer_idx, kwargs=kwargs)
            if is_cross and isinstance(cache, EncoderDecoderCache):
                cache.is_updated[self.layer_idx] = True

    if position_bias is None:  # first layer of the stack: the bias of every head, for the later layers too
        key_length = key.shape[-2]
        if self.has_relative_attention_bias:
            position_bias = self.compute_bias(q_len, key_length, device=query.device, past_seen_tokens=past_seen)
        else:
            position_bias = query.new_zeros(1, self.fedheads_full_heads, q_len, key_length)  # (1, H, Tq, Tk)
            if self.gradient_checkpointing and self.training:
                position_bias.requires_grad = True
    kept_bias = position_bias.index_select(1, getattr(self, _KEPT))  # (1 or B, n, Tq, Tk)

    if n == 0:
        context = hidden_states.new_zeros(bsz, q_len, 0)  # (B, Tq, 0)
        weights = query.new_zeros(bsz, 0, q_len, key.shape[-2])  # (B, 0, Tq, Tk)
    else:
        attention = _attention_function(self, eager_attention_forward)
        out, weights = attention(
            self, query, key, value, mask,
            dropout=0.0 if not self.training else self.dropout,
            scaling=self.scaling, position_bias=kept_bias, **kwargs,
        )  # out (B, Tq, n, d)
        context = out.reshape(bsz, q_len, n * d)  # (B, Tq, n*d)
    return self.o(context), position_bias, weights


def _llama_forward(
    self: Any,
    hidden_states: Tensor,
    position_embeddings: tuple[Tensor, Tensor] | None = None,
    attention_mask: Tensor | None = None,
    cache: Any = None,
    **kwargs: Any,
) -> tuple[Tensor, Tensor]:
    """``LlamaAttention.forward`` for a dropped block: k/v gathered per kept query head by ``kv_index``."""
    if position_embeddings is None:
        raise ValueError("Llama attention needs position_embeddings (cos, sin) from the model's rotary embedding")
    bsz, q_len = hidden_states.shape[:2]
    n, g, d = self.fedheads_num_heads, self.fedheads_num_kv_heads, self.head_dim

    query = self.q_proj(hidden_states).view(bsz, q_len, n, d).transpose(1, 2)  # (B, n, T, d)
    key = self.k_proj(hidden_states).view(bsz, q_len, g, d).transpose(1, 2)  # (B, g, T, d)
    value = self.v_proj(hidden_states).view(bsz, q_len, g, d).transpose(1, 2)  # (B, g, T, d)
    cos, sin = position_embeddings
    query, key = self.fedheads_rotary(query, key, cos, sin)
    if cache is not None:
        key, value = cache.update(key, value, self.layer_idx, kwargs=kwargs)  # (B, g, S, d)

    if n == 0:
        context = hidden_states.new_zeros(bsz, q_len, 0)  # (B, T, 0)
        weights = query.new_zeros(bsz, 0, q_len, key.shape[-2])  # (B, 0, T, S)
    else:
        kv_index = getattr(self, _KV_INDEX)
        key = key.index_select(1, kv_index)  # (B, n, S, d)
        value = value.index_select(1, kv_index)  # (B, n, S, d)
        window = getattr(self, "sliding_window", getattr(self.config, "sliding_window", None))
        if window is not None:
            kwargs["sliding_window"] = window
        attention = _attention_function(self, self.fedheads_eager)
        out, weights = attention(
            self, query, key, value, attention_mask,
            dropout=0.0 if not self.training else self.attention_dropout,
            scaling=self.scaling, **kwargs,
        )  # out (B, T, n, d)
        context = out.reshape(bsz, q_len, n * d)  # (B, T, n*d)
    return self.o_proj(context), weights
