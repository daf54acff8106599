"""a principal is (workspace, user): the Slack team beside every user id

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05

Rows recorded before this migration keep NULL: their team is not known
(the bot then took a user id alone for a person).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("change", "requester_team"),
    ("change_event", "actor_team"),
    ("approval_request", "requested_by_team"),
    ("approval_request", "resolved_by_team"),
    ("vm_setting_change", "actor_team"),
)


def upgrade() -> None:
    for table, column in _COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column(column, sa.String(length=32), nullable=True))


def downgrade() -> None:
    for table, column in reversed(_COLUMNS):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column(column)
