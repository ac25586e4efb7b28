"""The FastAPI application factory.

``create_app()`` reads Settings from the environment; tests and ``fedheads serve`` may
pass their own. At start-up the app builds its executor with the ``executor_factory``
that the process's entry point injects (``worker.serve.create_app``, which ``fedheads
serve`` runs and ``uvicorn worker.serve:create_app --factory`` serves, wires local
processes or Celery), and starts the reconciler; at shutdown it stops both. The app
itself never imports ``worker``.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app.api.routes import experiments, meta, studies
from app.api_docs import add_api_docs
from app.core.body_limit import BodyLimit
from app.core.config import Settings, get_settings
from app.core.db import session_factory
from app.services import spec_errors
from app.services.dispatch import ExecutorFactory, NoExecutor, Reconciler
from app.services.errors import InvalidInput, ServiceError
from app.services.round_cache import RoundCache
from app.services.stream import EventWatch
from app.web import router as pages_router
from app.web.study_pages import router as study_pages_router

log = logging.getLogger(__name__)

DESCRIPTION = """
Submit federated head-pruning experiments, follow their rounds live (Server-Sent
Events), read every round's full record, and download the trained LoRA adapter.

An experiment is a `fedcore` **ExperimentSpec** (GET /api/v1/presets lists named
starting points). Jobs run in local processes (no broker configured) or on Celery
workers (`FEDHEADS_BROKER_URL=redis://...`).
"""


def _warm_up() -> None:
    """Import fedcore's torch-backed modules in the background (summaries and round adapters use them)."""
    try:
        import fedcore.simulation  # noqa: F401
    except Exception:  # only a start-up optimisation
        log.debug("warm-up import failed", exc_info=True)
    # torch and transformers leave ~10^6 long-lived objects that every full collection would walk
    # again (tens of ms, stalling whatever request is running); move them out of the collector's view
    gc.collect()
    gc.freeze()


def create_app(
    settings: Settings | None = None,
    *,
    background: bool = True,
    executor_factory: ExecutorFactory = NoExecutor,
) -> FastAPI:
    """The API. ``background=False`` skips the reconciler (the executor still dispatches on submit).

    ``executor_factory`` builds the executor at start-up; without one the app dispatches nothing
    (submitted jobs stay queued). Tests pass one that keeps jobs queued.
    """
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
        executor = executor_factory(settings)
        app.state.executor = executor
        reconciler = None
        if background:
            reconciler = Reconciler(sessions=app.state.sessions, executor=executor, settings=settings)
            reconciler.start()
            threading.Thread(target=_warm_up, name="fedheads-warm-up", daemon=True).start()
        try:
            yield
        finally:
            if reconciler is not None:
                reconciler.stop()
            executor.close()

    app = FastAPI(title="fedheads", version="0.1.0", description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    add_api_docs(app)  # /docs and /redoc from local files, not FastAPI's CDN
    app.state.settings = settings
    app.state.sessions = session_factory(settings.database_url)
    app.state.round_cache = RoundCache()
    app.state.event_watch = EventWatch(app.state.sessions, settings.sse_poll_interval, settings.broker_url)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's 422, plus the spec's rules across fields when fields are wrong too (one submit shows all)
        errors = spec_errors.with_cross_field_errors(exc.errors(), exc.body)
        return JSONResponse(status_code=422, content={"detail": jsonable_encoder(errors)})

    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        if isinstance(exc, InvalidInput):
            return JSONResponse(status_code=422, content={"detail": jsonable_encoder(exc.errors)})
        return JSONResponse(status_code=exc.status_code, content={"detail": exc.message})

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.include_router(experiments.router)
    app.include_router(studies.router)
    app.include_router(meta.router)
    app.include_router(pages_router)
    app.include_router(study_pages_router)
    return app
