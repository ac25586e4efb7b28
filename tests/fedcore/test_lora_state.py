"""Per-head LoRA slices: mapping, lossless slicing, uploads and their byte counts."""

from __future__ import annotations

import torch

from fedcore.accounting import deserialize_payload, payload_bytes, serialize_payload
from fedcore.lora_state import IMPORTANCE_KEY, KEPT_KEY, LoraLayout
from fedcore.models.base import AttentionBlock


def _kept(blocks: int, heads: int, seed: int, p: float = 0.5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(blocks, heads, generator=g) < p


def test_layout_maps_qkv_lora_b_rows_and_o_lora_a_columns(bert5) -> None:
    _, blocks, state, layout = bert5
    by_proj = {(hp.block, hp.proj): hp for hp in layout.head_params}
    assert len(layout.head_params) == 4 * 4
    q = by_proj[(0, "q")]
    assert q.key.endswith("attention.self.query.lora_B.weight") and q.axis == 0 and q.unit_size == 16
    o = by_proj[(2, "o")]
    assert o.key.endswith("layer.2.attention.output.dense.lora_A.weight") and o.axis == 1
    assert any(k.endswith("query.lora_A.weight") for k in layout.shared_keys)
    assert any("classifier" in k for k in layout.shared_keys)


def test_slice_then_expand_is_lossless(bert5) -> None:
    _, _, state, layout = bert5
    kept = _kept(4, 5, seed=3)
    sliced = layout.slice_state(state, kept)
    q0 = layout.head_params[0]
    assert sliced[q0.key].shape[0] == int(kept[0].sum()) * 16
    zeros = {k: torch.zeros_like(v) for k, v in state.items()}
    back = layout.expand_state(sliced, kept, fill=state)
    assert all(torch.equal(back[k], state[k]) for k in state)
    filled = layout.expand_state(sliced, kept, fill=zeros)
    rows = filled[q0.key].view(5, 16, -1)
    assert torch.equal(rows[kept[0]], state[q0.key].view(5, 16, -1)[kept[0]])
    assert (rows[~kept[0]] == 0).all()


def test_gqa_kv_group_kept_when_any_query_head_kept() -> None:
    block = AttentionBlock(index=0, name="dec.0", group="decoder", layer=0, module="m", q="m.q", k="m.k",
                           v="m.v", o="m.o", num_heads=4, num_kv_heads=2, head_dim=2)
    state = {
        "base_model.model.m.q.lora_B.weight": torch.arange(16.0).view(8, 2),
        "base_model.model.m.k.lora_B.weight": torch.arange(8.0).view(4, 2),
    }
    layout = LoraLayout(state, [block])
    kept = torch.tensor([[False, True, False, False]])
    k_hp = next(hp for hp in layout.head_params if hp.proj == "k")
    assert layout.unit_mask(k_hp, kept).tolist() == [True, False]
    sliced = layout.slice_state(state, kept)
    assert torch.equal(sliced["base_model.model.m.k.lora_B.weight"], torch.tensor([[0.0, 1.0], [2.0, 3.0]]))


def test_upload_bytes_equal_serialised_payload(bert5, tmp_path) -> None:
    from safetensors.torch import save_file

    _, _, state, layout = bert5
    kept = _kept(4, 5, seed=1)
    upload = layout.upload(layout.slice_state(state, kept), kept, torch.rand(4, 5))
    blob = serialize_payload(upload)
    save_file({k: v.contiguous() for k, v in upload.items()}, str(tmp_path / "u.safetensors"))
    assert payload_bytes(upload) == len(blob) == (tmp_path / "u.safetensors").stat().st_size
    back = deserialize_payload(blob)
    assert torch.equal(back[KEPT_KEY].bool(), kept) and IMPORTANCE_KEY in back
    full, kept2, _ = layout.read_upload(back, state)
    assert torch.equal(kept2, kept) and all(torch.equal(full[k], state[k]) for k in state)


def _minilm_shaped_lora(r: int = 8) -> tuple[dict[str, torch.Tensor], list[AttentionBlock]]:
    """LoRA tensors of MiniLM-L6's shape (6 blocks x 12 heads, d=32, hidden 384) on q, k, v, o."""
    blocks, state = [], {}
    for i in range(6):
        p = f"bert.encoder.layer.{i}.attention"
        b = AttentionBlock(index=i, name=f"enc.{i}", group="encoder", layer=i, module=f"{p}.self",
                           q=f"{p}.self.query", k=f"{p}.self.key", v=f"{p}.self.value", o=f"{p}.output.dense",
                           num_heads=12, num_kv_heads=12, head_dim=32)
        blocks.append(b)
        for path in (b.q, b.k, b.v, b.o):
            state[f"base_model.model.{path}.lora_A.weight"] = torch.randn(r, 384)
            state[f"base_model.model.{path}.lora_B.weight"] = torch.randn(384, r)
    return state, blocks


def test_upload_advantage_at_090_is_within_1pct_of_2_over_2_minus_s() -> None:
    state, blocks = _minilm_shaped_lora()
    layout = LoraLayout(state, blocks)
    imp = torch.rand(6, 12, generator=torch.Generator().manual_seed(0))
    from fedcore.pruning import choose_kept

    kept = choose_kept(imp, 0.9)
    dense = payload_bytes(layout.compact(state))
    pruned = payload_bytes(layout.upload(layout.slice_state(state, kept), kept, imp))
    expected = 2 / (2 - 0.9)
    assert abs(dense / pruned - expected) / expected < 0.01, (dense, pruned, dense / pruned)
