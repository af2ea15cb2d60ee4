"""bulk fan-out jobs (backfill, currency release) run in chunks

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "bulk_jobs",
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("connection_id", sa.String(length=64), nullable=False),
        sa.Column("target_entity", sa.String(length=64), nullable=False),
        sa.Column("cause_event_id", sa.String(length=36), nullable=False),
        sa.Column("object_types", JSON, nullable=False),
        sa.Column("currencies", JSON, nullable=False),
        sa.Column("cursor_type", sa.String(length=32), nullable=True),
        sa.Column("cursor_id", sa.String(length=64), nullable=True),
        sa.Column("done", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job_id"),
    )
    op.create_index("ix_bulk_jobs_status", "bulk_jobs", ["status", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_bulk_jobs_status", table_name="bulk_jobs")
    op.drop_table("bulk_jobs")
