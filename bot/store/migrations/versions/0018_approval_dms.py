"""approval DMs posted (approval_dm), so each follows its request

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06

A direct message asks an approver to decide a request (the approvals
rule's `dm: true`). Where it landed (the `D…` conversation Slack answered,
and its ts) is kept, so that once the request is settled the message is
updated in place to say who settled it and how, instead of asking still
(bot/notify/approval_dms.py). DMs posted before this migration are not
known and keep their words.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approval_dm",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("change_id", sa.Integer(), nullable=False),
        sa.Column("user", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("ts", sa.String(length=64), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("shown", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["approval_request.id"]),
        sa.ForeignKeyConstraint(["change_id"], ["change.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_approval_dm_request_id", "approval_dm", ["request_id"], unique=False)
    op.create_index("ix_approval_dm_change_id", "approval_dm", ["change_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_approval_dm_change_id", table_name="approval_dm")
    op.drop_index("ix_approval_dm_request_id", table_name="approval_dm")
    op.drop_table("approval_dm")
