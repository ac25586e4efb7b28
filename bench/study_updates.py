"""What one live update of a study page costs: bytes sent and server time, full re-read against incremental.

A study of 8 variants x 5 seeds (40 runs) over 15 rounds, with round records of a MiniLM-L6-sized run
(6 blocks x 12 heads, 4 of 20 clients a round; tests/e2e/seed.py ``fake_record``): 30 runs finished,
10 still running at round 7. Each update is what the page sees: one running run stores its next round
(through the job lifecycle, as a runner does: round row, event and ``rounds_done`` in one
transaction), then the page reads the study, either

- **full**: ``GET /api/v1/studies/{id}``, every run's figures and the table (what the page did on every
  event before), or
- **incremental**: ``GET /api/v1/studies/{id}?runs=<the run the event named>``, the table and that run
  only (what static/js/study.js does now).

The two kinds alternate, so each read follows exactly one new round. Server time is the wall time of
the request through the app in this process (FastAPI's TestClient: no network, no browser); bytes are
the response body. The page's first load (a full read, rounds not yet kept by the API process) is
timed on its own. Median over the updates of each kind.

    python bench/study_updates.py                # SQLite in a temporary folder
    python bench/study_updates.py --postgres     # PostgreSQL: a fresh schema in FEDHEADS_TEST_DATABASE_URL
    python bench/study_updates.py --quick        # 4 variants x 2 seeds, 4 rounds, 6 updates
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCHEMA = "fedheads_bench_study_updates"
BLOCKS = [f"enc.{i}" for i in range(6)]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def store_round(db_url: str, run_id: uuid.UUID, rnd: int, *, claim: bool, finish: bool, seed: int) -> None:
    """One round of one run as a runner stores it (claiming the run before its first round)."""
    from app.core.db import session_factory
    from app.services import jobs
    from tests.e2e.seed import fake_record

    with session_factory(db_url).begin() as s:
        if claim:
            assert jobs.claim(db_session=s, experiment_id=run_id, runner="bench:1", task_id=None, artifact_dir="/tmp/x")
        rec = fake_record(rnd, num_clients=20, per_round=4, blocks=BLOCKS, heads=12, sparsity=0.5, seed=seed)
        jobs.persist_round(db_session=s, experiment_id=run_id, record=rec, checkpoint=None, runner="bench:1")
        if finish:
            jobs.finish(db_session=s, experiment_id=run_id, status="succeeded", runner="bench:1")


def timed_get(client: Any, path: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    res = client.get(path)
    ms = (time.perf_counter() - t0) * 1000
    assert res.status_code == 200, f"{path}: {res.status_code} {res.text[:300]}"
    return ms, len(res.content)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a small study and few updates")
    ap.add_argument("--postgres", action="store_true", help="PostgreSQL (FEDHEADS_TEST_DATABASE_URL) instead of SQLite")
    args = ap.parse_args()
    variants, seeds, rounds, running_at, updates = (4, 2, 4, 2, 6) if args.quick else (8, 5, 15, 7, 40)

    from tests.app.held import held_client_on
    from tests.app.stack import fresh_schema, reset_schema

    folder = Path(tempfile.mkdtemp(prefix="fedheads-study-updates-"))
    if args.postgres:
        db_url = fresh_schema(SCHEMA)
    else:
        from app.core.migrate import upgrade

        db_url = f"sqlite:///{folder / 'fedheads.db'}"
        upgrade(db_url)
    try:
        with held_client_on(db_url, folder) as client:
            study = client.post("/api/v1/studies", json={
                "name": "update cost", "base": {"preset": "smoke", "overrides": {"rounds": rounds}},
                "variants": {f"s={i / 10:g}": {"sparsity": i / 10} for i in range(variants)},
                "seeds": list(range(seeds)), "baseline": "s=0",
                "targets": [{"metric": "accuracy_vs_baseline", "within": 2.0},
                            {"metric": "uplink_advantage", "at_least": 1.5}]}).json()
            runs = [uuid.UUID(r["id"]) for r in study["runs"]]
            going = runs[-(len(runs) // 4):]  # the last quarter is still running
            log(f"study {study['id']}: {len(runs)} runs; storing their rounds")
            for i, run in enumerate(runs):
                n = running_at if run in going else rounds
                for rnd in range(1, n + 1):
                    store_round(db_url, run, rnd, claim=rnd == 1, finish=run not in going and rnd == rounds, seed=i)
            path = f"/api/v1/studies/{study['id']}"
            first_ms, first_bytes = timed_get(client, path)  # the page's load
            done = dict.fromkeys(going, running_at)
            seen: dict[str, list[tuple[float, int]]] = {"full": [], "incremental": []}
            for k in range(updates):
                run = going[k % len(going)]
                done[run] += 1
                store_round(db_url, run, done[run], claim=False, finish=False, seed=runs.index(run))
                kind = "full" if k % 2 == 0 else "incremental"
                seen[kind].append(timed_get(client, path if kind == "full" else f"{path}?runs={run}"))
    finally:
        if args.postgres:
            reset_schema(SCHEMA, create=False)
        shutil.rmtree(folder, ignore_errors=True)

    def row(what: str, samples: list[tuple[float, int]]) -> str:
        ms = statistics.median(t for t, _ in samples)
        size = statistics.median(b for _, b in samples)
        return f"| {what} | {len(samples)} | {size / 1024:.1f} | {ms:.1f} |"

    full_b = statistics.median(b for _, b in seen["full"])
    inc_b = statistics.median(b for _, b in seen["incremental"])
    full_ms = statistics.median(t for t, _ in seen["full"])
    inc_ms = statistics.median(t for t, _ in seen["incremental"])
    table = "\n".join([
        f"Study of {variants} variants x {seeds} seeds ({variants * seeds} runs), {rounds} rounds; "
        f"{len(going)} runs still going; {'PostgreSQL' if args.postgres else 'SQLite'}.",
        "",
        "| read | samples | KiB (median) | server ms (median) |",
        "|---|---|---|---|",
        f"| page load (full, first read) | 1 | {first_bytes / 1024:.1f} | {first_ms:.1f} |",
        row("update: full re-read", seen["full"]),
        row("update: incremental (?runs=)", seen["incremental"]),
        "",
        f"Incremental / full: {inc_b / full_b:.2f} of the bytes, {inc_ms / full_ms:.2f} of the server time.",
    ])
    print(table)
    sys.path.insert(0, str(ROOT / "bench"))
    from _report import save

    save("study_updates-postgres" if args.postgres else "study_updates", table, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
