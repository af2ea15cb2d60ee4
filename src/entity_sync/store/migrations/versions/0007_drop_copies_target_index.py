"""drop ix_target_copies_target: every copy written paid for an index no hot read uses

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The one reader, `explain` (store/queries.py copies_in), always names the object: it is
    # served by ix_target_copies_source. Upserting 5,000 copies (a batch at 10 targets) took
    # 202 ms with this index and 181 ms without (benchmarks/bench_writes.py machine).
    with op.batch_alter_table("target_copies", schema=None) as batch_op:
        batch_op.drop_index("ix_target_copies_target")


def downgrade() -> None:
    with op.batch_alter_table("target_copies", schema=None) as batch_op:
        batch_op.create_index(
            "ix_target_copies_target", ["target_entity", "source_object_id"], unique=False
        )
