"""patch waves: batches of changes, their events, host slots

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04

A batch is the parent of ordinary changes (`change.batch_id`, nullable: a
change asked for on its own has none); its state is derived from its
members', never stored. `host_slot` bounds how many batch jobs run at once
on one host (docs/batches.md).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("requester", sa.String(length=255), nullable=False),
        sa.Column("requester_team", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.String(length=2000), nullable=False),
        sa.Column("checkpoint_type", sa.String(length=32), nullable=False),
        sa.Column("ttl_seconds", sa.Integer(), nullable=False),
        sa.Column("selection", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=True),
        sa.Column("thread_ts", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token"),
    )
    op.create_table(
        "batch_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("actor_team", sa.String(length=32), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("message", sa.String(length=4000), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["batch.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("batch_id", "seq", name="uq_batch_event_seq"),
    )
    with op.batch_alter_table("batch_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_batch_event_batch_id"), ["batch_id"], unique=False)
    with op.batch_alter_table("change", schema=None) as batch_op:
        batch_op.add_column(sa.Column("batch_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_change_batch_id"), ["batch_id"], unique=False)
        batch_op.create_foreign_key("fk_change_batch_id", "batch", ["batch_id"], ["id"])
    op.create_table(
        "host_slot",
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=255), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"]),
        sa.PrimaryKeyConstraint("host", "slot"),
    )
    with op.batch_alter_table("host_slot", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_host_slot_job_id"), ["job_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("host_slot", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_host_slot_job_id"))
    op.drop_table("host_slot")
    with op.batch_alter_table("change", schema=None) as batch_op:
        batch_op.drop_constraint("fk_change_batch_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_change_batch_id"))
        batch_op.drop_column("batch_id")
    with op.batch_alter_table("batch_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_batch_event_batch_id"))
    op.drop_table("batch_event")
    op.drop_table("batch")
