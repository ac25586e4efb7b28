"""Imports point one way, worker -> app -> fedcore; the API and worker parents never load torch."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICE_PACKAGES = {
    "app",
    "worker",
    "fastapi",
    "starlette",
    "sse_starlette",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "celery",
    "kombu",
    "redis",
    "psycopg2",
}


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def _modules(package: str, must_hold: str) -> list[Path]:
    """The package's modules, found from the repository root; fails when it finds none (a wrong root)."""
    paths = sorted((ROOT / package).rglob("*.py"))
    assert ROOT / package / must_hold in paths, f"{package}/{must_hold} not found under {ROOT}"
    return paths


def test_fedcore_imports_no_service_package_in_any_module() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(_imported_roots(p) & SERVICE_PACKAGES)
        for p in _modules("fedcore", "simulation.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def _worker_imports(tree: ast.AST) -> list[ast.stmt]:
    found: list[ast.stmt] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        if any(n.split(".")[0] == "worker" for n in names):
            found.append(node)
    return found


def test_no_app_module_imports_worker() -> None:
    # the `fedheads` command, which wires the worker in, is worker/cli.py: app/ has no exception
    offenders = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in _modules("app", "main.py")
        for node in _worker_imports(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert offenders == []


def test_worker_imports_are_recognised_by_the_layering_check() -> None:
    source = "import worker.tasks\nfrom worker.runner import run_job\nfrom app.main import create_app\n"
    tree = ast.parse(source)
    assert [node.lineno for node in _worker_imports(tree)] == [1, 2]


def test_api_and_worker_parent_start_without_importing_torch(tmp_path: Path) -> None:
    code = (
        "import sys; from app.main import create_app; import worker.cli, worker.tasks, worker.celery_app; "
        "import worker.serve; create_app(); worker.serve.create_app(); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    env = {**os.environ, "FEDHEADS_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def _status_writes(path: Path) -> list[str]:
    """Lines that set a status: ``x.status = ...``, ``.values(status=...)``, ``Experiment(status=...)``."""
    hits = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Attribute) and t.attr == "status" for t in targets):
            hits.append(f"{path.relative_to(ROOT)}:{node.lineno}")
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("values", "Experiment") and any(k.arg == "status" for k in node.keywords):
                hits.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return hits


def test_only_the_jobs_service_writes_a_job_status() -> None:
    modules = _modules("app", "services/jobs.py") + _modules("worker", "runner.py")
    home = ROOT / "app" / "services" / "jobs.py"
    assert _status_writes(home), "the status writes in app/services/jobs.py are not recognised"
    assert [hit for p in modules if p != home for hit in _status_writes(p)] == []
