#!/usr/bin/env python3
"""Serve the package index pip is configured with on this host, for ``docker build --network host``.

Where no PyTorch index is reachable, the CPU build of torch lies on the build host, in a folder
pip is configured to read (``find-links`` in ``pip config list`` or ``PIP_FIND_LINKS``, and the
``file://`` indexes of ``extra-index-url``/``PIP_EXTRA_INDEX_URL``), and the remote index may only
be trusted through a CA that the host knows (pip's ``cert``/``PIP_CERT``). A build container has
neither, so this script serves both as one simple (PEP 503) index over HTTP on 127.0.0.1: a
project's page lists the local files first, then the remote index's files, which it fetches with
the host's trust store on request. The Dockerfile takes it as ``TORCH_INDEX_URL`` and
``PIP_INDEX_URL`` (deploy/smoke.sh does this)::

    deploy/host-index.py --port 58001 &          # http://127.0.0.1:58001/simple/
    docker build --network host --build-arg TORCH_INDEX_URL=http://127.0.0.1:58001/simple \
        --build-arg PIP_INDEX_URL=http://127.0.0.1:58001/simple .

Only the standard library; nothing is stored.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import shlex
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

DIST_SUFFIXES = (".whl", ".tar.gz", ".zip")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def project_of(filename: str) -> str | None:
    """The project name of a wheel or sdist file name."""
    if filename.endswith(".whl"):
        return canonical(filename.split("-", 1)[0])
    for suffix in (".tar.gz", ".zip"):
        if filename.endswith(suffix):
            m = re.match(r"^(.+?)-\d", filename[: -len(suffix)])
            return canonical(m.group(1)) if m else None
    return None


def pip_config() -> dict[str, str]:
    """pip's configuration (``pip config list``) by option name, the environment's PIP_* over it."""
    config: dict[str, str] = {}
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
        ).stdout
    except OSError:
        out = ""
    for line in out.splitlines():
        key, _, value = line.partition("=")
        config[key.rsplit(".", 1)[-1]] = value.strip().strip("'\"")
    for name in ("find-links", "extra-index-url", "index-url", "cert"):
        env = os.environ.get("PIP_" + name.upper().replace("-", "_"))
        if env:
            config[name] = env
    return config


def configured_sources(config: dict[str, str]) -> list[str]:
    """find-links and extra/index URLs from pip's configuration."""
    return [v for name in ("find-links", "extra-index-url", "index-url") for v in shlex.split(config.get(name, ""))]


def local_files(sources: list[str]) -> dict[str, dict[str, Path]]:
    """{project: {filename: path}} for every distribution file in the local sources."""
    found: dict[str, dict[str, Path]] = {}
    for source in sources:
        parsed = urlparse(source)
        if parsed.scheme not in ("", "file"):
            continue  # a remote index: the build container reaches it itself, if at all
        root = Path(unquote(parsed.path))
        if not root.is_dir():
            continue
        # a find-links folder holds files; a file:// simple index points into a files folder next to it
        candidates = [root] + ([root.parent / "files"] if (root.parent / "files").is_dir() else [])
        for folder in candidates:
            for path in folder.iterdir():
                if path.is_file() and path.name.endswith(DIST_SUFFIXES):
                    project = project_of(path.name)
                    if project:
                        found.setdefault(project, {}).setdefault(path.name, path)
    return found


def fetch(url: str, context: ssl.SSLContext) -> Any:
    """GET a remote URL as pip would (HTML simple pages); None when it is not there."""
    request = urllib.request.Request(url, headers={"Accept": "text/html", "User-Agent": "fedheads-host-index"})
    try:
        return urllib.request.urlopen(request, context=context, timeout=120)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def make_handler(
    files: dict[str, dict[str, Path]], upstream: str, context: ssl.SSLContext
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _page(self, body: str) -> None:
            data = f"<!DOCTYPE html><html><body>\n{body}</body></html>\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - the http.server hook
            parts = [p for p in unquote(urlparse(self.path).path).split("/") if p]
            if parts == ["simple"]:
                self._page("".join(f'<a href="{p}/">{p}</a>\n' for p in sorted(files)))
            elif len(parts) == 2 and parts[0] == "simple":
                project = canonical(parts[1])
                names = sorted(files.get(project, {}))
                body = "".join(f'<a href="/files/{html.escape(n)}">{html.escape(n)}</a>\n' for n in names)
                remote = fetch(f"{upstream}/{project}/", context) if upstream else None
                if remote is not None:
                    with remote:
                        page = remote.read().decode("utf-8", "replace")
                    base = remote.geturl()
                    # every link, absolute or relative, through /remote/ (fetched with the host's trust)
                    def through(m: re.Match[str]) -> str:
                        target = urllib.parse.urljoin(base, html.unescape(m.group(1)))
                        return 'href="/remote/' + html.escape(target.split("://", 1)[1]) + '"'
                    body += "".join(
                        re.sub(r'href="([^"]+)"', through, line) + "\n"
                        for line in page.splitlines()
                        if "<a " in line
                    )
                if not body:
                    self.send_error(404)
                    return
                self._page(body)
            elif len(parts) >= 2 and parts[0] == "remote" and upstream:
                url = "https://" + urlparse(self.path).path.split("/remote/", 1)[1]
                remote = fetch(url, context)
                if remote is None:
                    self.send_error(404)
                    return
                with remote:
                    self.send_response(200)
                    self.send_header("Content-Type", remote.headers.get("Content-Type", "application/octet-stream"))
                    if remote.headers.get("Content-Length"):
                        self.send_header("Content-Length", remote.headers["Content-Length"])
                    self.end_headers()
                    while chunk := remote.read(1 << 20):
                        self.wfile.write(chunk)
            elif len(parts) == 2 and parts[0] == "files" and project_of(parts[1]) in files:
                path = files[project_of(parts[1]) or ""].get(parts[1])
                if path is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(path.stat().st_size))
                self.end_headers()
                with path.open("rb") as fh:
                    while chunk := fh.read(1 << 20):
                        self.wfile.write(chunk)
            else:
                self.send_error(404)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the http.server hook
            pass

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=58001)
    parser.add_argument("--list", action="store_true", help="print the projects found and exit")
    parser.add_argument(
        "--upstream", default=None, help="the remote index (default: pip's index-url, else https://pypi.org/simple)"
    )
    args = parser.parse_args(argv)
    config = pip_config()
    upstream = (args.upstream or config.get("index-url") or "https://pypi.org/simple").rstrip("/")
    if not upstream.startswith("https://"):
        upstream = ""  # a local index is served from its files
    context = ssl.create_default_context(cafile=config.get("cert") or None)
    files = local_files(configured_sources(config))
    if args.list:
        for project in sorted(files):
            print(project, " ".join(sorted(files[project])))
        return 0
    server = ThreadingHTTPServer((args.host, args.port), make_handler(files, upstream, context))
    print(
        f"serving {len(files)} local projects and {upstream or 'no remote index'} "
        f"at http://{args.host}:{args.port}/simple/",
        flush=True,
    )
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
