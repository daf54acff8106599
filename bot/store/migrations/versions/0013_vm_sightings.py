"""where each VM was last seen (failover clusters: a VM moves between nodes)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vm_sighting",
        sa.Column("vm_id", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("previous_host", sa.String(length=255), nullable=True),
        sa.Column("previous_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("vm_id"),
    )


def downgrade() -> None:
    op.drop_table("vm_sighting")
