"""fedheads against Flower's simulation engine (Ray) and a bare loop on one workload, W1 (issue 23).

W1: all-MiniLM-L6-v2 + LoRA r=8 on q/k/v/o (classifier trained), the first 20,000 SNLI train rows
over 20 IID clients, 4 clients a round at random, 10 AdamW steps (lr 1e-3, wd 0.01) of batch 16
at 64 tokens, dense FedAvg, the global model evaluated on 1,000 test pairs after every round,
3 rounds (``bench/peers/w1.py`` writes the bare loop and the Flower apps on transformers, peft
and Flower's own API).

Every implementation is a child process, timed from its start to its exit; the repetitions
alternate the implementations (rep 1: A B C ..., rep 2: A B C ...) so the noise of a shared
machine hits all alike, and the table gives medians and ratios to Flower's best. Per round:
the first (cold: Ray's actors or fedheads' worker processes start inside it) and the median
of the later (warm) rounds, from the loop's start and each round's evaluation. Peak RSS sums
the resident memory of the whole process tree (Ray's raylet, GCS and actors included),
sampled every 0.2 s.

Flower is optional (``pip install -e '.[peers]'``, or a separate environment: see
bench/README.md); without it the Flower rows are skipped and the output says so.

    python bench/peer_flower.py                 # 3 repetitions, every implementation
    python bench/peer_flower.py --reps 5 --only "fedheads run (sequential)" "Flower (Ray, 2 actors x 1 thread)"
    python bench/peer_flower.py --quick         # 1 repetition of a tiny W1 (2 rounds, 2 steps, 2,000 rows)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

W1_SPEC = {"model": "minilm-l6", "dataset": "snli", "max_train_examples": 20000, "eval_size": 1000,
           "eval_batch_size": 64, "partition": "iid", "num_clients": 20, "clients_per_round": 4, "rounds": 3,
           "local_steps": 10, "batch_size": 16, "learning_rate": 1e-3, "weight_decay": 0.01, "max_seq_len": 64,
           "sparsity": 0.0, "aggregation": "fedavg", "selection": "random"}
QUICK = {"max_train_examples": 2000, "eval_size": 100, "rounds": 2, "local_steps": 2}
FLOWER_BEST = ("Flower (Ray, 2 actors x 1 thread)", "Flower (Ray, 1 actor x 2 threads)")


@dataclass
class Impl:
    name: str
    kind: str  # "bare" | "flower" | "fedheads"
    argv: list[str]
    results: list[dict] = field(default_factory=list)


def flower_python() -> str | None:
    """An interpreter that imports flwr: this one, FEDHEADS_PEERS_PYTHON, or the repo's .venv-peers."""
    cands = [sys.executable, os.environ.get("FEDHEADS_PEERS_PYTHON", ""), str(ROOT / ".venv-peers" / "bin" / "python")]
    for py in cands:
        if py and Path(py).exists() and subprocess.run([py, "-c", "import flwr.simulation, ray"],
                                                       capture_output=True).returncode == 0:
            return py
    return None


def implementations(spec: dict, out: Path, flower_py: str | None) -> list[Impl]:
    w1 = str(ROOT / "bench" / "peers" / "w1.py")
    size = ["--rounds", str(spec["rounds"]), "--train", str(spec["max_train_examples"]), "--eval",
            str(spec["eval_size"]), "--steps", str(spec["local_steps"])]
    spec_path = out / "w1.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    fh = [str(Path(sys.executable).with_name("fedheads")), "run", str(spec_path)]
    impls = [Impl("bare transformers+peft loop (2 threads)", "bare", [sys.executable, w1, "bare", "--threads", "2", *size])]
    if flower_py is not None:
        impls += [Impl(FLOWER_BEST[0], "flower", [flower_py, w1, "flower", "--actors", "2", "--threads", "1", *size]),
                  Impl(FLOWER_BEST[1], "flower", [flower_py, w1, "flower", "--actors", "1", "--threads", "2", *size])]
    # threads are a spec field (num_threads): training and evaluation give bit-identical figures only at the
    # same thread count, so --workers 2 with one thread each is asked for with num_threads=1
    lean = ["--set", "probe_passes=needed"]
    impls += [Impl("fedheads run (sequential)", "fedheads", fh),
              Impl("fedheads run (sequential, probe_passes needed)", "fedheads", [*fh, *lean]),
              Impl("fedheads run --workers 2 (num_threads 1, probe_passes needed)", "fedheads",
                   [*fh, "--workers", "2", "--set", "num_threads=1", *lean])]
    return impls


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and every descendant (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            children.setdefault(int(fields[1]), []).append(int(d.name))
            rss[int(d.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo += children.get(p, [])
    return total


def run_once(impl: Impl, out: Path, rep: int) -> dict:
    argv = list(impl.argv)
    run_dir = out / f"{impl.kind}-{rep}-{abs(hash(impl.name)) % 10_000}"
    if impl.kind == "fedheads":
        argv += ["--out", str(run_dir)]
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    log = (out / f"{run_dir.name}.log").open("w")
    t_start = time.time()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, text=True, cwd=out, env=env,
                            start_new_session=True)
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss(proc.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert proc.stdout is not None
    events = [json.loads(line[len("W1EVENT "):]) for line in proc.stdout if line.startswith("W1EVENT ")]
    rc = proc.wait()
    total = time.time() - t_start
    sampler.join()
    with contextlib.suppress(ProcessLookupError):  # what the child left behind (Ray's daemons): its session only
        os.killpg(proc.pid, 9)
    log.close()
    if rc != 0:
        raise SystemExit(f"{impl.name} failed (exit {rc}); see {log.name}")
    if impl.kind == "fedheads":
        rounds = json.loads((run_dir / "results.json").read_text())["rounds"]
        start = rounds[0]["finished_at"] - rounds[0]["wall_time"]
        ends = [r["finished_at"] for r in rounds]
        acc = rounds[-1]["metrics"]["accuracy"]
    else:
        start = next(e["t"] for e in events if e["event"] == "start")
        rnds = sorted((e for e in events if e["event"] == "round"), key=lambda e: e["round"])
        ends = [e["t"] for e in rnds]
        acc = rnds[-1]["accuracy"]
    per_round = [b - a for a, b in zip([start, *ends[:-1]], ends, strict=True)]
    return {"total": total, "first": per_round[0], "warm": statistics.median(per_round[1:]) if len(per_round) > 1
            else float("nan"), "rounds": per_round, "peak_rss": peak[0], "accuracy": acc}


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def table(impls: list[Impl], reps: int) -> str:
    med = {i.name: {k: statistics.median(r[k] for r in i.results) for k in ("total", "first", "warm", "peak_rss",
                                                                            "accuracy")} for i in impls}
    flowers = [n for n in FLOWER_BEST if n in med]
    ref_total = min((med[n]["total"] for n in flowers), default=None)
    ref_warm = min((med[n]["warm"] for n in flowers), default=None)
    lines = ["| implementation | total wall s | first round (cold) s | warm round s | peak RSS MB | final accuracy "
             "| vs Flower's best, total | vs Flower's best, warm rounds |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for i in impls:
        m = med[i.name]
        vs_t = f"{m['total'] / ref_total:.2f}x" if ref_total else "n/a"
        vs_w = f"{m['warm'] / ref_warm:.2f}x" if ref_warm else "n/a"
        lines.append(f"| {i.name} | {m['total']:.1f} | {m['first']:.1f} | {m['warm']:.1f} | "
                     f"{m['peak_rss'] / 2**20:.0f} | {m['accuracy']:.3f} | {vs_t} | {vs_w} |")
    lines.append("")
    lines.append(f"Medians of {reps} repetition(s), implementations alternated within each repetition. Every "
                 "repetition's figures (total s / first s / warm s):")
    lines.append("")
    for i in impls:
        reps_txt = "; ".join(f"{r['total']:.1f} / {r['first']:.1f} / {r['warm']:.1f}" for r in i.results)
        lines.append(f"- {i.name}: {reps_txt}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 repetition of a tiny W1")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", nargs="*", help="implementation names to run (default: all)")
    args = ap.parse_args()
    from _report import save

    spec = {**W1_SPEC, **(QUICK if args.quick else {})}
    reps = 1 if args.quick else args.reps
    flower_py = flower_python()
    notes = []
    if flower_py is None:
        notes.append("Flower is not installed (no interpreter here imports flwr.simulation and ray): the Flower "
                     "rows are skipped. Install the `peers` extra or set FEDHEADS_PEERS_PYTHON.")
        print("NOTE: " + notes[-1], file=sys.stderr)
    loads = [loadavg()]
    with tempfile.TemporaryDirectory(prefix="peer_flower-") as tmp:
        out = Path(tmp)
        impls = implementations(spec, out, flower_py)
        if args.only:
            impls = [i for i in impls if i.name in args.only]
        elif args.quick:  # one of each kind, so the test's run stays well inside its time limit
            impls = [i for i in impls if i.name not in (FLOWER_BEST[1], "fedheads run (sequential)")]
        for rep in range(reps):
            for impl in impls:
                r = run_once(impl, out, rep)
                impl.results.append(r)
                print(f"  rep {rep + 1} {impl.name}: total {r['total']:.1f} s, rounds "
                      f"{', '.join(f'{x:.1f}' for x in r['rounds'])} s, peak {r['peak_rss'] / 2**20:.0f} MB, "
                      f"acc {r['accuracy']:.3f} (load {loadavg()})", file=sys.stderr)
            loads.append(loadavg())
    text = table(impls, reps)
    text += (f"\n\nLoad average (1, 5, 15 min) before the run and after each repetition: {' | '.join(loads)}. "
             "The machine is shared: other engineers ran training and tests on it at the same time, so "
             "absolute seconds are noisy; compare the ratios of one alternated run.")
    if notes:
        text += "\n\n" + "\n".join(notes)
    text += "\n\nW1 as a fedheads spec: `" + json.dumps(spec) + "`"
    print(text)
    save("peer_flower", text, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
