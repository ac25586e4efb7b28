"""The server's own work per round as the number of registered clients grows.

For K = 100 ... 100,000 registered clients with M = 10 selected per round, time
one server round without client training: selection (``loss_gap`` with every
client's feedback state, and ``random``), reading and aggregating 10 synthetic
uploads of the real MiniLM-L6 LoRA shapes (6 blocks x 12 heads, d = 32, r = 8,
q/k/v/o, s = 0.9, head-weighted), byte accounting, and the per-round checkpoint
(global state as safetensors + selection state). Each K runs in a fresh process
so its peak memory (VmHWM) is its own. Prints a markdown table and saves it under
bench/results/.

    python bench/server_scale.py            # K = 100, 1k, 10k, 100k; 20 rounds each
    python bench/server_scale.py --quick    # K = 100, 1k; loss_gap only; 5 rounds
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(num_clients: int, rounds: int, selection: str, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)

    from fedcore.accounting import payload_bytes, serialize_payload
    from fedcore.lora_state import LoraLayout
    from fedcore.models.base import AttentionBlock
    from fedcore.pruning import choose_kept
    from fedcore.selection import ClientFeedback, make_selector
    from fedcore.server import aggregate_updates
    from fedcore.simulation import save_checkpoint
    from fedcore.spec import preset

    blocks, state = [], {}
    for i in range(6):
        p = f"bert.encoder.layer.{i}.attention"
        b = AttentionBlock(index=i, name=f"enc.{i}", group="encoder", layer=i, module=f"{p}.self",
                           q=f"{p}.self.query", k=f"{p}.self.key", v=f"{p}.self.value", o=f"{p}.output.dense",
                           num_heads=12, num_kv_heads=12, head_dim=32)
        blocks.append(b)
        for path in (b.q, b.k, b.v, b.o):
            state[f"base_model.model.{path}.lora_A.weight"] = torch.randn(8, 384)
            state[f"base_model.model.{path}.lora_B.weight"] = torch.zeros(384, 8)
    state["base_model.model.classifier.modules_to_save.default.weight"] = torch.randn(3, 384)
    layout = LoraLayout(state, blocks)
    spec = preset("paper-pruned", num_clients=num_clients, clients_per_round=10, selection=selection)
    gen = torch.Generator().manual_seed(0)
    num_examples = [50 + (i * 7919) % 200 for i in range(num_clients)]
    selector = make_selector(selection, num_clients=num_clients, per_round=10, num_examples=num_examples, seed=0)
    # every client has participated once: the selector carries K feedback entries
    selector.update([ClientFeedback(client=c, round=0, loss_global=1.1, loss_local=1.0 - (c % 97) / 1000,
                                    kept=None) for c in range(num_clients)])
    base_rss = _peak_rss_mb()
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(1, rounds + 1):
            # synthetic uploads, built outside the timed region (they come from the clients)
            uploads, imps = [], []
            for _ in range(10):
                imp = torch.rand(6, 12, generator=gen)
                kept = choose_kept(imp, 0.9)
                local = {k: v + 0.01 * torch.randn(v.shape, generator=gen) for k, v in state.items()}
                uploads.append(serialize_payload(layout.upload(layout.slice_state(local, kept), kept, imp)))
                imps.append(kept)
            t0 = time.perf_counter()
            record = selector.select(rnd)
            agg = aggregate_updates(spec, layout, state, uploads, [num_examples[c] for c in record.selected])
            state = agg.state
            selector.update([ClientFeedback(client=c, round=rnd, loss_global=1.0, loss_local=0.9,
                                            kept=imps[i].tolist()) for i, c in enumerate(record.selected)])
            sent = sum(len(u) for u in uploads) + 10 * payload_bytes(state)
            save_checkpoint(Path(tmp), rnd, state, selector.state_dict(), [])
            times.append(time.perf_counter() - t0)
            assert sent > 0
    return {"clients": num_clients, "selection": selection, "median_ms": statistics.median(times) * 1000,
            "p90_ms": sorted(times)[int(0.9 * (len(times) - 1))] * 1000,
            "peak_rss_mb": _peak_rss_mb(), "rss_over_base_mb": _peak_rss_mb() - base_rss}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads of the server process (default 1: its tensors are small, and "
                         "on a busy machine extra threads only wait on each other)")
    ap.add_argument("--child", nargs=3, metavar=("K", "ROUNDS", "SELECTION"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(int(args.child[0]), int(args.child[1]), args.child[2], args.threads)))
        return 0
    sizes = [100, 1000] if args.quick else [100, 1000, 10_000, 100_000]
    rounds = 5 if args.quick else 20
    rows = []
    for selection in ("loss_gap",) if args.quick else ("loss_gap", "random"):
        for k in sizes:
            out = subprocess.run([sys.executable, __file__, "--threads", str(args.threads), "--child", str(k),
                                  str(rounds), selection],
                                 capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"  K={k:>6} {selection}: {rows[-1]['median_ms']:.1f} ms", file=sys.stderr)
    sys.path.insert(0, str(ROOT / "bench"))
    from _report import save

    lines = ["| registered clients | selection | median ms / round | p90 ms | peak RSS MB | growth vs previous K |",
             "|---:|---|---:|---:|---:|---:|"]
    prev: dict[str, float] = {}
    for r in rows:
        growth = f"{r['median_ms'] / prev[r['selection']]:.2f}x" if r["selection"] in prev else "-"
        prev[r["selection"]] = r["median_ms"]
        lines.append(f"| {r['clients']:,} | {r['selection']} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} | "
                     f"{r['peak_rss_mb']:.0f} | {growth} |")
    at10k = [r for r in rows if r["clients"] == 10_000 and r["selection"] == "loss_gap"]
    if at10k:
        ms = at10k[0]["median_ms"]
        verdict = f"{'met' if ms < 100 else 'NOT met'} ({ms:.1f} ms)"
    else:
        verdict = "not measured (--quick)"
    verdict = (f"\nTarget, under 100 ms per round at 10,000 clients (loss_gap): {verdict}. "
               "Linear growth would be 10x per row; the last column shows the measured growth. "
               f"torch threads: {args.threads}; {rounds} rounds per row, 10 clients selected per round.")
    table = "\n".join(lines) + "\n" + verdict
    print(table)
    save("server_scale", table, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
