"""the principal captured with each request: channel and Slack user groups

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04

A request records who asked, from which channel, and the Slack user groups
they were in at the time; every later check (on approval, before a job
runs) resolves the groups again the same way. Rows recorded before this
migration keep NULL: their groups were never captured, and the re-check
resolves them from Slack like any other.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("change", schema=None) as batch_op:
        batch_op.add_column(sa.Column("requester_groups", sa.JSON(), nullable=True))
    with op.batch_alter_table("approval_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("requested_in", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("requested_by_groups", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("approval_request", schema=None) as batch_op:
        batch_op.drop_column("requested_by_groups")
        batch_op.drop_column("requested_in")
    with op.batch_alter_table("change", schema=None) as batch_op:
        batch_op.drop_column("requester_groups")
