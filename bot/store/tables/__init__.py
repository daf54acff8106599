"""The tables, one module per part of the record, so a command maps only
the tables it reads: SQLAlchemy's declarative mapping costs about 3 ms a
table at start-up (bench/cli_start.py), and `checkpoint-bot outbox` reads
two of nineteen. `bot.store.models` imports them all, for code that wants
every table (the schema, the migrations, the tests)."""

from __future__ import annotations

from bot.domain import BatchRef, ref_text


def change_ref(change_id: int) -> str:
    return ref_text(change_id)


def batch_ref(batch_id: int) -> str:
    return str(BatchRef(batch_id))
