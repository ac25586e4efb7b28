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

The product runs W1 too, in the same repetitions: ``fedheads serve`` with its embedded executor
(SQLite, the local job process; the spec of the sequential CLI row) and ``fedheads serve`` with two
``fedheads worker --concurrency 1`` on Redis (SQLite, or PostgreSQL with --database-url; the spec of
the ``--workers 2`` row, one thread per process). The server and workers are started and waited for
first (start-up, reported apart); then W1 is submitted over REST and, when it has finished, W1 with
seed 1 on the same, now warm, server (the second job's row). A job's total runs from the POST to the
finish time its runner stored; its rounds are its stored round records; the last column compares it
with its CLI row.

Flower is optional (``pip install -e '.[peers]'``, or a separate environment: see
bench/README.md); without it the Flower rows are skipped and the output says so. The Celery rows
need a Redis URL (--broker-url or FEDHEADS_BENCH_BROKER_URL; the run uses queues of its own and
removes them); without one they are skipped and the output says so.

    python bench/peer_flower.py --broker-url redis://127.0.0.1:6379/12   # 3 repetitions, every implementation
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
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

W1_SPEC = {"model": "minilm-l6", "dataset": "snli", "max_train_examples": 20000, "eval_size": 1000,
           "eval_batch_size": 64, "partition": "iid", "num_clients": 20, "clients_per_round": 4, "rounds": 3,
           "local_steps": 10, "batch_size": 16, "learning_rate": 1e-3, "weight_decay": 0.01, "max_seq_len": 64,
           "sparsity": 0.0, "aggregation": "fedavg", "selection": "random"}
QUICK = {"max_train_examples": 2000, "eval_size": 100, "rounds": 2, "local_steps": 2}
FLOWER_BEST = ("Flower (Ray, 2 actors x 1 thread)", "Flower (Ray, 1 actor x 2 threads)")
CLI_SEQ = "fedheads run (sequential, probe_passes needed)"
CLI_WORKERS = "fedheads run --workers 2 (num_threads 1, probe_passes needed)"
EMBEDDED = "fedheads serve, embedded executor (SQLite; spec of the sequential row)"
CELERY = "fedheads serve + 2 Celery workers x 1 process (Redis, {db}; spec of the --workers 2 row)"


@dataclass
class Impl:
    name: str
    kind: str  # "bare" | "flower" | "fedheads" (the CLI) | "embedded" | "celery" (fedheads serve) | "second"
    argv: list[str]
    results: list[dict] = field(default_factory=list)
    spec: dict | None = None  # the service rows: the spec submitted over REST
    second: Impl | None = None  # the service rows: the row of the second job on the same server (kind "second")
    cli_row: str | None = None  # the service rows: the CLI row with the same spec, for the "vs CLI" column


def flower_python() -> str | None:
    """An interpreter that imports flwr: this one, FEDHEADS_PEERS_PYTHON, or the repo's .venv-peers."""
    cands = [sys.executable, os.environ.get("FEDHEADS_PEERS_PYTHON", ""), str(ROOT / ".venv-peers" / "bin" / "python")]
    for py in cands:
        if py and Path(py).exists() and subprocess.run([py, "-c", "import flwr.simulation, ray"],
                                                       capture_output=True).returncode == 0:
            return py
    return None


def implementations(spec: dict, out: Path, flower_py: str | None, broker: str | None,
                    database_url: str | None = None) -> list[Impl]:
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
              Impl(CLI_SEQ, "fedheads", [*fh, *lean]),
              Impl(CLI_WORKERS, "fedheads", [*fh, "--workers", "2", "--set", "num_threads=1", *lean])]
    # the product: W1 submitted over REST to `fedheads serve`, each with the spec of its CLI row; a second
    # job (seed 1: the same model and data, another spec) follows on the same, now warm, server
    services = [Impl(EMBEDDED, "embedded", [], spec={**spec, "probe_passes": "needed"}, cli_row=CLI_SEQ)]
    if broker is not None:
        db = "PostgreSQL" if database_url else "SQLite"
        services.append(Impl(CELERY.format(db=db), "celery", [], spec={**spec, "probe_passes": "needed", "num_threads": 1},
                             cli_row=CLI_WORKERS))
    for impl in services:
        impl.second = Impl(f"{impl.name}: second job (seed 1, same server)", "second", [], cli_row=impl.cli_row)
    return impls + services


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
        return figures(total, json.loads((run_dir / "results.json").read_text())["rounds"], peak[0])
    start = next(e["t"] for e in events if e["event"] == "start")
    rnds = sorted((e for e in events if e["event"] == "round"), key=lambda e: e["round"])
    return per_round_figures(total, start, [e["t"] for e in rnds], peak[0], rnds[-1]["accuracy"])


def figures(total: float, records: list[dict], peak: int) -> dict:
    """The row's figures from fedheads' round records (results.json, or the API's stored rounds): a round
    runs from the end of the one before (the first from its own start) to its end."""
    start = records[0]["finished_at"] - records[0]["wall_time"]
    return per_round_figures(total, start, [r["finished_at"] for r in records], peak,
                             records[-1]["metrics"]["accuracy"])


def per_round_figures(total: float, start: float, ends: list[float], peak: int, acc: float) -> dict:
    per_round = [b - a for a, b in zip([start, *ends[:-1]], ends, strict=True)]
    return {"total": total, "first": per_round[0], "warm": statistics.median(per_round[1:]) if len(per_round) > 1
            else float("nan"), "rounds": per_round, "peak_rss": peak, "accuracy": acc}


# --- the product: fedheads serve (embedded executor, or Celery workers) -----------------------------------


def service_env(folder: Path, db_url: str, broker: str | None, tag: str) -> dict[str, str]:
    """The server's and workers' environment: this one without FEDHEADS_ settings (the offline asset cache
    kept), a database and artifact folder of the run's own and, for Celery, queues of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDHEADS_") or k == "FEDHEADS_ASSETS_DIR"}
    env.update({"PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore::FutureWarning", "FEDHEADS_DATABASE_URL": db_url,
                "FEDHEADS_ARTIFACT_ROOT": str(folder / "artifacts"), "FEDHEADS_DATA_ROOT": str(folder / "data")})
    if broker is not None:
        env.update({"FEDHEADS_BROKER_URL": broker, "FEDHEADS_EXPERIMENTS_QUEUE": f"{tag}-experiments",
                    "FEDHEADS_CLIENTS_QUEUE": f"{tag}-clients"})
    return env


def stamp(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def run_service(impl: Impl, out: Path, rep: int, broker: str | None, database_url: str | None) -> dict:
    """Start ``fedheads serve`` (and, for Celery, two ``fedheads worker --concurrency 1``), wait until they
    are ready (the start-up, timed apart), then submit the row's spec over REST and, when it has finished,
    the same spec with seed 1 (the second job, on the now warm server). A job's total runs from the POST
    to the finish time its runner stored; its rounds are its stored round records. Fills ``impl`` and
    ``impl.second``; returns the start-up figures."""
    import httpx

    from tests.app.stack import Proc, free_port, reset_schema, start_process, tail, wait_for

    assert impl.spec is not None and impl.second is not None
    celery = impl.kind == "celery"
    tag = f"peer-flower-{os.getpid()}-{rep}"
    folder = out / f"{impl.kind}-{rep}"
    folder.mkdir()
    schema = "peer_flower"
    if celery and database_url:
        db_url = reset_schema(schema, base=database_url)
    else:
        db_url = f"sqlite:///{folder / 'fedheads.db'}"
    env = service_env(folder, db_url, broker if celery else None, tag)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    procs: list[Proc] = []
    phase = ["start-up"]
    peaks: dict[str, int] = {}
    stop = threading.Event()

    def sample() -> None:  # peak resident memory of every process tree started here (Redis and PostgreSQL not)
        while not stop.is_set():
            rss = sum(tree_rss(p.popen.pid) for p in procs if p.alive())
            peaks[phase[0]] = max(peaks.get(phase[0], 0), rss)
            time.sleep(0.2)

    def ready(predicate: Any, timeout: float, what: str) -> Any:
        def check() -> Any:
            for p in procs:
                if not p.alive():
                    logs = "".join(f"\n--- {q.name} ---\n{tail(q.log, 30)}" for q in procs)
                    raise SystemExit(f"{impl.name}: {p.name} exited with {p.popen.returncode}{logs}")
            return predicate()

        return wait_for(check, timeout, what, interval=0.2, logs=[p.log for p in procs])

    def answers() -> bool:
        try:
            return httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    sampler = threading.Thread(target=sample, daemon=True)
    t0 = time.time()
    try:
        procs.append(start_process("api", [sys.executable, "-m", "worker.cli", "serve", "--host", "127.0.0.1",
                                           "--port", str(port), "--log-level", "warning"], env, folder))
        sampler.start()
        ready(answers, 300, "the API to answer")  # `serve` migrates the database first
        if celery:
            nodes = [f"{tag}-{w}" for w in ("a", "b")]
            for node in nodes:
                procs.append(start_process(node, [sys.executable, "-m", "worker.cli", "worker", "--hostname",
                                                  f"{node}@%h", "--concurrency", "1", "--loglevel", "info"],
                                           env, folder))
            from app.core.config import Settings
            from worker.celery_app import make_celery

            control = make_celery(Settings(broker_url=broker), results=False)
            try:
                ready(lambda: all("fedcore loaded" in p.log.read_text(errors="replace") for p in procs[1:])
                      and serving_nodes(control, f"{tag}-experiments") >= set(nodes), 300,
                      "both workers to load fedcore and serve")
            finally:
                control.close()
        startup = time.time() - t0
        jobs = []
        with httpx.Client(base_url=url, timeout=60) as api:
            for job, spec in (("job1", impl.spec), ("job2", {**impl.spec, "seed": 1})):
                phase[0] = job
                t_submit = time.time()
                resp = api.post("/api/v1/experiments", json={"name": f"W1 {job}", "spec": spec})
                if resp.status_code != 201:
                    raise SystemExit(f"{impl.name}: the submit answered {resp.status_code}: {resp.text}")
                exp_url = f"/api/v1/experiments/{resp.json()['id']}"
                body = ready(lambda u=exp_url: (b := api.get(u).json())["status"] in ("succeeded", "failed",
                                                                                     "cancelled") and b,
                             7200, f"{job} to finish")
                if body["status"] != "succeeded":
                    raise SystemExit(f"{impl.name}: {job} {body['status']}: {body.get('error')}")
                records = [r["record"] for r in api.get(f"{exp_url}/rounds").json()["items"]]
                jobs.append((t_submit, body, records))
        stop.set()
        sampler.join()
        for (t_submit, body, records), row, job in zip(jobs, (impl, impl.second), ("job1", "job2"), strict=True):
            r = figures(stamp(body["finished_at"]) - t_submit, records, peaks.get(job, 0))
            r["to_start"] = stamp(body["started_at"]) - t_submit
            row.results.append(r)
        return {"startup": startup, "peak_rss": peaks.get("start-up", 0)}
    finally:
        stop.set()
        for p in reversed(procs):
            p.stop(timeout=30, group=True)
        if celery and database_url:
            reset_schema(schema, base=database_url, create=False)
        if celery:
            forget_queues(broker, tag)


def forget_queues(broker: str | None, tag: str) -> None:
    """Remove what the run's own queues left in Redis (kombu's bindings and any message left over)."""
    import redis

    client = redis.Redis.from_url(str(broker))
    try:
        keys = list(client.scan_iter(match=f"*{tag}-*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def serving_nodes(app: Any, queue: str) -> set[str]:
    """The Celery nodes (names without @host) that serve ``queue``."""
    replies = app.control.inspect(timeout=0.5).active_queues() or {}
    return {node.split("@")[0] for node, queues in replies.items() if any(q["name"] == queue for q in queues)}


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def rows(impls: list[Impl]) -> list[Impl]:
    """The table's rows: each implementation, a service's second job right under it."""
    return [r for i in impls for r in (i, i.second) if r is not None and r.results]


def table(impls: list[Impl], reps: int) -> str:
    shown = rows(impls)
    med = {i.name: {k: statistics.median(r[k] for r in i.results) for k in ("total", "first", "warm", "peak_rss",
                                                                            "accuracy")} for i in shown}
    flowers = [n for n in FLOWER_BEST if n in med]
    ref_total = min((med[n]["total"] for n in flowers), default=None)
    ref_warm = min((med[n]["warm"] for n in flowers), default=None)
    lines = ["| implementation | total wall s | first round (cold) s | warm round s | peak RSS MB | final accuracy "
             "| vs Flower's best, total | vs Flower's best, warm rounds | vs its CLI row, total / warm rounds |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for i in shown:
        m = med[i.name]
        vs_t = f"{m['total'] / ref_total:.2f}x" if ref_total else "n/a"
        vs_w = f"{m['warm'] / ref_warm:.2f}x" if ref_warm else "n/a"
        cli = med.get(i.cli_row or "")
        vs_cli = f"{m['total'] / cli['total']:.2f}x / {m['warm'] / cli['warm']:.2f}x" if cli else ""
        lines.append(f"| {i.name} | {m['total']:.1f} | {m['first']:.1f} | {m['warm']:.1f} | "
                     f"{m['peak_rss'] / 2**20:.0f} | {m['accuracy']:.3f} | {vs_t} | {vs_w} | {vs_cli} |")
    lines.append("")
    lines.append(f"Medians of {reps} repetition(s), implementations alternated within each repetition. Every "
                 "repetition's figures (total s / first s / warm s):")
    lines.append("")
    for i in shown:
        reps_txt = "; ".join(f"{r['total']:.1f} / {r['first']:.1f} / {r['warm']:.1f}" for r in i.results)
        lines.append(f"- {i.name}: {reps_txt}")
    return "\n".join(lines)


SERVICE_NOTE = (
    "The `fedheads serve` rows are the product: W1 submitted over REST (`POST /api/v1/experiments`) with the "
    "spec of the CLI row named in the last column. Their *total* runs from the POST to the finish time the "
    "job's runner stored (dispatch, the job's claim, the model and data, the rounds and the adapter), not from "
    "a process start: the server (and the workers) were started and waited for before, and that start-up is "
    "given apart below. The embedded executor runs the job in a local process it starts at the first job "
    "(`FEDHEADS_LOCAL_NICE` at its default, 10); the Celery rows' workers imported fedcore when they started. "
    "The second job (the same spec with seed 1: same model and data) follows on the same server, whose job "
    "process or workers are then warm. Rounds and accuracy come from the stored round records; peak RSS sums "
    "the server's and the workers' process trees during the job (Redis and PostgreSQL not counted).")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 repetition of a tiny W1")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", nargs="*", help="implementation names to run (default: all)")
    ap.add_argument("--broker-url", default=os.environ.get("FEDHEADS_BENCH_BROKER_URL"),
                    help="Redis URL for the Celery rows (default FEDHEADS_BENCH_BROKER_URL; without one they "
                    "are skipped); the run uses queues of its own")
    ap.add_argument("--database-url", default=os.environ.get("FEDHEADS_BENCH_DATABASE_URL"),
                    help="PostgreSQL URL for the Celery rows (a schema peer_flower of it is dropped and "
                    "re-created, and dropped at the end); default: SQLite")
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
    if args.broker_url is None:
        notes.append("No broker given (--broker-url or FEDHEADS_BENCH_BROKER_URL): the Celery rows are skipped.")
        print("NOTE: " + notes[-1], file=sys.stderr)
    loads = [loadavg()]
    startups: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="peer_flower-") as tmp:
        out = Path(tmp)
        impls = implementations(spec, out, flower_py, args.broker_url, args.database_url)
        if args.only:
            impls = [i for i in impls if i.name in args.only]
        elif args.quick:  # one of each kind, so the test's run stays well inside its time limit
            impls = [i for i in impls if i.name not in (FLOWER_BEST[1], "fedheads run (sequential)")]
        for rep in range(reps):
            for impl in impls:
                if impl.kind in ("embedded", "celery"):
                    startups.setdefault(impl.name, []).append(
                        run_service(impl, out, rep, args.broker_url, args.database_url))
                    done = [impl, impl.second]
                else:
                    impl.results.append(run_once(impl, out, rep))
                    done = [impl]
                for row in done:
                    assert row is not None
                    r = row.results[-1]
                    print(f"  rep {rep + 1} {row.name}: total {r['total']:.1f} s, rounds "
                          f"{', '.join(f'{x:.1f}' for x in r['rounds'])} s, peak {r['peak_rss'] / 2**20:.0f} MB, "
                          f"acc {r['accuracy']:.3f} (load {loadavg()})", file=sys.stderr)
            loads.append(loadavg())
    text = table(impls, reps)
    if startups:
        def secs(values: list[float]) -> str:
            return ", ".join(f"{v:.1f} s" for v in values)

        up = "; ".join(f"{name}: {secs([s['startup'] for s in runs])}" for name, runs in startups.items())
        claim = "; ".join(f"{row.name}: {secs([r['to_start'] for r in row.results])}"
                          for row in rows(impls) if row.kind in ("embedded", "celery", "second"))
        text += (f"\n\n{SERVICE_NOTE} Start-up until ready (the API answering; for Celery also both workers "
                 f"having loaded fedcore and serving the queues), every repetition: {up}. From the POST to the "
                 f"job's start (claimed by its runner), every repetition: {claim}.")
    text += (f"\n\nLoad average (1, 5, 15 min) before the run and after each repetition: {' | '.join(loads)}. "
             "On a shared machine other work adds noise to the absolute seconds; compare the ratios of one "
             "alternated run.")
    if notes:
        text += "\n\n" + "\n".join(notes)
    text += "\n\nW1 as a fedheads spec: `" + json.dumps(spec) + "`"
    print(text)
    save("peer_flower", text, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
