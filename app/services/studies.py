"""Studies: validate, create (one queued experiment per variant and seed), read with their table, cancel,
resume and delete as a whole.

A study is :class:`fedcore.study.StudySpec`; its runs are ordinary experiments linked by
``experiments.study_id`` (with ``variant`` and ``seed``), so they go through the same job lifecycle
(:mod:`app.services.jobs`) and the same executors as any other: the route commits the study and its
runs, then dispatches each (on Celery, each run is one task, so a study's runs spread over the
workers). A study has no status of its own: :func:`study_status` reads it from its runs. Its table
is :func:`fedcore.study_aggregate.aggregate` over the runs' stored rounds, as the API process keeps them
(:mod:`app.services.round_cache`: a read decodes only the rounds stored since the last one).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.api.presenters import progress
from app.core.config import Settings
from app.models import TERMINAL, Experiment, Study, utcnow
from app.schemas import StudyDetail, StudyOut, StudyRunOut
from app.services import experiments, jobs, spec_errors, submit_checks
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.round_cache import RoundCache
from fedcore.checks import check_inputs
from fedcore.spec import ExperimentSpec, UnknownPreset
from fedcore.study import StudySpec
from fedcore.study_aggregate import StudyRun, aggregate, run_figures

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


# --- input ----------------------------------------------------------------------------------------


def parse_body(raw: bytes, content_type: str | None) -> Any:
    """A request body as data: YAML (``safe_load``) when the content type says so, else JSON."""
    kind = (content_type or "").split(";")[0].strip().lower()
    try:
        if kind in YAML_TYPES:
            return yaml.safe_load(raw.decode("utf-8"))
        return json.loads(raw)
    except (ValueError, yaml.YAMLError) as err:
        what = "YAML" if kind in YAML_TYPES else "JSON"
        raise InvalidInput([{"type": "value_error", "loc": ["body"], "msg": f"the body is not valid {what}: {err}",
                             "input": None}]) from err


def _errors(err: ValidationError, prefix: list[Any]) -> list[dict[str, Any]]:
    return [{**e, "loc": [*prefix, *e["loc"]]} for e in err.errors(include_url=False, include_context=False)]


def validate(data: Any, *, settings: Settings) -> tuple[StudySpec, dict[str, ExperimentSpec]]:
    """The study and each variant's spec (at the first seed), checked as ``POST /experiments`` checks a spec
    (field bounds, rules across fields, and this server's models and data: app/services/submit_checks.py).

    Every problem is one 422 item whose ``loc`` names where it was set: ``["body", "variants", <variant>,
    <field>]``, ``["body", "base", "overrides", <field>]``, ``["body", "base", "preset", ...]`` or a field of
    the study itself (``["body", "baseline"]``); nothing is stored before all pass.
    """
    try:
        study = StudySpec.model_validate(data)
    except ValidationError as err:
        raise InvalidInput(_errors(err, ["body"])) from err
    runs = len(study.runs())
    if runs > settings.max_study_runs:
        raise InvalidInput([{
            "type": "value_error", "loc": ["body", "seeds"], "input": study.seeds,
            "msg": f"{len(study.variants)} variants x {len(study.seeds)} seeds = {runs} runs, more than this "
                   f"server's maximum of {settings.max_study_runs} (FEDHEADS_MAX_STUDY_RUNS)"}])
    errors: list[dict[str, Any]] = []
    specs: dict[str, ExperimentSpec] = {}
    for variant in study.variants:
        spec = _variant_spec(study, variant, errors)
        if spec is None:
            continue
        for p in check_inputs(spec, submit_checks.places(settings), hub=submit_checks.cached_hub_probe):
            where = study.origin(variant, p.field)
            errors.append({"type": "value_error", "loc": ["body", *where], "msg": _named(where, p.message),
                           "input": getattr(spec, p.field, None)})
        specs[variant] = spec
    if errors:
        raise InvalidInput(_unique(errors))
    return study, specs


def _variant_spec(study: StudySpec, variant: str, errors: list[dict[str, Any]]) -> ExperimentSpec | None:
    try:
        data = study.fields(variant, study.seeds[0])
    except UnknownPreset as err:
        errors.append({"type": "value_error", "loc": ["body", "base", "preset"], "input": study.base.preset,
                       "msg": err.reason})
        return None
    try:
        return ExperimentSpec.model_validate(data)
    except ValidationError as err:
        found = err.errors(include_url=False, include_context=False)
        for e in [*found, *spec_errors.cross_field_errors(data, found)]:
            loc = list(e["loc"])
            field = str(loc[0]) if loc else ""
            where = study.origin(variant, field)
            errors.append({**e, "loc": ["body", *where, *loc[1:]], "msg": _named(where, e["msg"])})
        return None


def _named(where: list[Any], msg: str) -> str:
    """A variant's problem says which variant; a problem of the base is the same for all of them."""
    return f"variant {where[1]!r}: {msg}" if where[0] == "variants" else msg


def _unique(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A base field's problem once, not once per variant."""
    seen: set[str] = set()
    out = []
    for e in errors:
        key = json.dumps([e["loc"], e["msg"]], default=str)
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


# --- create ---------------------------------------------------------------------------------------


def create_study(
    *, db_session: Session, study: StudySpec, specs: dict[str, ExperimentSpec], artifact_root: Path
) -> tuple[Study, list[Experiment]]:
    """Record the study and one queued run per (variant, seed), seed by seed (the caller commits, then
    dispatches the runs in this order)."""
    now = utcnow()
    row = Study(id=uuid.uuid4(), name=study.name, definition=study.model_dump(mode="json"), created_at=now,
                updated_at=now)
    db_session.add(row)
    db_session.flush()
    runs = [
        experiments.create_experiment(
            db_session=db_session, name=f"{study.name} · {variant} · seed {seed}",
            spec=specs[variant].with_overrides(seed=seed), artifact_root=artifact_root, study_id=row.id,
            variant=variant,
        )
        for variant, seed in study.runs()
    ]
    return row, runs


# --- read -----------------------------------------------------------------------------------------


def study_status(statuses: Sequence[str]) -> str:
    """A study's status from its runs' (see ``StudyOut.status``)."""
    if "running" in statuses or ("queued" in statuses and any(s in TERMINAL for s in statuses)):
        return "running"
    if "queued" in statuses:
        return "queued"
    if all(s == "succeeded" for s in statuses):
        return "succeeded"
    return "failed" if "failed" in statuses else "cancelled"


def definition(row: Study) -> StudySpec:
    """The stored definition (a study migrated from an old sweep is shown as stored if it no longer validates)."""
    try:
        return StudySpec.model_validate(row.definition)
    except ValidationError:
        return StudySpec.model_construct(**row.definition)


def get_study(*, db_session: Session, study_id: uuid.UUID, lock: bool = False) -> Study:
    row = db_session.get(Study, study_id, with_for_update=lock)
    if row is None:
        raise NotFound(f"study {study_id} not found")
    return row


def runs_of(db_session: Session, study_id: uuid.UUID) -> list[Experiment]:
    """The study's runs, in the grid's order (seed, then when they were created)."""
    return list(db_session.scalars(
        select(Experiment).where(Experiment.study_id == study_id).order_by(Experiment.seed, Experiment.created_at)
    ).all())


def counts(statuses: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in statuses:
        out[s] = out.get(s, 0) + 1
    return out


def list_studies(*, db_session: Session, limit: int, offset: int) -> tuple[list[tuple[Study, list[str]]], int]:
    """A page of studies, newest first, each with its runs' statuses; and how many there are."""
    total = db_session.scalar(select(func.count()).select_from(Study)) or 0
    rows = db_session.scalars(select(Study).order_by(Study.created_at.desc()).limit(limit).offset(offset)).all()
    statuses: dict[uuid.UUID, list[str]] = {r.id: [] for r in rows}
    if rows:
        for sid, status in db_session.execute(
            select(Experiment.study_id, Experiment.status).where(Experiment.study_id.in_(list(statuses)))
        ).all():
            if sid is not None:
                statuses[sid].append(status)
    return [(r, statuses[r.id]) for r in rows], total


def records_of(rounds: RoundCache, db_session: Session, runs: Sequence[Experiment]) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """Each run's stored rounds 1..``rounds_done`` (the fields the table reads: :func:`round_cache.slim_record`),
    from the rounds this process keeps; only rounds it has not seen yet are read from the database."""
    return {r.id: rounds.view(db_session, r.id, r.rounds_done).records() for r in runs}


def study_table(
    study: StudySpec, runs: Sequence[Experiment], records: dict[uuid.UUID, list[dict[str, Any]]],
    only: Collection[uuid.UUID] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The figures of each run (of the runs in ``only``, when given) and the study's aggregate
    (fedcore/study_aggregate.py, always over every run)."""
    per_run = [{"run": r, "figures": run_figures(records[r.id])} for r in runs if only is None or r.id in only]
    table = aggregate(study, [StudyRun(r.variant or "", r.seed or 0, r.status, records[r.id]) for r in runs])
    return per_run, table


def study_out(row: Study, statuses: list[str]) -> StudyOut:
    """A study as the API lists it: its definition and its runs' statuses summed up."""
    return StudyOut(
        id=row.id, name=row.name, status=study_status(statuses),  # type: ignore[arg-type]
        counts=counts(statuses), runs_total=len(statuses), definition=definition(row),
        created_at=row.created_at, updated_at=row.updated_at,
    )


def study_detail(
    db_session: Session, study_id: uuid.UUID, rounds: RoundCache, only: Collection[uuid.UUID] | None = None
) -> StudyDetail:
    """A study with each run's figures and its table (the API's answer and the study page's data). With
    ``only``, ``runs`` holds just those of its runs (the page's live update: the runs an event named); the
    status, the counts and the table are the whole study's all the same."""
    row = get_study(db_session=db_session, study_id=study_id)
    runs = runs_of(db_session, study_id)
    per_run, table = study_table(definition(row), runs, records_of(rounds, db_session, runs), only)
    out = study_out(row, [r.status for r in runs])
    return StudyDetail(
        **out.model_dump(), aggregate=table,
        runs=[
            StudyRunOut(id=p["run"].id, name=p["run"].name, variant=p["run"].variant or "", seed=p["run"].seed or 0,
                        status=p["run"].status, progress=progress(p["run"]), error=p["run"].error,
                        figures=p["figures"])
            for p in per_run
        ],
    )


# --- whole-study moves ----------------------------------------------------------------------------


def cancel_study(*, db_session: Session, study_id: uuid.UUID) -> int:
    """Cancel every queued or running run (a running one stops within a training step); how many."""
    get_study(db_session=db_session, study_id=study_id)
    n = 0
    for run in runs_of(db_session, study_id):
        if run.status in TERMINAL:
            continue
        try:
            jobs.request_cancel(db_session=db_session, experiment_id=run.id)
            n += 1
        except Conflict:  # it finished meanwhile
            continue
    if not n:
        raise Conflict(f"study {study_id} has no queued or running run to cancel")
    return n


def resume_study(*, db_session: Session, study_id: uuid.UUID) -> list[uuid.UUID]:
    """Queue every failed or cancelled run again (each continues after its last stored round); their ids."""
    get_study(db_session=db_session, study_id=study_id)
    resumed = []
    for run in runs_of(db_session, study_id):
        if run.status in ("failed", "cancelled"):
            jobs.request_resume(db_session=db_session, experiment_id=run.id)
            resumed.append(run.id)
    if not resumed:
        raise Conflict(f"study {study_id} has no failed or cancelled run to resume")
    return resumed


def delete_study(*, db_session: Session, study_id: uuid.UUID) -> list[Path | None]:
    """Delete a study with none of its runs running: its runs (rows and artifacts: the caller removes the
    returned folders after committing) and the study."""
    get_study(db_session=db_session, study_id=study_id, lock=True)
    runs = runs_of(db_session, study_id)
    busy = [r.id for r in runs if r.status == "running"]
    if busy:
        raise Conflict(f"study {study_id} has {len(busy)} running run(s); cancel the study first")
    folders = [experiments.delete_experiment(db_session=db_session, experiment_id=r.id) for r in runs]
    db_session.execute(delete(Study).where(Study.id == study_id))
    return folders
