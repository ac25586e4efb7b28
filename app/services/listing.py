"""Finding experiments and the figures the dashboard shows for them.

Filters (status, a name search, a tag) and sort orders; the headline figures per experiment: the
round columns are summed in SQL and turned into figures by ``fedcore.summary.headline`` (the
definitions ``fedcore.summary.summarize`` uses): best accuracy (the highest round accuracy), uplink
advantage (dense upload bytes / actual) and OPs reduction (dense training OPs / actual). The list
can be sorted by them (:func:`ordered` writes those ratios in SQL, so a page of 200 runs out of
thousands is still the best 200). A row (:func:`row`) is one experiment as every dashboard view
shows it; :func:`study_runs` lists the other runs of its study (by ``study_id``, never the name).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, Float, Row, Select, cast, exists, func, literal, select, true
from sqlalchemy.orm import Session

from app.api.presenters import experiment_out
from app.models import STATUSES, Experiment, Round, Study
from fedcore.summary import headline

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
    return {
        exp_id: headline(rounds=n, best_accuracy=best, bytes_up=up, bytes_up_dense=up_dense, bytes_down=down,
                         ops=ops, ops_dense=ops_dense, wall_time=wall)
        for exp_id, n, best, up, up_dense, down, ops, ops_dense, wall in rows
    }


def all_tags(db_session: Session, limit: int = 200) -> list[str]:
    """Every tag in use, sorted (for the list's tag filter)."""
    dialect = db_session.get_bind().dialect.name
    elements = func.jsonb_array_elements_text if dialect == "postgresql" else func.json_each
    each = elements(_EXPERIMENTS.c.tags).table_valued("value")
    rows = db_session.execute(select(each.c.value).select_from(_EXPERIMENTS.join(each, true())).distinct()
                              .order_by(each.c.value).limit(limit)).scalars().all()
    return [str(r) for r in rows]


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
                   tag=(tag or "").strip()[:40], sort=sort if sort in SORT_KEYS else "created",
                   order="asc" if order == "asc" else "desc")

    def find(self, db_session: Session, limit: int) -> tuple[Sequence[Any], int]:
        return find(db_session=db_session, status=self.status, q=self.q or None, tag=self.tag or None,
                    sort=self.sort, descending=self.order == "desc", limit=limit, offset=0)


def row(exp: Experiment | Row[Any], figures: dict[str, Any] | None) -> dict[str, Any]:
    """One experiment as the dashboard shows it: the API's view (without a latest round) and its figures."""
    out = experiment_out(exp, None).model_dump(mode="json")
    out.pop("latest_round", None)
    out["figures"] = figures or dict(NO_FIGURES)
    # the study's id under the key the list's script links by (static/js/experiments.js: /compare?sweep=)
    study_id = getattr(exp, "study_id", None)
    out["sweep"] = str(study_id) if study_id is not None else None
    return out


def rows(db_session: Session, exps: Sequence[Experiment | Row[Any]]) -> list[dict[str, Any]]:
    """:func:`row` for each experiment, with the figures of all of them read in one query."""
    found = figures(db_session, [e.id for e in exps])
    return [row(e, found.get(e.id)) for e in exps]


def study_runs(db_session: Session, exp: Experiment, limit: int) -> list[dict[str, Any]]:
    """The runs of the experiment's study (by ``study_id``; the experiment too, marked ``self``), each with
    whether it is the study's baseline run of the same seed."""
    if exp.study_id is None:
        return []
    study = db_session.get(Study, exp.study_id)
    baseline = (study.definition or {}).get("baseline") if study is not None else None
    found = db_session.scalars(select(Experiment).where(Experiment.study_id == exp.study_id)
                               .order_by(Experiment.seed, Experiment.created_at).limit(limit)).all()
    return [{"id": str(r.id), "name": r.name, "status": r.status, "sparsity": (r.spec or {}).get("sparsity"),
             "variant": r.variant, "seed": r.seed, "baseline": r.variant == baseline and r.seed == exp.seed,
             "self": r.id == exp.id} for r in found]


def study_members(db_session: Session, study_id: uuid.UUID, limit: int) -> list[uuid.UUID]:
    """The ids of a study's runs, by seed then age (the compare page's ``?study=``)."""
    return list(db_session.scalars(select(Experiment.id).where(Experiment.study_id == study_id)
                                   .order_by(Experiment.seed, Experiment.created_at).limit(limit)).all())
