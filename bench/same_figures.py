"""A speed change must not change a figure: compare a short W1-like run before and after it.

Runs ``fedheads run`` (fedcore's CLI) on a small W1-like spec with the code of git revision
``--before`` (extracted with ``git archive`` into a temporary folder, the working tree left alone)
and with the working tree, sequentially and with ``--workers 2`` (1 thread each), and compares the
two results.json files figure by figure: every field of every round record except the clocks
(wall times, finish times), which must be equal to the bit. Exit status 1 names what differs.

    python bench/same_figures.py --before HEAD~1
    python bench/same_figures.py --before 446b13d --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CLOCKS = {"wall_time", "finished_at", "train_time"}
SPEC = {"model": "minilm-l6", "dataset": "snli", "max_train_examples": 2000, "eval_size": 200,
        "eval_batch_size": 64, "partition": "iid", "num_clients": 20, "clients_per_round": 4, "rounds": 2,
        "local_steps": 3, "batch_size": 16, "learning_rate": 1e-3, "weight_decay": 0.01, "max_seq_len": 64,
        "sparsity": 0.0, "aggregation": "fedavg", "selection": "random"}


def figures(x: Any) -> Any:
    """The record without its clocks."""
    if isinstance(x, dict):
        return {k: figures(v) for k, v in x.items() if k not in CLOCKS}
    if isinstance(x, list):
        return [figures(v) for v in x]
    return x


def diff(a: Any, b: Any, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        # a field a newer version adds empty (a round's 'skipped' passes) is no figure that changed
        out = [f"{where}.{k}: only in one" for k in sorted(set(a) ^ set(b)) if (a.get(k), b.get(k)) != (None, [])]
        for k in sorted(set(a) & set(b)):
            out += diff(a[k], b[k], f"{where}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in diff(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {str(a)[:80]} != {str(b)[:80]}"]


def run(tree: Path, out: Path, spec_path: Path, extra: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    res = subprocess.run([sys.executable, "-m", "fedcore.cli", "run", str(spec_path), "--out", str(out), *extra],
                         cwd=tree, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"run in {tree} failed:\n{res.stderr[-3000:]}")
    return json.loads((out / "results.json").read_text())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, help="git revision of the code before the change")
    ap.add_argument("--rounds", type=int, default=SPEC["rounds"])
    args = ap.parse_args()
    spec = {**SPEC, "rounds": args.rounds}
    bad = 0
    with tempfile.TemporaryDirectory(prefix="same_figures-") as tmp:
        t = Path(tmp)
        before = t / "before"
        before.mkdir()
        archive = subprocess.run(["git", "archive", args.before], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
        spec_path = t / "w1-short.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        for name, extra in (("sequential", []), ("--workers 2", ["--workers", "2", "--set", "num_threads=1"])):
            a = run(before, t / f"a{len(extra)}", spec_path, extra)
            b = run(ROOT, t / f"b{len(extra)}", spec_path, extra)
            problems = diff(figures({k: a[k] for k in ("rounds", "summary", "status")}),
                            figures({k: b[k] for k in ("rounds", "summary", "status")}))
            accs = [r["metrics"].get("accuracy") for r in b["rounds"]]
            print(f"{name}: {len(b['rounds'])} rounds, accuracy {accs}: "
                  f"{'identical figures' if not problems else f'{len(problems)} figures differ'}")
            for p in problems[:20]:
                print("   ", p)
            bad += bool(problems)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
