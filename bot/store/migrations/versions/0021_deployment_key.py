"""the record's own key, which marks its checkpoints (deployment_key)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06

A checkpoint's name carried only a token its create job drew, so after a
restore from a backup, checkpoints the bot took since the backup (their
jobs not in the restored record) read as another deployment's and could
not be adopted. Names now also carry a mark made with this key
(bot.service.ownership); the key is drawn here, once per record.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "deployment_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(
        table,
        [{"id": 1, "key": secrets.token_hex(32)}],
    )


def downgrade() -> None:
    op.drop_table("deployment_key")
