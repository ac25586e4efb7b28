"""``fedheads study run grid.yaml [--server URL]``: run a study with a progress bar per run and one overall.

With ``--server`` the study is posted to a fedheads server (``POST /api/v1/studies``; the server's 422s
are printed word for word) and followed by polling ``GET /api/v1/studies/{id}`` until every run has
finished; its runs go through the server's executors (on Celery, over all its workers). Without it the
runs train here, one after another, with fedcore's round loop (fedcore/study_runner.py, the runner
bench/paper_table.py uses too). Either way the study's table
(fedcore/study_aggregate.py) ends the output: per variant mean ± half-range over seeds, the paired
differences against the baseline, and the verdict of every target. ``--json FILE`` also writes it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from fedcore.spec import SpecError
from fedcore.study import StudySpec, read_study_file

EXIT_FAILED = 1
EXIT_USAGE = 2
TERMINAL = ("succeeded", "failed", "cancelled")


def _bars(console: Any) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
                    TimeElapsedColumn(), console=console)


def print_table(console: Any, table: dict[str, Any]) -> None:
    """The study's table and verdicts, as the API gives them."""
    from rich.table import Table

    def pm(s: dict[str, Any], fmt: str = "{:.1f}") -> str:
        if s.get("mean") is None:
            return "-"
        out = fmt.format(s["mean"])
        return out if s["n"] < 2 else f"{out} ± {fmt.replace('+', '').format(s['half_range'])}"

    t = Table(title=f"{table.get('metric') or 'metric'} (points), mean ± {table['spread']} over seeds; "
                    f"{table['finished']} of {table['runs']} runs finished")
    for col in ("variant", "seeds", "final", "last 3 rounds", "vs baseline", "uplink adv.", "OPs red.",
                "train s/round"):
        t.add_column(col, justify="left" if col == "variant" else "right")
    for v in table["variants"]:
        f = v["figures"]
        t.add_row(v["variant"], str(f["final_accuracy"]["n"]), pm(f["final_accuracy"]), pm(f["last3_accuracy"]),
                  pm(v["vs_baseline"]["accuracy_vs_baseline"], "{:+.1f}"), pm(f["uplink_advantage"], "{:.2f}x"),
                  pm(f["ops_reduction"], "{:.2f}x"), pm(f["train_time_per_round"], "{:.2f}"))
    console.print(t)
    for v in table["verdicts"]:
        console.print(f"  {v['variant']}: {v['text']}", markup=False, highlight=False, soft_wrap=True)
    if not table["complete"]:
        console.print("  partial: not every run has finished")


def _on_server(args: argparse.Namespace, data: dict[str, Any], console: Any) -> tuple[int, dict[str, Any] | None]:
    import httpx

    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    with httpx.Client(base_url=args.server.rstrip("/"), headers=headers, timeout=30.0) as client:
        try:
            resp = client.post("/api/v1/studies", json=data)
        except httpx.TransportError as err:
            console.print(f"[red]cannot reach {args.server}:[/red] {err}")
            return EXIT_FAILED, None
        if resp.status_code == 422:
            console.print("[red]invalid study:[/red]")
            for e in resp.json().get("detail", []):
                where = ".".join(str(p) for p in e.get("loc", []))
                console.print(f"  {where}: {e.get('msg')}", markup=False, highlight=False, soft_wrap=True)
            return EXIT_USAGE, None
        if resp.status_code not in (201, 503):
            console.print(f"[red]server answered {resp.status_code}:[/red] {resp.text}")
            return EXIT_FAILED, None
        study = resp.json() if resp.status_code == 201 else resp.json()["study"]
        console.print(f"study [bold]{study['name']}[/bold]: {study['id']} ({len(study['runs'])} runs)")
        with _bars(console) as bars:
            overall = bars.add_task("all runs", total=sum(r["progress"]["rounds_total"] for r in study["runs"]),
                                    note="")
            tasks = {r["id"]: bars.add_task(f"{r['variant']} seed {r['seed']}", total=r["progress"]["rounds_total"],
                                            note=r["status"]) for r in study["runs"]}
            while True:
                for r in study["runs"]:
                    bars.update(tasks[r["id"]], completed=r["progress"]["rounds_done"], note=r["status"])
                bars.update(overall, completed=sum(r["progress"]["rounds_done"] for r in study["runs"]),
                            note=study["status"])
                if all(r["status"] in TERMINAL for r in study["runs"]):
                    break
                time.sleep(args.interval)
                study = client.get(f"/api/v1/studies/{study['id']}").json()
    return (0 if study["status"] == "succeeded" else EXIT_FAILED), study["aggregate"]


def _here(args: argparse.Namespace, study: StudySpec, console: Any) -> tuple[int, dict[str, Any] | None]:
    from fedcore.checks import InputProblems
    from fedcore.context import Paths
    from fedcore.study_aggregate import StudyRun, aggregate
    from fedcore.study_runner import check_study_inputs, run_study, study_specs

    paths = Paths(cache_dir=args.cache_dir, data_root=Path(args.data_root) if args.data_root else Path.cwd())
    try:
        specs = study_specs(study)
        check_study_inputs(specs.values(), paths)
    except SpecError as err:
        console.print(f"[red]invalid study:[/red] {err}")
        return EXIT_USAGE, None
    except InputProblems as err:
        console.print("[red]cannot start:[/red]")
        for p in err.problems:
            console.print(f"  {p.field}: {p.message}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_USAGE, None
    done: list[StudyRun] = []
    with _bars(console) as bars:
        overall = bars.add_task("all runs", total=sum(s.rounds for s in specs.values()), note="")
        tasks = {k: bars.add_task(f"{k[0]} seed {k[1]}", total=s.rounds, note="queued") for k, s in specs.items()}

        def advance(key: tuple[str, int], r: Any) -> None:
            bars.update(tasks[key], advance=1)
            bars.update(overall, advance=1)

        for run in run_study(specs, paths, on_start=lambda key: bars.update(tasks[key], note="running"),
                             on_round_end=advance):
            bars.update(tasks[(run.variant, run.seed)], note=run.status)
            done.append(run)
    return 0, aggregate(study, done)


def cmd_study_run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError
    from rich.console import Console

    console = Console(stderr=True)
    try:
        data = read_study_file(args.file)
        study = StudySpec.model_validate(data)
    except (OSError, SpecError) as err:
        console.print(f"[red]cannot read {args.file}:[/red] {err}")
        return EXIT_USAGE
    except ValidationError as err:
        console.print("[red]invalid study:[/red]")
        for e in err.errors(include_url=False):
            console.print(f"  {'.'.join(map(str, e['loc'])) or 'study'}: {e['msg']}", markup=False, highlight=False)
        return EXIT_USAGE
    code, table = _on_server(args, data, console) if args.server else _here(args, study, console)
    if table is not None:
        print_table(console, table)
        if args.json:
            Path(args.json).write_text(json.dumps(table, indent=1), encoding="utf-8")
    return code


def register(sub: Any) -> None:
    """``fedheads study run``."""
    st = sub.add_parser("study", help="studies: grids of runs over seeds, with a table and verdicts")
    ssub = st.add_subparsers(dest="study_command", required=True)
    r = ssub.add_parser("run", help="run a study file (YAML or JSON) here or on a server, with progress bars")
    r.add_argument("file", help="study file: name, base {preset, overrides}, variants, seeds, baseline, targets")
    r.add_argument("--server", default=None, help="run it on this fedheads server, e.g. http://127.0.0.1:8000")
    r.add_argument("--token", default=None, help="API token (FEDHEADS_API_TOKEN of the server)")
    r.add_argument("--interval", type=float, default=1.0, help="seconds between polls of the server")
    r.add_argument("--json", default=None, metavar="FILE", help="also write the study's table as JSON")
    r.add_argument("--cache-dir", type=Path, default=None, help="offline asset cache (runs here; default as fedheads run)")
    r.add_argument("--data-root", default=None, help="folder of local data files (runs here; default: cwd)")
    r.set_defaults(func=cmd_study_run)
