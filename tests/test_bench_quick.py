"""Every benchmark's --quick mode runs to the end and saves its table, so the scripts cannot rot.

The figures of a quick run mean nothing (tiny sizes, a busy machine); the full runs are
started by hand (bench/README.md). gpu_check.py needs a CUDA device and is run on one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("script", "table_head"),
    [
        ("paper_table.py", "| configuration | seeds | final accuracy %"),
        ("overhead.py", "| mode | fedheads s/step"),
        ("server_scale.py", "| registered clients | selection | median ms / round"),
        ("api_load.py", "| what | samples | p50 ms | p99 ms"),
        ("study_updates.py", "| read | samples | KiB (median) | server ms (median) |"),
        ("drop_diagnostics.py", "Drop path with all 72 heads kept equals dense: **yes**"),
        ("peer_flower.py", "| implementation | total wall s | first round (cold) s | warm round s"),
    ],
)
def test_quick_mode_runs_and_saves_its_table(script: str, table_head: str, tmp_path: Path) -> None:
    env = {**os.environ, "FEDHEADS_BENCH_RESULTS": str(tmp_path)}
    if script == "peer_flower.py":  # its Celery rows use the test Redis (queues of their own)
        from tests.app.stack import REDIS_URL

        env["FEDHEADS_BENCH_BROKER_URL"] = REDIS_URL
    res = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--quick"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{script} --quick failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    assert table_head in res.stdout
    saved = [p for p in tmp_path.iterdir() if p.name.endswith("-quick.md")]
    assert saved, f"{script} saved no *-quick.md table in {tmp_path}"
    text = saved[0].read_text()
    assert "- machine: " in text and "- command: `python " in text and "--quick" in text
    if script == "peer_flower.py":  # Flower is optional: its rows are there, or the output says they were skipped
        assert "| fedheads run (sequential" in text and "| fedheads run --workers 2" in text
        assert "| bare transformers+peft loop" in text
        # the product: fedheads serve with the embedded executor and with two Celery workers, each with the
        # second job its warm server ran, compared with the CLI row of the same spec
        for service in ("| fedheads serve, embedded executor", "| fedheads serve + 2 Celery workers"):
            row = next(line for line in text.splitlines() if line.startswith(service))
            assert row.endswith("x |") and "second job" not in row
            assert any(line.startswith(service) and "second job (seed 1, same server) |" in line
                       for line in text.splitlines())
        assert "| Flower (Ray, 2 actors x 1 thread) | " in text or "Flower is not installed" in res.stderr + text
    if script == "paper_table.py":  # accuracy per round of every run, plotted
        import xml.etree.ElementTree as ET

        root = ET.fromstring((tmp_path / "paper_table-quick.svg").read_text())
        names = [g.attrib["data-name"] for g in root.iter("{http://www.w3.org/2000/svg}g")]
        assert names == ["dense FedAvg", "mask s=0.9", "drop s=0.9"]
        assert "(plotted in [paper_table-quick.svg](paper_table-quick.svg))" in text
        assert "| dense FedAvg | 1 | " in text  # one seed in quick mode, and the seeds column says so
        # the side-by-side timing is saved with the machine it ran on, and a later --report names that machine
        timing = json.loads((tmp_path / "paper_table-quick.timing.json").read_text())
        assert timing["median_s"]["dense FedAvg"] > 0 and timing["machine"]
        assert f"median of the repetitions (measured on {timing['machine']}):" in text


def test_gpu_peer_bench_runs_its_rows_on_the_cpu(tmp_path: Path) -> None:
    """bench/peer_flower_gpu.py is run by hand on a GPU machine; here its mechanics run on the CPU: every
    row and the ratios to the bare loop (its --profile ran on the GPU machine: bench/results/peer_flower_gpu.md)."""
    env = {**os.environ, "FEDHEADS_BENCH_RESULTS": str(tmp_path)}
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "peer_flower_gpu.py"), "--device", "cpu", "--quick",
                          "--rounds", "2"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, f"peer_flower_gpu.py failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    text = (tmp_path / "peer_flower_gpu-quick.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith(("| bare", "| fedheads"))]
    assert [r.split(" | ")[0] for r in rows] == ["| bare transformers+peft loop", "| fedheads run",
                                                 "| fedheads run, probe_passes needed"]
    assert rows[0].endswith("| 1.00x | 1.00x |")
    assert all(r.endswith("x |") for r in rows) and "device cpu; torch " in text


def test_paper_table_worker_processes_train_as_one_process(tmp_path: Path) -> None:
    """``--jobs`` (bench/paper_table_gpu.sh runs the seed grid on a GPU with it) hands runs to worker
    processes: a run trained there records the same figures as in the script's own process, and the
    device asked for."""
    figures = {}
    for jobs in ("1", "2"):
        out = tmp_path / jobs
        env = {**os.environ, "FEDHEADS_BENCH_RESULTS": str(out)}
        res = subprocess.run([sys.executable, str(ROOT / "bench" / "paper_table.py"), "--quick", "--timing-reps", "0",
                              "--only", "dense FedAvg", "--device", "cpu", "--jobs", jobs], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, f"--jobs {jobs} failed:\n{res.stderr[-3000:]}"
        (run,) = json.loads((out / "paper_table-quick.json").read_text())
        assert run["base"]["device"] == "cpu" and run["spec"]["device"] == "cpu"
        figures[jobs] = [(r["metrics"], r["train_loss"], r["bytes_up"]) for r in run["rounds"]]
        assert "Trained on the CPU (`--device cpu`)" in (out / "paper_table-quick.md").read_text()
    assert figures["1"] == figures["2"] and len(figures["1"]) == 2
