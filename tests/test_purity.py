"""Imports point inward: fedcore knows nothing of the web, the database or the queue."""

from __future__ import annotations

import ast
from pathlib import Path

FORBIDDEN = {"app", "worker", "fastapi", "starlette", "sqlalchemy", "celery", "redis", "alembic"}


def test_fedcore_imports_no_service_layer() -> None:
    bad = []
    for path in Path("fedcore").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            bad += [f"{path}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert bad == []


def test_nothing_downloads_from_a_hub_by_default() -> None:
    hits = [str(p) for p in Path("fedcore").rglob("*.py")
            if "hf_hub_download" in p.read_text() or "snapshot_download" in p.read_text()]
    assert hits == []
