"""ORM rows to API models."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row

from app.models import Experiment, Round
from app.schemas import ExperimentOut, Progress, RoundFigures, RoundOut


def progress(exp: Experiment | Row[Any]) -> Progress:
    total = max(exp.rounds_total, 1)
    return Progress(
        rounds_done=exp.rounds_done,
        rounds_total=exp.rounds_total,
        fraction=round(min(exp.rounds_done / total, 1.0), 4),
    )


def round_figures(row: Round) -> RoundFigures:
    rec = row.record
    return RoundFigures(
        round=row.round,
        accuracy=row.accuracy,
        loss=row.loss,
        metrics=rec.get("metrics") or {},
        selected=list(rec.get("selection", {}).get("selected", [])),
        bytes_up=row.bytes_up,
        bytes_up_dense=row.bytes_up_dense,
        bytes_down=row.bytes_down,
        ops=row.ops,
        ops_dense=row.ops_dense,
        wall_time=row.wall_time,
    )


def experiment_out(exp: Experiment | Row[Any], latest: RoundFigures | None) -> ExperimentOut:
    """An ORM experiment, or a row of its columns, as the API shows it."""
    return ExperimentOut(
        id=exp.id,
        name=exp.name,
        status=exp.status,  # type: ignore[arg-type]  # the CHECK constraint keeps it one of Status
        spec=exp.spec,
        progress=progress(exp),
        cancel_requested=exp.cancel_requested,
        error=exp.error,
        task_id=exp.task_id,
        runner=exp.runner,
        created_at=exp.created_at,
        updated_at=exp.updated_at,
        started_at=exp.started_at,
        finished_at=exp.finished_at,
        latest_round=latest,
        tags=list(exp.tags or []),
        note=exp.note or "",
        study_id=getattr(exp, "study_id", None),
        variant=getattr(exp, "variant", None),
        seed=getattr(exp, "seed", None),
    )


def round_out(row: Round) -> RoundOut:
    return RoundOut(
        round=row.round, accuracy=row.accuracy, loss=row.loss, created_at=row.created_at, record=row.record
    )
