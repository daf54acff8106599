"""a slot for the hardening work on Slack deliveries (replays)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

Reserved so that three pieces of work can each own one revision in a fixed
order; it changes nothing until that work fills it in.
"""

from __future__ import annotations

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
