"""The server's step of a round: read uploads, aggregate into the next global state.

Head-specific tensors go through the rule the spec names
(:mod:`fedcore.aggregate`): ``head_weighted`` (the paper's head-specific weighted
aggregation, as DESIGN.md reconstructs it), ``masked_fedavg`` (n_k weights over
the clients that kept a head) or ``fedavg`` (McMahan et al. 2017; a head a
client did not keep counts with the global value it received). Shared LoRA
halves and ``modules_to_save`` always use FedAvg weighted by n_k.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from fedcore.accounting import deserialize_payload
from fedcore.aggregate import fedavg, head_agreement, head_weighted, head_weights, masked_fedavg
from fedcore.lora_state import LoraLayout, State
from fedcore.spec import ExperimentSpec


@dataclass
class Aggregated:
    state: State
    global_importance: Tensor  # (blocks, heads), n_k-weighted mean of the clients' scores
    agreement: Tensor  # (blocks, heads), mean pairwise cosine of client deltas (q/o slices), NaN if < 2 keepers
    weights: Tensor  # (clients, blocks, heads), normalised head aggregation weights (q/o slices)
    kept: Tensor  # (clients, blocks, heads)


def _unit_importance(layout: LoraLayout, hp_block: int, proj: str, importance: Tensor) -> Tensor:
    """Importance per unit of a head param: per head, or mean over a kv group's query heads. (units,)"""
    row = importance[hp_block]
    if proj in ("k", "v"):
        b = layout.blocks[hp_block]
        return row.view(b.num_kv_heads, b.queries_per_kv).mean(dim=1)
    return row


def aggregate_updates(
    spec: ExperimentSpec,
    layout: LoraLayout,
    previous: State,
    payloads: Sequence[bytes],
    num_examples: Sequence[int],
) -> Aggregated:
    """The next global LoRA state from the clients' serialised uploads."""
    prev_cpu = {k: v.detach().cpu() for k, v in previous.items()}
    fulls, kepts, imps = [], [], []
    for blob in payloads:
        full, kept, imp = layout.read_upload(deserialize_payload(blob), prev_cpu)
        fulls.append(full)
        kepts.append(kept)
        imps.append(imp.float())
    n_k = [float(n) for n in num_examples]
    kept_all = torch.stack(kepts)  # (C, blocks, heads)
    imp_all = torch.stack(imps)  # (C, blocks, heads)
    new: State = {}
    for key in layout.shared_keys:
        new[key] = fedavg([f[key] for f in fulls], n_k)
    num_blocks, num_heads = kept_all.shape[1:]
    weights_rec = torch.zeros(len(fulls), num_blocks, num_heads)
    agree_sum = torch.zeros(num_blocks, num_heads)
    agree_cnt = torch.zeros(num_blocks, num_heads)
    for hp in layout.head_params:
        ups = [f[hp.key] for f in fulls]
        units_kept = torch.stack([layout.unit_mask(hp, k) for k in kepts])  # (C, units)
        if spec.aggregation == "head_weighted":
            unit_imp = torch.stack([_unit_importance(layout, hp.block, hp.proj, i) for i in imps])  # (C, units)
            w = head_weights(num_examples, unit_imp, spec.head_weighting)
            new[hp.key] = head_weighted(prev_cpu[hp.key], ups, units_kept, w, axis=hp.axis, unit_size=hp.unit_size)
        elif spec.aggregation == "masked_fedavg":
            w = torch.tensor(n_k)[:, None].expand_as(units_kept).clone()
            new[hp.key] = masked_fedavg(prev_cpu[hp.key], ups, units_kept, num_examples, axis=hp.axis,
                                        unit_size=hp.unit_size)
        else:
            w = torch.tensor(n_k)[:, None].expand_as(units_kept).clone()
            new[hp.key] = fedavg(ups, n_k)
            units_kept = torch.ones_like(units_kept)
        if hp.proj in ("q", "o"):
            wk = (w * units_kept).float()
            weights_rec[:, hp.block] = wk / wk.sum(0, keepdim=True).clamp(min=1e-12)
            ag = head_agreement(prev_cpu[hp.key], ups, units_kept, axis=hp.axis, unit_size=hp.unit_size)
            ok = ~torch.isnan(ag)
            agree_sum[hp.block] += torch.where(ok, ag, torch.zeros_like(ag))
            agree_cnt[hp.block] += ok.float()
    new = {k: new[k].to(previous[k].dtype) for k in layout.keys}
    total = sum(n_k)
    global_imp = (imp_all * torch.tensor(n_k)[:, None, None]).sum(0) / max(total, 1e-12)
    agreement = torch.where(agree_cnt > 0, agree_sum / agree_cnt.clamp(min=1), torch.full_like(agree_sum, float("nan")))
    return Aggregated(state=new, global_importance=global_imp, agreement=agreement, weights=weights_rec,
                      kept=kept_all)
