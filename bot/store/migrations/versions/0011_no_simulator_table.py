"""the simulated hosts' state leaves the bot's schema

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04

The demo's modelled hosts keep their state in the dev tools' own table
(`devtools_host_state`, created by the dev tools on first use), so a
production database holds only the bot's record. A demo database loses its
modelled hosts' state with this step: they are seeded again from the
host-model file on the next start.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("simulator_host")


def downgrade() -> None:
    op.create_table(
        "simulator_host",
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("host"),
    )
