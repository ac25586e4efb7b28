"""OPs of two issue-17 ideas that keep the full forward, beside a dense and a drop-mode training step.

    python bench/distill_ops.py

MiniLM-L6 (the paper-table model), one local batch of 16 SNLI pairs from client 0;
FlopCounterMode counts every matrix product of the forward (and backward). Self-distillation
with the received full model as teacher on the local batches adds a forward of the full model
(without gradients) to every drop-mode step; this prints what that leaves of drop mode's saving
at s = 0.9 and 0.5 (random kept heads, global ranking). The figures are quoted in docs/method.md
("Self-distillation").

The second table bounds the other idea: a forward that keeps every head but runs the backward of the
uploaded heads only (the others frozen, their attention path cut from the graph). Its forward is the
dense forward, and its backward can be no cheaper than the backward of a drop-mode step that keeps
the same heads (which has no pruned head anywhere), so dense / (dense forward + drop backward) is the
most it can save, whatever the implementation (docs/method.md, "Skipping the pruned heads' backward").
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
    print()
    print("| sparsity | drop forward GFLOP | drop backward GFLOP | full forward + drop backward GFLOP | saving at most |")
    print("|---:|---:|---:|---:|---:|")
    scores = torch.rand(len(ctx.blocks), ctx.blocks[0].num_heads, generator=torch.Generator().manual_seed(0))
    split: dict[float, tuple[float, float]] = {}  # sparsity -> (forward, backward) of a drop step; nested kept sets
    for s in (0.9, 0.5):
        model = dropped_copy(ctx.model, ctx.blocks, choose_kept(scores, s), prefix=PEFT_PREFIX, scaling=False)
        step, fwd = train_step(model), forward(model)
        split[s] = (fwd, step - fwd)
        bound = teacher + (step - fwd)
        print(f"| {s} | {fwd / 1e9:.2f} | {(step - fwd) / 1e9:.2f} | {bound / 1e9:.2f} | {dense / bound:.2f}x |")
    # with two sparsities: heads outside compute s = 0.5 removed, the rest forward, only the uploaded 10% backward
    both = split[0.5][0] + split[0.9][1]
    print(f"\ncompute s = 0.5 removed, upload s = 0.9 the only heads with a backward: at most {both / 1e9:.2f} GFLOP, "
          f"{dense / both:.2f}x")


if __name__ == "__main__":
    main()
