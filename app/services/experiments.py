"""Experiments: create, read, delete. Routes call these; they never dispatch jobs.

Status changes (cancel, resume, and everything a runner does) are :mod:`app.services.jobs`'.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Row, delete, select, update
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.models import Client, Event, Experiment, Round, utcnow
from app.schemas import ExperimentCreate
from app.services import jobs, listing, spec_errors, submit_checks
from app.services.errors import Conflict, InvalidInput, NotFound
from fedcore.spec import ExperimentSpec, UnknownPreset, merged_fields


def resolve_spec(body: ExperimentCreate) -> ExperimentSpec:
    """The spec a request describes; a bad preset or override is a 422 naming the field."""
    if body.spec is not None:
        return body.spec
    assert body.preset is not None
    try:
        data = merged_fields(body.preset, body.overrides)  # fedcore's one preset + overrides merge
    except UnknownPreset as err:
        raise InvalidInput(
            [{"type": "value_error", "loc": ["body", "preset"], "input": body.preset, "msg": err.reason}]
        ) from err
    try:
        return ExperimentSpec.model_validate(data)
    except ValidationError as err:
        errors = []
        found = err.errors(include_url=False, include_context=False)
        for e in found:
            loc = list(e["loc"])
            where = "overrides" if not loc or loc[0] in body.overrides else "preset"
            errors.append({**e, "loc": ["body", where, *loc]})
        errors += [{**e, "loc": ["body", "overrides"]} for e in spec_errors.cross_field_errors(data, found)]
        raise InvalidInput(errors) from err


def checked_spec(body: ExperimentCreate, *, settings: Settings) -> ExperimentSpec:
    """The spec a request describes, checked against this server before anything is stored: its model
    and data must exist here and be readable (app/services/submit_checks.py); else a 422 naming the field."""
    spec = resolve_spec(body)
    submit_checks.check_spec(body, spec, settings)
    return spec


def default_name(body: ExperimentCreate, spec: ExperimentSpec) -> str:
    return body.name or (body.preset if body.preset else f"{spec.model}-{spec.dataset}")


def create_experiment(
    *,
    db_session: Session,
    name: str,
    spec: ExperimentSpec,
    artifact_root: Path,
    tags: Sequence[str] = (),
    note: str = "",
    study_id: uuid.UUID | None = None,
    variant: str | None = None,
) -> Experiment:
    """Record a queued experiment and its first status event (the caller commits, then dispatches).

    A study's run (app/services/studies.py) gives its ``study_id`` and ``variant``; its seed is the spec's."""
    now = utcnow()
    exp_id = uuid.uuid4()
    exp = Experiment(
        id=exp_id,
        name=name,
        spec=spec.model_dump(mode="json"),
        rounds_total=spec.rounds,
        created_at=now,
        updated_at=now,
        artifact_dir=str(artifact_root / str(exp_id)),
        tags=list(tags),
        note=note,
        study_id=study_id,
        variant=variant,
        seed=spec.seed if study_id is not None else None,
    )
    jobs.record_new(db_session=db_session, experiment=exp)
    return exp


def get_experiment(*, db_session: Session, experiment_id: uuid.UUID) -> Experiment:
    exp = db_session.get(Experiment, experiment_id)
    if exp is None:
        raise NotFound(f"experiment {experiment_id} not found")
    return exp


# Read-only views select the table's columns (rows with the same attribute names as the ORM
# object) instead of loading ORM objects: a third of the cost, and the read API's hottest path.
_EXPERIMENTS = Experiment.__table__


def read_experiment(*, db_session: Session, experiment_id: uuid.UUID) -> Row[Any]:
    """The experiment's columns (read-only); NotFound if there is none."""
    row = db_session.execute(select(_EXPERIMENTS).where(_EXPERIMENTS.c.id == experiment_id)).one_or_none()
    if row is None:
        raise NotFound(f"experiment {experiment_id} not found")
    return row


def list_experiments(
    *,
    db_session: Session,
    status: str | None,
    limit: int,
    offset: int,
    q: str | None = None,
    tag: str | None = None,
    sort: str = "created",
    descending: bool = True,
) -> tuple[Sequence[Row[Any]], int]:
    """A page of experiments' columns (newest first unless ``sort`` says otherwise) and how many match:
    a status, a part of the name (``q``), a tag (app/services/listing.py)."""
    return listing.find(
        db_session=db_session, status=status, q=q, tag=tag, sort=sort, descending=descending,
        limit=limit, offset=offset,
    )


def update_experiment(
    *, db_session: Session, experiment_id: uuid.UUID, tags: list[str] | None, note: str | None
) -> Experiment:
    """Replace the tags and/or the note (whatever is given); any status. NotFound if there is none."""
    exp = get_experiment(db_session=db_session, experiment_id=experiment_id)
    values: dict[str, Any] = {}
    if tags is not None:
        values["tags"] = list(tags)
    if note is not None:
        values["note"] = note
    if values:
        # only these columns: a runner writing progress at the same time keeps its own
        db_session.execute(update(Experiment).where(Experiment.id == experiment_id).values(**values))
        db_session.refresh(exp)
    return exp


def get_round(*, db_session: Session, experiment_id: uuid.UUID, round_: int) -> Round:
    exp = get_experiment(db_session=db_session, experiment_id=experiment_id)
    row = db_session.scalar(select(Round).where(Round.experiment_id == experiment_id, Round.round == round_))
    if row is None:
        raise NotFound(
            f"experiment {experiment_id} has no stored round {round_} "
            f"({exp.rounds_done} of {exp.rounds_total} rounds stored)"
        )
    return row


def list_clients(*, db_session: Session, experiment_id: uuid.UUID) -> tuple[Experiment, Sequence[Client]]:
    exp = get_experiment(db_session=db_session, experiment_id=experiment_id)
    rows = db_session.scalars(
        select(Client).where(Client.experiment_id == experiment_id).order_by(Client.client_index)
    ).all()
    return exp, rows


def delete_experiment(*, db_session: Session, experiment_id: uuid.UUID) -> Path | None:
    """Delete an experiment that is not running; returns its artifact folder for the caller to remove."""
    exp = db_session.get(Experiment, experiment_id, with_for_update=True)  # a runner's claim waits for us
    if exp is None:
        raise NotFound(f"experiment {experiment_id} not found")
    if exp.status == "running":
        raise Conflict(f"experiment {experiment_id} is running; cancel it first")
    folder = Path(exp.artifact_dir) if exp.artifact_dir else None
    for table in (Event, Round, Client):
        db_session.execute(delete(table).where(table.experiment_id == experiment_id))
    db_session.execute(
        delete(Experiment).where(Experiment.id == experiment_id, Experiment.status != "running")
    )
    return folder


def remove_artifacts(folder: Path | None) -> None:
    if folder is not None and folder.is_dir():
        shutil.rmtree(folder, ignore_errors=True)
