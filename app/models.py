"""ORM models: studies, experiments, their rounds, their clients and an append-only event log.

Alembic (``alembic/versions``) is the one schema source; these classes mirror it,
and a test checks that the two agree.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.core.stored_spec import StoredSpec

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
EVENT_TYPES = ("round", "status")

JsonType = JSON().with_variant(postgresql.JSONB(), "postgresql")
EventId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Study(Base):
    """A grid of runs: a base spec, named variants of it, seeds, a baseline variant and targets.

    ``definition`` is the study as submitted (app/services/studies.py validates it with
    :class:`fedcore.study.StudySpec`); its runs are the experiments whose ``study_id`` is this
    study's id, one per (variant, seed). A study has no status column: it is read from its runs.
    """

    __tablename__ = "studies"

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)  # json, not jsonb: the variants keep their order
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Experiment(Base):
    __tablename__ = "experiments"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name="ck_experiments_status",
        ),
        Index("ix_experiments_status_created", "status", "created_at"),
        Index("ix_experiments_study_id", "study_id"),
        UniqueConstraint("study_id", "variant", "seed", name="uq_experiments_study_variant_seed"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    spec: Mapped[dict[str, Any]] = mapped_column(StoredSpec)  # versioned, read upgraded: core/stored_spec.py
    status: Mapped[str] = mapped_column(String(16), default="queued")
    rounds_done: Mapped[int] = mapped_column(Integer, default=0)
    rounds_total: Mapped[int] = mapped_column(Integer)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    task_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    runner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    info: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    artifact_dir: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    adapter_path: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    tags: Mapped[list[str]] = mapped_column(JsonType, default=list, server_default=text("'[]'"))
    note: Mapped[str] = mapped_column(Text, default="", server_default="")
    # a study's run: its study, variant name and seed (all three or none)
    study_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid(), ForeignKey("studies.id", name="fk_experiments_study"), nullable=True
    )
    variant: Mapped[str | None] = mapped_column(String(100), nullable=True)
    seed: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Round(Base):
    __tablename__ = "rounds"
    __table_args__ = (UniqueConstraint("experiment_id", "round", name="uq_rounds_experiment_round"),)

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    experiment_id: Mapped[uuid.UUID] = mapped_column(
        Uuid(), ForeignKey("experiments.id", ondelete="CASCADE", name="fk_rounds_experiment")
    )
    round: Mapped[int] = mapped_column(Integer)
    accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    train_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    bytes_up: Mapped[int] = mapped_column(BigInteger)
    bytes_up_dense: Mapped[int] = mapped_column(BigInteger)
    bytes_down: Mapped[int] = mapped_column(BigInteger)
    ops: Mapped[float] = mapped_column(Float)
    ops_dense: Mapped[float] = mapped_column(Float)
    wall_time: Mapped[float] = mapped_column(Float)
    record: Mapped[dict[str, Any]] = mapped_column(JsonType)
    checkpoint: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Client(Base):
    __tablename__ = "clients"
    __table_args__ = (UniqueConstraint("experiment_id", "client_index", name="uq_clients_experiment_client"),)

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    experiment_id: Mapped[uuid.UUID] = mapped_column(
        Uuid(), ForeignKey("experiments.id", ondelete="CASCADE", name="fk_clients_experiment")
    )
    client_index: Mapped[int] = mapped_column(Integer)
    examples: Mapped[int] = mapped_column(Integer)
    label_histogram: Mapped[list[int]] = mapped_column(JsonType)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint("type IN ('round', 'status')", name="ck_events_type"),
        Index("ix_events_experiment_id_id", "experiment_id", "id"),
    )

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    experiment_id: Mapped[uuid.UUID] = mapped_column(
        Uuid(), ForeignKey("experiments.id", ondelete="CASCADE", name="fk_events_experiment")
    )
    type: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any]] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
