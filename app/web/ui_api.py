"""The pages' private JSON under ``/ui`` (not part of the public API; docs/dashboard.md), for what the
REST API does not give these views cheaply:

- ``GET /ui/experiments``: the list with each experiment's headline figures (app/services/listing.py).
- ``GET /ui/experiments/{id}/state``: status, progress, error, info, adapter flag; the API's detail
  minus its summary, which re-reads every round record on each call.
- ``GET /ui/experiments/{id}/series``: per-round scalar columns only, for the compare page and the
  dense-sibling overlay (no matrices).

``POST /ui/validate`` belongs to the form (app/web/form.py).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select

from app.api.deps import DbDep
from app.api.presenters import experiment_out
from app.models import Event, Round
from app.services import experiments as svc
from app.services import listing
from app.web.render import aware

router = APIRouter(include_in_schema=False)


@router.get("/ui/experiments")
def experiments_data(db: DbDep, status: str | None = None, q: str | None = None, tag: str | None = None,
                     sort: str | None = None, order: str | None = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 200) -> dict[str, Any]:
    """The list as the page shows it: filtered by status, name (``q``) and tag, sorted; every tag in use."""
    items, total = listing.ListQuery.of(status, q, tag, sort, order).find(db, limit)
    return {"items": listing.rows(db, items), "total": total, "tags": listing.all_tags(db),
            "now": datetime.now(UTC).isoformat()}


@router.get("/ui/experiments/{experiment_id}/state")
def state_data(experiment_id: uuid.UUID, db: DbDep) -> dict[str, Any]:
    """Status, progress, error, run info and adapter flag: the API's detail without its summary over all rounds.

    ``status_times``: when each status event was stored, by event id (the event log's timestamps)."""
    exp = svc.get_experiment(db_session=db, experiment_id=experiment_id)
    out = experiment_out(exp, None).model_dump(mode="json")
    out.pop("latest_round", None)
    times = db.execute(select(Event.id, Event.created_at)
                       .where(Event.experiment_id == exp.id, Event.type == "status")).all()
    return {**out, "info": exp.info, "has_adapter": bool(exp.adapter_path),
            "status_times": {str(i): aware(t).isoformat() for i, t in times}}


@router.get("/ui/experiments/{experiment_id}/series")
def series_data(experiment_id: uuid.UUID, db: DbDep) -> dict[str, Any]:
    exp = svc.get_experiment(db_session=db, experiment_id=experiment_id)  # 404 when unknown
    cols = (Round.round, Round.accuracy, Round.loss, Round.bytes_up, Round.bytes_up_dense, Round.bytes_down,
            Round.ops, Round.ops_dense, Round.wall_time)
    rows = db.execute(select(*cols).where(Round.experiment_id == exp.id).order_by(Round.round)).all()
    names = [c.key for c in cols]
    return {"id": str(exp.id), "name": exp.name, "status": exp.status, "spec": exp.spec,
            **{n: [r[i] for r in rows] for i, n in enumerate(names)}}
