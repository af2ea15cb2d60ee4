"""decisions.targets: one decision row for several targets

Rows written before keep their shape (one target each) and stay readable; workers of the
previous release can go on writing them during a rollout.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The columns a split row copies from its grouped row.
_FIELDS = ("at", "cause_event_id", "object_type", "object_id", "version", "decision", "reason", "message")


def upgrade() -> None:
    with op.batch_alter_table("decisions") as batch_op:
        batch_op.add_column(
            sa.Column(
                "targets",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:
    # A grouped row would read as a decision about every target: split it, one row per target
    # (appended: the previous release orders by id, the rows keep their `at`).
    decisions = sa.table(
        "decisions",
        *(sa.column(name) for name in ("id", "target_entity", *_FIELDS)),
        sa.column("targets", sa.JSON()),
    )
    bind = op.get_bind()
    grouped = bind.execute(sa.select(decisions).where(decisions.c.targets.isnot(None))).all()
    for row in grouped:
        fields = {name: getattr(row, name) for name in _FIELDS}
        bind.execute(
            decisions.insert(), [{**fields, "target_entity": target} for target in row.targets]
        )
        bind.execute(decisions.delete().where(decisions.c.id == row.id))
    with op.batch_alter_table("decisions") as batch_op:
        batch_op.drop_column("targets")

