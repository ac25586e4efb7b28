# Over ~400 lines: one benchmark read top to bottom (its stack, the load generator, the SSE delay figures, the table).
"""The API under concurrent readers while a job runs: read latency, throughput, errors, SSE delivery delay.

Starts its own stack: by default the embedded one (``fedheads serve`` on a fresh SQLite
database, jobs in its local executor); with ``--celery``, ``fedheads serve`` and one
``fedheads worker`` on PostgreSQL + Redis (a fresh schema in the given database, dropped at
the end, and Celery queues of the benchmark's own, so nothing else is touched). It submits
one long smoke-preset job, waits for its first round, then runs N concurrent clients
(asyncio, one keep-alive connection each, no think time) that loop over GET /experiments,
/experiments/{id} and /experiments/{id}/rounds, while the first K of them also hold the
job's SSE stream. At the end the job is cancelled and the stack stopped.

Reported per endpoint: median (p50) and p99 latency, throughput (req/s) and errors (non-200
or transport errors). For SSE: the delay from each round event's ``created_at`` (the event
row's timestamp, set inside the transaction that stores the round, just before its commit)
to its arrival at each SSE client, for rounds stored while the client was connected; events
a client never got or got twice count as errors. Targets: reads p99 < 100 ms, zero errors,
every SSE event delivered within 500 ms (max).

    python bench/api_load.py                   # 50 clients (10 with SSE), 60 s, embedded
    python bench/api_load.py --quick           # 10 clients (2 with SSE), 10 s
    python bench/api_load.py --celery --database-url postgresql+psycopg2://postgres@127.0.0.1/bench \\
        --broker-url redis://127.0.0.1:6379/12 # FEDHEADS_BENCH_DATABASE_URL / _BROKER_URL also work

The load generator shares the machine with the server and the job, so on a small machine
the figures include its own CPU use; the load average is printed with the table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.app.stack import Proc, free_port, reset_schema, start_process, tail, wait_for  # noqa: E402

READ_TARGET_MS = 100.0
SSE_TARGET_MS = 500.0
# ~1 s a round on 2 idle cores; the job is cancelled when the measurement ends
JOB = {"local_steps": 4, "eval_size": 60, "max_train_examples": 600}
ENDPOINTS = (("list", "GET /api/v1/experiments"), ("detail", "GET /api/v1/experiments/{id}"),
             ("rounds", "GET /api/v1/experiments/{id}/rounds"))


def log(msg: str) -> None:
    print(f"[api_load] {msg}", file=sys.stderr, flush=True)


# --- the stack (processes and schema: the service tests' helpers, tests/app/stack.py) -------------------


@dataclass
class Stack:
    """The benchmark's processes (``fedheads serve``, maybe a ``fedheads worker``), each logging to ``folder``."""

    folder: Path
    db_url: str
    env: dict[str, str]
    url: str = ""
    procs: list[Proc] = field(default_factory=list)

    def start(self, name: str, argv: list[str]) -> Proc:
        proc = start_process(name, [sys.executable, "-m", "worker.cli", *argv], self.env, self.folder)
        self.procs.append(proc)
        return proc

    def wait(self, predicate: Any, timeout: float, what: str) -> Any:
        """``predicate()`` once truthy; fails (with the logs' tails) on a timeout or when a process has exited."""
        def ready() -> Any:
            for proc in self.procs:
                if not proc.alive():
                    tails = "".join(f"\n--- {p.name} ---\n{tail(p.log, 30)}" for p in self.procs)
                    raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}{tails}")
            return predicate()

        return wait_for(ready, timeout, what, interval=0.2, logs=[p.log for p in self.procs])

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop(timeout=30, group=True)  # the process and its children (its own group)


def start_stack(args: argparse.Namespace, folder: Path) -> Stack:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDHEADS_")}
    env.update({"PYTHONPATH": str(ROOT), "FEDHEADS_ARTIFACT_ROOT": str(folder / "artifacts"),
                "FEDHEADS_DATA_ROOT": str(folder / "data"), "PYTHONWARNINGS": "ignore::FutureWarning"})
    if args.celery:
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", args.schema):
            raise SystemExit(f"--schema {args.schema!r}: use lower-case letters, digits and _")
        if not args.database_url or not args.broker_url:
            raise SystemExit("--celery needs --database-url (PostgreSQL) and --broker-url (Redis), "
                             "or FEDHEADS_BENCH_DATABASE_URL and FEDHEADS_BENCH_BROKER_URL")
        db_url = reset_schema(args.schema, base=args.database_url)
        env.update({"FEDHEADS_BROKER_URL": args.broker_url, "FEDHEADS_EXPERIMENTS_QUEUE": "bench-experiments",
                    "FEDHEADS_CLIENTS_QUEUE": "bench-clients"})
    else:
        db_url = f"sqlite:///{folder / 'fedheads.db'}"
    env["FEDHEADS_DATABASE_URL"] = db_url
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("FEDHEADS_"):
            raise SystemExit(f"--env {item!r}: use FEDHEADS_NAME=value")
        env[key] = value
    port = free_port()
    stack = Stack(folder=folder, db_url=db_url, env=env, url=f"http://127.0.0.1:{port}")
    stack.start("api", ["serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"])

    def up() -> bool:
        try:
            return httpx.get(f"{stack.url}/api/v1/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    stack.wait(up, 120, "the API to answer")
    if args.celery:  # after the API: `serve` migrates the schema
        stack.start("worker", ["worker", "--concurrency", "1", "--hostname", "bench@%h", "--loglevel", "warning"])
    return stack


# --- the load -----------------------------------------------------------------------------------


@dataclass
class Results:
    reads: list[tuple[str, float, float, bool]] = field(default_factory=list)  # endpoint, end time, s, ok
    # per SSE client: connected at (epoch s), [(event id, type, arrival epoch s)]
    streams: list[tuple[float, list[tuple[int, str, float]]]] = field(default_factory=list)
    stream_errors: list[str] = field(default_factory=list)


# what RawHttp.get raises for a broken connection or a malformed answer
HTTP_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, StopIteration, ValueError)


class RawHttp:
    """One keep-alive HTTP/1.1 connection issuing GETs: a few dozen lines of asyncio streams instead of a
    full client, so that the load generator, which shares the machine, costs little CPU per request."""

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> int:
        """The response's status code, its body read to the end (the connection is reopened after an error)."""
        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None
            self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode())
            head = await self.reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await self.reader.readexactly(length)
            return int(head.split(b" ", 2)[1])
        except HTTP_ERRORS:
            await self.close()
            raise

    async def close(self) -> None:
        writer, self.writer, self.reader = self.writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def read_loop(base: str, exp_id: str, offset: int, until: float, out: Results) -> None:
    paths = ["/api/v1/experiments", f"/api/v1/experiments/{exp_id}", f"/api/v1/experiments/{exp_id}/rounds"]
    conn = RawHttp(base)
    i = offset
    try:
        while time.perf_counter() < until:
            name = ENDPOINTS[i % 3][0]
            t0 = time.perf_counter()
            try:
                ok = await conn.get(paths[i % 3]) == 200
            except HTTP_ERRORS:
                ok = False
            t1 = time.perf_counter()
            out.reads.append((name, t1, t1 - t0, ok))
            i += 1
    finally:
        await conn.close()


async def follow(base: str, exp_id: str, out: Results) -> None:
    """Hold the job's SSE stream until cancelled, time-stamping each complete event on arrival."""
    got: list[tuple[int, str, float]] = []
    try:
        async with (httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(10, read=120)) as client,
                    client.stream("GET", f"/api/v1/experiments/{exp_id}/events") as resp):
            if resp.status_code != 200:
                out.stream_errors.append(f"SSE answered {resp.status_code}")
                return
            out.streams.append((time.time(), got))
            ev_id, ev_type, has_data = 0, "message", False
            async for line in resp.aiter_lines():
                if line == "":
                    if has_data:
                        got.append((ev_id, ev_type, time.time()))
                    ev_type, has_data = "message", False
                elif line.startswith("id:"):
                    ev_id = int(line[3:].strip())
                elif line.startswith("event:"):
                    ev_type = line[6:].strip()
                elif line.startswith("data:"):
                    has_data = True
    except asyncio.CancelledError:
        raise
    except httpx.HTTPError as err:
        out.stream_errors.append(f"SSE stream broke: {type(err).__name__}: {err}")


async def run_load(base: str, exp_id: str, clients: int, sse_clients: int, duration: float,
                   drain: float) -> tuple[Results, float, float]:
    out = Results()
    followers = [asyncio.create_task(follow(base, exp_id, out)) for _ in range(sse_clients)]
    await asyncio.sleep(1.0)  # the streams are open (and have replayed the job's past) before the clock starts
    start = time.perf_counter()
    start_wall = time.time()
    until = start + duration
    await asyncio.gather(*(read_loop(base, exp_id, i, until, out) for i in range(clients)))
    end_wall = time.time()
    await asyncio.sleep(drain)  # events stored just before the end still get their chance to arrive
    for task in followers:
        task.cancel()
    await asyncio.gather(*followers, return_exceptions=True)
    return out, start_wall, end_wall


# --- figures ------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of a non-empty list."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(q * len(s)) - 1))]


COMMIT_POLL = 0.01  # seconds between the commit observer's reads


def observe_commits(db_url: str, exp_id: str, stop: Any, out: Any) -> None:
    """In a process of its own (its own interpreter lock): read the experiment's new event ids every
    10 ms and note when each became visible, i.e. when its transaction had committed (to within
    one poll). Puts {event id: first seen, epoch s} on ``out`` once ``stop`` is set."""
    from sqlalchemy import bindparam, create_engine, select

    from app.models import Event

    engine = create_engine(db_url)
    seen: dict[int, float] = {}
    last = 0
    query = select(Event.id).where(Event.experiment_id == uuid.UUID(exp_id), Event.id > bindparam("last"))
    try:
        with engine.connect() as conn:
            while not stop.is_set():
                ids = conn.execute(query, {"last": last}).scalars().all()
                conn.rollback()  # a fresh snapshot each poll
                now = time.time()
                for ev_id in ids:
                    seen.setdefault(int(ev_id), now)
                    last = max(last, int(ev_id))
                time.sleep(COMMIT_POLL)
    finally:
        engine.dispose()
        out.put(seen)


def event_times(db_url: str, exp_id: str) -> dict[int, tuple[str, float]]:
    """Every event of the experiment: id -> (type, created_at as epoch seconds)."""
    from sqlalchemy import create_engine, select

    from app.models import Event

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(Event.id, Event.type, Event.created_at)
                                .where(Event.experiment_id == uuid.UUID(exp_id))).all()
    finally:
        engine.dispose()
    out = {}
    for ev_id, kind, created in rows:
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)  # SQLite keeps no zone; the app writes UTC
        out[int(ev_id)] = (kind, created.timestamp())
    return out


def sse_figures(res: Results, events: dict[int, tuple[str, float]], committed: dict[int, float],
                end_wall: float) -> dict[str, Any]:
    """Delays of round events to each SSE client: from the commit (as the observer saw it) and from the
    event row's created_at (set before the commit, in the job's process)."""
    delays, from_created, missed, duplicated, unseen = [], [], 0, 0, 0
    for connected, got in res.streams:
        ids = [i for i, kind, _ in got if kind == "round"]
        duplicated += len(ids) - len(set(ids))
        arrived = {i: t for i, kind, t in got if kind == "round"}
        for ev_id, (kind, created) in events.items():
            if kind != "round" or created < connected or created > end_wall:
                continue  # replayed at connect, or stored after the measurement
            if ev_id not in arrived:
                missed += 1
                continue
            from_created.append((arrived[ev_id] - created) * 1000)
            if ev_id in committed:
                delays.append(max(0.0, arrived[ev_id] - committed[ev_id]) * 1000)
            else:
                unseen += 1
    return {"delays": delays, "from_created": from_created, "missed": missed, "duplicated": duplicated,
            "unseen": unseen, "errors": missed + duplicated + len(res.stream_errors)}


def build_table(args: argparse.Namespace, res: Results, sse: dict[str, Any], duration: float,
                rounds_in_window: int, load: tuple[float, float]) -> str:
    lines = ["| what | samples | p50 ms | p99 ms | max ms | req/s | errors | target | verdict |",
             "|---|---:|---:|---:|---:|---:|---:|---|---|"]
    rows = [(label, [r for r in res.reads if r[0] == key]) for key, label in ENDPOINTS]
    rows.append(("all reads", res.reads))
    for label, samples in rows:
        ms = [s[2] * 1000 for s in samples]
        errors = sum(not s[3] for s in samples)
        if not ms:
            lines.append(f"| {label} | 0 | - | - | - | - | - | p99 < {READ_TARGET_MS:.0f} ms, 0 errors | NOT met |")
            continue
        p99 = percentile(ms, 0.99)
        ok = p99 < READ_TARGET_MS and errors == 0
        lines.append(f"| {label} | {len(ms)} | {statistics.median(ms):.1f} | {p99:.1f} | {max(ms):.1f} | "
                     f"{len(ms) / duration:.1f} | {errors} | p99 < {READ_TARGET_MS:.0f} ms, 0 errors | "
                     f"{'met' if ok else 'NOT met'} |")
    d, c = sse["delays"], sse["from_created"]
    if d:
        ok = max(d) < SSE_TARGET_MS and sse["errors"] == 0 and sse["unseen"] == 0
        lines.append(f"| SSE round event: commit -> arrival | {len(d)} | {statistics.median(d):.1f} | "
                     f"{percentile(d, 0.99):.1f} | {max(d):.1f} | - | {sse['errors']} | "
                     f"all < {SSE_TARGET_MS:.0f} ms, 0 missed/duplicated | {'met' if ok else 'NOT met'} |")
        lines.append(f"| (the same events: event row created_at -> arrival) | {len(c)} | {statistics.median(c):.1f} | "
                     f"{percentile(c, 0.99):.1f} | {max(c):.1f} | - | - | - | - |")
    else:
        lines.append(f"| SSE round event: commit -> arrival | 0 | - | - | - | - | {sse['errors']} | "
                     f"all < {SSE_TARGET_MS:.0f} ms | NOT measured (no round stored in the window) |")
    mode = "Celery (PostgreSQL + Redis, 1 worker)" if args.celery else "embedded (SQLite + local executor)"
    notes = [
        "",
        f"Mode: {mode}. {args.clients} concurrent clients in a closed loop (no think time), one keep-alive "
        f"connection each, {args.sse_clients} of them also holding the job's SSE stream; {duration:.1f} s "
        f"measured while the job ran ({rounds_in_window} rounds stored in the window).",
        f"SSE samples: one per (client, round) for rounds stored while the client was connected; "
        f"{sse['missed']} missed, {sse['duplicated']} duplicated, {len(res.stream_errors)} stream errors. "
        f"Commit: when a separate observer process, reading the experiment's new event ids every "
        f"{COMMIT_POLL * 1000:.0f} ms, first saw the event (so up to one poll after the commit; "
        f"{sse['unseen']} events it never saw). The event row's created_at is set in the job's process before "
        "the round's transaction commits, so the second row also counts the job process's own commit time "
        "(the embedded executor's job process runs at a lower priority, FEDHEADS_LOCAL_NICE).",
        f"Load average (1 min) at start / end: {load[0]:.2f} / {load[1]:.2f} on {os.cpu_count()} cores; the "
        "load generator runs on the same machine.",
    ]
    if res.stream_errors:
        notes.append("Stream errors: " + "; ".join(sorted(set(res.stream_errors))[:5]))
    return "\n".join(lines + notes)


# --- main ---------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10 clients (2 with SSE) for 10 s")
    ap.add_argument("--clients", type=int, default=None, help="concurrent readers (default 50; --quick 10)")
    ap.add_argument("--sse-clients", type=int, default=None,
                    help="how many of them also hold the SSE stream (default a fifth)")
    ap.add_argument("--duration", type=float, default=None, help="measured seconds (default 60; --quick 10)")
    ap.add_argument("--rounds", type=int, default=1000, help="rounds of the job (cancelled at the end)")
    ap.add_argument("--env", action="append", default=[], metavar="FEDHEADS_X=v",
                    help="a setting for the server (and worker), e.g. FEDHEADS_API_THREADS=8; repeatable")
    ap.add_argument("--celery", action="store_true", help="PostgreSQL + Redis + one `fedheads worker`")
    ap.add_argument("--database-url", default=os.environ.get("FEDHEADS_BENCH_DATABASE_URL"),
                    help="PostgreSQL URL for --celery (a schema of it is dropped and re-created)")
    ap.add_argument("--schema", default="fedheads_bench", help="the schema --celery uses (default fedheads_bench)")
    ap.add_argument("--broker-url", default=os.environ.get("FEDHEADS_BENCH_BROKER_URL"),
                    help="Redis URL for --celery")
    args = ap.parse_args()
    args.clients = args.clients or (10 if args.quick else 50)
    args.sse_clients = args.sse_clients if args.sse_clients is not None else max(1, args.clients // 5)
    args.sse_clients = min(args.sse_clients, args.clients)
    duration = args.duration or (10.0 if args.quick else 60.0)

    folder = Path(tempfile.mkdtemp(prefix="fedheads-api-load-"))
    stack = None
    try:
        stack = start_stack(args, folder)
        log(f"stack up at {stack.url} ({'celery' if args.celery else 'embedded'}); submitting the job")
        with httpx.Client(base_url=stack.url, timeout=30) as api:
            resp = api.post("/api/v1/experiments", json={
                "name": "api_load", "preset": "smoke", "overrides": {**JOB, "rounds": args.rounds}})
            if resp.status_code != 201:
                raise RuntimeError(f"submit answered {resp.status_code}: {resp.text}")
            exp_id = resp.json()["id"]

            def first_round() -> bool:
                body = api.get(f"/api/v1/experiments/{exp_id}").json()
                if body["status"] in ("failed", "cancelled", "succeeded"):
                    raise RuntimeError(f"the job ended before the measurement: {body.get('error')}")
                return int(body["progress"]["rounds_done"]) >= 1

            stack.wait(first_round, 600, "the job's first round")
            for path in ("/api/v1/experiments", f"/api/v1/experiments/{exp_id}",
                         f"/api/v1/experiments/{exp_id}/rounds"):
                api.get(path)  # warm the code paths once
            log(f"job {exp_id} running; {args.clients} clients ({args.sse_clients} with SSE) for {duration:.0f} s")
            ctx = multiprocessing.get_context("spawn")
            stop, seen_q = ctx.Event(), ctx.Queue()
            observer = ctx.Process(target=observe_commits, args=(stack.db_url, exp_id, stop, seen_q), daemon=True)
            observer.start()
            load0 = os.getloadavg()[0]
            res, start_wall, end_wall = asyncio.run(
                run_load(stack.url, exp_id, args.clients, args.sse_clients, duration, drain=2.0))
            load1 = os.getloadavg()[0]
            stop.set()
            committed: dict[int, float] = seen_q.get(timeout=60)
            observer.join(timeout=10)
            cancel = api.post(f"/api/v1/experiments/{exp_id}/cancel")
            if cancel.status_code != 202:
                log(f"cancel answered {cancel.status_code}: {cancel.text}")
        events = event_times(stack.db_url, exp_id)
        in_window = sum(1 for kind, t in events.values() if kind == "round" and start_wall <= t <= end_wall)
        sse = sse_figures(res, events, committed, end_wall)
        table = build_table(args, res, sse, end_wall - start_wall, in_window, (load0, load1))
    finally:
        if stack is not None:
            stack.close()
            if args.celery:
                reset_schema(args.schema, base=args.database_url, create=False)  # leave the database as found
        shutil.rmtree(folder, ignore_errors=True)
    print(table)
    sys.path.insert(0, str(ROOT / "bench"))
    from _report import save

    save("api_load_celery" if args.celery else "api_load", table, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
