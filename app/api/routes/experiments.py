"""/api/v1/experiments: submit, list, read, follow, cancel, resume, delete, download adapters."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Literal

from anyio import to_thread
from fastapi import APIRouter, Body, Header, Path, Query, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session
from sse_starlette import EventSourceResponse

from app.api.auth import WRITE
from app.api.deps import (
    DbDep,
    EventWatchDep,
    ExecutorDep,
    ReadLimiterDep,
    RoundCacheDep,
    SessionsDep,
    SettingsDep,
)
from app.api.presenters import experiment_out, round_out
from app.core.db import read_session
from app.models import Experiment
from app.schemas import (
    MAX_INT,
    PRESET_EXAMPLE,
    SPEC_EXAMPLE,
    Accepted,
    ClientList,
    ClientOut,
    ExperimentCreate,
    ExperimentCreated,
    ExperimentDetail,
    ExperimentList,
    ExperimentOut,
    ExperimentPatch,
    RoundList,
    RoundOut,
    SpecWarning,
    Status,
)
from app.services import adapter as adapter_svc
from app.services import advice, jobs
from app.services import experiments as svc
from app.services.dispatch import dispatch_experiment
from app.services.errors import BrokerUnavailable
from app.services.listing import SortKey
from app.services.stream import event_stream

router = APIRouter(prefix="/api/v1/experiments", tags=["experiments"])

ERR = {"description": "error", "content": {"application/json": {"example": {"detail": "what went wrong"}}}}
BROKER_DOWN = {
    "description": "Recorded and kept queued, but the broker is unreachable; dispatched when it is back.",
    "content": {
        "application/json": {
            "example": {
                "detail": "the broker at redis://... is unreachable ...",
                "experiment": {"id": "...", "status": "queued"},
            }
        }
    },
}


def _release(db: Session, exp: Experiment) -> ExperimentOut:
    """The stored experiment as sent back, then the session's connection back to the pool.

    Sync routes run in a pool of ``api_threads`` threads, and FastAPI serialises their
    responses there too: a route that still held a connection while newer requests filled
    every thread waiting for one stalled until the pool timeout (100 concurrent
    submissions: 500s). Releasing it here breaks that cycle (app/api/deps.py closes the
    other routes' sessions on threads of their own).
    """
    db.refresh(exp)
    out = experiment_out(exp, None)
    db.close()
    return out


def _created(out: ExperimentOut, warnings: list[SpecWarning]) -> ExperimentCreated:
    return ExperimentCreated(**out.model_dump(), warnings=warnings)


def _json(model: BaseModel) -> Response:
    """The model as JSON, serialised once (the read routes' models are built here, so FastAPI's
    re-validation against ``response_model``, which then only documents the route, is skipped)."""
    return Response(content=model.model_dump_json(), media_type="application/json")


def _queued_response(err: BrokerUnavailable, out: ExperimentOut) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": err.message, "experiment": jsonable_encoder(out)})


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ExperimentCreated,
    responses={401: ERR, 403: ERR, 413: ERR, 503: BROKER_DOWN},
    dependencies=WRITE,
)
def create_experiment(
    body: Annotated[
        ExperimentCreate,
        Body(
            openapi_examples={
                "preset": {"summary": "a preset with overrides", "value": PRESET_EXAMPLE},
                "spec": {
                    "summary": "a full spec (missing fields take their defaults)",
                    "value": SPEC_EXAMPLE,
                },
            }
        ),
    ],
    db: DbDep,
    sessions: SessionsDep,
    settings: SettingsDep,
    executor: ExecutorDep,
) -> Any:
    """Record a new experiment (status ``queued``), then hand it to an executor.

    ``warnings``: benchmark rows like this spec that did not learn (bench/results/paper_table*.json)."""
    spec = svc.checked_spec(body, settings=settings)  # 422 before anything is stored
    warnings = [SpecWarning(**a.as_dict()) for a in advice.advise(spec)]
    exp = svc.create_experiment(
        db_session=db,
        name=svc.default_name(body, spec),
        spec=spec,
        artifact_root=settings.artifact_root.expanduser().resolve(),
        tags=body.tags,
        note=body.note,
    )
    db.commit()
    try:
        dispatch_experiment(sessions=sessions, executor=executor, experiment_id=exp.id, device=spec.device)
    except BrokerUnavailable as err:
        return _queued_response(err, _created(_release(db, exp), warnings))
    return _created(_release(db, exp), warnings)


@router.get("", response_model=ExperimentList)
async def list_experiments(
    sessions: SessionsDep,
    rounds: RoundCacheDep,
    limiter: ReadLimiterDep,
    status_: Annotated[
        Status | None, Query(alias="status", description="only experiments in this status")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
    tag: Annotated[str | None, Query(max_length=40, description="only experiments with this tag")] = None,
    q: Annotated[
        str | None, Query(max_length=200, description="only experiments whose name contains this (any case)")
    ] = None,
    sort: Annotated[SortKey, Query(description="order by this; best_accuracy, uplink_advantage and "
                                   "ops_reduction are over the stored rounds (runs without one come last)")]
    = "created",
    order: Annotated[Literal["desc", "asc"], Query(description="descending (default) or ascending")] = "desc",
) -> Response:
    """Experiments, newest first (or as ``sort`` and ``order`` say), filtered by status, tag and name."""

    def page(db: Session) -> Response:
        items, total = svc.list_experiments(
            db_session=db, status=status_, limit=limit, offset=offset, q=q, tag=tag, sort=sort,
            descending=order == "desc",
        )
        latest = rounds.latest_figures(db, {e.id: e.rounds_done for e in items})
        return _json(ExperimentList(items=[experiment_out(e, latest.get(e.id)) for e in items], total=total))

    return await read_session(sessions, page, limiter=limiter)


@router.get("/{experiment_id}", response_model=ExperimentDetail, responses={404: ERR})
async def get_experiment(
    experiment_id: uuid.UUID, sessions: SessionsDep, rounds: RoundCacheDep, limiter: ReadLimiterDep
) -> Response:
    """Spec, status, progress, the latest round's figures and the run's summary so far."""

    def detail(db: Session) -> Response:
        exp = svc.read_experiment(db_session=db, experiment_id=experiment_id)
        view = rounds.view(db, exp.id, exp.rounds_done)
        out = experiment_out(exp, view.latest)
        return _json(
            ExperimentDetail(
                **out.model_dump(), summary=view.summary(), info=exp.info, has_adapter=bool(exp.adapter_path)
            )
        )

    return await read_session(sessions, detail, limiter=limiter)


@router.get("/{experiment_id}/rounds", response_model=RoundList, responses={404: ERR})
async def list_rounds(
    experiment_id: uuid.UUID,
    sessions: SessionsDep,
    rounds: RoundCacheDep,
    limiter: ReadLimiterDep,
    after: Annotated[int, Query(ge=0, le=MAX_INT, description="only rounds after this one")] = 0,
) -> Response:
    """Stored rounds with their full records (matrices included), in order; ``after=n`` skips rounds 1..n."""

    def body(db: Session) -> bytes:
        exp = svc.read_experiment(db_session=db, experiment_id=experiment_id)
        return rounds.view(db, exp.id, exp.rounds_done).rounds_json(after)

    return Response(content=await read_session(sessions, body, limiter=limiter), media_type="application/json")


@router.get("/{experiment_id}/rounds/{round_number}", response_model=RoundOut, responses={404: ERR})
def get_round(experiment_id: uuid.UUID, round_number: Annotated[int, Path(ge=1, le=MAX_INT)], db: DbDep) -> RoundOut:
    """One round's full record."""
    return round_out(svc.get_round(db_session=db, experiment_id=experiment_id, round_=round_number))


@router.get("/{experiment_id}/clients", response_model=ClientList, responses={404: ERR})
def list_clients(experiment_id: uuid.UUID, db: DbDep) -> ClientList:
    """Partition statistics: examples and label histogram per client (written when the job starts)."""
    exp, rows = svc.list_clients(db_session=db, experiment_id=experiment_id)
    return ClientList(
        items=[
            ClientOut(client=r.client_index, examples=r.examples, label_histogram=r.label_histogram)
            for r in rows
        ],
        label_names=list((exp.info or {}).get("label_names", [])),
    )


@router.get(
    "/{experiment_id}/events",
    responses={
        200: {
            "description": (
                "text/event-stream of `round` and `status` events; ids are event-table ids. With `progress=true`, "
                "also `progress` events without an id: where the run is inside a round (not stored)"
            ),
            "content": {
                "text/event-stream": {"example": 'id: 42\nevent: round\ndata: {"round": 3, ...}\n\n'}
            },
        },
        404: ERR,
    },
)
async def follow_events(
    experiment_id: uuid.UUID,
    sessions: SessionsDep,
    watch: EventWatchDep,
    last_event_id: Annotated[str | None, Header(description="replay events after this id")] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_INT, description="same as the Last-Event-ID header")] = None,
    progress: Annotated[
        bool,
        Query(description="also send `progress` events (round r/R, client j/M, step k/S, times; never stored)"),
    ] = False,
) -> EventSourceResponse:
    """Server-Sent Events: replay after ``Last-Event-ID``, then live until the experiment finishes.

    With ``progress=true`` the stream also carries, while the job runs, its newest progress report as a
    ``progress`` event (no id, so ``Last-Event-ID`` still counts stored events only): ``phase`` ('prepare',
    'select', 'client', 'client_done', 'aggregate'), ``round``/``rounds``, ``client_index``/``clients``, ``client``,
    ``step``/``steps`` and the times ``at``, ``round_started`` and ``client_started`` (seconds since the epoch).
    """

    def exists() -> None:
        with sessions() as s:
            svc.get_experiment(db_session=s, experiment_id=experiment_id)

    await to_thread.run_sync(exists)
    start = after if after is not None else _event_id(last_event_id)
    return EventSourceResponse(
        event_stream(watch=watch, experiment_id=experiment_id, last_event_id=start, progress=progress),
        ping=15,
    )


def _event_id(header: str | None) -> int:
    try:
        return min(max(int(header), 0), MAX_INT) if header else 0
    except ValueError:
        return 0


@router.post(
    "/{experiment_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses={401: ERR, 403: ERR, 404: ERR, 409: ERR},
    dependencies=WRITE,
)
def cancel_experiment(experiment_id: uuid.UUID, db: DbDep) -> Accepted:
    """Queued: cancelled now. Running: stops within one local training step; stored rounds are kept."""
    exp = jobs.request_cancel(db_session=db, experiment_id=experiment_id)
    db.commit()
    msg = (
        "cancelled"
        if exp.status == "cancelled"
        else "cancel requested; the job stops within one training step"
    )
    return Accepted(experiment=experiment_out(exp, None), message=msg)


@router.post(
    "/{experiment_id}/resume",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses={401: ERR, 403: ERR, 404: ERR, 409: ERR, 503: BROKER_DOWN},
    dependencies=WRITE,
)
def resume_experiment(
    experiment_id: uuid.UUID, db: DbDep, sessions: SessionsDep, executor: ExecutorDep
) -> Any:
    """Failed or cancelled: queue again; it continues after the last stored round."""
    exp = jobs.request_resume(db_session=db, experiment_id=experiment_id)
    db.commit()
    try:
        dispatch_experiment(sessions=sessions, executor=executor, experiment_id=exp.id)
    except BrokerUnavailable as err:
        return _queued_response(err, _release(db, exp))
    out = _release(db, exp)
    return Accepted(experiment=out, message=f"queued; continues after round {out.progress.rounds_done}")


@router.patch(
    "/{experiment_id}",
    response_model=ExperimentOut,
    responses={401: ERR, 403: ERR, 404: ERR},
    dependencies=WRITE,
)
def update_experiment(
    experiment_id: uuid.UUID,
    body: Annotated[
        ExperimentPatch,
        Body(openapi_examples={"tags and note": {"value": {"tags": ["baseline", "snli"], "note": "dense reference"}}}),
    ],
    db: DbDep,
) -> ExperimentOut:
    """Replace the run's ``tags`` and/or ``note`` (those given); allowed in any status, the run is not touched."""
    exp = svc.update_experiment(db_session=db, experiment_id=experiment_id, tags=body.tags, note=body.note)
    db.commit()
    return _release(db, exp)


@router.delete(
    "/{experiment_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={401: ERR, 403: ERR, 404: ERR, 409: ERR},
    dependencies=WRITE,
)
def delete_experiment(experiment_id: uuid.UUID, db: DbDep, rounds: RoundCacheDep) -> Response:
    """Delete an experiment, its rounds, events and artifacts (409 while it runs)."""
    folder = svc.delete_experiment(db_session=db, experiment_id=experiment_id)
    db.commit()
    rounds.forget(experiment_id)
    svc.remove_artifacts(folder)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{experiment_id}/adapter",
    response_class=Response,
    responses={
        200: {
            "description": "zip of a PEFT adapter folder (PeftModel.from_pretrained loads it)",
            "content": {"application/zip": {}},
        },
        404: ERR,
        409: ERR,
    },
)
def download_adapter(
    experiment_id: uuid.UUID,
    db: DbDep,
    settings: SettingsDep,
    round_: Annotated[
        int | None, Query(alias="round", ge=1, le=MAX_INT, description="a stored round (default: final)")
    ] = None,
) -> Response:
    """The final adapter, or one built from round n's stored global checkpoint."""
    data, filename = adapter_svc.adapter_zip(
        db_session=db, settings=settings, experiment_id=experiment_id, round_=round_
    )
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", filename)
    return Response(
        content=data,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{safe}"'},
    )
