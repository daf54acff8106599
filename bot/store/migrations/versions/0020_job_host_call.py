"""whether a job's destructive host call was sent (job.host_call)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06

A rollback's or a merge's change is `rolling_back` or `merging` from the
moment it is asked for, so when its job stopped half-way the record could
not tell a job cut off while it re-checked (nothing sent to the host) from
one cut off while Restore-VMSnapshot or Remove-VMSnapshot ran: the
reconciler asked a human. A job now says which (bot/jobs/ledger.py,
`mark_sent`). Jobs claimed before this migration keep NULL: not known.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("host_call", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("host_call")
