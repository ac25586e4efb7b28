"""The ``fedheads`` command: fedcore's commands (run, presets, assets) plus the service's.

- ``fedheads serve``: migrate the database, then the API (and, with no broker, the local executor)
- ``fedheads worker [--queue Q]``: a Celery worker (needs FEDHEADS_BROKER_URL)
- ``fedheads db upgrade``: apply the Alembic migrations
- ``fedheads submit SPEC|--preset NAME --server URL [--wait]``: a REST client with a progress bar
- ``fedheads openapi [--out FILE] [--check]``: the REST API's OpenAPI schema (docs/openapi.json)
- ``fedheads docs-config [--check]``: the settings reference in docs/operations.md and .env.example
"""

# The process entry point (pyproject's console script, `python -m worker.cli`) lives in the
# outermost layer: it composes fedcore's and app's `register(subparsers)` and adds the two commands
# that wire the worker's executors and Celery app in, so app/ never imports worker/.

from __future__ import annotations

import argparse
import sys
from typing import Any

from app import cli as app_cli
from fedcore import cli as fedcore_cli

EXIT_USAGE = app_cli.EXIT_USAGE


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.core.config import get_settings
    from app.core.migrate import upgrade
    from worker.serve import create_app

    settings = get_settings()
    updates: dict[str, Any] = {}
    if args.host:
        updates["host"] = args.host
    if args.port:
        updates["port"] = args.port
    settings = settings.model_copy(update=updates)
    upgrade(settings.database_url)
    mode = f"Celery via {settings.broker_url}" if settings.uses_celery else "embedded local executor"
    base = f"http://{settings.host}:{settings.port}"
    print(
        f"fedheads: database migrated; jobs run on the {mode}\n"
        f"  dashboard: {base}/   API: {base}/api/v1   OpenAPI: {base}/docs",
        file=sys.stderr,
    )
    if settings.api_token is None:
        print("fedheads: no FEDHEADS_API_TOKEN set: the API is unauthenticated; bind to 127.0.0.1 only",
              file=sys.stderr)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=args.log_level)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from app.core.config import get_settings

    settings = get_settings()
    if not settings.uses_celery:
        print("fedheads worker needs a broker: set FEDHEADS_BROKER_URL=redis://host:6379/0", file=sys.stderr)
        return EXIT_USAGE
    from worker.celery_app import make_celery

    queues = [q.strip() for item in (args.queue or []) for q in item.split(",") if q.strip()]
    queues = queues or [settings.experiments_queue, settings.clients_queue]
    argv = [
        "worker",
        "-Q",
        ",".join(queues),
        "--pool",
        args.pool,
        "--concurrency",
        str(args.concurrency),
        "--loglevel",
        args.loglevel,
    ]
    if args.hostname:
        argv += ["--hostname", args.hostname]
    make_celery(settings).worker_main(argv)
    return 0


def register(sub: Any) -> None:
    """Add serve and worker to a parser's sub-commands."""
    s = sub.add_parser("serve", help="run the API (migrates the database first)")
    s.add_argument("--host", default=None, help="bind address (default FEDHEADS_HOST or 127.0.0.1)")
    s.add_argument("--port", type=int, default=None, help="port (default FEDHEADS_PORT or 8000)")
    s.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    s.set_defaults(func=cmd_serve)

    w = sub.add_parser("worker", help="run a Celery worker (needs FEDHEADS_BROKER_URL)")
    w.add_argument(
        "--queue",
        "-Q",
        action="append",
        metavar="QUEUE",
        help="queue(s) to serve, repeatable or comma-separated (default: experiments,clients)",
    )
    w.add_argument("--concurrency", "-c", type=int, default=1, help="worker processes (default 1)")
    w.add_argument("--pool", default="prefork", choices=["prefork", "solo", "threads"])
    w.add_argument("--hostname", "-n", default=None, help="node name, e.g. w1@%%h")
    w.add_argument("--loglevel", "-l", default="info")
    w.set_defaults(func=cmd_worker)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fedheads", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    fedcore_cli.register(sub)
    register(sub)
    app_cli.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
