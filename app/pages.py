"""The browser dashboard: server-rendered Jinja2 pages, Plotly charts, live over SSE.

Pages: ``/`` (experiments), ``/experiments/new`` (the form), ``/experiments/{id}``
(one run, live), ``/compare?ids=a,b`` (overlays and a table), ``/results/{name}`` (a committed
benchmark table, read-only; app/services/advice.py). They read the
REST API from the browser (``/api/v1``) and follow ``/api/v1/experiments/{id}/events``
with an EventSource. Four page-side JSON helpers live here because the REST API
does not give these views what they need cheaply:

- ``GET /ui/experiments``: the list with headline figures per experiment (best
  accuracy, uplink advantage, OPs reduction), summed in SQL from the round columns
  (the same definitions as ``fedcore.simulation.summarize``).
- ``GET /ui/experiments/{id}/series``: per-round scalar columns only, for the
  compare page and the dense-sibling overlay (no matrices).
- ``GET /ui/experiments/{id}/state``: status, progress, error, info, adapter flag; the
  API's detail minus its summary, which re-reads every round record on each call.
- ``POST /ui/validate``: checks a submission exactly as ``POST /api/v1/experiments``
  would, without creating anything, so a sweep is validated before any member starts.
  Like every mutating call it needs the token when the server has one.

``/login`` takes the API token in a form and sets a signed page-session cookie (HttpOnly,
SameSite=Strict; never the token) and a ``fedheads_csrf`` cookie that the page scripts echo
in ``X-CSRF-Token`` (app/core/security.py); ``/logout`` clears both.

Studies: a run that belongs to a study (``experiments.study_id``; the form's sweep option
creates one with ``POST /api/v1/studies``) links to its study's compare view
(``/compare?study=<id>``), and the detail page overlays its study's baseline run of the same seed.
Membership is the foreign key only, never the run's name.

Static files come from ``static/``; ``plotly.min.js`` comes from the installed
``plotly`` package (never a CDN), so every page works offline.
"""

from __future__ import annotations

import importlib.util
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import Row, select
from starlette.templating import Jinja2Templates

from app.api.auth import WRITE
from app.api.deps import DbDep, SettingsDep
from app.api.presenters import experiment_out
from app.core.security import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    new_csrf,
    new_session,
    session_valid,
    token_matches,
)
from app.form_rules import form_rules
from app.models import STATUSES, Event, Experiment, Round, Study
from app.schemas import ExperimentCreate
from app.services import advice, comparison, listing
from app.services import experiments as svc
from app.services.errors import NotFound
from fedcore.spec import ExperimentSpec

router = APIRouter(include_in_schema=False)

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_DIR = ROOT / "templates"
STATIC_DIR = ROOT / "static"
PLOTLY_JS = "plotly.min.js"
MAX_COMPARE = 12
MAX_STUDY_LINKS = 200

_env = Environment(
    loader=FileSystemLoader(TEMPLATE_DIR),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True, default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _auth_context(request: Request) -> dict[str, Any]:
    """Every page's header: whether a login exists (token set) and whether this browser has one."""
    token = request.app.state.settings.api_token
    if token is None:
        return {"auth_required": False, "auth_logged_in": False}
    session = request.cookies.get(SESSION_COOKIE)
    return {"auth_required": True,
            "auth_logged_in": session is not None and session_valid(session, token.get_secret_value())}


templates = Jinja2Templates(env=_env, context_processors=[_auth_context])


# --- the form, generated from the spec model ---------------------------------------------------

GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("model", "Model & data", (
        "model", "dataset", "data_path", "text_field", "text_pair_field", "label_field", "target_field",
        "max_train_examples", "eval_size", "eval_batch_size")),
    ("federation", "Federation", (
        "num_clients", "clients_per_round", "rounds", "partition", "dirichlet_alpha", "shards_per_client",
        "quantity_sigma")),
    ("pruning", "Head importance & pruning", (
        "sparsity", "prune_mode", "prune_ranking", "head_choice", "min_heads_per_block", "drop_dense_steps", "importance",
        "importance_samples", "importance_exclude_special")),
    ("aggregation", "Aggregation & selection", (
        "aggregation", "head_weighting", "selection", "poc_candidates", "selection_epsilon")),
    ("training", "Training & LoRA", (
        "local_steps", "local_epochs", "batch_size", "learning_rate", "weight_decay", "max_seq_len",
        "max_target_len", "lora_r", "lora_alpha", "lora_dropout", "lora_targets", "lora_init", "seed", "device",
        "num_threads")),
)
OTHER_GROUP = ("other", "Other")


@dataclass
class FormField:
    """One input of the new-experiment form, derived from a spec field's JSON schema."""

    name: str
    label: str
    kind: str  # "text" | "number" | "select" | "checkbox" | "multi"
    type: str  # JSON type: "string" | "integer" | "number" | "boolean" | "array"
    description: str
    default: Any
    nullable: bool = False
    options: list[str] = field(default_factory=list)
    minimum: float | None = None
    maximum: float | None = None
    bounds: str = ""


def _bounds_text(s: dict[str, Any]) -> str:
    parts = []
    if "minimum" in s:
        parts.append(f">= {s['minimum']}")
    if "exclusiveMinimum" in s:
        parts.append(f"> {s['exclusiveMinimum']}")
    if "maximum" in s:
        parts.append(f"<= {s['maximum']}")
    if "exclusiveMaximum" in s:
        parts.append(f"< {s['exclusiveMaximum']}")
    return ", ".join(parts)


def _form_field(name: str, prop: dict[str, Any], default: Any) -> FormField:
    variants = prop.get("anyOf", [prop])
    nullable = any(v.get("type") == "null" for v in variants)
    s: dict[str, Any] = next((v for v in variants if v.get("type") != "null"), {})
    json_type = s.get("type", "string")
    label = name.replace("_", " ").capitalize()
    common = {"name": name, "label": label, "type": json_type, "description": prop.get("description", ""),
              "default": default, "nullable": nullable}
    if "enum" in s:
        return FormField(kind="select", options=[str(o) for o in s["enum"]], **common)
    if json_type == "boolean":
        return FormField(kind="checkbox", **common)
    if json_type == "array":
        options = [str(o) for o in s.get("items", {}).get("enum", [])]
        return FormField(kind="multi" if options else "text", options=options, **common)
    if json_type in ("integer", "number"):
        lo = s.get("minimum", s.get("exclusiveMinimum"))
        hi = s.get("maximum", s.get("exclusiveMaximum"))
        return FormField(kind="number", minimum=lo, maximum=hi, bounds=_bounds_text(s), **common)
    return FormField(kind="text", **common)


def form_groups() -> list[tuple[str, str, list[FormField]]]:
    """Every ExperimentSpec field, grouped; a field no group names lands in "Other" (so none is ever lost)."""
    schema = ExperimentSpec.model_json_schema()
    defaults = ExperimentSpec.model_validate({}).model_dump(mode="json")
    props: dict[str, Any] = schema["properties"]
    placed: set[str] = set()
    out: list[tuple[str, str, list[FormField]]] = []
    for key, title, names in GROUPS:
        fields = [_form_field(n, props[n], defaults.get(n)) for n in names if n in props]
        placed.update(f.name for f in fields)
        out.append((key, title, fields))
    rest = [_form_field(n, p, defaults.get(n)) for n, p in props.items() if n not in placed]
    if rest:
        out.append((*OTHER_GROUP, rest))
    return out


# --- data helpers -------------------------------------------------------------------------------


_figures = listing.figures  # headline figures per experiment, summed in SQL (app/services/listing.py)


def _row(exp: Experiment | Row[Any], figures: dict[str, Any] | None) -> dict[str, Any]:
    out = experiment_out(exp, None).model_dump(mode="json")
    out.pop("latest_round", None)
    out["figures"] = figures or dict(listing.NO_FIGURES)
    # the study's id under the key the list's script links by (static/js/experiments.js: /compare?sweep=)
    study_id = getattr(exp, "study_id", None)
    out["sweep"] = str(study_id) if study_id is not None else None
    return out


def _siblings(db: Any, exp: Experiment) -> list[dict[str, Any]]:
    """The other runs of the experiment's study (by ``study_id``), each with whether it is the study's
    baseline run of the same seed."""
    if exp.study_id is None:
        return []
    study = db.get(Study, exp.study_id)
    baseline = (study.definition or {}).get("baseline") if study is not None else None
    rows = db.scalars(select(Experiment).where(Experiment.study_id == exp.study_id)
                      .order_by(Experiment.seed, Experiment.created_at).limit(MAX_STUDY_LINKS)).all()
    return [{"id": str(r.id), "name": r.name, "status": r.status, "sparsity": (r.spec or {}).get("sparsity"),
             "variant": r.variant, "seed": r.seed, "baseline": r.variant == baseline and r.seed == exp.seed,
             "self": r.id == exp.id} for r in rows]


def _parse_id(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


def _not_found(request: Request, what: str) -> HTMLResponse:
    return templates.TemplateResponse(request, "not_found.html", {"what": what, "active": ""}, status_code=404)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite hands back naive UTC times


def _age(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    secs = max((datetime.now(UTC) - value).total_seconds(), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if secs >= size:
            return f"{int(secs // size)} {unit} ago"
    return f"{int(secs)} s ago"


_env.filters["age"] = _age


# --- pages --------------------------------------------------------------------------------------


@dataclass
class ListQuery:
    """The list's filters and order, from the query string; anything unknown falls back to the default."""

    status: str | None = None
    q: str = ""
    tag: str = ""
    sort: str = "created"
    order: str = "desc"

    @classmethod
    def of(cls, status: str | None, q: str | None, tag: str | None, sort: str | None,
           order: str | None) -> ListQuery:
        return cls(status=status if status in STATUSES else None, q=(q or "").strip()[:200],
                   tag=(tag or "").strip()[:40], sort=sort if sort in listing.SORT_KEYS else "created",
                   order="asc" if order == "asc" else "desc")

    def find(self, db: Any, limit: int) -> tuple[Any, int]:
        return svc.list_experiments(db_session=db, status=self.status, q=self.q or None, tag=self.tag or None,
                                    sort=self.sort, descending=self.order == "desc", limit=limit, offset=0)


@router.get("/", response_class=HTMLResponse)
def experiments_page(request: Request, db: DbDep, status: str | None = None, q: str | None = None,
                     tag: str | None = None, sort: str | None = None, order: str | None = None) -> HTMLResponse:
    query = ListQuery.of(status, q, tag, sort, order)
    items, total = query.find(db, 200)
    figures = _figures(db, [e.id for e in items])
    rows = [_row(e, figures.get(e.id)) for e in items]
    return templates.TemplateResponse(request, "experiments.html", {
        "active": "experiments", "rows": rows, "total": total, "status": query.status or "", "statuses": STATUSES,
        "created": {str(e.id): e.created_at for e in items}, "query": query, "tags": listing.all_tags(db),
    })


@router.get("/experiments/new", response_class=HTMLResponse)
def new_experiment_page(request: Request, db: DbDep, preset: str | None = None,
                        clone: Annotated[str | None, Query(alias="from")] = None) -> HTMLResponse:
    start: dict[str, Any] | None = None
    start_name = ""
    clone_id = _parse_id(clone) if clone else None
    if clone_id is not None:
        src = db.get(Experiment, clone_id)
        if src is not None:
            start, start_name = dict(src.spec), f"{src.name} (copy)"
    return templates.TemplateResponse(request, "new.html", {
        "active": "new", "groups": form_groups(), "preset": preset or "", "start_spec": start,
        "start_name": start_name, "rules": form_rules(),
    })


@router.get("/experiments/{experiment_id}", response_class=HTMLResponse)
def experiment_page(request: Request, experiment_id: str, db: DbDep) -> HTMLResponse:
    exp_id = _parse_id(experiment_id)
    exp = db.get(Experiment, exp_id) if exp_id is not None else None
    if exp is None:
        return _not_found(request, f"experiment {experiment_id}")
    figures = _figures(db, [exp.id]).get(exp.id)
    row = _row(exp, figures)
    row["info"] = exp.info
    row["has_adapter"] = bool(exp.adapter_path)
    siblings = _siblings(db, exp)
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
    study_id = _parse_id(study or sweep or "")
    if study_id is not None:
        members = db.scalars(select(Experiment.id).where(Experiment.study_id == study_id)
                             .order_by(Experiment.seed, Experiment.created_at).limit(MAX_COMPARE)).all()
        wanted += [str(m) for m in members]
    parsed = [u for u in (_parse_id(p) for p in wanted) if u is not None]
    chosen = list(dict.fromkeys(parsed))[:MAX_COMPARE]
    found = {e.id: e for e in db.scalars(select(Experiment).where(Experiment.id.in_(chosen))).all()} if chosen else {}
    # oldest first: a run keeps its colour (its place) when newer runs join the comparison, whatever the URL's order
    exps = sorted((found[i] for i in chosen if i in found), key=lambda e: (_aware(e.created_at), str(e.id)))
    figures = _figures(db, [e.id for e in exps])
    rows = [_row(e, figures.get(e.id)) for e in exps]
    summary = comparison.compare([comparison.Run(id=r["id"], name=r["name"], spec=r["spec"]) for r in rows])
    for i, r in enumerate(rows):
        r["label"], r["colour"] = summary.labels[r["id"]], i
    missing = [p for p in wanted if (u := _parse_id(p)) is None or u not in found]
    recent, _ = svc.list_experiments(db_session=db, status=None, limit=100, offset=0)
    return templates.TemplateResponse(request, "compare.html", {
        "active": "compare", "rows": rows, "missing": missing, "recent": recent,
        "chosen": {str(e.id) for e in exps}, "cmp": summary,
    })


# --- login ----------------------------------------------------------------------------------------


def _local_path(target: str | None) -> str:
    """Where to go after logging in: a path on this server only (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


def _login_page(request: Request, settings: Any, next_: str, error: str = "", status_code: int = 200) -> Response:
    token = settings.api_token
    session = request.cookies.get(SESSION_COOKIE)
    logged_in = token is not None and session is not None and session_valid(session, token.get_secret_value())
    return templates.TemplateResponse(request, "login.html", {
        "active": "", "required": token is not None, "logged_in": logged_in, "error": error, "next": next_,
    }, status_code=status_code)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, settings: SettingsDep,
               next_: Annotated[str | None, Query(alias="next")] = None) -> Response:
    return _login_page(request, settings, _local_path(next_))


@router.post("/login")
async def login(request: Request, settings: SettingsDep,
                next_: Annotated[str | None, Query(alias="next")] = None) -> Response:
    """The form's token: right sets the session and CSRF cookies and goes back; wrong is a 403 page."""
    target = _local_path(next_)
    if settings.api_token is None:
        return RedirectResponse(target, status_code=303)
    token = settings.api_token.get_secret_value()
    given = parse_qs((await request.body()).decode("utf-8", "replace")).get("token", [""])[0]
    if not given or not token_matches(given, token):
        return _login_page(request, settings, target, error="That is not the server's API token.",
                           status_code=403)
    resp = RedirectResponse(target, status_code=303)
    secure = request.url.scheme == "https"
    resp.set_cookie(SESSION_COOKIE, new_session(token), max_age=SESSION_MAX_AGE, path="/", secure=secure,
                    httponly=True, samesite="strict")
    resp.set_cookie(CSRF_COOKIE, new_csrf(), max_age=SESSION_MAX_AGE, path="/", secure=secure,
                    httponly=False, samesite="strict")
    return resp


@router.get("/logout")
def logout() -> Response:
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    resp.delete_cookie(CSRF_COOKIE, path="/", samesite="strict")
    return resp


# --- page-side JSON -----------------------------------------------------------------------------


@router.get("/ui/experiments")
def experiments_data(db: DbDep, status: str | None = None, q: str | None = None, tag: str | None = None,
                     sort: str | None = None, order: str | None = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 200) -> dict[str, Any]:
    """The list as the page shows it: filtered by status, name (``q``) and tag, sorted; every tag in use."""
    query = ListQuery.of(status, q, tag, sort, order)
    items, total = query.find(db, limit)
    figures = _figures(db, [e.id for e in items])
    return {"items": [_row(e, figures.get(e.id)) for e in items], "total": total,
            "tags": listing.all_tags(db), "now": datetime.now(UTC).isoformat()}


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
            "status_times": {str(i): (t if t.tzinfo else t.replace(tzinfo=UTC)).isoformat() for i, t in times}}


@router.get("/ui/experiments/{experiment_id}/series")
def series_data(experiment_id: uuid.UUID, db: DbDep) -> dict[str, Any]:
    exp = svc.get_experiment(db_session=db, experiment_id=experiment_id)  # 404 when unknown
    cols = (Round.round, Round.accuracy, Round.loss, Round.bytes_up, Round.bytes_up_dense, Round.bytes_down,
            Round.ops, Round.ops_dense, Round.wall_time)
    rows = db.execute(select(*cols).where(Round.experiment_id == exp.id).order_by(Round.round)).all()
    names = [c.key for c in cols]
    return {"id": str(exp.id), "name": exp.name, "status": exp.status, "spec": exp.spec,
            **{n: [r[i] for r in rows] for i, n in enumerate(names)}}


@router.post("/ui/validate", dependencies=WRITE)
def validate_submission(body: ExperimentCreate, settings: SettingsDep) -> dict[str, Any]:
    """422 (FastAPI's format, as the API gives) or the resolved spec and the benchmark's warnings; creates nothing.

    The same checks as the API's create (app/services/submit_checks.py), so the form shows the server's words."""
    spec = svc.checked_spec(body, settings=settings)
    warnings = [a.as_dict() for a in advice.advise(spec)]
    return {"ok": True, "spec": spec.model_dump(mode="json"), "warnings": warnings}


@router.get("/results/{name}", response_class=HTMLResponse)
def results_page(request: Request, name: str) -> Response:
    """A committed benchmark table (bench/results/<name>.md) or a plot it links to, read-only."""
    if name in advice.plot_names():
        return FileResponse(advice.RESULTS_DIR / name, media_type="image/svg+xml",
                            headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})
    html = advice.render_table(name)
    if html is None:
        return _not_found(request, f"benchmark table {name}")
    return templates.TemplateResponse(request, "results.html", {"active": "", "name": name, "html": html})


# --- static files -------------------------------------------------------------------------------


def plotly_path() -> Path | None:
    """plotly.min.js from the installed plotly package (found without importing it), or a copy in static/."""
    local = STATIC_DIR / PLOTLY_JS
    if local.is_file():
        return local
    spec = importlib.util.find_spec("plotly")
    for base in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(base) / "package_data" / PLOTLY_JS
        if candidate.is_file():
            return candidate
    return None


@router.get("/static/{path:path}")
def static_file(path: str) -> Response:
    """Files under static/ only (no traversal, no hidden files)."""
    if path == f"js/{PLOTLY_JS}" or path == PLOTLY_JS:
        found = plotly_path()
        if found is None:
            raise NotFound("plotly.min.js not found: pip install plotly")
        return FileResponse(found, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})
    parts = Path(path).parts
    if not parts or any(p in ("..", "") or p.startswith(".") for p in parts):
        raise NotFound(f"no static file {path!r}")
    target = (STATIC_DIR / path).resolve()
    if not target.is_relative_to(STATIC_DIR.resolve()) or not target.is_file():
        raise NotFound(f"no static file {path!r}")
    media = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}.get(target.suffix)
    return FileResponse(target, media_type=media, headers={"Cache-Control": "no-cache"})
