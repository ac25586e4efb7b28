"""Imports point inward: fedcore knows nothing of the web, the database or the queue.

Paths are resolved from the repository root (not the working directory), and each check
first asserts that it found the files it is about, so a wrong root fails instead of passing.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"app", "worker", "fastapi", "starlette", "sqlalchemy", "celery", "redis", "alembic"}


def fedcore_modules() -> list[Path]:
    paths = sorted((ROOT / "fedcore").rglob("*.py"))
    assert len(paths) > 10 and ROOT / "fedcore" / "simulation.py" in paths, f"no fedcore modules under {ROOT}"
    return paths


def test_fedcore_imports_no_service_layer() -> None:
    bad = []
    for path in fedcore_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            bad += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert bad == []


def test_nothing_downloads_from_a_hub_by_default() -> None:
    hits = []
    for path in fedcore_modules():
        text = path.read_text(encoding="utf-8")
        if "hf_hub_download" in text or "snapshot_download" in text:
            hits.append(str(path.relative_to(ROOT)))
    assert hits == []
