"""drop two indexes every hot write paid for and no hot read uses

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
    # ix_target_copies_target (target, object id): the one reader, `explain`
    # (store/queries.py copies_in), always names the object and is served by
    # ix_target_copies_source. Upserting 5,000 copies (a batch at 10 targets): 202 ms with it,
    # 181 ms without. ix_decisions_target (target, id): no query reads decisions by target
    # alone (`history` goes by object, ix_decisions_object). 500 decisions: 16.7 ms with it,
    # 14.6 ms without. (Medians of 30, 2 cores shared with RabbitMQ and PostgreSQL.)
    with op.batch_alter_table("target_copies", schema=None) as batch_op:
        batch_op.drop_index("ix_target_copies_target")
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_decisions_target")


def downgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_index("ix_decisions_target", ["target_entity", "id"], unique=False)
    with op.batch_alter_table("target_copies", schema=None) as batch_op:
        batch_op.create_index(
            "ix_target_copies_target", ["target_entity", "source_object_id"], unique=False
        )
