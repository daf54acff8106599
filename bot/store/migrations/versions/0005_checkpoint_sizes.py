"""checkpoint sizes and adoptions (the orphan and stale sweep)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "checkpoint_size",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("vm_id", sa.String(length=64), nullable=False),
        sa.Column("checkpoint_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("checkpoint_size", schema=None) as batch_op:
        batch_op.create_index(
            "ix_checkpoint_size_checkpoint_at", ["checkpoint_id", "at"], unique=False
        )
    op.create_table(
        "checkpoint_adoption",
        sa.Column("checkpoint_id", sa.String(length=64), nullable=False),
        sa.Column("change_id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("vm_id", sa.String(length=64), nullable=False),
        sa.Column("adopted_by", sa.String(length=255), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["change_id"], ["change.id"]),
        sa.PrimaryKeyConstraint("checkpoint_id"),
    )
    with op.batch_alter_table("checkpoint_adoption", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_checkpoint_adoption_change_id"), ["change_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("checkpoint_adoption", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_checkpoint_adoption_change_id"))
    op.drop_table("checkpoint_adoption")
    with op.batch_alter_table("checkpoint_size", schema=None) as batch_op:
        batch_op.drop_index("ix_checkpoint_size_checkpoint_at")
    op.drop_table("checkpoint_size")
