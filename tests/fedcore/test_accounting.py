"""Tests for fedcore.accounting: exact payload bytes and the analytic OPs vs FlopCounterMode."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from torch.utils.flop_counter import FlopCounterMode
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    T5Config,
    T5ForConditionalGeneration,
)

from fedcore.accounting import (
    OpsCount,
    deserialize_payload,
    optimizer_ops,
    payload_bytes,
    serialize_payload,
    step_ops,
)
from fedcore.models.base import ArchInfo, AttentionBlock, BlockGroup
from fedcore.models.families import FAMILIES, use_mean_pooling

BATCH, ENC_LEN, DEC_LEN, RANK = 2, 7, 5, 4
TARGETS = ("q", "k", "v", "o")


# ------------------------------------------------------------------ helpers


def _blocks(
    specs: list[tuple[BlockGroup, int]], prefix: Callable[[BlockGroup, int], str], heads: int, kv: int, d: int
) -> tuple[AttentionBlock, ...]:
    """AttentionBlocks in the given order; module paths are illustrative (accounting never reads them)."""
    out = []
    for i, (group, layer) in enumerate(specs):
        mod = prefix(group, layer)
        out.append(
            AttentionBlock(
                index=i,
                name=f"{group}.{layer}",
                group=group,
                layer=layer,
                module=mod,
                q=f"{mod}.q",
                k=f"{mod}.k",
                v=f"{mod}.v",
                o=f"{mod}.o",
                num_heads=heads,
                num_kv_heads=kv,
                head_dim=d,
            )
        )
    return tuple(out)


def _bert_arch(heads: int = 4) -> ArchInfo:
    blocks = _blocks(
        [("encoder", i) for i in range(2)],
        lambda g, i: f"bert.encoder.layer.{i}.attention",
        heads,
        heads,
        32 // heads,
    )
    return ArchInfo(
        "bert", hidden=32, ffn=64, ffn_matrices=2, vocab=100, num_labels=3, blocks=blocks, encoder_layers=2
    )


def _llama_arch(heads: int = 4, kv: int = 2, num_labels: int = 0) -> ArchInfo:
    blocks = _blocks(
        [("decoder", i) for i in range(2)], lambda g, i: f"model.layers.{i}.self_attn", heads, kv, 8
    )
    return ArchInfo(
        "llama",
        hidden=32,
        ffn=48,
        ffn_matrices=3,
        vocab=120,
        num_labels=num_labels,
        blocks=blocks,
        decoder_layers=2,
    )


def _t5_arch(heads: int = 4, ffn_matrices: int = 2) -> ArchInfo:
    specs: list[tuple[BlockGroup, int]] = [("encoder", 0), ("encoder", 1)]
    specs += [("decoder", 0), ("cross", 0), ("decoder", 1), ("cross", 1)]

    def prefix(group: BlockGroup, i: int) -> str:
        stack, sub = ("encoder", 0) if group == "encoder" else ("decoder", 1 if group == "cross" else 0)
        return f"{stack}.block.{i}.layer.{sub}"

    blocks = _blocks(specs, prefix, heads, heads, 8)
    return ArchInfo(
        "t5",
        hidden=32,
        ffn=64,
        ffn_matrices=ffn_matrices,
        vocab=110,
        num_labels=0,
        blocks=blocks,
        encoder_layers=2,
        decoder_layers=2,
    )


def _bert(heads: int = 4) -> tuple[torch.nn.Module, ArchInfo]:
    cfg = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=heads,
        intermediate_size=64,
        max_position_embeddings=32,
        num_labels=3,
    )
    model = BertForSequenceClassification._from_config(cfg, attn_implementation="eager")
    lora = LoraConfig(
        r=RANK,
        target_modules=["query", "key", "value", "attention.output.dense"],
        modules_to_save=["classifier"],
    )
    return get_peft_model(model, lora), _bert_arch(heads)


def _llama(heads: int = 4, kv: int = 2) -> tuple[torch.nn.Module, ArchInfo]:
    cfg = LlamaConfig(
        vocab_size=120,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        head_dim=8,
        max_position_embeddings=32,
    )
    model = LlamaForCausalLM._from_config(cfg, attn_implementation="eager")
    lora = LoraConfig(r=RANK, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    return get_peft_model(model, lora), _llama_arch(heads, kv)


def _t5(heads: int = 4) -> tuple[torch.nn.Module, ArchInfo]:
    cfg = T5Config(
        vocab_size=110,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=heads,
        decoder_start_token_id=0,
        pad_token_id=0,
    )
    model = T5ForConditionalGeneration._from_config(cfg, attn_implementation="eager")
    lora = LoraConfig(r=RANK, target_modules=["q", "k", "v", "o"])
    return get_peft_model(model, lora), _t5_arch(heads)


def _inputs(family: str) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 100, (BATCH, ENC_LEN), generator=gen)
    mask = torch.ones(BATCH, ENC_LEN, dtype=torch.long)
    if family == "bert":
        return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 2])}
    if family == "llama":
        return {"input_ids": ids, "attention_mask": mask, "labels": ids}
    labels = torch.randint(1, 100, (BATCH, DEC_LEN), generator=gen)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _measured(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with FlopCounterMode(display=False) as counter:
            model(**inputs).loss.backward()
    return counter.get_total_flops()


ARCHS: dict[str, Callable[[], ArchInfo]] = {"bert": _bert_arch, "llama": _llama_arch, "t5": _t5_arch}
BUILDERS: dict[str, Callable[[], tuple[torch.nn.Module, ArchInfo]]] = {
    "bert": _bert,
    "llama": _llama,
    "t5": _t5,
}


def _dense(arch: ArchInfo) -> OpsCount:
    dec = DEC_LEN if arch.family == "t5" else 0
    return step_ops(arch, batch=BATCH, enc_len=ENC_LEN, dec_len=dec, lora_r=RANK, lora_targets=TARGETS)


# ------------------------------------------------------------------ bytes


def test_payload_bytes_equals_size_of_safetensors_file(tmp_path: Path) -> None:
    # Prepare
    tensors = {"a.lora_A": torch.randn(4, 32), "a.lora_B": torch.randn(32, 4).T, "n": torch.arange(5)}
    path = tmp_path / "p.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    # Execute
    size = payload_bytes(tensors)
    # Assert
    assert size == path.stat().st_size


def test_payload_roundtrip_preserves_tensors_when_views_share_storage() -> None:
    # Prepare: head slices that are views of one tensor
    full = torch.randn(8, 3)
    tensors = {"h0": full[0:4], "h1": full[4:8], "col": full[:, 1], "half": torch.randn(2, 2).half()}
    # Execute
    back = deserialize_payload(serialize_payload(tensors))
    # Assert
    assert set(back) == set(tensors)
    for name, t in tensors.items():
        assert back[name].dtype == t.dtype
        assert torch.equal(back[name], t)


def test_payload_bytes_fp16_is_about_half_of_fp32() -> None:
    # Prepare
    t32 = {"w": torch.randn(64, 64)}
    t16 = {"w": t32["w"].half()}
    # Execute
    b32, b16 = payload_bytes(t32), payload_bytes(t16)
    # Assert
    assert b32 > 64 * 64 * 4
    assert 0.49 < b16 / b32 < 0.52


# ------------------------------------------------------------------ OPs vs FlopCounterMode


@pytest.mark.parametrize("family", ["bert", "llama", "t5"])
def test_step_ops_dense_equals_flop_counter_for_tiny_lora_model(family: str) -> None:
    # Prepare
    torch.manual_seed(0)
    model, arch = BUILDERS[family]()
    measured = _measured(model, _inputs(family))
    # Execute
    ops = _dense(arch)
    # Assert
    assert ops.whole_step == measured
    assert 0 < ops.attention_lora < ops.whole_step


def _variant(name: str) -> tuple[torch.nn.Module, ArchInfo, list[str], bool]:
    """Less common set-ups: classification Llama, a frozen BERT classifier, partial LoRA targets, gated T5."""
    if name == "llama-classifier":
        cfg = LlamaConfig(
            vocab_size=120,
            hidden_size=32,
            intermediate_size=48,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=8,
            max_position_embeddings=32,
            num_labels=3,
            pad_token_id=0,
        )
        model = LlamaForSequenceClassification._from_config(cfg, attn_implementation="eager")
        lora = LoraConfig(
            r=RANK, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], modules_to_save=["score"]
        )
        return get_peft_model(model, lora), _llama_arch(num_labels=3), list(TARGETS), True
    if name == "bert-frozen-classifier-qv":
        cfg = BertConfig(
            vocab_size=100,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=32,
            num_labels=3,
        )
        model = BertForSequenceClassification._from_config(cfg, attn_implementation="eager")
        lora = LoraConfig(r=RANK, target_modules=["query", "value"])
        return get_peft_model(model, lora), _bert_arch(), ["q", "v"], False
    if name == "bert-mean-pooling":  # no dense pooler: the classifier reads the masked mean of the token states
        cfg = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=32, num_labels=3)
        model = BertForSequenceClassification._from_config(cfg, attn_implementation="eager")
        assert FAMILIES["bert"].arch(model, 3).pooler_dense
        use_mean_pooling(model)
        assert not FAMILIES["bert"].arch(model, 3).pooler_dense
        lora = LoraConfig(r=RANK, target_modules=["query", "key", "value", "attention.output.dense"],
                          modules_to_save=["classifier"])
        return get_peft_model(model, lora), dataclasses.replace(_bert_arch(), pooler_dense=False), list(TARGETS), True
    if name == "t5-gated-ko":
        cfg = T5Config(
            vocab_size=110,
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_decoder_layers=2,
            num_heads=4,
            feed_forward_proj="gated-gelu",
            decoder_start_token_id=0,
            pad_token_id=0,
        )
        model = T5ForConditionalGeneration._from_config(cfg, attn_implementation="eager")
        lora = LoraConfig(r=RANK, target_modules=["k", "o"])
        return get_peft_model(model, lora), _t5_arch(ffn_matrices=3), ["k", "o"], True
    raise KeyError(name)


@pytest.mark.parametrize("variant", ["llama-classifier", "bert-frozen-classifier-qv", "bert-mean-pooling",
                                     "t5-gated-ko"])
def test_step_ops_equals_flop_counter_for_variant_setups(variant: str) -> None:
    # Prepare
    torch.manual_seed(0)
    model, arch, targets, train_classifier = _variant(variant)
    inputs = _inputs(arch.family)
    if variant == "llama-classifier":
        inputs["labels"] = torch.tensor([0, 2])
    measured = _measured(model, inputs)
    dec = DEC_LEN if arch.family == "t5" else 0
    # Execute
    ops = step_ops(
        arch,
        batch=BATCH,
        enc_len=ENC_LEN,
        dec_len=dec,
        lora_r=RANK,
        lora_targets=targets,
        train_classifier=train_classifier,
    )
    # Assert
    assert ops.whole_step == measured


@pytest.mark.parametrize(("family", "fewer"), [("llama", {"heads": 2, "kv": 1}), ("t5", {"heads": 2})])
def test_step_ops_uniform_pruning_equals_flop_counter_of_narrower_model(
    family: str, fewer: dict[str, int]
) -> None:
    # Prepare: keeping heads 0 and 1 of 4 in every block is the same compute as a model
    # built with 2 heads of the same head_dim (and, for Llama, kv group 0 only).
    torch.manual_seed(0)
    narrow = {"llama": _llama, "t5": _t5}[family](**fewer)  # type: ignore[operator]
    measured = _measured(narrow[0], _inputs(family))
    arch = ARCHS[family]()
    kept = torch.zeros(len(arch.blocks), 4, dtype=torch.bool)
    kept[:, :2] = True
    dec = DEC_LEN if family == "t5" else 0
    # Execute
    ops = step_ops(
        arch, batch=BATCH, enc_len=ENC_LEN, dec_len=dec, kept=kept, lora_r=RANK, lora_targets=TARGETS
    )
    # Assert
    assert ops.whole_step == measured


@pytest.mark.parametrize("family", ["bert", "llama", "t5"])
def test_step_ops_all_kept_equals_dense_exactly(family: str) -> None:
    # Prepare
    arch = ARCHS[family]()
    kept = torch.ones(len(arch.blocks), 4, dtype=torch.bool)
    dec = DEC_LEN if family == "t5" else 0
    # Execute
    ops = step_ops(
        arch, batch=BATCH, enc_len=ENC_LEN, dec_len=dec, kept=kept, lora_r=RANK, lora_targets=TARGETS
    )
    # Assert
    assert ops == _dense(arch)


@pytest.mark.parametrize("family", ["bert", "llama", "t5"])
def test_step_ops_attention_part_falls_with_kept_heads(family: str) -> None:
    # Prepare
    arch = ARCHS[family]()
    dense = _dense(arch)
    dec = DEC_LEN if family == "t5" else 0
    half = torch.tensor([[True, False, True, False]]).repeat(len(arch.blocks), 1)
    quarter = torch.tensor([[False, False, False, True]]).repeat(len(arch.blocks), 1)
    kwargs = {"batch": BATCH, "enc_len": ENC_LEN, "dec_len": dec, "lora_r": RANK, "lora_targets": TARGETS}
    # Execute
    ops_half = step_ops(arch, kept=half, **kwargs)  # type: ignore[arg-type]
    ops_quarter = step_ops(arch, kept=quarter, **kwargs)  # type: ignore[arg-type]
    # Assert: roughly proportional (LoRA A halves are shared, so a bit above the head share)
    assert 0.45 < ops_half.attention_lora / dense.attention_lora < 0.7
    assert 0.2 < ops_quarter.attention_lora / dense.attention_lora < 0.45
    assert ops_quarter.whole_step < ops_half.whole_step < dense.whole_step
    ffn_and_heads = dense.whole_step - dense.attention_lora
    assert ops_half.whole_step - ops_half.attention_lora <= ffn_and_heads


def test_step_ops_block_with_no_kept_head_costs_only_o_lora_b() -> None:
    # Prepare: BERT, block 1 keeps no head; as fedcore.drop runs it, only o's LoRA B works
    arch = _bert_arch()
    kept = torch.ones(2, 4, dtype=torch.bool)
    kept[1] = False
    one_block = ArchInfo("bert", 32, 64, 2, 100, 3, blocks=arch.blocks[:1])
    n = BATCH * ENC_LEN
    # Execute
    ops = step_ops(arch, batch=BATCH, enc_len=ENC_LEN, kept=kept, lora_r=RANK, lora_targets=TARGETS)
    first = step_ops(one_block, batch=BATCH, enc_len=ENC_LEN, lora_r=RANK, lora_targets=TARGETS)
    # Assert: B forward, dB and d(A x), each 2 * n * r * hidden
    assert ops.attention_lora == first.attention_lora + 3 * (2 * n * RANK * 32)


def test_step_ops_zero_head_block_costs_qkv_lora_a_forward_for_llama_but_nothing_for_bert() -> None:
    # Prepare: one-block models whose only block keeps no head; LoRA on q/k/v only
    llama = _llama_arch()
    bert = _bert_arch()
    one_llama = ArchInfo("llama", 32, 48, 3, 120, 0, blocks=llama.blocks[:1])
    one_bert = ArchInfo("bert", 32, 64, 2, 100, 3, blocks=bert.blocks[:1])
    none = torch.zeros(1, 4, dtype=torch.bool)
    n = BATCH * ENC_LEN
    # Execute
    ops_llama = step_ops(
        one_llama, batch=BATCH, enc_len=ENC_LEN, kept=none, lora_r=RANK, lora_targets=["q", "k", "v"]
    )
    ops_bert = step_ops(
        one_bert, batch=BATCH, enc_len=ENC_LEN, kept=none, lora_r=RANK, lora_targets=["q", "k", "v"]
    )
    # Assert: Llama runs q/k/v forward (A halves only, no backward: nothing reaches the loss);
    # BERT's empty attention skips them
    assert ops_llama.attention_lora == 3 * (2 * n * 32 * RANK)
    assert ops_bert.attention_lora == 0


def test_step_ops_first_layer_base_qkv_has_no_backward_when_embeddings_frozen() -> None:
    # Prepare: only o has LoRA, so layer 0's q/k/v outputs never require grad
    arch = _bert_arch()
    n = BATCH * ENC_LEN
    # Execute
    only_o = step_ops(arch, batch=BATCH, enc_len=ENC_LEN, lora_r=RANK, lora_targets=["o"])
    # Assert: hand count. Layer 0: q/k/v/o base forward, attention forward, o LoRA fwd + bwd
    # without dX through A (its input needs no grad) and no dX through o's base weight.
    base = 2 * n * 32 * 32
    attn = 2 * (2 * BATCH * 4 * ENC_LEN * ENC_LEN * 8)
    lora_o = 2 * n * 32 * RANK * 2  # forward A and B
    layer0 = 4 * base + attn + lora_o + 3 * (2 * n * 32 * RANK)  # dB, d(Ax), dA
    # Layer 1: everything requires grad: base dX (4), attention 2x backward, LoRA on o with dX through A.
    layer1 = 4 * base + 4 * base + attn + 2 * attn + lora_o + 4 * (2 * n * 32 * RANK)
    assert only_o.attention_lora == layer0 + layer1


def test_step_ops_raises_when_target_unknown() -> None:
    # Prepare
    arch = _bert_arch()
    # Execute / Assert
    with pytest.raises(ValueError):
        step_ops(arch, batch=1, enc_len=4, lora_r=2, lora_targets=["query"])


def test_ops_count_add_and_scale() -> None:
    # Prepare
    a, b = OpsCount(10.0, 4.0), OpsCount(1.0, 0.5)
    # Execute / Assert
    assert a + b == OpsCount(11.0, 4.5)
    assert 3 * b == OpsCount(3.0, 1.5)


def test_optimizer_ops_is_fourteen_per_parameter() -> None:
    # Prepare / Execute / Assert
    assert optimizer_ops(1000) == 14000.0


@pytest.mark.parametrize("family", ["bert", "llama", "t5"])
def test_step_ops_with_lower_blocks_frozen_equals_flop_counter(family: str) -> None:
    """train_top_blocks: the LoRA below the top block of each stack is frozen; autograd skips its backward."""
    from fedcore.pruning import top_blocks

    # Prepare: freeze the LoRA of every block but the top one of each stack (T5: encoder, decoder, cross)
    torch.manual_seed(0)
    model, arch = BUILDERS[family]()
    trained = top_blocks(arch.blocks, 1)
    assert trained is not None and 0 < int(trained.sum()) < len(arch.blocks)
    real = FAMILIES[family].blocks(model.base_model.model)
    top = {(b.group, b.layer) for b in arch.blocks if bool(trained[b.index])}
    frozen = 0
    for b in real:
        if (b.group, b.layer) in top:
            continue
        paths = [b.projection(p) for p in TARGETS]  # type: ignore[arg-type]
        for name, p in model.named_parameters():
            if "lora_" in name and any(f".{path}.lora_" in name for path in paths):
                p.requires_grad_(False)
                frozen += 1
    assert frozen > 0
    measured = _measured(model, _inputs(family))
    dec = DEC_LEN if family == "t5" else 0
    # Execute
    ops = step_ops(arch, batch=BATCH, enc_len=ENC_LEN, dec_len=dec, lora_r=RANK, lora_targets=TARGETS,
                   trained=trained)
    # Assert
    assert ops.whole_step == measured
    assert ops.whole_step < _dense(arch).whole_step
