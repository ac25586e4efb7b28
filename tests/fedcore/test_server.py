"""aggregate_updates (batched over head params) against a per-parameter reference built from fedcore.aggregate."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from fedcore.accounting import deserialize_payload, serialize_payload
from fedcore.aggregate import fedavg, head_agreement, head_weighted, head_weights, masked_fedavg
from fedcore.lora_state import LoraLayout, State
from fedcore.models.base import AttentionBlock
from fedcore.pruning import choose_kept
from fedcore.server import aggregate_updates
from fedcore.spec import preset


def _layout(num_blocks: int, heads: int, kv_heads: int, head_dim: int, r: int = 4) -> tuple[LoraLayout, State]:
    gen = torch.Generator().manual_seed(1)
    hidden = heads * head_dim
    blocks, state = [], {}
    for i in range(num_blocks):
        p = f"layers.{i}.attn"
        b = AttentionBlock(index=i, name=f"enc.{i}", group="encoder", layer=i, module=p, q=f"{p}.q", k=f"{p}.k",
                           v=f"{p}.v", o=f"{p}.o", num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim)
        blocks.append(b)
        for proj, out in (("q", hidden), ("k", kv_heads * head_dim), ("v", kv_heads * head_dim), ("o", hidden)):
            path = b.projection(proj)  # type: ignore[arg-type]
            state[f"base_model.model.{path}.lora_A.weight"] = torch.randn(r, hidden, generator=gen)
            state[f"base_model.model.{path}.lora_B.weight"] = torch.randn(out, r, generator=gen)
    state["base_model.model.classifier.modules_to_save.default.weight"] = torch.randn(3, hidden, generator=gen)
    return LoraLayout(state, blocks), state


def _uploads(layout: LoraLayout, state: State, clients: int, sparsity: float) -> list[bytes]:
    gen = torch.Generator().manual_seed(2)
    out = []
    for c in range(clients):
        imp = torch.rand(len(layout.blocks), layout.num_heads, generator=gen)
        if c == 0:
            imp[0] = 0.0  # zero importance: head_weighted's equal-weights case
        kept = choose_kept(imp, sparsity)
        local = {k: v + 0.1 * torch.randn(v.shape, generator=gen) for k, v in state.items()}
        out.append(serialize_payload(layout.upload(layout.slice_state(local, kept), kept, imp)))
    return out


def _reference(rule: str, layout: LoraLayout, previous: State, payloads: list[bytes], n: list[int]) -> tuple:
    """One head param at a time through the public rules: what aggregate_updates must equal."""
    fulls, kepts, imps = [], [], []
    for blob in payloads:
        full, kept, imp = layout.read_upload(deserialize_payload(blob), previous)
        fulls.append(full)
        kepts.append(kept)
        imps.append(imp.float())
    n_k = [float(x) for x in n]
    new = {key: fedavg([f[key] for f in fulls], n_k) for key in layout.shared_keys}
    agreement: dict[tuple[int, str], Tensor] = {}
    for hp in layout.head_params:
        ups = [f[hp.key] for f in fulls]
        units_kept = torch.stack([layout.unit_mask(hp, k) for k in kepts])
        if rule == "head_weighted":
            rows = []
            for imp in imps:
                row = imp[hp.block]
                if hp.proj in ("k", "v"):
                    b = layout.blocks[hp.block]
                    row = row.view(b.num_kv_heads, b.queries_per_kv).mean(dim=1)
                rows.append(row)
            w = head_weights(n, torch.stack(rows))
            new[hp.key] = head_weighted(previous[hp.key], ups, units_kept, w, axis=hp.axis, unit_size=hp.unit_size)
        elif rule == "masked_fedavg":
            new[hp.key] = masked_fedavg(previous[hp.key], ups, units_kept, n, axis=hp.axis, unit_size=hp.unit_size)
        else:
            new[hp.key] = fedavg(ups, n_k)
            units_kept = torch.ones_like(units_kept)
        agreement[(hp.block, hp.proj)] = head_agreement(previous[hp.key], ups, units_kept, axis=hp.axis,
                                                        unit_size=hp.unit_size)
    return new, torch.stack(kepts), agreement


@pytest.mark.parametrize("rule", ["head_weighted", "masked_fedavg", "fedavg"])
@pytest.mark.parametrize(("heads", "kv_heads"), [(6, 6), (8, 2)])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9])
def test_batched_aggregation_equals_the_per_parameter_rules(
    rule: str, heads: int, kv_heads: int, sparsity: float
) -> None:
    layout, state = _layout(num_blocks=3, heads=heads, kv_heads=kv_heads, head_dim=4)
    payloads = _uploads(layout, state, clients=5, sparsity=sparsity)
    n = [30, 10, 55, 1, 20]
    spec = preset("smoke", aggregation=rule)

    got = aggregate_updates(spec, layout, state, payloads, n)
    want, kept, agreement = _reference(rule, layout, state, payloads, n)

    assert list(got.state) == layout.keys
    for key in layout.keys:  # bit for bit: same float64 arithmetic in the same client order
        assert got.state[key].dtype == state[key].dtype
        assert torch.equal(got.state[key], want[key]), key
    assert torch.equal(got.kept, kept)
    for b in range(len(layout.blocks)):  # agreement: mean over the block's q and o of the per-unit cosine
        q, o = agreement[(b, "q")], agreement[(b, "o")]
        stacked = torch.stack([q, o])
        expected = torch.nanmean(stacked, dim=0).float()
        both_nan = torch.isnan(stacked).all(dim=0)
        assert torch.equal(torch.isnan(got.agreement[b]), both_nan)
        torch.testing.assert_close(got.agreement[b][~both_nan], expected[~both_nan], rtol=1e-5, atol=1e-6)
    # q/o head weights: each head's shares over its keepers sum to 1 where anyone kept it
    sums = got.weights.sum(0)
    kept_any = kept.any(0) if rule != "fedavg" else torch.ones_like(sums, dtype=torch.bool)
    torch.testing.assert_close(sums[kept_any], torch.ones_like(sums[kept_any]))
