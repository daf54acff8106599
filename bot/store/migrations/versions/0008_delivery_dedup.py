"""slack deliveries already taken (replays dropped across replicas)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slack_delivery",
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_slack_delivery_seen_at", "slack_delivery", ["seen_at"])


def downgrade() -> None:
    op.drop_index("ix_slack_delivery_seen_at", table_name="slack_delivery")
    op.drop_table("slack_delivery")
