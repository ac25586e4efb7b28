"""Exercise fedheads' CUDA training path on a GPU machine and compare it with the CPU.

Runs short federated jobs with tiny models on device=cuda (mask and drop modes,
BERT, T5 and Llama with GQA), checks that the figures are finite and that
training lowers the loss, and compares one round on CUDA with the same round on
the CPU. Prints a markdown table. Usage: python bench/gpu_check.py
"""

from __future__ import annotations

import math
import sys
import time

import torch

from fedcore.context import build_context
from fedcore.simulation import run_simulation
from fedcore.spec import preset


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 1
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    rows = []
    ok = True
    cases = [
        ("tiny-bert mask s=0.5", {}),
        ("tiny-bert drop s=0.9", {"prune_mode": "drop", "sparsity": 0.9}),
        ("tiny-t5 drop s=0.5", {"model": "tiny-t5", "prune_mode": "drop"}),
        ("tiny-llama drop s=0.5 gradient", {"model": "tiny-llama", "prune_mode": "drop", "importance": "gradient"}),
    ]
    for name, ov in cases:
        spec = preset("smoke", device="cuda", **ov)
        t0 = time.perf_counter()
        ctx = build_context(spec)
        assert ctx.device.type == "cuda"
        run = run_simulation(spec, context=ctx)
        dt = time.perf_counter() - t0
        losses = [r.metrics["loss"] for r in run.rounds]
        acc = run.rounds[-1].metrics.get("accuracy")
        finite = all(math.isfinite(x) for x in losses)
        fell = losses[-1] < losses[0]
        ok &= finite and fell
        rows.append((name, f"{losses[0]:.4f}", f"{losses[-1]:.4f}", f"{acc:.3f}", f"{dt:.1f}", finite and fell))
    print("| case | eval loss r1 | eval loss last | accuracy | seconds | ok |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(map(str, r)) + " |")
    # CUDA vs CPU: one round, same seed
    diffs = []
    for ov in ({}, {"prune_mode": "drop", "sparsity": 0.5}):
        res = {}
        for dev in ("cpu", "cuda"):
            spec = preset("smoke", rounds=1, device=dev, **ov)
            run = run_simulation(spec, context=build_context(spec))
            res[dev] = run.rounds[0]
        a, b = res["cpu"], res["cuda"]
        same_sel = a.selection["selected"] == b.selection["selected"]
        dl = abs(a.metrics["loss"] - b.metrics["loss"])
        diffs.append((ov.get("prune_mode", "mask"), same_sel, f"{dl:.2e}", a.bytes_up == b.bytes_up))
        ok &= same_sel and dl < 5e-2
    print("\n| mode | same selection | abs eval-loss diff cpu vs cuda | same bytes |")
    print("|---|---|---|---|")
    for d in diffs:
        print("| " + " | ".join(map(str, d)) + " |")
    print("\nRESULT:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
