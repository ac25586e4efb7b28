"""OPs of a self-distillation teacher forward beside a dense and a drop-mode training step.

    python bench/distill_ops.py

MiniLM-L6 (the paper-table model), one local batch of 16 SNLI pairs from client 0;
FlopCounterMode counts every matrix product of the forward (and backward). Self-distillation
with the received full model as teacher on the local batches adds a forward of the full model
(without gradients) to every drop-mode step; this prints what that leaves of drop mode's saving
at s = 0.9 and 0.5 (random kept heads, global ranking). The figures are quoted in docs/method.md
("Self-distillation").
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fedcore.client import batches  # noqa: E402
from fedcore.context import build_context  # noqa: E402
from fedcore.lora_state import PEFT_PREFIX  # noqa: E402
from fedcore.models.families import Batch  # noqa: E402
from fedcore.pruning import choose_kept  # noqa: E402
from fedcore.redraw import dropped_copy  # noqa: E402
from fedcore.spec import preset  # noqa: E402


def main() -> None:
    ctx = build_context(preset("paper-pruned"))
    batch: Batch = next(batches(ctx, ctx.client_indices[0][:16], 16))

    def train_step(model: nn.Module) -> float:
        with FlopCounterMode(display=False) as fc:
            ctx.family.loss(model, batch).backward()
        model.zero_grad(set_to_none=True)
        return float(fc.get_total_flops())

    def forward(model: nn.Module) -> float:
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            ctx.family.loss(model, batch)
        return float(fc.get_total_flops())

    dense, teacher = train_step(ctx.model), forward(ctx.model)
    print(f"batch {tuple(batch['input_ids'].shape)}; dense training step {dense / 1e9:.2f} GFLOP, "
          f"teacher forward {teacher / 1e9:.2f} GFLOP")
    print("| sparsity | drop step GFLOP | saving | drop step + teacher GFLOP | saving |")
    print("|---:|---:|---:|---:|---:|")
    gen = torch.Generator().manual_seed(0)
    for s in (0.9, 0.5):
        kept = choose_kept(torch.rand(len(ctx.blocks), ctx.blocks[0].num_heads, generator=gen), s)
        drop = train_step(dropped_copy(ctx.model, ctx.blocks, kept, prefix=PEFT_PREFIX, scaling=False))
        print(f"| {s} | {drop / 1e9:.2f} | {dense / drop:.2f}x | {(drop + teacher) / 1e9:.2f} | "
              f"{dense / (drop + teacher):.2f}x |")


if __name__ == "__main__":
    main()
