"""Head importance scores, one [blocks x heads] matrix per client.

- ``confidence`` (Voita et al. 2019, "Analyzing Multi-Head Self-Attention",
  arXiv 1905.09418): the mean, over valid (non-padding) query positions, of the
  maximum attention weight of the head. Computed with the current global model
  in eval mode, eager attention, no gradients.
- ``gradient`` (Michel et al. 2019, "Are Sixteen Heads Really Better than One?",
  arXiv 1905.10650): the mean absolute gradient of the loss with respect to a
  gate multiplying each head's output, the gate held at 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

from fedcore.models.base import AttentionBlock
from fedcore.models.families import Batch, Family


def confidence_and_loss(
    family: Family,
    model: nn.Module,
    batches: Iterable[Batch],
    num_blocks: int,
    num_heads: int,
    *,
    exclude_ids: Sequence[int] = (),
) -> tuple[Tensor, float]:
    """Confidence importance, (blocks, heads): the mean over valid query positions of each head's
    maximum attention weight; and the model's mean per-example loss on the same batches, from the
    same forward passes (a client needs both from the global model on its sample; one pass instead of
    two per client)."""
    total = torch.zeros(num_blocks, num_heads, dtype=torch.float64)
    count = torch.zeros(num_blocks, 1, dtype=torch.float64)
    loss_sum, n = 0.0, 0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for batch in batches:
            maps, losses = family.attention_maps_and_loss(model, batch)
            loss_sum += float(losses.sum())
            n += losses.numel()
            if len(maps) != num_blocks:
                raise RuntimeError(f"expected {num_blocks} attention maps, got {len(maps)}")
            for b, m in enumerate(maps):
                conf = m.probs.float().amax(dim=-1)  # (B, H, Tq)
                valid = m.query_mask.bool()  # (B, Tq)
                if exclude_ids and m.query_ids is not None:  # decoder-side queries (T5) keep all
                    special = torch.isin(m.query_ids, torch.tensor(list(exclude_ids), device=valid.device))
                    valid = valid & ~special
                w = valid[:, None, :].to(conf.dtype)  # (B, 1, Tq)
                total[b] += (conf * w).sum(dim=(0, 2)).double().cpu()
                count[b] += w.sum().double().cpu()
    model.train(was_training)
    return (total / count.clamp(min=1)).float(), loss_sum / max(n, 1)


def gradient_importance(
    family: Family,
    model: nn.Module,
    batches: Iterable[Batch],
    blocks: Sequence[AttentionBlock],
    *,
    prefix: str = "",
) -> Tensor:
    """Mean |dL/d gate_h| with a unit gate on each head's input to the o projection. (blocks, heads)."""
    num_heads = blocks[0].num_heads
    gates = [torch.ones(num_heads, requires_grad=True) for _ in blocks]
    handles = []
    for b, gate in zip(blocks, gates, strict=True):
        o = model.get_submodule(prefix + b.o)

        def pre_hook(_mod: nn.Module, args: tuple, gate: Tensor = gate, d: int = b.head_dim) -> tuple:
            x = args[0]  # (B, T, H*d)
            shape = x.shape
            g = gate.to(x.device, x.dtype)
            x = (x.view(*shape[:-1], -1, d) * g[:, None]).view(shape)  # (B, T, H, d) gated
            return (x, *args[1:])

        handles.append(o.register_forward_pre_hook(pre_hook))
    total = torch.zeros(len(blocks), num_heads)
    n = 0
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            for g in gates:
                g.grad = None
            loss = family.loss(model, batch)
            grads = torch.autograd.grad(loss, gates, allow_unused=True)
            for i, gr in enumerate(grads):
                if gr is not None:
                    total[i] += gr.detach().abs().cpu()
            n += 1
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total / max(n, 1)
