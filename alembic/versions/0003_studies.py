"""Studies: a ``studies`` table, and experiments linked to one by ``study_id`` with their variant and seed.

The dashboard's sweeps used to be sibling experiments named ``<name> [sweep <tag>] <variant>``,
found by matching the tag inside the name. Each tag becomes a study here: the members get its
``study_id``, a variant named after the text behind the tag (``s=0.5``; ``s=<sparsity>`` when
there is none) and their spec's seed; the member with sparsity 0 is the baseline. Names are
left as they were, so a downgrade loses nothing.

Revision ID: 0003_studies
Revises: 0002_tags_note
Create Date: 2026-01-20
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0003_studies"
down_revision: str | None = "0002_tags_note"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)
SWEEP = re.compile(r"^(?P<base>.*?)\s*\[sweep (?P<tag>[0-9a-z]{1,16})\]\s*(?P<rest>.*)$")
# the keys of a stored spec that are the sweep's grid or the storage's, not the study's base
NOT_BASE = ("sparsity", "seed", "spec_version")


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),  # json, not jsonb: the variants keep their order
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    with op.batch_alter_table("experiments") as batch:
        batch.add_column(sa.Column("study_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("variant", sa.String(100), nullable=True))
        batch.add_column(sa.Column("seed", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_experiments_study", "studies", ["study_id"], ["id"])
        batch.create_unique_constraint("uq_experiments_study_variant_seed", ["study_id", "variant", "seed"])
        batch.create_index("ix_experiments_study_id", ["study_id"])
    _sweeps_become_studies()


def downgrade() -> None:
    with op.batch_alter_table("experiments") as batch:
        batch.drop_index("ix_experiments_study_id")
        batch.drop_constraint("uq_experiments_study_variant_seed", type_="unique")
        batch.drop_constraint("fk_experiments_study", type_="foreignkey")
        batch.drop_column("seed")
        batch.drop_column("variant")
        batch.drop_column("study_id")
    op.drop_table("studies")


# --- data: each sweep tag becomes a study ---------------------------------------------------------

experiments = sa.table(
    "experiments",
    sa.column("id", sa.Uuid()),
    sa.column("name", sa.String()),
    sa.column("spec", JSON),
    sa.column("created_at", TS),
    sa.column("study_id", sa.Uuid()),
    sa.column("variant", sa.String()),
    sa.column("seed", sa.Integer()),
)
studies = sa.table(
    "studies",
    sa.column("id", sa.Uuid()),
    sa.column("name", sa.String()),
    sa.column("definition", sa.JSON()),
    sa.column("created_at", TS),
    sa.column("updated_at", TS),
)


def _variant_name(rest: str, spec: dict[str, Any]) -> str:
    if rest:
        return rest[:100]
    return f"s={float(spec.get('sparsity', 0.0)):g}"


def _sweeps_become_studies() -> None:
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(experiments.c.id, experiments.c.name, experiments.c.spec, experiments.c.created_at)
        .where(experiments.c.name.contains("[sweep "))
        .order_by(experiments.c.created_at)
    ).all()
    groups: dict[str, list[tuple[Any, re.Match[str]]]] = {}
    for row in rows:
        m = SWEEP.match(row.name)
        if m is not None:
            groups.setdefault(m["tag"], []).append((row, m))
    for tag, members in groups.items():
        _one_study(conn, tag, members)


def _one_study(conn: Any, tag: str, members: list[tuple[Any, re.Match[str]]]) -> None:
    study_id = uuid.uuid4()
    variants: dict[str, dict[str, Any]] = {}
    seeds: list[int] = []
    taken: set[tuple[str, int]] = set()
    assigned: list[tuple[Any, str, int]] = []
    for row, m in members:
        spec = dict(row.spec or {})
        seed = int(spec.get("seed", 0))
        name = _variant_name(m["rest"], spec)
        base_name, n = name, 2
        while (name, seed) in taken:  # the same sparsity submitted twice in one sweep
            name, n = f"{base_name} ({n})"[:100], n + 1
        taken.add((name, seed))
        variants.setdefault(name, {"sparsity": spec.get("sparsity", 0.0)})
        if seed not in seeds:
            seeds.append(seed)
        assigned.append((row, name, seed))
    first_row, first_match = members[0]
    dense = next((r for r in members if float((r[0].spec or {}).get("sparsity", 0.0)) == 0.0), members[0])
    baseline = next(name for row, name, _ in assigned if row.id == dense[0].id)
    base = {k: v for k, v in dict(dense[0].spec or {}).items() if k not in NOT_BASE}
    now = datetime.now(UTC)
    conn.execute(
        studies.insert().values(
            id=study_id,
            name=(first_match["base"] or f"sweep {tag}")[:200],
            definition={
                "name": (first_match["base"] or f"sweep {tag}")[:200],
                "base": {"preset": None, "overrides": base},
                "variants": variants,
                "seeds": sorted(seeds),
                "baseline": baseline,
                "targets": [],
            },
            created_at=first_row.created_at or now,
            updated_at=now,
        )
    )
    for row, name, seed in assigned:
        conn.execute(
            experiments.update()
            .where(experiments.c.id == row.id)
            .values(study_id=study_id, variant=name, seed=seed)
        )
