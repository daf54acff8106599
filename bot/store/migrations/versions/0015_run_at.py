"""a time, not only a window: `--at` on a change and on a batch

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04

`run_at` is the instant its requester asked the checkpoint to be taken at
(`--at`, docs/batches.md "At a time"); None when it runs now or at the
policy's next window. Kept on the change so the approval of a change asked
for at a time still schedules it then, and on the batch so `windows`, the
App Home and the card say when the wave runs.

`batch_event.slack_ts` is the reply a wave's milestone (one approval asked
for, approved, a rollback or merge of all started, withdrawn) got in the
wave's thread, claimed before it is posted as `change_event.slack_ts` is.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("change", schema=None) as batch_op:
        batch_op.add_column(sa.Column("run_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("batch", schema=None) as batch_op:
        batch_op.add_column(sa.Column("run_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("batch_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("slack_ts", sa.String(length=64), nullable=True))


def downgrade() -> None:
    # A database an earlier commit migrated may lack some of these (0019's
    # docstring: 53389d6 skipped this migration, 3d1b17c's had no
    # slack_ts): only the columns that are there are dropped. On SQLite a
    # batch drop of a missing column fails (KeyError), on PostgreSQL the
    # ALTER does.
    insp = sa.inspect(op.get_bind())
    for table, column in (("batch_event", "slack_ts"), ("batch", "run_at"), ("change", "run_at")):
        if column in {c["name"] for c in insp.get_columns(table)}:
            with op.batch_alter_table(table, schema=None) as batch_op:
                batch_op.drop_column(column)
