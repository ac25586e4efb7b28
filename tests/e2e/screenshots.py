"""Take the dashboard screenshots of docs/ again: the experiment page, compare and the list.

    .venv/bin/python -m tests.e2e.screenshots    # writes docs/screenshot-{experiment,compare,list,progress,study}.png
    .venv/bin/python -m tests.e2e.screenshots --out /tmp/shots --color-scheme dark
    .venv/bin/python -m tests.e2e.screenshots --only study    # the study page only

It starts `fedheads serve` on a free port with a fresh SQLite database (as the browser tests do), runs
a study of the `smoke` preset (dense, s=0.5 and s=0.9; 8 rounds each, a minute or two on 2 cores),
and photographs the pages in Debian's headless Chromium, offline: a request outside 127.0.0.1 is an
error; then starts one longer run and photographs the head of its page mid-round (the progress line). On a
second fresh server it runs a smoke study (dense, mask s=0.9 and drop s=0.5 over seeds 0 and 1, two targets;
about two minutes) and photographs its page, finished. Not a test; run it after changing a page.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.e2e.conftest import CHROMIUM_ARGS, ROOT, Server, is_outside, serve_process, wait_until

SWEEP = "docs"
SPARSITIES = (0.0, 0.5, 0.9)
OVERRIDES = {"rounds": 8}
TERMINAL = ("succeeded", "failed", "cancelled")


def run_sweep(server: Server, timeout: float) -> tuple[str, list[str]]:
    """The smoke sweep as a study (dense, s=0.5, s=0.9; seed 0), tagged; its id and its runs' ids, dense first."""
    with server.api() as api:
        resp = api.post("/api/v1/studies", json={
            "name": f"smoke {SWEEP}", "base": {"preset": "smoke", "overrides": OVERRIDES},
            "variants": {f"s={s:g}": {"sparsity": s} for s in SPARSITIES}, "seeds": [0], "baseline": "s=0"})
        resp.raise_for_status()
        study = resp.json()["id"]
        runs = {r["variant"]: r["id"] for r in api.get(f"/api/v1/studies/{study}").json()["runs"]}
        ids = [runs[f"s={s:g}"] for s in SPARSITIES]
        for i, s in zip(ids, SPARSITIES, strict=True):
            api.patch(f"/api/v1/experiments/{i}", json={
                "tags": ["docs", "baseline"] if s == 0 else ["docs"],
                "note": "dense reference of the docs sweep" if s == 0 else ""}).raise_for_status()

        def done() -> bool:
            states = [api.get(f"/api/v1/experiments/{i}").json()["status"] for i in ids]
            if any(st in ("failed", "cancelled") for st in states):
                raise RuntimeError(f"a run did not succeed: {states}\n{server.log_tail()}")
            return all(st == "succeeded" for st in states)

        wait_until(done, timeout, "the smoke sweep to finish", interval=1.0)
    return study, ids


# the study of docs/studies.md: 3 variants x 2 seeds of the smoke preset, judged against dense
STUDY = {"name": "smoke study", "base": {"preset": "smoke", "overrides": {"rounds": 6}},
         "variants": {"dense": {"sparsity": 0.0}, "mask s=0.9": {"sparsity": 0.9, "prune_mode": "mask"},
                      "drop s=0.5": {"sparsity": 0.5, "prune_mode": "drop"}},
         "seeds": [0, 1], "baseline": "dense",
         "targets": [{"metric": "accuracy_vs_baseline", "within": 2.0}, {"metric": "uplink_advantage", "at_least": 1.8}]}


def run_study(server: Server, timeout: float) -> str:
    """The docs' smoke study, run to the end; its id."""
    with server.api() as api:
        resp = api.post("/api/v1/studies", json=STUDY)
        resp.raise_for_status()
        study: str = resp.json()["id"]

        def done() -> bool:
            status = api.get(f"/api/v1/studies/{study}").json()["status"]
            if status in ("failed", "cancelled"):
                raise RuntimeError(f"the study did not succeed: {status}\n{server.log_tail()}")
            return bool(status == "succeeded")

        wait_until(done, timeout, "the smoke study to finish", interval=1.0)
    return study


@contextmanager
def browser_page(color_scheme: str, what: str) -> Iterator[Any]:
    """A page of Debian's headless chromium (1280 wide); exits if ``what`` asked for any outside URL."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("needs Debian's chromium: apt-get install -y chromium (make browser)")
    outside: list[str] = []
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        ctx = pw.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 800}, color_scheme=color_scheme)  # type: ignore[arg-type]
        page = ctx.new_page()
        page.on("request", lambda req: outside.append(req.url) if is_outside(req.url) else None)
        yield page
        ctx.close()
    if outside:
        sys.exit(f"{what} asked for outside URLs: {outside}")


def take_study(server: Server, study: str, out: Path, color_scheme: str) -> None:
    """The finished study's page, whole."""
    with browser_page(color_scheme, "the study page") as page:
        shoot(page, f"{server.url}/studies/{study}",
              "document.getElementById('stream-state').textContent.includes('every run has finished') && "
              "document.getElementById('chart-pareto-time').data !== undefined",
              out / "screenshot-study.png")


def shoot(page: Any, url: str, ready: str, path: Path) -> None:
    """The whole page, down to the footer (a short page is not padded to the window's height)."""
    page.goto(url)
    page.wait_for_function(ready, timeout=60_000)
    page.evaluate("window.fedheads && window.fedheads.flush && window.fedheads.flush(); window.scrollTo(0, 0)")
    page.wait_for_timeout(800)  # Plotly's transitions and the last frame of the painter
    height = page.evaluate("Math.ceil(document.querySelector('.foot').getBoundingClientRect().bottom)")
    page.screenshot(path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": 1280, "height": height})
    print(f"wrote {path}")


def take(server: Server, study: str, ids: list[str], out: Path, color_scheme: str) -> None:
    with browser_page(color_scheme, "the pages") as page:
        shown = ids[1]  # s=0.5: its page overlays the dense sibling
        shoot(page, f"{server.url}/experiments/{shown}",
              "window.fedheads && window.fedheads.state.records.length === 8 && "
              "document.getElementById('stream-state').textContent.includes('stream closed') && "
              "document.getElementById('chart-acc').data && document.getElementById('chart-acc').data.length === 4",
              out / "screenshot-experiment.png")
        shoot(page, f"{server.url}/compare?study={study}",
              f"(() => {{ const gd = document.getElementById('chart-pareto'); "
              f"return gd && gd.data && gd.data.length === {len(ids)}; }})()",
              out / "screenshot-compare.png")
        shoot(page, f"{server.url}/", f"document.querySelectorAll('#experiments tbody tr').length === {len(ids)}",
              out / "screenshot-list.png")
        shoot_live(page, server, out / "screenshot-progress.png")


def shoot_live(page: Any, server: Server, path: Path) -> None:
    """The head of a running job's page once its progress line shows a step and the time left; then cancel it."""
    with server.api() as api:
        resp = api.post("/api/v1/experiments", json={"name": "smoke, running", "preset": "smoke",
                                                    "overrides": {"rounds": 8, "local_steps": 200}})
        resp.raise_for_status()
        exp_id = resp.json()["id"]
        try:
            page.goto(f"{server.url}/experiments/{exp_id}")
            page.wait_for_function("(() => { const t = document.getElementById('live-progress').textContent; "
                                   "return / · step [1-9]/.test(t) && /s left in the round/.test(t); })()",
                                   timeout=120_000)
            height = page.evaluate("Math.ceil(document.querySelector('.cards').getBoundingClientRect().top) - 8")
            page.screenshot(path=str(path), clip={"x": 0, "y": 0, "width": 1280, "height": height})
            print(f"wrote {path}")
        finally:
            api.post(f"/api/v1/experiments/{exp_id}/cancel")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="folder for the PNGs (default: docs/)")
    parser.add_argument("--color-scheme", choices=("light", "dark"), default="light")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the sweep or the study")
    parser.add_argument("--only", choices=("study",), help="take the study page's screenshot only")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only is None:
        with tempfile.TemporaryDirectory(prefix="fedheads-shots-") as tmp, serve_process(Path(tmp)) as server:
            study, ids = run_sweep(server, args.timeout)
            take(server, study, ids, args.out, args.color_scheme)
    with tempfile.TemporaryDirectory(prefix="fedheads-shots-") as tmp, serve_process(Path(tmp)) as server:
        take_study(server, run_study(server, args.timeout), args.out, args.color_scheme)


if __name__ == "__main__":
    main()
