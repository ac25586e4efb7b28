"""The API process with its executors wired in: what ``fedheads serve`` runs.

The app defines the executor interface and knows no concrete executor; this, the
outermost layer, injects :func:`worker.executors.make_executor` (local processes, or
Celery when a broker is configured). To serve it with uvicorn directly:
``uvicorn worker.serve:create_app --factory``.
"""

from __future__ import annotations

from fastapi import FastAPI

from app.core.config import Settings
from app.main import create_app as create_bare_app
from worker.executors import make_executor


def create_app(settings: Settings | None = None, *, background: bool = True) -> FastAPI:
    """``app.main.create_app`` with the executor that ``settings`` asks for."""
    return create_bare_app(settings, background=background, executor_factory=make_executor)
