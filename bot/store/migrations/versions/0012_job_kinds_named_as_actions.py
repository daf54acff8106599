"""job kinds are named as the actions people ask for

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04

A job's kind was the host's verb (`restore`, `remove`); it is now the action
(`rollback`, `merge`), the word the record, the thread and the metrics use
(docs/architecture.md). The idempotency keys of rollback and merge jobs begin
with their kind, so they are renamed with it: a click replayed after the
upgrade still finds the job it made before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_RENAMES = (("restore", "rollback"), ("remove", "merge"))


def _rename(pairs: tuple[tuple[str, str], ...]) -> None:
    bind = op.get_bind()
    for old, new in pairs:
        # Keys read "<kind>:<change>:<seq>"; only the prefix changes.
        bind.execute(
            sa.text(
                "UPDATE job SET kind = :new, idempotency_key = :head || substr(idempotency_key, "
                ":cut) WHERE kind = :old AND idempotency_key LIKE :prefix"
            ),
            # `head` apart from `new`: PostgreSQL types one parameter once, and
            # `kind` is varchar where `||` wants text.
            {"new": new, "head": new, "old": old, "cut": len(old) + 1, "prefix": f"{old}:%"},
        )
        bind.execute(
            sa.text("UPDATE job SET kind = :new WHERE kind = :old"), {"new": new, "old": old}
        )


def upgrade() -> None:
    _rename(_RENAMES)


def downgrade() -> None:
    _rename(tuple((new, old) for old, new in _RENAMES))
