"""Aggregation rules: pure functions of tensors and weights.

- :func:`fedavg`: Federated Averaging [McMahan et al., 2017], the n_k-weighted mean.
  Paper: arxiv.org/abs/1602.05629
- :func:`head_weighted`: head-specific weighted aggregation as reconstructed from
  Venkatesha, Kundu, Panda, *Assortment of Attention Heads* (arXiv 2506.00743, 2025):
  each head slice is averaged over the clients that kept that head, with weights
  ``w_kh`` (``n_k * I_k[h]`` by default, see :func:`head_weights`).
- :func:`masked_fedavg`: the masked-FedAvg baseline (``w_kh = n_k`` over keepers).
- :func:`head_agreement`: fedheads' own diagnostic, the mean pairwise cosine
  similarity of the clients' per-head updates.

Every function computes in float64 and casts the result back to the input dtype,
so that the order in which clients arrive changes nothing beyond float64 rounding.
A "unit" is one head slice (or key/value group slice) of a projection: ``unit_size``
consecutive rows (``axis=0``, the q/k/v LoRA B halves) or columns (``axis=1``, the
o LoRA A half).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

WeightMode = Literal["n_k_importance", "importance", "n_k"]


def fedavg(tensors: Sequence[Tensor], weights: Sequence[float]) -> Tensor:
    """Weighted mean ``sum_k w_k t_k / sum_k w_k``, in float64, cast back to the input dtype.

    Raises ``ValueError`` on no tensors, a length mismatch, negative or zero total
    weight, or tensors of different shapes.
    """
    if len(tensors) == 0:
        raise ValueError("fedavg needs at least one tensor")
    if len(tensors) != len(weights):
        raise ValueError(f"fedavg got {len(tensors)} tensors but {len(weights)} weights")
    shape = tensors[0].shape
    for i, t in enumerate(tensors):
        if t.shape != shape:
            raise ValueError(f"fedavg: tensor {i} has shape {tuple(t.shape)}, expected {tuple(shape)}")
    if any(float(w) < 0 for w in weights):
        raise ValueError("fedavg weights must be non-negative")
    acc = torch.zeros(shape, dtype=torch.float64)
    total = 0.0
    for t, w in zip(tensors, weights, strict=True):
        acc += float(w) * t.detach().to(torch.float64)
        total += float(w)
    if total <= 0.0:
        raise ValueError("fedavg: the weights sum to zero")
    return (acc / total).to(tensors[0].dtype)


def head_weights(
    num_examples: Sequence[int], importance: Tensor, mode: WeightMode = "n_k_importance"
) -> Tensor:
    """Per-client, per-unit aggregation weights ``w_kh`` as a float64 tensor [clients, units].

    ``importance`` is [clients, units]; negative entries are clamped to 0.
    ``mode``: ``"n_k_importance"`` gives ``n_k * I_k[h]`` (default), ``"importance"``
    gives ``I_k[h]``, ``"n_k"`` gives ``n_k`` for every unit.
    """
    if importance.dim() != 2:
        raise ValueError(f"importance must be [clients, units], got shape {tuple(importance.shape)}")
    if importance.shape[0] != len(num_examples):
        raise ValueError(
            f"importance has {importance.shape[0]} clients but num_examples has {len(num_examples)}"
        )
    n = torch.tensor([float(x) for x in num_examples], dtype=torch.float64).unsqueeze(1)  # (C, 1)
    imp = importance.detach().to(torch.float64).clamp_min(0.0)  # (C, U)
    if mode == "n_k_importance":
        return n * imp
    if mode == "importance":
        return imp
    if mode == "n_k":
        return n.expand_as(imp).clone()
    raise ValueError(f"unknown weight mode {mode!r}; expected 'n_k_importance', 'importance' or 'n_k'")


def as_units(t: Tensor, axis: int, unit_size: int) -> Tensor:
    """View ``t`` as (units, unit_size, rest) along ``axis``, in float64."""
    moved = t.detach().to(torch.float64).movedim(axis, 0)
    return moved.reshape(moved.shape[0] // unit_size, unit_size, -1)


def from_units(u: Tensor, like: Tensor, axis: int) -> Tensor:
    """Inverse of :func:`as_units`: back to ``like``'s shape and dtype."""
    moved_shape = like.movedim(axis, 0).shape
    return u.reshape(moved_shape).movedim(0, axis).to(like.dtype)


def _check_units(previous: Tensor, updates: Sequence[Tensor], kept: Tensor, axis: int, unit_size: int) -> int:
    if len(updates) == 0:
        raise ValueError("need at least one client update")
    for i, t in enumerate(updates):
        if t.shape != previous.shape:
            raise ValueError(f"update {i} has shape {tuple(t.shape)}, expected {tuple(previous.shape)}")
    if not -previous.dim() <= axis < previous.dim():
        raise ValueError(f"axis {axis} out of range for a {previous.dim()}-d tensor")
    if unit_size <= 0 or previous.shape[axis] % unit_size != 0:
        raise ValueError(
            f"unit_size {unit_size} does not divide dimension {axis} of size {previous.shape[axis]}"
        )
    units = previous.shape[axis] // unit_size
    if tuple(kept.shape) != (len(updates), units):
        raise ValueError(f"kept must be [clients={len(updates)}, units={units}], got {tuple(kept.shape)}")
    return units


def head_weighted_units(previous: Tensor, updates: Tensor, kept: Tensor, weights: Tensor) -> Tensor:
    """:func:`head_weighted` on unit views, batched over any leading dims, in float64.

    ``previous`` is (..., U, m), ``updates`` (C, ..., U, m), ``kept`` and ``weights``
    (C, ..., U). Returns (..., U, m): per unit the weighted mean over its keepers,
    equal weights where the keepers' weights sum to 0, ``previous`` where nobody kept it.
    Clients are summed in order, so any batch of units gives the same bits as one at a time.
    """
    f64 = torch.float64
    keep = kept.to(torch.bool)
    w = torch.where(keep, weights.detach().to(f64), torch.zeros((), dtype=f64))  # (C, ..., U)
    keepers = keep.sum(dim=0)  # (..., U)
    total = torch.zeros(w.shape[1:], dtype=f64)
    for k in range(w.shape[0]):
        total += w[k]
    equal = (total <= 0) & (keepers > 0)  # kept, but all weights zero: equal weights
    w = torch.where(equal.unsqueeze(0) & keep, torch.ones((), dtype=f64), w)
    total = torch.where(equal, keepers.to(f64), total)
    prev = previous.detach().to(f64)
    acc = torch.zeros_like(prev)
    for k in range(w.shape[0]):
        acc += w[k].unsqueeze(-1) * updates[k].detach().to(f64)
    safe_total = torch.where(total > 0, total, torch.ones((), dtype=f64))
    merged = acc / safe_total.unsqueeze(-1)
    # units nobody kept: previous exactly (float32/16 -> float64 -> back is exact)
    return torch.where((keepers == 0).unsqueeze(-1), prev, merged)


def head_weighted(
    previous: Tensor,
    updates: Sequence[Tensor],
    kept: Tensor,
    weights: Tensor,
    *,
    axis: int,
    unit_size: int,
) -> Tensor:
    """Head-specific weighted aggregation of one projection's LoRA half.

    For each unit ``u`` (``unit_size`` rows if ``axis == 0``, columns if ``axis == 1``):
    ``theta[u] = sum_k w_ku theta_k[u] / sum_k w_ku`` over the clients ``k`` with
    ``kept[k, u]``. Choices where that is undefined:

    - no client kept ``u``: ``theta[u]`` is ``previous[u]``, bit for bit;
    - some clients kept ``u`` but their weights sum to 0 (e.g. zero importance):
      equal weights over those keepers, since they did train that slice and a
      weight of zero everywhere carries no preference between them.

    ``weights`` is [clients, units] (non-negative, e.g. from :func:`head_weights`).
    """
    units = _check_units(previous, updates, kept, axis, unit_size)
    if tuple(weights.shape) != tuple(kept.shape):
        raise ValueError(f"weights must have kept's shape {tuple(kept.shape)}, got {tuple(weights.shape)}")
    if bool((weights < 0).any()):
        raise ValueError("head_weighted weights must be non-negative")
    prev_u = as_units(previous, axis, unit_size).reshape(units, -1)  # (U, m)
    ups = torch.stack([as_units(t, axis, unit_size).reshape(units, -1) for t in updates])  # (C, U, m)
    return from_units(head_weighted_units(prev_u, ups, kept, weights), previous, axis)


def masked_fedavg(
    previous: Tensor,
    updates: Sequence[Tensor],
    kept: Tensor,
    num_examples: Sequence[int],
    *,
    axis: int,
    unit_size: int,
) -> Tensor:
    """Masked FedAvg baseline: :func:`head_weighted` with ``w_ku = n_k`` over the keepers of ``u``."""
    if len(num_examples) != len(updates):
        raise ValueError(f"{len(updates)} updates but {len(num_examples)} example counts")
    n = torch.tensor([float(x) for x in num_examples], dtype=torch.float64).unsqueeze(1)
    return head_weighted(previous, updates, kept, n.expand(kept.shape), axis=axis, unit_size=unit_size)


def agreement_units(previous: Tensor, updates: Tensor, kept: Tensor) -> Tensor:
    """:func:`head_agreement` on unit views, batched over any leading dims.

    ``previous`` is (..., U, m), ``updates`` (C, ..., U, m), ``kept`` (C, ..., U);
    returns float64 (..., U).
    """
    f64 = torch.float64
    deltas = updates.detach().to(f64) - previous.detach().to(f64).unsqueeze(0)  # (C, ..., U, m)
    norms = deltas.norm(dim=-1, keepdim=True)
    unit_vecs = torch.where(norms > 0, deltas / norms.clamp_min(1e-300), torch.zeros((), dtype=f64))
    cos = torch.einsum("c...m,d...m->...cd", unit_vecs, unit_vecs)  # (..., U, C, C)
    keep = kept.to(torch.bool).movedim(0, -1)  # (..., U, C)
    clients = kept.shape[0]
    upper = torch.triu(torch.ones(clients, clients, dtype=torch.bool), diagonal=1)  # pairs c < d
    pairs = keep.unsqueeze(-1) & keep.unsqueeze(-2) & upper  # (..., U, C, C)
    count = pairs.sum(dim=(-2, -1)).to(f64)
    summed = torch.where(pairs, cos, torch.zeros((), dtype=f64)).sum(dim=(-2, -1))
    nan = torch.full((), float("nan"), dtype=f64)
    return torch.where(count > 0, summed / count.clamp_min(1.0), nan)


def head_agreement(
    previous: Tensor,
    updates: Sequence[Tensor],
    kept: Tensor,
    *,
    axis: int,
    unit_size: int,
) -> Tensor:
    """Per unit, the mean pairwise cosine similarity of the client deltas ``update - previous``.

    Only clients that kept the unit take part; the result is NaN where fewer than
    two did. A zero delta has cosine 0 with everything. Returns float64 [units].
    """
    units = _check_units(previous, updates, kept, axis, unit_size)
    base = as_units(previous, axis, unit_size).reshape(units, -1)  # (U, m)
    ups = torch.stack([as_units(t, axis, unit_size).reshape(units, -1) for t in updates])  # (C, U, m)
    return agreement_units(base, ups, kept)
