"""The dashboard's pages over experiments: the list (``/``), one run (``/experiments/{id}``), the
comparison (``/compare``) and a committed benchmark table (``/results/{name}``).

Every figure on them comes from app/services/listing.py. Studies: a run that belongs to a study
(``experiments.study_id``; the form's sweep option creates one with ``POST /api/v1/studies``) links
to its study's compare view (``/compare?study=<id>``), and the detail page overlays its study's
baseline run of the same seed. Membership is the foreign key only, never the run's name.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from sqlalchemy import select

from app.api.deps import DbDep
from app.models import STATUSES, Experiment
from app.services import advice, comparison, listing
from app.web.render import aware, not_found, parse_id, templates

router = APIRouter(include_in_schema=False)

MAX_COMPARE = 12
MAX_STUDY_LINKS = 200


@router.get("/", response_class=HTMLResponse)
def experiments_page(request: Request, db: DbDep, status: str | None = None, q: str | None = None,
                     tag: str | None = None, sort: str | None = None, order: str | None = None) -> HTMLResponse:
    query = listing.ListQuery.of(status, q, tag, sort, order)
    items, total = query.find(db, 200)
    return templates.TemplateResponse(request, "experiments.html", {
        "active": "experiments", "rows": listing.rows(db, items), "total": total, "status": query.status or "",
        "statuses": STATUSES, "created": {str(e.id): e.created_at for e in items}, "query": query,
        "tags": listing.all_tags(db),
    })


@router.get("/experiments/{experiment_id}", response_class=HTMLResponse)
def experiment_page(request: Request, experiment_id: str, db: DbDep) -> HTMLResponse:
    exp_id = parse_id(experiment_id)
    exp = db.get(Experiment, exp_id) if exp_id is not None else None
    if exp is None:
        return not_found(request, f"experiment {experiment_id}")
    row = listing.rows(db, [exp])[0]
    row["info"] = exp.info
    row["has_adapter"] = bool(exp.adapter_path)
    siblings = listing.study_runs(db, exp, MAX_STUDY_LINKS)
    dense = next((s for s in siblings if not s["self"] and s["baseline"]), None)
    return templates.TemplateResponse(request, "experiment.html", {
        "active": "", "exp": row, "siblings": siblings, "dense": dense, "created": exp.created_at,
        "sweep_ids": ",".join(s["id"] for s in siblings[:MAX_COMPARE]),
    })


@router.get("/compare", response_class=HTMLResponse)
def compare_page(request: Request, db: DbDep, ids: Annotated[list[str] | None, Query()] = None,
                 study: str | None = None, sweep: str | None = None) -> HTMLResponse:
    """``ids`` (comma-separated or repeated), or the runs of a ``study`` (``sweep``: the same, as the list links)."""
    wanted = [p.strip() for raw in ids or [] for p in raw.split(",") if p.strip()]
    study_id = parse_id(study or sweep or "")
    if study_id is not None:
        wanted += [str(m) for m in listing.study_members(db, study_id, MAX_COMPARE)]
    parsed = [u for u in (parse_id(p) for p in wanted) if u is not None]
    chosen = list(dict.fromkeys(parsed))[:MAX_COMPARE]
    found = {e.id: e for e in db.scalars(select(Experiment).where(Experiment.id.in_(chosen))).all()} if chosen else {}
    # oldest first: a run keeps its colour (its place) when newer runs join the comparison, whatever the URL's order
    exps = sorted((found[i] for i in chosen if i in found), key=lambda e: (aware(e.created_at), str(e.id)))
    rows = listing.rows(db, exps)
    summary = comparison.compare([comparison.Run(id=r["id"], name=r["name"], spec=r["spec"]) for r in rows])
    for i, r in enumerate(rows):
        r["label"], r["colour"] = summary.labels[r["id"]], i
    missing = [p for p in wanted if (u := parse_id(p)) is None or u not in found]
    recent, _ = listing.find(db_session=db, limit=100, offset=0)
    return templates.TemplateResponse(request, "compare.html", {
        "active": "compare", "rows": rows, "missing": missing, "recent": recent,
        "chosen": {str(e.id) for e in exps}, "cmp": summary,
    })


@router.get("/results/{name}", response_class=HTMLResponse)
def results_page(request: Request, name: str) -> Response:
    """A committed benchmark table (bench/results/<name>.md) or a plot it links to, read-only."""
    if name in advice.plot_names():
        return FileResponse(advice.RESULTS_DIR / name, media_type="image/svg+xml",
                            headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})
    html = advice.render_table(name)
    if html is None:
        return not_found(request, f"benchmark table {name}")
    return templates.TemplateResponse(request, "results.html", {"active": "", "name": name, "html": html})
