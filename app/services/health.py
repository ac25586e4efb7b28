"""Service health: database, broker, live workers."""

from __future__ import annotations

from typing import Literal

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings, redact_url
from app.schemas import ComponentHealth, Health
from app.services.dispatch import Executor


def health(*, sessions: sessionmaker[Session], executor: Executor, settings: Settings) -> Health:
    try:
        with sessions() as s:
            s.execute(text("SELECT 1"))
        db = ComponentHealth(ok=True, detail=f"reachable: {redact_url(settings.database_url)}")
    except Exception as err:
        db = ComponentHealth(
            ok=False, detail=f"unreachable: {redact_url(settings.database_url)} ({type(err).__name__}: {err})"
        )
    broker = executor.broker_health()
    workers = executor.workers() if broker.ok else []
    status: Literal["ok", "degraded", "down"]
    if not db.ok:
        status = "down"
    elif broker.ok and workers:
        status = "ok"
    else:
        status = "degraded"
    return Health(
        status=status,
        executor="celery" if executor.kind == "celery" else "local",
        database=db,
        broker=broker,
        workers=workers,
    )
