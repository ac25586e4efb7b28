"""The server's step of a round: read uploads, aggregate into the next global state.

Head-specific tensors go through the rule the spec names
(:mod:`fedcore.aggregate`): ``head_weighted`` (the paper's head-specific weighted
aggregation, as docs/method.md reconstructs it), ``masked_fedavg`` (n_k weights over
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
from fedcore.aggregate import agreement_units, as_units, fedavg, from_units, head_weighted_units, head_weights
from fedcore.lora_state import IMPORTANCE_KEY, KEPT_KEY, HeadParam, LoraLayout, State
from fedcore.spec import ExperimentSpec


@dataclass
class Aggregated:
    state: State
    global_importance: Tensor  # (blocks, heads), n_k-weighted mean of the clients' scores
    agreement: Tensor  # (blocks, heads), mean pairwise cosine of client deltas (q/o slices), NaN if < 2 keepers
    weights: Tensor  # (clients, blocks, heads), normalised head aggregation weights (q/o slices)
    kept: Tensor  # (clients, blocks, heads)


def _unit_rows(layout: LoraLayout, hp: HeadParam, per_head: Tensor, reduce: str) -> Tensor:
    """Per client, a head param's units from a (clients, blocks, heads) tensor: (clients, units).

    q/o units are heads; k/v units are key/value groups, which take the ``reduce``
    ("mean" or "any") of their query heads.
    """
    rows = per_head[:, hp.block]  # (C, heads)
    if hp.proj not in ("k", "v"):
        return rows
    b = layout.blocks[hp.block]
    grouped = rows.reshape(rows.shape[0], b.num_kv_heads, b.queries_per_kv)
    return grouped.any(dim=2) if reduce == "any" else grouped.mean(dim=2)


def _groups(layout: LoraLayout, previous: State) -> list[list[HeadParam]]:
    """Head params with the same unit view (units, unit_size x rest), to aggregate as one batch."""
    groups: dict[tuple[int, int], list[HeadParam]] = {}
    for hp in layout.head_params:
        groups.setdefault((hp.units, previous[hp.key].numel() // hp.units), []).append(hp)
    return list(groups.values())


def aggregate_updates(
    spec: ExperimentSpec,
    layout: LoraLayout,
    previous: State,
    payloads: Sequence[bytes],
    num_examples: Sequence[int],
) -> Aggregated:
    """The next global LoRA state from the clients' serialised uploads.

    Works on unit views (head slices) directly: each upload's kept slices are
    scattered into a copy of the previous units, and all head params with the same
    unit shape are aggregated in one batched call, with the same float64 arithmetic
    (clients summed in order) as :func:`~fedcore.aggregate.head_weighted` per param.
    """
    prev_cpu = {k: v.detach().cpu() for k, v in previous.items()}
    uploads = [deserialize_payload(blob) for blob in payloads]
    wire = {k: str(i) for i, k in enumerate(layout.keys)}  # upload names: layout positions
    kept_all = torch.stack([u[KEPT_KEY].bool() for u in uploads])  # (C, blocks, heads)
    imp_all = torch.stack([u[IMPORTANCE_KEY].float() for u in uploads])  # (C, blocks, heads)
    clients = len(uploads)
    n_k = [float(n) for n in num_examples]
    n = torch.tensor(n_k, dtype=torch.float64)
    new: State = {}
    for key in layout.shared_keys:
        new[key] = fedavg([u[wire[key]] for u in uploads], n_k)
    num_blocks, num_heads = kept_all.shape[1:]
    weights_rec = torch.zeros(clients, num_blocks, num_heads)
    agree_sum = torch.zeros(num_blocks, num_heads)
    agree_cnt = torch.zeros(num_blocks, num_heads)
    for group in _groups(layout, prev_cpu):
        units = group[0].units
        prev_u = torch.stack([as_units(prev_cpu[hp.key], hp.axis, hp.unit_size).reshape(units, -1)
                              for hp in group])  # (P, U, m) float64
        keep = torch.stack([_unit_rows(layout, hp, kept_all, "any") for hp in group], dim=1)  # (C, P, U)
        full = prev_u.unsqueeze(0).repeat(clients, 1, 1, 1)  # (C, P, U, m): not-kept units stay previous
        for c, u in enumerate(uploads):
            parts = [u[wire[hp.key]].to(torch.float64).movedim(hp.axis, 0).reshape(-1, prev_u.shape[-1])
                     for hp in group]  # (kept units, m); a param with no kept unit gives 0 rows
            full[c][keep[c]] = torch.cat(parts)  # kept units in (param, unit) order, as sliced
        if spec.aggregation == "head_weighted":
            unit_imp = torch.stack([_unit_rows(layout, hp, imp_all, "mean") for hp in group], dim=1)  # (C, P, U)
            w = head_weights(num_examples, unit_imp.reshape(clients, -1), spec.head_weighting).view_as(unit_imp)
            merged = head_weighted_units(prev_u, full, keep, w)
        elif spec.aggregation == "masked_fedavg":
            w = n.view(-1, 1, 1).expand_as(keep).clone()
            merged = head_weighted_units(prev_u, full, keep, w)
        else:  # fedavg: a head a client did not keep counts with the value it received
            w = n.view(-1, 1, 1).expand_as(keep).clone()
            keep = torch.ones_like(keep)
            merged = head_weighted_units(prev_u, full, keep, w)
        for i, hp in enumerate(group):
            new[hp.key] = from_units(merged[i], prev_cpu[hp.key], hp.axis)
        qo = [i for i, hp in enumerate(group) if hp.proj in ("q", "o")]
        if not qo:
            continue
        wk = (w[:, qo] * keep[:, qo]).float()  # (C, Pqo, U)
        shares = wk / wk.sum(0, keepdim=True).clamp(min=1e-12)
        agreement = agreement_units(prev_u[qo], full[:, qo], keep[:, qo])  # (Pqo, U)
        for j, i in enumerate(qo):
            hp = group[i]
            weights_rec[:, hp.block] = shares[:, j]
            ag = agreement[j]
            ok = ~torch.isnan(ag)
            agree_sum[hp.block] += torch.where(ok, ag, torch.zeros_like(ag)).float()
            agree_cnt[hp.block] += ok.float()
    new = {k: new[k].to(previous[k].dtype) for k in layout.keys}
    total = sum(n_k)
    global_imp = (imp_all * torch.tensor(n_k)[:, None, None]).sum(0) / max(total, 1e-12)
    agreement = torch.where(agree_cnt > 0, agree_sum / agree_cnt.clamp(min=1), torch.full_like(agree_sum, float("nan")))
    return Aggregated(state=new, global_importance=global_imp, agreement=agreement, weights=weights_rec,
                      kept=kept_all)


def uses_server_optimizer(spec: ExperimentSpec) -> bool:
    """Whether the spec moves the global model other than straight to the aggregate."""
    return spec.server_momentum != 0 or spec.server_lr != 1


def server_step(spec: ExperimentSpec, previous: State, aggregated: State,
                velocity: State | None) -> tuple[State, State | None]:
    """The next global state and the server's velocity, from the aggregate of a round (FedAvgM).

    The round's update is ``aggregated - previous``; the velocity ``v = server_momentum * v + update``
    (the update itself in the first round) is kept across rounds in float64, and the global model moves
    to ``previous + server_lr * v``, in ``previous``'s dtype. Hsu et al. 2019 (arXiv 1909.06335): momentum
    on the server smooths the rounds' updates, which on non-IID clients point where the few clients of the
    round lean. Without a server optimizer (momentum 0, rate 1) the aggregate is returned as it is, bit for
    bit, and no velocity is kept.
    """
    if not uses_server_optimizer(spec):
        return aggregated, None
    beta, rate = spec.server_momentum, spec.server_lr
    new_state: State = {}
    new_velocity: State = {}
    for key, agg in aggregated.items():
        prev = previous[key].detach().cpu().to(torch.float64)
        update = agg.detach().cpu().to(torch.float64) - prev
        v = update if velocity is None or key not in velocity else beta * velocity[key] + update
        new_velocity[key] = v
        new_state[key] = (prev + rate * v).to(agg.dtype)
    return new_state, new_velocity
