"""TTL notices posted (ttl_notice), so each follows the checkpoint it is about

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05

A TTL reminder DM or expiry notice carries buttons that decide a
checkpoint. Where it landed (the channel Slack answered, a `D…`
conversation for a DM, and its ts) is kept, with what it showed, so that
once the checkpoint is kept & merged, rolled back or extended the message
is updated in place to say so, without buttons (bot/notify/ttl_notices.py).
Notices posted before this migration are not known and keep their buttons.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ttl_notice",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("change_id", sa.Integer(), nullable=True),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("ts", sa.String(length=64), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("about", sa.JSON(), nullable=False),
        sa.Column("shown", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["batch.id"]),
        sa.ForeignKeyConstraint(["change_id"], ["change.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ttl_notice_change_id", "ttl_notice", ["change_id"], unique=False)
    op.create_index("ix_ttl_notice_batch_id", "ttl_notice", ["batch_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_ttl_notice_batch_id", table_name="ttl_notice")
    op.drop_index("ix_ttl_notice_change_id", table_name="ttl_notice")
    op.drop_table("ttl_notice")
