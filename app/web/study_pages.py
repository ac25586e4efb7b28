"""The study pages: ``/studies`` (every study, newest first) and ``/studies/{id}`` (one study, live).

The study page is drawn by static/js/study.js from the API's study detail (``GET /api/v1/studies/{id}``,
app/services/studies.py), embedded here at load together with the newest event id of its runs, so the
page follows ``/api/v1/studies/{id}/events`` from exactly there and, as runs store rounds and finish,
reads the detail with only the runs the events named (``?runs=``). Its tables download from
``/api/v1/studies/{id}/{aggregate,verdicts,runs}.{csv,json}`` and its definition from ``.../spec.yaml``.

The list page offers "Reproduce the paper table": a quick version of bench/studies/paper_table.yaml
(app/services/paper_table.py), embedded in the page as the JSON body static/js/studies.js posts to
``POST /api/v1/studies``, and shown as YAML with its sizing beside the button.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse
from jinja2.utils import htmlsafe_json_dumps

from app.api.deps import DbDep
from app.models import Study
from app.services import studies as svc
from app.services.advice import table_names
from app.services.events import study_latest_event
from app.services.paper_table import QUICK_OVERRIDES, paper_table, quick_paper_table
from app.web.form import TARGET_METRICS
from app.web.render import not_found, parse_id, templates
from fedcore.study import study_yaml

router = APIRouter(include_in_schema=False)

MAX_LISTED = 200


@router.get("/studies", response_class=HTMLResponse)
def studies_page(request: Request, db: DbDep) -> HTMLResponse:
    items, total = svc.list_studies(db_session=db, limit=MAX_LISTED, offset=0)
    rows: list[dict[str, Any]] = []
    for row, statuses in items:
        out = svc.study_out(row, statuses)
        rows.append({"id": str(row.id), "name": row.name, "status": out.status, "runs_total": out.runs_total,
                     "finished": out.counts.get("succeeded", 0), "variants": list(out.definition.variants),
                     "seeds": out.definition.seeds, "baseline": out.definition.baseline, "created": row.created_at})
    return templates.TemplateResponse(request, "studies.html", {"active": "studies", "rows": rows, "total": total,
                                                                "paper_table": _paper_table_offer()})


def _paper_table_offer() -> dict[str, Any] | None:
    """What the page says and posts for "Reproduce the paper table"; None without a valid study file."""
    full, quick = paper_table(), quick_paper_table()
    if full is None or quick is None:
        return None
    return {
        "variants": len(quick.variants), "full": full.base.overrides, "quick": quick.base.overrides,
        "full_seeds": full.seeds, "quick_seeds": quick.seeds, "changed": list(QUICK_OVERRIDES),
        "yaml": study_yaml(quick), "measured": "paper_table" in table_names(),
        # the body of POST /api/v1/studies, its variants in the file's order (|tojson would sort them)
        "body": htmlsafe_json_dumps(quick.model_dump(mode="json", exclude_none=True)),
    }


@router.get("/studies/{study_id}", response_class=HTMLResponse)
def study_page(request: Request, study_id: str, db: DbDep) -> HTMLResponse:
    sid = parse_id(study_id)
    if sid is None or db.get(Study, sid) is None:
        return not_found(request, f"study {study_id}")
    last_event = study_latest_event(db, sid)  # before the detail: the stream then repeats, never misses
    detail = svc.study_detail(db, sid, request.app.state.round_cache)
    study = jsonable_encoder(detail)
    # for the script: escaped for HTML like |tojson, but with the keys in their order (|tojson sorts them,
    # and a study's variants are in the order the study gives them)
    labels = {t.metric: t.label for t in TARGET_METRICS}  # the form's names of the target metrics
    page_data = htmlsafe_json_dumps({"study": study, "last_event": last_event, "metric_labels": labels})
    return templates.TemplateResponse(request, "study.html", {
        "active": "studies", "study": study, "created": detail.created_at, "page_data": page_data,
    })
