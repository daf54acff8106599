"""0015's columns (change.run_at, batch.run_at, batch_event.slack_ts) where a database lacks them

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06

The migration chain was edited after databases had run it:

- at 53389d6, 0016 (stale_home) revised 0014, beside a 0015 being written
  on another branch; the merge made it revise 0015. A database that commit
  took to 0016 never ran 0015, and the releases after it, finding it at
  0016, went on to 0017 and 0018: it has no `change.run_at`,
  `batch.run_at` or `batch_event.slack_ts`.
- at 3d1b17c and ca15dd6, 0015 added the two `run_at` columns only;
  `batch_event.slack_ts` was added to it later. A database at 0015 then
  never got that column.

Every change command then failed ("no such column: change.run_at"). This
migration adds each of the three that is missing, as the models define
them (nullable, no index or constraint) and as 0015 adds them, and does
nothing on a database that has them (every database whose 0015 was this
release's).

Its downgrade does nothing: the columns belong to 0015, whose downgrade
drops them (those that are there); dropping them here would leave a
database at 0018 without the columns 0015 gave it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

# What 0015 adds, as it adds it.
_ADDED_BY_0015 = (
    ("change", sa.Column("run_at", sa.DateTime(timezone=True), nullable=True)),
    ("batch", sa.Column("run_at", sa.DateTime(timezone=True), nullable=True)),
    ("batch_event", sa.Column("slack_ts", sa.String(length=64), nullable=True)),
)


def upgrade() -> None:
    insp = sa.inspect(op.get_bind())
    missing = [
        (table, column)
        for table, column in _ADDED_BY_0015
        if column.name not in {c["name"] for c in insp.get_columns(table)}
    ]
    for table, column in missing:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(column)


def downgrade() -> None:
    pass
