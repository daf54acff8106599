"""a slot for the hardening work on the job and Slack outboxes

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

Reserved so that three pieces of work can each own one revision in a fixed
order; it changes nothing until that work fills it in.
"""

from __future__ import annotations

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
