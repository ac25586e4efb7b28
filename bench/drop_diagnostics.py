"""Diagnostics before tuning drop mode: is the drop code path exact, and what does the classifier alone learn?

1. **Exactness.** One client round of the paper-table federation (MiniLM-L6 + SNLI) through
   the drop code path (a copy of the model, ``drop_heads``, the copy's state uploaded) with
   every head kept, against dense training of the same client: the loss of every local
   step, the local loss after training and the upload must be equal.
2. **Learning.** The paper-table federation for a few rounds: dense, a classifier-only
   linear probe (the LoRA adapters frozen at their zero update; only the classifier
   trains), and drop mode at s = 0.1 (7 of 72 heads removed, global ranking), which must
   track dense within the round-to-round noise if drop mode has no defect.

    python bench/drop_diagnostics.py            # 6 rounds of each learning run (about 20 minutes on 2 cores)
    python bench/drop_diagnostics.py --quick    # 1 round x 2 steps: a smoke check
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

# 72 heads: round((1 - 0.005) * 72) = 72 are kept, so the drop path runs with nothing dropped
EVERY_HEAD = 0.005


@contextmanager
def classifier_only() -> Iterator[None]:
    """Local training updates the classifier (``modules_to_save``) only: a linear probe of the model's features."""
    import fedcore.client as client

    plain = client._trainable
    client._trainable = lambda model: [p for n, p in model.named_parameters()  # type: ignore[assignment]
                                       if p.requires_grad and "modules_to_save" in n]
    try:
        yield
    finally:
        client._trainable = plain  # type: ignore[assignment]


def exactness(base: dict[str, Any]) -> list[str]:
    from fedcore.client import ClientTask, train_client
    from fedcore.context import build_context
    from fedcore.spec import preset

    dense_ctx = build_context(preset("paper-dense", **base))
    drop_ctx = build_context(preset("paper-dense", **{**base, "sparsity": EVERY_HEAD, "prune_mode": "drop"}))
    task = ClientTask(round=1, client=0, global_state=dense_ctx.initial_state)
    dense, drop = train_client(dense_ctx, task), train_client(drop_ctx, task)
    kept = sum(map(sum, drop.kept))
    same = drop.step_losses == dense.step_losses and drop.payload == dense.payload
    lines = ["| run | heads kept | loss per local step | local loss after | upload bytes |", "|---|---:|---|---:|---:|"]
    for name, u in (("dense", dense), (f"drop, s = {EVERY_HEAD}", drop)):
        lines.append(f"| {name} | {sum(map(sum, u.compute))} | {', '.join(f'{x:.4f}' for x in u.step_losses)} | "
                     f"{u.loss_local:.6f} | {u.bytes_up} |")
    lines += ["", f"Drop path with all {kept} heads kept equals dense: **{'yes' if same else 'NO'}** (every step's "
              "loss and the upload's bytes compared exactly)."]
    return lines


def learning(base: dict[str, Any], rounds: int) -> list[str]:
    from fedcore.context import build_context
    from fedcore.simulation import run_simulation
    from fedcore.spec import preset

    runs: list[tuple[str, dict[str, Any], bool]] = [
        ("dense FedAvg", {}, False),
        ("linear probe (classifier only)", {}, True),
        ("drop s=0.1", {"sparsity": 0.1, "prune_mode": "drop", "aggregation": "head_weighted",
                        "selection": "loss_gap"}, False),
    ]
    rows = []
    for name, over, probe in runs:
        spec = preset("paper-dense", **{**base, **over, "rounds": rounds})
        t0 = time.perf_counter()
        with classifier_only() if probe else _nothing():
            run = run_simulation(spec, context=build_context(spec), on_round_end=lambda r, n=name: print(
                f"  {n}: round {r.round}, accuracy {r.metrics['accuracy']:.3f}", file=sys.stderr, flush=True))
        acc = [r.metrics["accuracy"] * 100 for r in run.rounds]
        train = [sum(c["train_loss"] for c in r.clients) / len(r.clients) for r in run.rounds]
        rows.append(f"| {name} | " + " | ".join(f"{a:.1f}" for a in acc) + f" | {train[-1]:.3f} | "
                    f"{time.perf_counter() - t0:.0f} |")
    head = "| run | " + " | ".join(f"r{i + 1}" for i in range(rounds)) + " | last local loss | seconds |"
    return [head, "|---|" + "---:|" * (rounds + 2), *rows]


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--skip-learning", action="store_true", help="only the exactness check (one client round)")
    args = ap.parse_args()
    base: dict[str, Any] = {"seed": 0}
    if args.quick:
        base.update(local_steps=2, eval_size=40, importance_samples=8, clients_per_round=2)
        args.rounds = 1
    from _report import save

    text = ["Exactness (one client round, seed 0):", "", *exactness(base)]
    if not args.skip_learning:
        text += ["", f"Learning: test accuracy (%) per round, paper-table federation, seed 0, {args.rounds} rounds:",
                 "", *learning(base, args.rounds)]
    table = "\n".join(text)
    print(table)
    save("drop_diagnostics", table, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
