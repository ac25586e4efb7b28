"""Shared by the benchmarks: describe the machine and save a result table."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

# FEDHEADS_BENCH_RESULTS redirects the tables (the test that runs every --quick mode uses a temporary folder)
RESULTS = Path(os.environ.get("FEDHEADS_BENCH_RESULTS") or Path(__file__).resolve().parent / "results")


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (f"{cpu}, {os.cpu_count()} cores{gpu}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"Python {platform.python_version()}")


def save(name: str, table: str, args: argparse.Namespace) -> Path:
    """Write the table with the machine, the date and the exact command to bench/results/NAME[-quick].md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "-quick" if getattr(args, "quick", False) else ""
    path = RESULTS / f"{name}{suffix}.md"
    cmd = " ".join(["python", *[a if " " not in a else repr(a) for a in sys.argv]])
    path.write_text(f"# {name}\n\n- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"
                    f"- machine: {machine()}\n- command: `{cmd}`\n\n{table}\n", encoding="utf-8")
    print(f"saved {path}", file=sys.stderr)
    return path
