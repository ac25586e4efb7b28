"""W1 on CUDA: fedheads against the bare transformers+peft loop, side by side (issue 23, the GPU part).

The workload is bench/peer_flower.py's W1 (MiniLM-L6 + LoRA r=8, 20,000 SNLI rows over 20 IID
clients, 4 a round, 10 AdamW steps of batch 16 at 64 tokens, dense FedAvg, 1,000 test pairs
evaluated after every round, 3 rounds), with every row on one GPU:

- the bare loop (``bench/peers/w1.py bare --device cuda``): the physical work, nothing else;
- ``fedheads run`` with ``device=cuda`` (``python -m fedcore.cli run``), with the default probe
  passes and with ``probe_passes=needed``.

Each row is a child process timed from its start to its exit; repetitions alternate the rows,
and the table gives medians. A warm round is timed from the end of the round before to its own
evaluation's end (bench/peer_flower.py's figures). The target: fedheads within 1.2x of the bare
loop per warm round. ``--rounds`` adds a longer W1 (same everything, more rounds) whose warm
median rests on more rounds. ``--profile`` runs each row once more under cProfile and appends the
functions with the most cumulative time in the federated loop.

Flower is not among the rows: its Ray wheels are larger than the device tool carries (64 MiB in all,
bench/peers/carry.py).

    python bench/peer_flower_gpu.py                     # 3 repetitions of W1 on cuda
    python bench/peer_flower_gpu.py --rounds 3 10 --profile
    python bench/peer_flower_gpu.py --device cpu --quick  # the mechanics, on a machine without a GPU
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from peer_flower import QUICK, W1_SPEC, Impl, run_once  # noqa: E402

BARE = "bare transformers+peft loop"
FH = "fedheads run"
FH_LEAN = "fedheads run, probe_passes needed"


def row_set(spec: dict, out: Path, device: str, tag: str) -> list[Impl]:
    w1 = str(ROOT / "bench" / "peers" / "w1.py")
    spec_path = out / f"w1-{tag}.json"
    spec_path.write_text(json.dumps({**spec, "device": device}), encoding="utf-8")
    size = ["--rounds", str(spec["rounds"]), "--train", str(spec["max_train_examples"]), "--eval",
            str(spec["eval_size"]), "--steps", str(spec["local_steps"])]
    fh = [sys.executable, "-m", "fedcore.cli", "run", str(spec_path)]
    return [Impl(BARE, "bare", [sys.executable, w1, "bare", "--device", device, *size]),
            Impl(FH, "fedheads", fh),
            Impl(FH_LEAN, "fedheads", [*fh, "--set", "probe_passes=needed"])]


def table(impls: list[Impl]) -> str:
    med = {i.name: {k: statistics.median(r[k] for r in i.results) for k in ("total", "first", "warm", "accuracy")}
           for i in impls}
    bare = med[BARE]
    lines = ["| implementation | total wall s | first round (cold) s | warm round s | final accuracy | "
             "vs bare, total | vs bare, warm rounds |", "|---|---:|---:|---:|---:|---:|---:|"]
    for i in impls:
        m = med[i.name]
        lines.append(f"| {i.name} | {m['total']:.2f} | {m['first']:.2f} | {m['warm']:.3f} | {m['accuracy']:.3f} | "
                     f"{m['total'] / bare['total']:.2f}x | {m['warm'] / bare['warm']:.2f}x |")
    lines += ["", "Every repetition (total s / first s / warm s; the warm rounds):", ""]
    for i in impls:
        lines.append(f"- {i.name}: " + "; ".join(
            f"{r['total']:.2f} / {r['first']:.2f} / {r['warm']:.3f} ({', '.join(f'{x:.3f}' for x in r['rounds'][1:])})"
            for r in i.results))
    return "\n".join(lines)


def profile(impl: Impl, out: Path, top: int) -> str:
    """The row once more under cProfile: the functions with the most own time, and the loop's own code by
    cumulative time."""
    prof = out / f"{impl.kind}-{abs(hash(impl.name)) % 10_000}.prof"
    argv = list(impl.argv)
    if impl.kind == "fedheads":
        argv += ["--out", str(out / f"prof-{prof.stem}")]
    # `python -m cProfile -o FILE -m module` / `python -m cProfile -o FILE script.py`
    cmd = [argv[0], "-m", "cProfile", "-o", str(prof), *argv[1:]]
    subprocess.run(cmd, check=True, cwd=out, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
    parts = []
    for title, keys, restrict in (("own time (tottime)", ("tottime",), ()),
                                  ("cumulative time, the federated loop's own code", ("cumulative",),
                                   ("fedcore/" if impl.kind == "fedheads" else "w1.py",))):
        text = io.StringIO()
        pstats.Stats(str(prof), stream=text).sort_stats(*keys).print_stats(*restrict, top)
        body = text.getvalue()
        body = body[body.find("   ncalls"):] if "   ncalls" in body else body
        parts.append(f"{title}:\n\n```\n{body.rstrip()}\n```")
    return f"#### {impl.name}\n\n" + "\n\n".join(parts) + "\n"


def versions(device: str) -> str:
    import peft
    import torch
    import transformers

    dev = torch.cuda.get_device_name(0) if device == "cuda" and torch.cuda.is_available() else device
    return f"device {dev}; torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rounds", type=int, nargs="+", default=[3], help="W1 with each of these round counts")
    ap.add_argument("--quick", action="store_true", help="1 repetition of a tiny W1")
    ap.add_argument("--profile", action="store_true",
                    help="after the first W1: the bare and the lean fedheads row once more under cProfile")
    ap.add_argument("--top", type=int, default=25, help="--profile: functions shown per row")
    args = ap.parse_args()
    from _report import save

    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("no CUDA device: nothing to measure (try --device cpu for the mechanics)", file=sys.stderr)
            return 1
    reps = 1 if args.quick else args.reps
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    sections = [f"W1 on one device ({versions(args.device)}). Medians of {reps} repetition(s), rows alternated "
                "within each repetition; the target is fedheads within 1.2x of the bare loop per warm round."]
    with tempfile.TemporaryDirectory(prefix="peer_gpu-") as tmp:
        out = Path(tmp)
        for n_rounds in args.rounds:
            spec = {**W1_SPEC, **(QUICK if args.quick else {}), "rounds": n_rounds}
            part = out / f"r{n_rounds}"  # run folders of their own (run_once names them by row and rep)
            part.mkdir()
            impls = row_set(spec, part, args.device, f"r{n_rounds}")
            for rep in range(reps):
                for impl in impls:
                    r = run_once(impl, part, rep)
                    impl.results.append(r)
                    print(f"  r{n_rounds} rep {rep + 1} {impl.name}: total {r['total']:.2f} s, rounds "
                          f"{', '.join(f'{x:.3f}' for x in r['rounds'])} s, acc {r['accuracy']:.3f}",
                          file=sys.stderr, flush=True)
            sections.append(f"### W1, {n_rounds} rounds\n\n{table(impls)}\n\nSpec: `{json.dumps(spec)}`")
            save("peer_flower_gpu", "\n\n".join(sections), args)  # after each part: a time limit keeps what ran
            if args.profile and n_rounds == args.rounds[0]:  # right after the first part, before any longer W1
                parts = [profile(impl, part, args.top) for impl in (impls[0], impls[2])]
                sections.append("### Profiles (cProfile, the whole process, first W1)\n\n" + "\n\n".join(parts))
                save("peer_flower_gpu", "\n\n".join(sections), args)
    text = "\n\n".join(sections)
    print(text)
    save("peer_flower_gpu", text, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
