"""Experiments carry tags (a JSON list of strings) and a free-text note.

Revision ID: 0002_tags_note
Revises: 0001_initial
Create Date: 2026-01-12
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0002_tags_note"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # Experiments stored before this revision get no tags and an empty note.
    with op.batch_alter_table("experiments") as batch:
        batch.add_column(sa.Column("tags", JSON, nullable=False, server_default=sa.text("'[]'")))
        batch.add_column(sa.Column("note", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("experiments") as batch:
        batch.drop_column("note")
        batch.drop_column("tags")
