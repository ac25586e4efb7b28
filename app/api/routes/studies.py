"""/api/v1/studies: submit a grid of runs (JSON or YAML), list, read with its table (also as CSV and JSON
downloads), follow its runs' events (SSE), cancel, resume, delete."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session
from sse_starlette import EventSourceResponse

from app.api.auth import WRITE
from app.api.deps import DbDep, EventWatchDep, ExecutorDep, RoundCacheDep, SessionsDep, SettingsDep
from app.models import Experiment
from app.schemas import MAX_INT, StudyAccepted, StudyDetail, StudyList
from app.services import studies as svc
from app.services import study_tables
from app.services.dispatch import Executor, dispatch_experiment
from app.services.errors import BrokerUnavailable
from app.services.round_cache import RoundCache
from app.services.stream import study_event_stream
from fedcore.study import StudySpec, study_yaml

router = APIRouter(prefix="/api/v1/studies", tags=["studies"])

MAX_LISTED_RUNS = 100  # ids in one ?runs= (the page asks for the whole study past that)
ERR = {"description": "error", "content": {"application/json": {"example": {"detail": "what went wrong"}}}}
EXAMPLE = StudySpec.model_config["json_schema_extra"]["examples"][0]  # type: ignore[index]
SPEC_REF = {"$ref": "#/components/schemas/StudySpec"}
YAML_EXAMPLE = (
    "name: s09\nbase:\n  preset: paper-pruned\n  overrides: {rounds: 15}\nvariants:\n  dense: {sparsity: 0.0}\n"
    "  mask: {sparsity: 0.9}\nseeds: [0, 1, 2, 3]\nbaseline: dense\ntargets:\n"
    "  - {metric: accuracy_vs_baseline, within: 2.0}\n  - {metric: uplink_advantage, at_least: 1.8}\n"
)
BODY = {
    "requestBody": {
        "required": True,
        "description": "A StudySpec, as JSON or as YAML (Content-Type application/yaml or text/yaml).",
        "content": {
            "application/json": {"schema": SPEC_REF, "example": EXAMPLE},
            "application/yaml": {"schema": SPEC_REF, "example": YAML_EXAMPLE},
        },
    }
}
BROKER_DOWN = {
    "description": "Recorded and kept queued, but the broker is unreachable; its runs are dispatched when it is back.",
    "content": {"application/json": {"example": {"detail": "the broker at redis://... is unreachable ...",
                                                 "study": {"id": "...", "status": "queued"}}}},
}


def _dispatch(sessions: Any, executor: Executor, runs: list[tuple[uuid.UUID, str]]) -> BrokerUnavailable | None:
    """Hand each committed run to the executor, in order; the first broker failure stops it (the
    reconciler dispatches the rest when the broker is back)."""
    for run_id, device in runs:
        try:
            dispatch_experiment(sessions=sessions, executor=executor, experiment_id=run_id, device=device)
        except BrokerUnavailable as err:
            return err
    return None


def _answer(db: Session, rounds: RoundCache, study_id: uuid.UUID, err: BrokerUnavailable | None, code: int) -> Any:
    db.expire_all()
    detail = svc.study_detail(db, study_id, rounds)
    db.close()
    if err is not None:
        return JSONResponse(status_code=503, content={"detail": err.message, "study": jsonable_encoder(detail)})
    return JSONResponse(status_code=code, content=jsonable_encoder(detail))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=StudyDetail,
    responses={401: ERR, 403: ERR, 413: ERR, 422: ERR, 503: BROKER_DOWN},
    dependencies=WRITE,
    openapi_extra=BODY,
)
async def create_study(
    request: Request, db: DbDep, sessions: SessionsDep, settings: SettingsDep, executor: ExecutorDep,
    rounds: RoundCacheDep,
) -> Any:
    """Record a study and one queued run per (variant, seed), then hand the runs to the executor.

    Every variant's spec is checked as ``POST /experiments`` checks one (fields, rules across fields, this
    server's models and data); a problem is a 422 whose ``loc`` names the variant and the field
    (``["body", "variants", "mask", "sparsity"]``) or the study's own field. Nothing is stored unless all pass.
    """
    data = svc.parse_body(await request.body(), request.headers.get("content-type"))

    def create() -> Any:
        study, specs = svc.validate(data, settings=settings)
        row, runs = svc.create_study(db_session=db, study=study, specs=specs,
                                     artifact_root=settings.artifact_root.expanduser().resolve())
        todo = [(r.id, str(r.spec.get("device", "auto"))) for r in runs]
        db.commit()
        return _answer(db, rounds, row.id, _dispatch(sessions, executor, todo), status.HTTP_201_CREATED)

    return await to_thread.run_sync(create)


@router.get("", response_model=StudyList)
def list_studies(
    db: DbDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
) -> StudyList:
    """Studies, newest first, with their status and how many runs are in each status."""
    items, total = svc.list_studies(db_session=db, limit=limit, offset=offset)
    return StudyList(items=[svc.study_out(row, statuses) for row, statuses in items], total=total)


@router.get("/{study_id}", response_model=StudyDetail, responses={404: ERR})
def get_study(
    study_id: uuid.UUID,
    db: DbDep,
    rounds: RoundCacheDep,
    runs: Annotated[list[uuid.UUID] | None, Query(max_length=MAX_LISTED_RUNS, description=(
        "only these runs in `runs` (repeat it: ?runs=a&runs=b); the status, counts and table are the whole "
        "study's. The study page asks for the runs its event stream named since its last read"))] = None,
) -> StudyDetail:
    """The study, each run with its figures, and the table: per variant mean ± half-range over the finished
    seeds, paired differences against the baseline, verdicts per target (``complete`` says whether every
    run finished)."""
    return svc.study_detail(db, study_id, rounds, only=None if runs is None else set(runs))


@router.get(
    "/{study_id}/spec.yaml",
    response_class=Response,
    responses={200: {"description": "the study as YAML that POST /studies and `fedheads study run` accept",
                     "content": {"application/yaml": {}}}, 404: ERR},
)
def study_spec_yaml(study_id: uuid.UUID, db: DbDep) -> Response:
    """The study's definition as YAML, to run it again anywhere."""
    row = svc.get_study(db_session=db, study_id=study_id)
    return Response(content=study_yaml(svc.definition(row)), media_type="application/yaml",
                    headers={"Content-Disposition": f'attachment; filename="study-{study_id}.yaml"'})


class TableName(StrEnum):
    aggregate = "aggregate"
    verdicts = "verdicts"
    runs = "runs"


class TableFormat(StrEnum):
    csv = "csv"
    json = "json"


TABLE_DOC: dict[int | str, dict[str, Any]] = {
    200: {"description": (
        "aggregate: one row per variant (runs, finished, metric, spread, then <figure>.mean / .half_range / .n for "
        "every figure and vs_baseline.<difference>.mean / .half_range / .n); verdicts: one row per target and "
        "variant; runs: one row per run with its figures and page. CSV (a header row, empty cells for none) or "
        "JSON (a list of objects with the same keys); exactly the numbers of GET /studies/{id}"),
        "content": {"text/csv": {"example": "variant,baseline,runs,finished,...\r\ndense,True,2,2,...\r\n"},
                    "application/json": {"example": [{"variant": "dense", "baseline": True, "runs": 2}]}}},
    404: ERR,
}


@router.get("/{study_id}/{table}.{fmt}", response_class=Response, responses=TABLE_DOC)
def study_table_download(
    study_id: uuid.UUID, table: TableName, fmt: TableFormat, db: DbDep, rounds: RoundCacheDep
) -> Response:
    """One of the study's tables as a file: ``aggregate``, ``verdicts`` or ``runs``, as ``csv`` or ``json``."""
    detail = jsonable_encoder(svc.study_detail(db, study_id, rounds))
    header, rows = study_tables.table(table.value, detail)
    filename = f"study-{study_id}-{table.value}.{fmt.value}"
    disposition = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if fmt is TableFormat.csv:
        return Response(content=study_tables.as_csv(header, rows), media_type="text/csv; charset=utf-8",
                        headers=disposition)
    return JSONResponse(content=study_tables.as_json(header, rows), headers=disposition)


@router.get(
    "/{study_id}/events",
    responses={
        200: {"description": (
            "text/event-stream of the study's runs' `round` and `status` events (as each run's own stream has "
            "them, plus `run`, `variant` and `seed`); ids are event-table ids; it ends when no run is queued "
            "or running"),
            "content": {"text/event-stream": {
                "example": 'id: 42\nevent: status\ndata: {"status": "succeeded", "run": "...", "variant": "mask", '
                           '"seed": 1, ...}\n\n'}}},
        404: ERR,
    },
)
async def follow_study_events(
    study_id: uuid.UUID,
    sessions: SessionsDep,
    watch: EventWatchDep,
    last_event_id: Annotated[str | None, Header(description="replay events after this id")] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_INT, description="same as the Last-Event-ID header")] = None,
) -> EventSourceResponse:
    """Server-Sent Events of every run of the study: replay after ``Last-Event-ID``, then live until every run
    has finished (a resumed study needs a new stream). After events the study page reads the table with the
    runs they named (``?runs=``)."""

    def exists() -> None:
        with sessions() as s:
            svc.get_study(db_session=s, study_id=study_id)

    await to_thread.run_sync(exists)
    start = after if after is not None else _event_id(last_event_id)
    return EventSourceResponse(study_event_stream(watch=watch, study_id=study_id, last_event_id=start), ping=15)


def _event_id(header: str | None) -> int:
    try:
        return min(max(int(header), 0), MAX_INT) if header else 0
    except ValueError:
        return 0


@router.post(
    "/{study_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=StudyAccepted,
    responses={401: ERR, 403: ERR, 404: ERR, 409: ERR},
    dependencies=WRITE,
)
def cancel_study(study_id: uuid.UUID, db: DbDep) -> StudyAccepted:
    """Cancel every queued or running run of the study; running ones stop within a training step, stored
    rounds are kept."""
    n = svc.cancel_study(db_session=db, study_id=study_id)
    db.commit()
    row = svc.get_study(db_session=db, study_id=study_id)
    out = svc.study_out(row, [r.status for r in svc.runs_of(db, study_id)])
    return StudyAccepted(study=out, message=f"cancel requested for {n} run(s)")


@router.post(
    "/{study_id}/resume",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=StudyDetail,
    responses={401: ERR, 403: ERR, 404: ERR, 409: ERR, 503: BROKER_DOWN},
    dependencies=WRITE,
)
def resume_study(
    study_id: uuid.UUID, db: DbDep, sessions: SessionsDep, executor: ExecutorDep, rounds: RoundCacheDep
) -> Any:
    """Queue every failed or cancelled run again; each continues after its last stored round."""
    resumed = svc.resume_study(db_session=db, study_id=study_id)
    devices = {i: str(spec.get("device", "auto"))
               for i, spec in db.execute(select(Experiment.id, Experiment.spec).where(Experiment.id.in_(resumed)))}
    db.commit()
    return _answer(db, rounds, study_id, _dispatch(sessions, executor, [(i, devices[i]) for i in resumed]),
                   status.HTTP_202_ACCEPTED)


@router.delete(
    "/{study_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={401: ERR, 403: ERR, 404: ERR, 409: ERR},
    dependencies=WRITE,
)
def delete_study(study_id: uuid.UUID, db: DbDep, request: Request) -> Response:
    """Delete the study, its runs (rows and artifacts); 409 while any run runs (cancel the study first)."""
    runs = [r.id for r in svc.runs_of(db, study_id)]
    folders = svc.delete_study(db_session=db, study_id=study_id)
    db.commit()
    for run_id in runs:
        request.app.state.round_cache.forget(run_id)
    for folder in folders:
        svc.experiments.remove_artifacts(folder)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
