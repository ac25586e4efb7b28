"""The ``fedheads`` command line: run experiments, list presets, fetch offline assets."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """The command's ``--set key=value`` items (:func:`fedcore.spec.parse_sets`); a malformed one ends
    the command with its message."""
    from fedcore.spec import SpecError, parse_sets

    try:
        return parse_sets(args.set)
    except SpecError as err:
        raise SystemExit(str(err)) from None


def _spec_from_args(args: argparse.Namespace) -> Any:
    from fedcore.spec import merged_fields, requested_fields, validate_spec

    overrides = overrides_from(args)
    if not args.preset and not args.spec:
        raise SystemExit("give a spec file or --preset NAME (see `fedheads presets`)")
    name, fields = requested_fields(preset_name=args.preset, spec_path=args.spec, overrides=overrides)
    return validate_spec(merged_fields(name, fields)), args.preset or Path(args.spec).stem


def cmd_presets(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from fedcore.spec import preset, preset_about, preset_names

    table = Table(title="fedheads presets")
    for col in ("name", "model", "dataset", "clients", "rounds", "sparsity", "about"):
        table.add_column(col)
    for name in preset_names():
        s = preset(name)
        table.add_row(name, s.model, s.dataset, f"{s.clients_per_round}/{s.num_clients}", str(s.rounds),
                      f"{s.sparsity:g} ({s.prune_mode})", preset_about(name))
    Console().print(table)
    return 0


def _asset_table(statuses: list[Any], requested: set[str]) -> Any:
    from rich.table import Table

    from fedcore.assets import ASSETS

    table = Table(title="fedheads offline assets")
    for column in ("asset", "kind", "size", "status", "pip requirement"):
        table.add_column(column)
    for status in statuses:
        info = ASSETS[status.name]
        if status.present:
            state = "[green]present[/green]"
        elif status.name in requested:
            state = f"[red]{status.detail}[/red]"
        else:
            state = f"[dim]{status.detail}[/dim]"
        kind = f"{info.kind}{' (optional)' if info.optional else ''}"
        table.add_row(status.name, kind, info.size_hint, state, info.requirement)
    return table


def assets_command(names: list[str], *, cache_dir: Path | None, include_optional: bool, check_only: bool) -> int:
    """``fedheads assets``: install the missing requested assets (unless ``check_only``), printing
    fedcore.assets' progress, then the status table; 0 when every requested asset is present, 2 for an
    unknown name."""
    from rich.console import Console

    from fedcore.assets import AssetError, asset_status, install_asset, resolve_cache_dir, select_assets

    console = Console()
    try:
        wanted = select_assets(names, include_optional)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    requested = {info.name for info in wanted}
    cache = resolve_cache_dir(cache_dir)
    console.print(f"asset cache: {cache}")
    failed = False
    if not check_only:
        for info in wanted:
            try:
                install_asset(info, cache_dir=cache, progress=lambda msg: console.print(f"  {msg}"))
            except AssetError as exc:
                failed = True
                console.print(f"[red]error:[/red] {exc}")
    statuses = asset_status(cache)
    console.print(_asset_table(statuses, requested))
    missing = sorted(s.name for s in statuses if s.name in requested and not s.present)
    if missing and check_only:
        extra = f" --cache-dir {cache_dir}" if cache_dir is not None else ""
        console.print(f"missing: {', '.join(missing)}; run `fedheads assets {' '.join(missing)}{extra}`")
    return 1 if (missing or failed) else 0


def cmd_assets(args: argparse.Namespace) -> int:
    return assets_command(args.names, cache_dir=args.cache_dir, include_optional=args.all, check_only=args.check)


def _fmt_mb(n: float) -> str:
    return f"{n / 1e6:.2f} MB"


def cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from fedcore.checks import InputProblems, Places, raise_for_inputs
    from fedcore.context import Paths, get_context
    from fedcore.simulation import RoundResult, run_simulation, save_adapter, summarize
    from fedcore.spec import ExperimentSpec, SpecError

    console = Console(stderr=True)
    paths = Paths(cache_dir=args.cache_dir, data_root=Path(args.data_root) if args.data_root else Path.cwd())
    places = Places(data_root=paths.data_root, cache_dir=paths.cache_dir)
    try:
        if args.resume:
            out = Path(args.resume)
            spec = ExperimentSpec.model_validate_json((out / "spec.json").read_text(encoding="utf-8"))
            raise_for_inputs(spec, places)
        else:
            spec, label = _spec_from_args(args)
            raise_for_inputs(spec, places)  # the server's submit-time checks: before anything is written
            out = Path(args.out) if args.out else Path("runs") / f"{label}-{time.strftime('%Y%m%d-%H%M%S')}"
            if (out / "checkpoint" / "state.json").exists():
                raise SystemExit(f"{out} already holds a run; use `fedheads run --resume {out}` or another --out")
            out.mkdir(parents=True, exist_ok=True)
            (out / "spec.json").write_text(spec.model_dump_json(indent=2), encoding="utf-8")
    except SpecError as err:
        console.print(f"[red]invalid spec:[/red] {err}")
        return 2
    except InputProblems as err:
        console.print("[red]cannot start:[/red]")
        for p in err.problems:
            console.print(f"  {p.field}: {p.message}", markup=False, highlight=False, soft_wrap=True)
        return 2

    console.print(f"[bold]fedheads[/bold] {spec.model} on {spec.dataset}: {spec.rounds} rounds x "
                  f"{spec.clients_per_round}/{spec.num_clients} clients, sparsity {spec.sparsity:g} "
                  f"({spec.prune_mode}), {spec.aggregation}, {spec.selection} -> {out}")
    t0 = time.perf_counter()
    pool = None
    if args.workers and args.workers > 1:  # started first: its processes load while this one does
        from fedcore.client_pool import ProcessClientPool

        pool = ProcessClientPool(spec, args.workers, paths)
    try:
        ctx = get_context(spec, paths)
    except Exception as err:  # missing asset, bad path: say what to do, not a traceback
        if pool is not None:
            pool.close()
        console.print(f"[red]cannot start:[/red] {err}")
        return 2
    console.print(f"loaded model and data in {time.perf_counter() - t0:.1f} s "
                  f"({len(ctx.blocks)} attention blocks x {ctx.blocks[0].num_heads} heads, "
                  f"{len(ctx.data.train)} train / {min(len(ctx.data.test), spec.eval_size)} test examples)")

    sent = {"bytes": 0}
    last: dict[str, Any] = {"acc": None}
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console) as progress:
        rounds_bar = progress.add_task("rounds", total=spec.rounds, info="")
        clients_bar = progress.add_task("clients", total=spec.clients_per_round, info="")

        def on_client(u: Any, j: int, m: int) -> None:
            progress.update(clients_bar, completed=j, total=m, info=f"client {u.client}: loss {u.train_loss:.3f}")

        def on_round(r: RoundResult) -> None:
            sent["bytes"] += r.bytes_up + r.bytes_down
            acc = r.metrics.get("accuracy")
            last["acc"] = acc
            figure = f"acc {acc:.3f}" if acc is not None else f"rougeL {r.metrics.get('rougeL', 0):.3f}"
            progress.update(rounds_bar, completed=r.round, info=f"{figure}, sent {_fmt_mb(sent['bytes'])}")
            progress.update(clients_bar, completed=0)

        try:
            result = run_simulation(spec, paths=paths, context=ctx, client_pool=pool,
                                    on_round_end=on_round, on_client_done=on_client,
                                    checkpoint_dir=out / "checkpoint", stop_after_round=args.stop_after)
        finally:
            if pool is not None:
                pool.close()

    rounds = [r.to_dict() for r in result.rounds]
    summary = summarize(rounds)
    (out / "results.json").write_text(json.dumps(
        {"spec": spec.model_dump(), "status": result.status, "summary": summary, "rounds": rounds,
         "blocks": [b.name for b in ctx.blocks],
         "clients": [{"client": i, "examples": n, "label_histogram": h}
                     for i, (n, h) in enumerate(zip(ctx.num_examples, ctx.label_histograms(), strict=True))]},
        indent=1), encoding="utf-8")
    if result.status == "succeeded":
        save_adapter(ctx, result.final_state, out / "adapter")

    table = Table(title=f"fedheads run: {result.status} in {time.perf_counter() - t0:.0f} s")
    table.add_column("round", justify="right")
    for col in ("accuracy" if ctx.task == "classification" else "rougeL", "eval loss", "selected",
                "uplink MB", "dense uplink MB", "OPs (G)", "dense OPs (G)", "time s"):
        table.add_column(col, justify="right")
    for r in result.rounds:
        main = r.metrics.get("accuracy", r.metrics.get("rougeL", 0.0))
        table.add_row(str(r.round), f"{main:.4f}", f"{r.metrics['loss']:.4f}", ",".join(map(str, r.selection["selected"])),
                      f"{r.bytes_up / 1e6:.3f}", f"{r.bytes_up_dense / 1e6:.3f}", f"{r.ops / 1e9:.1f}",
                      f"{r.ops_dense / 1e9:.1f}", f"{r.wall_time:.1f}")
    Console().print(table)
    if summary.get("rounds"):
        adv = summary["uplink_advantage"]
        Console().print(
            f"uplink advantage {adv:.2f}x, both directions {summary['total_advantage']:.2f}x, "
            f"OPs reduction whole-step {summary['ops_reduction']:.2f}x / attention+LoRA "
            f"{summary['ops_attention_reduction']:.2f}x; results in {out / 'results.json'}")
    return 0 if result.status in ("succeeded", "stopped") else 1


def register(sub: Any) -> None:
    """Add fedcore's commands (run, presets, assets) to a parser's sub-commands (``add_subparsers()``)."""
    r = sub.add_parser("run", help="run a federated experiment locally")
    r.add_argument("spec", nargs="?", help="spec file (YAML or JSON)")
    r.add_argument("--preset", help="start from a named preset (see `fedheads presets`)")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a spec field (repeatable)")
    r.add_argument("--out", help="output folder (default runs/<name>-<time>)")
    r.add_argument("--resume", metavar="DIR", help="continue an interrupted run in DIR")
    r.add_argument("--workers", type=int, default=1, help="train a round's clients in N processes")
    r.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)
    r.add_argument("--cache-dir", type=Path, default=None, help="asset cache (default ~/.cache/fedheads/assets)")
    r.add_argument("--data-root", default=None, help="folder local datasets must live in (default: cwd)")
    r.set_defaults(func=cmd_run)

    pr = sub.add_parser("presets", help="list the named presets")
    pr.set_defaults(func=cmd_presets)

    a = sub.add_parser("assets", help="download and verify the offline models and datasets")
    a.add_argument("names", nargs="*", help="asset names (default: all default assets)")
    a.add_argument("--all", action="store_true", help="include optional assets (smollm2-135m)")
    a.add_argument("--check", action="store_true", help="only report what is present")
    a.add_argument("--cache-dir", type=Path, default=None)
    a.set_defaults(func=cmd_assets)


def build_parser() -> argparse.ArgumentParser:
    """fedcore's commands alone (``python -m fedcore.cli``); the ``fedheads`` command adds the service's."""
    p = argparse.ArgumentParser(prog="fedheads", description=__doc__)
    register(p.add_subparsers(dest="command", required=True))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
