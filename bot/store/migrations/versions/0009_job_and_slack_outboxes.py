"""the job outbox (job.delivered_at) and the Slack outbox (slack_outbox)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

Jobs recorded before this migration get `delivered_at` = `created_at`:
they were handed to the queue when they were written (the stranded-job
path still re-delivers any that a queue lost). No Slack outbox rows are
created for old changes: their threads were synced when they moved.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE job SET delivered_at = created_at")
    op.create_table(
        "slack_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("change_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=255), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["change_id"], ["change.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_slack_outbox_change_id", "slack_outbox", ["change_id"], unique=False)
    op.create_index(
        "ix_slack_outbox_pending", "slack_outbox", ["done_at", "change_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_slack_outbox_pending", table_name="slack_outbox")
    op.drop_index("ix_slack_outbox_change_id", table_name="slack_outbox")
    op.drop_table("slack_outbox")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("delivered_at")
