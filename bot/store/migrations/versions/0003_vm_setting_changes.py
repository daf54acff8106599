"""vm setting changes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vm_setting_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vm_id", sa.String(length=64), nullable=False),
        sa.Column("vm_name", sa.String(length=255), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("before", sa.JSON(), nullable=False),
        sa.Column("after", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(length=2000), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("vm_setting_change", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vm_setting_change_vm_id"), ["vm_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("vm_setting_change", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vm_setting_change_vm_id"))

    op.drop_table("vm_setting_change")
