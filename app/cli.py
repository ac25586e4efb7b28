"""The service's commands of ``fedheads`` (the command itself is worker/cli.py, which adds fedcore's
run, presets and assets, and serve and worker):

- ``fedheads db upgrade``: apply the Alembic migrations
- ``fedheads submit SPEC|--preset NAME --server URL [--wait]``: a REST client with a progress bar
- ``fedheads study run FILE [--server URL]``: a study, here or on a server, with progress bars and its
  table (app/study_cli.py)
- ``fedheads openapi [--out FILE] [--check]``: the REST API's OpenAPI schema (docs/openapi.json)
- ``fedheads docs-config [--check]``: the settings reference in docs/operations.md and .env.example
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fedcore.cli import overrides_from
from fedcore.spec import SpecError, requested_fields

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_QUEUED = 3


# --- db -----------------------------------------------------------------------------------------


def cmd_db(args: argparse.Namespace) -> int:
    from app.core.config import get_settings, redact_url
    from app.core.migrate import current_revision, upgrade

    url = args.database_url or get_settings().database_url
    upgrade(url, args.revision)
    print(f"{redact_url(url)} is at revision {current_revision(url)}", file=sys.stderr)
    return 0


# --- submit ---------------------------------------------------------------------------------------


def submission_body(args: argparse.Namespace) -> dict[str, Any]:
    """The POST body: a preset with overrides, or a spec file (which may itself name a preset)."""
    overrides = overrides_from(args)
    if not args.preset and not args.spec:
        raise SystemExit("give a spec file or --preset NAME")
    try:
        name, fields = requested_fields(preset_name=args.preset, spec_path=args.spec, overrides=overrides)
    except SpecError as err:  # the server validates the fields; here only the file can be wrong
        raise SystemExit(str(err)) from None
    body: dict[str, Any] = {"preset": name, "overrides": fields} if name else {"spec": fields}
    body["name"] = args.name or (args.preset or Path(args.spec).stem)
    return body


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str | None, str, str]]:
    """(id, event, data) from the lines of a text/event-stream."""
    ev_id: str | None = None
    ev_type, data = "message", []  # type: tuple[str, list[str]]
    for line in lines:
        if line == "":
            if data:
                yield ev_id, ev_type, "\n".join(data)
            ev_type, data = "message", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "id":
            ev_id = value
        elif field == "event":
            ev_type = value
        elif field == "data":
            data.append(value)


def _follow(client: Any, exp: dict[str, Any]) -> str:
    """Follow the experiment's events with a progress bar; returns its final status."""
    import httpx
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    exp_id, total = exp["id"], exp["progress"]["rounds_total"]
    last_id: str | None = None
    final = exp["status"]
    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        bar = progress.add_task(
            exp["name"], total=total, info=final, completed=exp["progress"]["rounds_done"]
        )
        while True:
            headers = {"Last-Event-ID": last_id} if last_id else {}
            try:
                with client.stream(
                    "GET",
                    f"/api/v1/experiments/{exp_id}/events",
                    headers=headers,
                    timeout=httpx.Timeout(10.0, read=60.0),
                ) as resp:
                    resp.raise_for_status()
                    for ev_id, ev_type, raw in sse_events(resp.iter_lines()):
                        last_id = ev_id or last_id
                        data = json.loads(raw)
                        if ev_type == "round":
                            acc = data.get("accuracy")
                            info = f"acc {acc:.3f}" if acc is not None else f"loss {data.get('loss')}"
                            progress.update(bar, completed=data["round"], info=info)
                        elif ev_type == "status":
                            final = data["status"]
                            progress.update(bar, info=final)
            except (httpx.TransportError, httpx.HTTPStatusError) as err:
                console.print(f"[yellow]event stream interrupted ({err}); reconnecting[/yellow]")
                time.sleep(1.0)
                continue
            if final in ("succeeded", "failed", "cancelled"):
                return final


def cmd_submit(args: argparse.Namespace) -> int:
    import httpx
    from rich.console import Console

    console = Console(stderr=True)
    body = submission_body(args)
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    with httpx.Client(base_url=args.server.rstrip("/"), headers=headers, timeout=30.0) as client:
        try:
            resp = client.post("/api/v1/experiments", json=body)
        except httpx.TransportError as err:
            console.print(f"[red]cannot reach {args.server}:[/red] {err}")
            return EXIT_FAILED
        if resp.status_code == 422:
            console.print("[red]invalid experiment:[/red]")
            for e in resp.json().get("detail", []):  # the server's submit-time checks, word for word
                where = ".".join(str(p) for p in e.get("loc", []))
                console.print(f"  {where}: {e.get('msg')}", markup=False, highlight=False, soft_wrap=True)
            return EXIT_USAGE
        if resp.status_code == 503:
            data = resp.json()
            console.print(f"[yellow]{data.get('detail')}[/yellow]")
            print(json.dumps(data.get("experiment", {}), indent=1))
            return EXIT_QUEUED
        if resp.status_code != 201:
            console.print(f"[red]server answered {resp.status_code}:[/red] {resp.text}")
            return EXIT_FAILED
        exp = resp.json()
        console.print(f"submitted [bold]{exp['name']}[/bold]: {exp['id']} ({exp['status']})")
        if not args.wait:
            print(exp["id"])
            return 0
        final = _follow(client, exp)
        detail = client.get(f"/api/v1/experiments/{exp['id']}").json()
    summary = detail.get("summary") or {}
    console.print(
        f"{exp['id']}: {final}; best accuracy {summary.get('best_accuracy')}, uplink advantage "
        f"{summary.get('uplink_advantage')}, OPs reduction {summary.get('ops_reduction')}"
    )
    if detail.get("error"):
        console.print(f"[red]{detail['error'].splitlines()[0]}[/red]")
    print(exp["id"])
    return 0 if final == "succeeded" else EXIT_FAILED


# --- generated docs -------------------------------------------------------------------------------


def _write_or_check(path: Path, text: str, *, check: bool, command: str) -> bool:
    """Write ``text`` to ``path``; with ``check``, only say whether the file already holds it."""
    current = path.read_text(encoding="utf-8") if path.exists() else None
    if current == text:
        return True
    if check:
        print(f"{path} is stale; regenerate it with: {command}", file=sys.stderr)
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}", file=sys.stderr)
    return True


def cmd_openapi(args: argparse.Namespace) -> int:
    from app.core.reference import REGENERATE_OPENAPI, openapi_json

    text = openapi_json()
    if args.out is None:
        if args.check:
            print("--check needs --out FILE", file=sys.stderr)
            return EXIT_USAGE
        sys.stdout.write(text)
        return 0
    ok = _write_or_check(Path(args.out), text, check=args.check, command=REGENERATE_OPENAPI)
    return 0 if ok else EXIT_FAILED


def cmd_docs_config(args: argparse.Namespace) -> int:
    from app.core.reference import REGENERATE_CONFIG, env_example, with_config_table

    operations, env_file = Path(args.operations), Path(args.env_example)
    ok = _write_or_check(
        operations,
        with_config_table(operations.read_text(encoding="utf-8")),
        check=args.check,
        command=REGENERATE_CONFIG,
    )
    ok = _write_or_check(env_file, env_example(), check=args.check, command=REGENERATE_CONFIG) and ok
    return 0 if ok else EXIT_FAILED


# --- parser ---------------------------------------------------------------------------------------


def register(sub: Any) -> None:
    """Add the service's commands (db, submit, study, openapi, docs-config) to a parser's sub-commands."""
    d = sub.add_parser("db", help="database schema")
    dsub = d.add_subparsers(dest="db_command", required=True)
    up = dsub.add_parser("upgrade", help="apply the Alembic migrations")
    up.add_argument("revision", nargs="?", default="head")
    up.add_argument("--database-url", default=None, help="default FEDHEADS_DATABASE_URL")
    up.set_defaults(func=cmd_db)

    sb = sub.add_parser("submit", help="submit an experiment to a fedheads server")
    sb.add_argument("spec", nargs="?", help="spec file (YAML or JSON; may say `preset: NAME`)")
    sb.add_argument("--preset", help="submit a named preset instead of a file")
    sb.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a spec field (repeatable)")
    sb.add_argument("--name", help="experiment name (default: preset or file name)")
    sb.add_argument("--server", required=True, help="server URL, e.g. http://127.0.0.1:8000")
    sb.add_argument("--token", default=None, help="API token (FEDHEADS_API_TOKEN of the server)")
    sb.add_argument("--wait", action="store_true", help="follow the rounds with a progress bar until it ends")
    sb.set_defaults(func=cmd_submit)

    from app.core.reference import ENV_EXAMPLE_PATH, OPERATIONS_PATH

    o = sub.add_parser("openapi", help="print or write the REST API's OpenAPI schema")
    o.add_argument("--out", default=None, help="file to write, e.g. docs/openapi.json (default: stdout)")
    o.add_argument("--check", action="store_true", help="write nothing; exit 1 if --out is stale")
    o.set_defaults(func=cmd_openapi)

    dc = sub.add_parser("docs-config", help="regenerate the settings reference and .env.example")
    dc.add_argument("--operations", default=str(OPERATIONS_PATH), help="markdown file with the settings markers")
    dc.add_argument("--env-example", default=str(ENV_EXAMPLE_PATH), help="the .env.example to write")
    dc.add_argument("--check", action="store_true", help="write nothing; exit 1 if either file is stale")
    dc.set_defaults(func=cmd_docs_config)

    from app.study_cli import register as register_study

    register_study(sub)
