"""what a checkpoint really is, and the VM's state after a rollback

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("change", schema=None) as batch_op:
        batch_op.add_column(sa.Column("taken_type", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("taken_evidence", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("holds_memory", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("vm_state_after", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("change", schema=None) as batch_op:
        batch_op.drop_column("vm_state_after")
        batch_op.drop_column("holds_memory")
        batch_op.drop_column("taken_evidence")
        batch_op.drop_column("taken_type")
