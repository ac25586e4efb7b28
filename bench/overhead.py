"""fedheads' client training against a bare transformers + peft loop.

Same model (MiniLM-L6 + LoRA r=8 on q/k/v/o, classifier trained), same batches
(the client's seeded order), same optimizer (AdamW). The two loops are timed
alternately, repetition by repetition, so machine noise hits both alike; the
table gives median seconds per step and the ratio. Target: ratio <= 1.10.

fedheads' figure is its local-training loop (`train_time`: collation, forward,
backward, optimizer, mask-mode slice restore, OPs accounting). Its whole client
round (importance, the loss-gap probes, serialising the upload) is reported in
a second column, as the method's own work beside plain training.

    python bench/overhead.py            # 5 repetitions x 20 steps, dense and s=0.5 mask
    python bench/overhead.py --quick    # 2 repetitions x 5 steps, dense only
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def bare_loop(ctx, examples_order: list[list[int]], lr: float) -> float:  # type: ignore[no-untyped-def]
    """Plain transformers + peft training on the given batches; returns seconds."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from fedcore.assets import minilm_model_dir

    path = str(minilm_model_dir())
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=3, attn_implementation="eager")
    tok = AutoTokenizer.from_pretrained(path)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=[
        "query", "key", "value", "attention.output.dense"], modules_to_save=["classifier"]))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    model.train()
    train = ctx.data.train
    t0 = time.perf_counter()
    for chosen in examples_order:
        exs = [train[i] for i in chosen]
        enc = tok([e.text for e in exs], [e.text_pair for e in exs], max_length=64, truncation=True,
                  padding="longest", return_tensors="pt")
        out = model(**enc, labels=torch.tensor([e.label for e in exs]))
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
    return time.perf_counter() - t0


def batch_order(ctx, client: int, round_: int, steps: int) -> list[list[int]]:  # type: ignore[no-untyped-def]
    """The batches fedheads' client draws (same seeded permutation as fedcore.client)."""
    import numpy as np

    from fedcore.client import client_seed

    spec = ctx.spec
    idx = ctx.client_indices[client]
    rng = np.random.default_rng(client_seed(spec.seed, round_, client))
    order: list[int] = []
    out = []
    for _ in range(steps):
        if len(order) < spec.batch_size:
            order += [idx[i] for i in rng.permutation(len(idx))]
        out.append(order[: spec.batch_size])
        order = order[spec.batch_size :]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    import torch
    from _report import save

    from fedcore.client import ClientTask, train_client
    from fedcore.context import build_context
    from fedcore.spec import preset

    torch.set_num_threads(2)
    reps, steps = (2, 5) if args.quick else (5, 20)
    modes = [("dense", {"sparsity": 0.0})] if args.quick else [("dense", {"sparsity": 0.0}),
                                                               ("mask s=0.5", {"sparsity": 0.5})]
    lines = ["| mode | fedheads s/step (training loop) | bare loop s/step | ratio | fedheads whole client round s/step |",
             "|---|---:|---:|---:|---:|"]
    worst = 0.0
    for name, ov in modes:
        spec = preset("demo", local_steps=steps, num_threads=2, **ov)
        ctx = build_context(spec)
        ours, bare, whole = [], [], []
        for rep in range(reps + 1):  # first repetition warms up both and is dropped
            order = batch_order(ctx, client=0, round_=rep + 1, steps=steps)
            upd = train_client(ctx, ClientTask(round=rep + 1, client=0, global_state=ctx.initial_state))
            b = bare_loop(ctx, order, spec.learning_rate)
            if rep:
                ours.append(upd.train_time / steps)
                whole.append(upd.wall_time / steps)
                bare.append(b / steps)
            print(f"  {name} rep {rep}: fedheads {upd.train_time / steps:.3f} s/step, bare {b / steps:.3f}",
                  file=sys.stderr)
        ratios = [o / b for o, b in zip(ours, bare, strict=True)]
        ratio = statistics.median(ratios)
        worst = max(worst, ratio)
        lines.append(f"| {name} | {statistics.median(ours):.3f} | {statistics.median(bare):.3f} | {ratio:.3f} | "
                     f"{statistics.median(whole):.3f} |")
    table = "\n".join(lines) + (
        f"\n\nratio = median over repetitions of (fedheads / bare) time per step, each pair measured back to back; "
        f"{reps} repetitions x {steps} steps after one warm-up, batch 16, max 64 tokens. "
        f"Target <= 1.10: {'met' if worst <= 1.10 else 'NOT met'} (worst {worst:.3f}).")
    print(table)
    save("overhead", table, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
