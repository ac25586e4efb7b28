"""Initial schema: experiments, rounds, clients, events.

Revision ID: 0001_initial
Revises:
Create Date: 2025-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rounds_done", sa.Integer(), nullable=False),
        sa.Column("rounds_total", sa.Integer(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("task_id", sa.String(64), nullable=True),
        sa.Column("runner", sa.String(200), nullable=True),
        sa.Column("info", JSON, nullable=True),
        sa.Column("artifact_dir", sa.String(1000), nullable=True),
        sa.Column("adapter_path", sa.String(1000), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("dispatched_at", TS, nullable=True),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("heartbeat_at", TS, nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name="ck_experiments_status",
        ),
    )
    op.create_index("ix_experiments_status_created", "experiments", ["status", "created_at"])

    op.create_table(
        "rounds",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("experiment_id", sa.Uuid(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("accuracy", sa.Float(), nullable=True),
        sa.Column("loss", sa.Float(), nullable=True),
        sa.Column("train_loss", sa.Float(), nullable=True),
        sa.Column("bytes_up", sa.BigInteger(), nullable=False),
        sa.Column("bytes_up_dense", sa.BigInteger(), nullable=False),
        sa.Column("bytes_down", sa.BigInteger(), nullable=False),
        sa.Column("ops", sa.Float(), nullable=False),
        sa.Column("ops_dense", sa.Float(), nullable=False),
        sa.Column("wall_time", sa.Float(), nullable=False),
        sa.Column("record", JSON, nullable=False),
        sa.Column("checkpoint", sa.String(1000), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"], ["experiments.id"], ondelete="CASCADE", name="fk_rounds_experiment"
        ),
        sa.UniqueConstraint("experiment_id", "round", name="uq_rounds_experiment_round"),
    )

    op.create_table(
        "clients",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("experiment_id", sa.Uuid(), nullable=False),
        sa.Column("client_index", sa.Integer(), nullable=False),
        sa.Column("examples", sa.Integer(), nullable=False),
        sa.Column("label_histogram", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"], ["experiments.id"], ondelete="CASCADE", name="fk_clients_experiment"
        ),
        sa.UniqueConstraint("experiment_id", "client_index", name="uq_clients_experiment_client"),
    )

    op.create_table(
        "events",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("experiment_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"], ["experiments.id"], ondelete="CASCADE", name="fk_events_experiment"
        ),
        sa.CheckConstraint("type IN ('round', 'status')", name="ck_events_type"),
    )
    op.create_index("ix_events_experiment_id_id", "events", ["experiment_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_events_experiment_id_id", table_name="events")
    op.drop_table("events")
    op.drop_table("clients")
    op.drop_table("rounds")
    op.drop_index("ix_experiments_status_created", table_name="experiments")
    op.drop_table("experiments")
