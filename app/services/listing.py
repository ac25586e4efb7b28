"""Finding experiments: filters (status, a name search, a tag), sort orders and the headline figures.

The figures are summed in SQL from the round columns with the definitions of
``fedcore.simulation.summarize``: best accuracy (the highest round accuracy), uplink advantage
(dense upload bytes / actual) and OPs reduction (dense training OPs / actual). The list can be
sorted by them, so a page of 200 runs out of thousands is still the best 200.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import ColumnElement, Float, Select, cast, exists, func, literal, select, true
from sqlalchemy.orm import Session

from app.models import Experiment, Round

SortKey = Literal["created", "name", "best_accuracy", "uplink_advantage", "ops_reduction"]
SORT_KEYS: tuple[str, ...] = ("created", "name", "best_accuracy", "uplink_advantage", "ops_reduction")

NO_FIGURES: dict[str, Any] = {
    "rounds": 0, "best_accuracy": None, "bytes_up": None, "bytes_up_dense": None, "bytes_down": None,
    "uplink_advantage": None, "ops_reduction": None, "wall_time": None,
}

_EXPERIMENTS = Experiment.__table__


def has_tag(tag: str, dialect: str) -> ColumnElement[bool]:
    """The experiment's ``tags`` (a JSON list) holds ``tag``: PostgreSQL's jsonb array, SQLite's json_each."""
    elements = func.jsonb_array_elements_text if dialect == "postgresql" else func.json_each
    each = elements(_EXPERIMENTS.c.tags).table_valued("value")
    return exists(select(literal(1)).select_from(each).where(each.c.value == tag))


def conditions(
    *, dialect: str, status: str | None = None, q: str | None = None, tag: str | None = None
) -> list[ColumnElement[bool]]:
    """WHERE clauses: the status, a case-insensitive part of the name, one tag (each only when given)."""
    out: list[ColumnElement[bool]] = []
    if status is not None:
        out.append(_EXPERIMENTS.c.status == status)
    if q:
        out.append(_EXPERIMENTS.c.name.icontains(q, autoescape=True))
    if tag:
        out.append(has_tag(tag, dialect))
    return out


def _by_figures() -> Any:
    """Per experiment: best accuracy, uplink advantage and OPs reduction over its stored rounds."""
    return (
        select(
            Round.experiment_id.label("experiment_id"),
            func.max(Round.accuracy).label("best_accuracy"),
            (cast(func.sum(Round.bytes_up_dense), Float) / func.nullif(cast(func.sum(Round.bytes_up), Float), 0))
            .label("uplink_advantage"),
            (func.sum(Round.ops_dense) / func.nullif(func.sum(Round.ops), 0)).label("ops_reduction"),
        )
        .group_by(Round.experiment_id)
        .subquery("figures")
    )


def ordered(query: Select[Any], sort: str, descending: bool) -> Select[Any]:
    """``query`` over the experiments table, sorted by ``sort``; runs without the figure last, ties newest first."""
    tie = (_EXPERIMENTS.c.created_at.desc(), _EXPERIMENTS.c.id)
    if sort == "created":
        created = _EXPERIMENTS.c.created_at
        return query.order_by(created.desc() if descending else created.asc(), _EXPERIMENTS.c.id)
    if sort == "name":
        name = func.lower(_EXPERIMENTS.c.name)
        return query.order_by(name.desc() if descending else name.asc(), *tie)
    figures = _by_figures()
    col = figures.c[sort]
    query = query.outerjoin(figures, figures.c.experiment_id == _EXPERIMENTS.c.id)
    return query.order_by((col.desc() if descending else col.asc()).nulls_last(), *tie)


def find(
    *,
    db_session: Session,
    status: str | None = None,
    q: str | None = None,
    tag: str | None = None,
    sort: str = "created",
    descending: bool = True,
    limit: int,
    offset: int,
) -> tuple[Sequence[Any], int]:
    """A page of experiments' columns that match, in the asked order, and how many match in all."""
    if sort not in SORT_KEYS:
        raise ValueError(f"unknown sort {sort!r}; choose one of {', '.join(SORT_KEYS)}")
    where = conditions(dialect=db_session.get_bind().dialect.name, status=status, q=q, tag=tag)
    query = ordered(select(_EXPERIMENTS).where(*where), sort, descending)
    count = select(func.count()).select_from(_EXPERIMENTS).where(*where)
    items = db_session.execute(query.limit(limit).offset(offset)).all()
    return items, int(db_session.scalar(count) or 0)


def figures(db_session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    """Headline figures per experiment from the round columns (as fedcore's summarize defines them)."""
    if not ids:
        return {}
    rows = db_session.execute(
        select(Round.experiment_id, func.count(), func.max(Round.accuracy), func.sum(Round.bytes_up),
               func.sum(Round.bytes_up_dense), func.sum(Round.bytes_down), func.sum(Round.ops),
               func.sum(Round.ops_dense), func.sum(Round.wall_time))
        .where(Round.experiment_id.in_(ids)).group_by(Round.experiment_id)
    ).all()
    out = {}
    for exp_id, n, best, up, up_dense, down, ops, ops_dense, wall in rows:
        out[exp_id] = {
            "rounds": n, "best_accuracy": best, "bytes_up": up, "bytes_up_dense": up_dense, "bytes_down": down,
            "uplink_advantage": (up_dense / up) if up else None,
            "ops_reduction": (ops_dense / ops) if ops else None, "wall_time": wall,
        }
    return out


def all_tags(db_session: Session, limit: int = 200) -> list[str]:
    """Every tag in use, sorted (for the list's tag filter)."""
    dialect = db_session.get_bind().dialect.name
    elements = func.jsonb_array_elements_text if dialect == "postgresql" else func.json_each
    each = elements(_EXPERIMENTS.c.tags).table_valued("value")
    rows = db_session.execute(select(each.c.value).select_from(_EXPERIMENTS.join(each, true())).distinct()
                              .order_by(each.c.value).limit(limit)).scalars().all()
    return [str(r) for r in rows]
