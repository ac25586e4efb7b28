"""Browser tests: a real `fedheads serve` (SQLite, embedded local executor) and Debian's headless Chromium.

Needs `apt-get install -y chromium` and `pip install playwright` (never `playwright install`: the
browser is the system one). Chromium missing is an error, not a skip; set
FEDHEADS_SKIP_BROWSER_TESTS=1 to skip these tests on a machine without it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
LOCAL_HOSTS = ("127.0.0.1", "localhost")
# Every host name but the local ones resolves to nothing: the pages must work offline. The `page` fixture counts
# any request that still leaves for another host (an IP literal, say) and fails the test on it.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"]
# A smoke job of a few seconds once the worker process is warm (tiny BERT, synthetic data).
TINY = {"rounds": 3, "local_steps": 4, "eval_size": 60, "max_train_examples": 600}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Server:
    url: str
    log: Path
    db_url: str

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`python -m worker.cli serve` on a free port with a temp SQLite database and artifact root."""
    with serve_process(tmp_path_factory.mktemp("e2e-server")) as srv:
        yield srv


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if os.environ.get("FEDHEADS_SKIP_BROWSER_TESTS") == "1":
        pytest.skip("FEDHEADS_SKIP_BROWSER_TESTS=1")
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("browser tests need Debian's chromium: apt-get install -y chromium "
                    "(or set FEDHEADS_SKIP_BROWSER_TESTS=1)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=chromium, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 800}, accept_downloads=True,
        )
        try:
            yield ctx
        finally:
            ctx.close()


def is_outside(url: str) -> bool:
    """A request that would leave this machine (data:, blob: and about: URLs stay in the page)."""
    parts = urlsplit(url)
    return parts.scheme not in ("data", "blob", "about") and parts.hostname not in LOCAL_HOSTS


@pytest.fixture
def outside_requests() -> list[str]:
    """URLs the test's page asked for outside 127.0.0.1 (blocked by CHROMIUM_ARGS); the `page` fixture fills it."""
    return []


@pytest.fixture
def page(browser_context: Any, outside_requests: list[str]) -> Iterator[Any]:
    """A fresh tab; a JavaScript error on the page, or a request outside 127.0.0.1, fails the test."""
    pg = browser_context.new_page()
    pg.on("request", lambda req: outside_requests.append(req.url) if is_outside(req.url) else None)
    errors: list[str] = []
    pg.on("pageerror", lambda err: errors.append(str(err)))
    # console errors too, except the browser's note on each 4xx answer (the tests provoke 422s and 409s)
    pg.on("console", lambda msg: errors.append(msg.text)
          if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
    pg.set_default_timeout(20_000)
    yield pg
    pg.close()
    assert not errors, f"errors in the page: {errors}"
    assert not outside_requests, f"requests outside 127.0.0.1: {outside_requests}"


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


class InProcessServer:
    """The app in a uvicorn thread without its background reconciler, on its own SQLite database.

    For pages over rows written straight into the database: with no reconciler, a fake
    'running' experiment is not mistaken for a lost job and re-run.
    """

    def __init__(self, folder: Path) -> None:
        import uvicorn

        from app.core.config import Settings
        from app.core.migrate import upgrade
        from app.main import create_app

        self.settings = Settings(database_url=f"sqlite:///{folder / 'fedheads.db'}", broker_url=None,
                                 artifact_root=folder / "artifacts", data_root=folder / "data")
        upgrade(self.settings.database_url)
        self.app = create_app(self.settings, background=False)
        port = free_port()
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> InProcessServer:
        self._thread.start()
        wait_until(lambda: self._server.started, 30, "the in-process server")
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)

    @property
    def sessions(self) -> Any:
        return self.app.state.sessions


@pytest.fixture
def quiet_server(tmp_path: Path) -> Iterator[InProcessServer]:
    with InProcessServer(tmp_path) as srv:
        yield srv


@contextlib.contextmanager
def serve_process(folder: Path, extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    """`python -m worker.cli serve` on a free port (SQLite, local executor) under ``folder``, plus ``extra_env``.

    The `server` fixture's server; tests that need one configured differently (e.g. with
    FEDHEADS_API_TOKEN set) start their own.
    The server and its executor processes (its own process group) are stopped on exit.
    """
    port = free_port()
    db_url = f"sqlite:///{folder / 'fedheads.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDHEADS_")}
    env.update({
        "FEDHEADS_DATABASE_URL": db_url, "FEDHEADS_ARTIFACT_ROOT": str(folder / "artifacts"),
        "FEDHEADS_DATA_ROOT": str(folder / "data"), "FEDHEADS_CANCEL_POLL_INTERVAL": "0.1",
        "FEDHEADS_RECONCILE_INTERVAL": "2", "PYTHONPATH": str(ROOT), **(extra_env or {}),
    })
    log = folder / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    srv = Server(url=f"http://127.0.0.1:{port}", log=log, db_url=db_url)

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"fedheads serve exited with {proc.returncode}:\n{srv.log_tail()}")
        try:
            return httpx.get(f"{srv.url}/api/v1/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(healthy, 90, "fedheads serve to answer")
        yield srv
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server and its executor processes (its own group)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
