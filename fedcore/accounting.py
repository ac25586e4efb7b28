"""Exact communication bytes and analytic training OPs (fedheads' own accounting).

Venkatesha, Kundu, Panda, *Assortment of Attention Heads* (arXiv 2506.00743, 2025)
report a communication advantage and "training OPs" without defining them; fedheads
defines both here and reports what it can measure, never an invented figure:

- **Bytes** are the length of the safetensors serialisation of the tensors a client
  or the server actually sends (dtype aware, header included). Never pickle.
- **OPs** are FLOPs of matrix multiplications only, 2 per multiply-add, the
  convention of ``torch.utils.flop_counter.FlopCounterMode`` (mm, addmm, bmm; biases,
  norms, softmax, activations and the loss are not counted). The tests check the
  dense count against ``FlopCounterMode`` exactly for tiny BERT, Llama (GQA) and T5,
  and head-pruned counts against narrower models built with fewer heads.

What one training step (forward + ``loss.backward()``) counts, per linear map
``y = x W^T`` over ``t`` tokens with ``W`` frozen (``d_out x d_in``) and an optional
LoRA ``B A`` (``A: r x d_in``, ``B: d_out x r``, both trainable):

- forward: ``2 t d_in d_out`` (+ LoRA ``2 t d_in r + 2 t r d_out``);
- backward, only where autograd really runs it: the input gradient of ``W``
  (``2 t d_in d_out``) only if ``x`` requires grad; for LoRA always the weight
  gradients of ``B`` and ``A`` and the input gradient of ``B`` (``A``'s output always
  requires grad), plus ``A``'s input gradient only if ``x`` requires grad. A frozen
  base weight never gets a weight gradient. Since the embeddings are frozen, the
  first layer's q/k/v inputs do not require grad, so their base projections cost
  no backward at all, and a layer's FFN needs input gradients only once something
  below it is trainable.
- a trainable classifier (``modules_to_save``) adds its weight gradient; the LM head
  (tied or not) is frozen and needs only its input gradient.
- attention ``S = Q K^T`` and ``C = P V`` (``2 b h t_q t_k d`` each): backward computes
  ``dQ``/``dK``/``dP``/``dV`` for each operand that requires grad. With grouped-query
  attention the eager path repeats k/v per query head, so both matmuls count query
  heads.

``attention_lora`` is the q/k/v/o projections (base + LoRA) and the two attention
matmuls, forward + backward, summed over every attention block (encoder, decoder and
cross). ``whole_step`` is everything ``FlopCounterMode`` sees: that plus the FFNs,
the BERT pooler, the classifier or LM head. The optimizer is not in either: see
:func:`optimizer_ops`.

``kept`` describes a *drop-mode* client (pruned heads physically removed): a block's
q rows and o columns count its kept heads, k/v rows its kept key/value groups (a
group is kept if any of its query heads is), attention matmuls its kept query heads.
A block with no kept head is counted as :mod:`fedcore.drop` runs it: its attention
yields an empty context, so no attention matmul runs; T5 and Llama still run the
(zero-width) q/k/v projections forward, which costs their LoRA ``A`` halves, but
nothing from them reaches the loss, so they get no backward; BERT skips q/k/v. The
o projection runs on a zero-width input: only its LoRA ``B`` does work (forward,
``dB`` and ``d(A x)``), and its output then requires grad. In mask mode the compute
is dense: pass ``kept=None``.

``trained`` describes ``train_top_blocks``: the blocks below the trained ones keep
their LoRA frozen for the round, so (with frozen embeddings) nothing below the lowest
trained block requires grad and autograd runs no backward there; a frozen block above
a trained one still passes input gradients through its base and LoRA weights.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import torch
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save
from torch import Tensor

from fedcore.models.base import PROJECTIONS, ArchInfo, AttentionBlock

ADAMW_OPS_PER_PARAM = 14


# ---------------------------------------------------------------------------- bytes


def serialize_payload(tensors: Mapping[str, Tensor]) -> bytes:
    """The safetensors bytes of ``tensors`` (each copied to a contiguous CPU tensor)."""
    flat = {
        name: t.detach().to("cpu").clone(memory_format=torch.contiguous_format) for name, t in tensors.items()
    }
    return _st_save(flat)


def payload_bytes(tensors: Mapping[str, Tensor]) -> int:
    """Exact size in bytes of the payload carrying ``tensors``."""
    return len(serialize_payload(tensors))


def deserialize_payload(data: bytes) -> dict[str, Tensor]:
    """Inverse of :func:`serialize_payload`."""
    return dict(_st_load(data))


# ---------------------------------------------------------------------------- OPs


@dataclass
class OpsCount:
    """FLOPs of training (see the module docstring for what each part holds)."""

    whole_step: float = 0.0
    attention_lora: float = 0.0

    def __add__(self, other: OpsCount) -> OpsCount:
        return OpsCount(self.whole_step + other.whole_step, self.attention_lora + other.attention_lora)

    def __mul__(self, factor: float) -> OpsCount:
        return OpsCount(self.whole_step * factor, self.attention_lora * factor)

    __rmul__ = __mul__


def optimizer_ops(trainable_params: int) -> float:
    """Element-wise OPs of one (unfused) AdamW step: 14 per trainable parameter.

    Per element: decoupled weight decay 1 (``p *= 1 - lr*wd``), first moment 3
    (``m = b1 m + (1 - b1) g``), second moment 4 (``v = b2 v + (1 - b2) g g``),
    denominator 3 (``sqrt(v) / sqrt(bc2) + eps``), update 3 (``p -= s m / denom``).
    Scalar bias corrections are ignored. Not part of :class:`OpsCount`.
    """
    if trainable_params < 0:
        raise ValueError(f"trainable_params must be >= 0, got {trainable_params}")
    return float(ADAMW_OPS_PER_PARAM * trainable_params)


def _linear(
    tokens: int, d_in: int, d_out: int, *, in_grad: bool, lora_r: int = 0, trainable: bool = False,
    lora_trained: bool = True,
) -> tuple[float, bool]:
    """FLOPs (forward + backward) of one linear map; also whether its output requires grad.

    ``lora_trained=False``: the LoRA halves are frozen for this step (a block below
    ``train_top_blocks``): they run forward and pass input gradients, nothing more.
    """
    t = float(tokens)
    flops = 2 * t * d_in * d_out
    if lora_r:
        flops += 2 * t * d_in * lora_r + 2 * t * lora_r * d_out
    lora_grad = lora_r > 0 and lora_trained
    out_grad = in_grad or lora_grad or trainable
    if not out_grad:
        return flops, False
    if in_grad:
        flops += 2 * t * d_in * d_out  # dX through the base weight
    if trainable:
        flops += 2 * t * d_in * d_out  # dW
    if lora_grad:
        flops += 2 * (2 * t * lora_r * d_out)  # dB and d(A x)
        flops += 2 * t * d_in * lora_r  # dA
        if in_grad:
            flops += 2 * t * d_in * lora_r  # dX through A
    elif lora_r and in_grad:  # frozen LoRA: only the input gradient, d(A x) then dX through A
        flops += 2 * t * lora_r * d_out + 2 * t * d_in * lora_r
    return flops, True


def _attention(
    batch: int, heads: int, t_q: int, t_k: int, d: int, q: bool, k: bool, v: bool
) -> tuple[float, bool]:
    """FLOPs of S = Q K^T and C = P V (forward + backward); also whether C requires grad."""
    one = 2.0 * batch * heads * t_q * t_k * d
    flops = 2 * one
    p = q or k
    flops += one * (int(q) + int(k))  # dQ, dK
    flops += one * (int(p) + int(v))  # dP, dV
    return flops, p or v


def _block(
    block: AttentionBlock,
    arch: ArchInfo,
    kept_row: Tensor | None,
    *,
    batch: int,
    t_q: int,
    t_k: int,
    q_grad: bool,
    kv_grad: bool,
    lora_r: int,
    targets: Collection[str],
    trained: bool = True,
) -> tuple[float, bool]:
    """FLOPs of one attention block (projections + attention); whether its output requires grad.

    ``trained=False``: the block's LoRA is frozen for the step (below ``train_top_blocks``).
    """
    if kept_row is None:
        heads, groups = block.num_heads, block.num_kv_heads
    else:
        row = kept_row[: block.num_heads].to(torch.bool)
        heads = int(row.sum())
        groups = int(row.view(block.num_kv_heads, block.queries_per_kv).any(dim=1).sum())

    def r(name: str) -> int:
        return lora_r if name in targets else 0

    if heads == 0:  # as fedcore.drop runs it: empty context, q/k/v (not BERT) forward only
        flops = 0.0
        if arch.family != "bert":
            for name, t in (("q", t_q), ("k", t_k), ("v", t_k)):
                flops += 2.0 * batch * t * arch.hidden * r(name)  # LoRA A; base and B are zero-width
        fo, go = _linear(batch * t_q, 0, arch.hidden, in_grad=False, lora_r=r("o"), lora_trained=trained)
        return flops + fo, go
    d = block.head_dim

    fq, gq = _linear(batch * t_q, arch.hidden, heads * d, in_grad=q_grad, lora_r=r("q"), lora_trained=trained)
    fk, gk = _linear(batch * t_k, arch.hidden, groups * d, in_grad=kv_grad, lora_r=r("k"), lora_trained=trained)
    fv, gv = _linear(batch * t_k, arch.hidden, groups * d, in_grad=kv_grad, lora_r=r("v"), lora_trained=trained)
    fa, gc = _attention(batch, heads, t_q, t_k, d, gq, gk, gv)
    fo, go = _linear(batch * t_q, heads * d, arch.hidden, in_grad=gc, lora_r=r("o"), lora_trained=trained)
    return fq + fk + fv + fa + fo, go


def _ffn(arch: ArchInfo, tokens: int, in_grad: bool) -> float:
    """Frozen FFN: ``ffn_matrices`` maps h->f (1 or 2) and f->h (1); only input gradients."""
    flops = 0.0
    for _ in range(arch.ffn_matrices - 1):
        flops += _linear(tokens, arch.hidden, arch.ffn, in_grad=in_grad)[0]
    flops += _linear(tokens, arch.ffn, arch.hidden, in_grad=in_grad)[0]
    return flops


def _by_layer(blocks: Collection[AttentionBlock], group: str) -> list[AttentionBlock]:
    return sorted((b for b in blocks if b.group == group), key=lambda b: b.layer)


def step_ops(
    arch: ArchInfo,
    *,
    batch: int,
    enc_len: int,
    dec_len: int = 0,
    kept: Tensor | None = None,
    trained: Tensor | None = None,
    lora_r: int,
    lora_targets: Collection[str],
    train_classifier: bool = True,
) -> OpsCount:
    """Analytic FLOPs of one training step (forward + backward) of a LoRA model.

    ``enc_len`` is the padded sequence length the model sees (BERT, Llama: the whole
    sequence; T5: the encoder input); ``dec_len`` the T5 decoder length (0 for the
    others). ``kept`` is bool [blocks, heads] for a drop-mode client, None for dense.
    ``lora_targets`` names the LoRA-wrapped projections among ``q, k, v, o``.
    ``train_classifier``: whether a classification head is trained (BERT classifier,
    Llama ``score``); an LM head is always frozen. ``trained`` is bool [blocks]: the
    blocks whose LoRA trains in this step (None: all); autograd runs no backward below
    the lowest trained block (``train_top_blocks``). See the module docstring.
    """
    targets = set(lora_targets)
    unknown = targets - set(PROJECTIONS)
    if unknown:
        raise ValueError(f"lora_targets must be among {PROJECTIONS}, got {sorted(unknown)}")
    if batch < 1 or enc_len < 1:
        raise ValueError(f"batch and enc_len must be >= 1, got batch={batch}, enc_len={enc_len}")
    if arch.family == "t5" and dec_len < 1:
        raise ValueError("t5 needs dec_len >= 1 (the decoder length)")
    if arch.family != "t5" and dec_len != 0:
        raise ValueError(f"dec_len is for t5 only; {arch.family} counts the whole sequence in enc_len")
    if kept is not None:
        width = max(b.num_heads for b in arch.blocks)
        if tuple(kept.shape) != (len(arch.blocks), width):
            raise ValueError(
                f"kept must be [blocks={len(arch.blocks)}, heads={width}], got {tuple(kept.shape)}"
            )

    if trained is not None and tuple(trained.shape) != (len(arch.blocks),):
        raise ValueError(f"trained must be [blocks={len(arch.blocks)}], got {tuple(trained.shape)}")

    def block(b: AttentionBlock, t_q: int, t_k: int, q_grad: bool, kv_grad: bool) -> tuple[float, bool]:
        kept_row = None if kept is None else kept[b.index]
        return _block(
            b,
            arch,
            kept_row,
            batch=batch,
            t_q=t_q,
            t_k=t_k,
            q_grad=q_grad,
            kv_grad=kv_grad,
            lora_r=lora_r,
            targets=targets,
            trained=True if trained is None else bool(trained[b.index]),
        )

    attn = 0.0
    rest = 0.0

    # Encoder stack (BERT, T5 encoder) or the decoder-only stack (Llama).
    if arch.family == "llama":
        stack = sorted((b for b in arch.blocks if b.group != "cross"), key=lambda b: b.layer)
    else:
        stack = _by_layer(arch.blocks, "encoder")
    n_tok = batch * enc_len
    grad = False  # frozen embeddings
    for b in stack:
        f, g = block(b, enc_len, enc_len, grad, grad)
        attn += f
        grad = grad or g
        rest += _ffn(arch, n_tok, grad)

    if arch.family == "bert":
        if arch.num_labels < 1:
            raise ValueError("bert needs num_labels >= 1 (sequence classification)")
        g = grad
        if arch.pooler_dense:
            f, g = _linear(batch, arch.hidden, arch.hidden, in_grad=grad)  # pooler on the first token
            rest += f
        rest += _linear(batch, arch.hidden, arch.num_labels, in_grad=g, trainable=train_classifier)[0]
    elif arch.family == "llama":
        out = arch.num_labels if arch.num_labels > 0 else arch.vocab
        score_trained = train_classifier and arch.num_labels > 0
        rest += _linear(n_tok, arch.hidden, out, in_grad=grad, trainable=score_trained)[0]  # score / lm_head
    elif arch.family == "t5":
        if arch.num_labels > 0:
            raise ValueError("t5 is counted with its LM head only (num_labels must be 0)")
        enc_grad = grad
        dec_tok = batch * dec_len
        cross = {b.layer: b for b in arch.blocks if b.group == "cross"}
        grad = False  # frozen decoder embeddings
        for b in _by_layer(arch.blocks, "decoder"):
            f, g = block(b, dec_len, dec_len, grad, grad)
            attn += f
            grad = grad or g
            if b.layer in cross:
                c = cross[b.layer]
                f, g = block(c, dec_len, enc_len, grad, enc_grad)
                attn += f
                grad = grad or g
            rest += _ffn(arch, dec_tok, grad)
        rest += _linear(dec_tok, arch.hidden, arch.vocab, in_grad=grad)[0]  # lm_head
    else:
        raise ValueError(f"unknown family {arch.family!r}")
    return OpsCount(whole_step=attn + rest, attention_lora=attn)
