"""The audit trail as a stream: every event of every change, then every
settings change, filtered in SQL and read in batches.

It never holds the table: rows come from a server-side cursor on
PostgreSQL (psycopg's named cursor, SQLAlchemy `stream_results`) and in
`yield_per` batches on SQLite, and each row is turned into its dict and
forgotten before the next is read. Both queries run in one read
transaction, so the export is one consistent snapshot; on SQLite that
transaction is a plain (deferred) read, which in WAL mode never blocks
the bot's writers (https://www.sqlite.org/wal.html).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, String, Text, and_, cast, func, or_, select, true, type_coerce
from sqlalchemy.engine import Dialect, Engine

from bot.changes.record import parse_ref
from bot.durations import DurationError, parse_duration
from bot.service.errors import BadRequest
from bot.store.columns import UTCDateTime
from bot.store.db import READ_ONLY
from bot.store.models import Change, ChangeEvent, VMSettingChange, batch_ref, change_ref

# Rows per round trip: large enough that the per-fetch cost vanishes,
# small enough that a batch is a few hundred kilobytes.
BATCH = 2000

_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")


@dataclass(frozen=True)
class AuditFilter:
    """Which rows an export keeps. `since` is inclusive, `until` exclusive
    (half-open, so consecutive exports never repeat or skip an event)."""

    since: datetime | None = None
    until: datetime | None = None
    vm: str | None = None
    change_id: int | None = None
    actor: str | None = None


def _when(option: str, text: str, now: datetime) -> datetime:
    cleaned = text.strip()
    try:
        return now - parse_duration(cleaned)
    except DurationError:
        pass
    try:
        parsed = datetime.fromisoformat(cleaned)
    except ValueError:
        raise BadRequest(
            f"{option} {text!r} is not a time: use ISO 8601 (2026-12-01, "
            "2026-12-01T09:30, 2026-12-01T09:30+01:00; UTC unless an offset is given) "
            "or a duration back from now (90m, 24h, 7d)"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_filter(
    *,
    now: datetime,
    since: str | None = None,
    until: str | None = None,
    vm: str | None = None,
    change: str | None = None,
    actor: str | None = None,
) -> AuditFilter:
    """The CLI's filter options, checked; a bad one is a `BadRequest` that
    says what would be right."""
    start = _when("--since", since, now) if since is not None else None
    end = _when("--until", until, now) if until is not None else None
    if start is not None and end is not None and start >= end:
        raise BadRequest(
            f"--since ({start.isoformat()}) must be before --until ({end.isoformat()})"
        )
    change_id = None
    if change is not None:
        change_id = parse_ref(change.strip())
        if change_id is None:
            raise BadRequest(f"--change {change!r} is not a change: use a reference like CHG-0042")
    vm_name = None
    if vm is not None:
        vm_name = vm.strip()
        if not vm_name:
            raise BadRequest("--vm is empty: give a VM's name (as recorded) or its VM id")
    who = None
    if actor is not None:
        who = actor.strip()
        mention = _MENTION.match(who)
        if mention:
            who = mention.group(1)
        if not who or any(c.isspace() for c in who):
            raise BadRequest(
                f"--actor {actor!r} is not an actor: use a Slack user id (U0123ABCD or "
                "<@U0123ABCD>), cli:NAME, policy or bot"
            )
    return AuditFilter(start, end, vm_name, change_id, who)


def _window(column: Any, flt: AuditFilter) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if flt.since is not None:
        clauses.append(column >= flt.since)
    if flt.until is not None:
        clauses.append(column < flt.until)
    return clauses


def _vm_match(name_col: Any, id_col: Any, vm: str) -> ColumnElement[bool]:
    # Hyper-V VM names are case-insensitive; a VM id is a GUID, stored lower.
    return or_(func.lower(name_col) == vm.lower(), id_col == vm.lower())


def _events_query(flt: AuditFilter) -> Any:
    events, changes = ChangeEvent.__table__, Change.__table__  # type: ignore[attr-defined]
    e, c = events.c, changes.c
    clauses = [*_window(e.at, flt)]
    if flt.change_id is not None:
        clauses.append(e.change_id == flt.change_id)
    if flt.actor is not None:
        clauses.append(e.actor == flt.actor)
    if flt.vm is not None:
        clauses.append(_vm_match(c.vm_name, c.vm_id, flt.vm))
    return (
        select(
            c.id,
            e.seq,
            # Raw, without the column types' result processing: the stored
            # text on SQLite, the driver's datetime on PostgreSQL (see
            # _timestamps); the details as their JSON text (see _decode).
            type_coerce(e.at, String),
            e.actor,
            e.actor_team,
            e.kind,
            e.from_state,
            e.to_state,
            c.vm_name,
            c.host,
            c.requester,
            c.requester_team,
            e.message,
            cast(e.details, Text),
            c.batch_id,
        )
        .select_from(events.join(changes, e.change_id == c.id))
        .where(and_(true(), *clauses))
        .order_by(e.change_id, e.seq)
    )


def _settings_query(flt: AuditFilter) -> Any | None:
    if flt.change_id is not None:
        return None  # a settings change belongs to no change
    v = VMSettingChange.__table__.c  # type: ignore[attr-defined]
    clauses = [*_window(v.at, flt)]
    if flt.actor is not None:
        clauses.append(v.actor == flt.actor)
    if flt.vm is not None:
        clauses.append(_vm_match(v.vm_name, v.vm_id, flt.vm))
    return (
        select(v.id, v.at, v.actor, v.actor_team, v.vm_name, v.host, v.reason, v.before, v.after)
        .where(and_(true(), *clauses))
        .order_by(v.id)
    )


def _timestamps(dialect: Dialect) -> Callable[[Any], str]:
    """`at` as `UTCDateTime` then `isoformat()` gave it, without the
    type's two layers of calls per row or, on SQLite, a datetime per row.

    SQLAlchemy stores a SQLite DATETIME as naive UTC text, always with six
    digits of microseconds ("2026-01-01 09:30:00.000000",
    https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#sqlalchemy.dialects.sqlite.DATETIME);
    `isoformat()` of that instant in UTC is the same digits with a "T",
    the fraction only when it is not zero, and "+00:00"
    (https://docs.python.org/3/library/datetime.html#datetime.datetime.isoformat).
    psycopg gives a timestamptz as an aware datetime in the session's time
    zone (https://www.psycopg.org/psycopg3/docs/basic/adapt.html#date-time-types-adaptation),
    which `UTCDateTime` moves to UTC. Anything else goes through the
    column type's own conversion, as the export did before."""
    convert = UTCDateTime().dialect_impl(dialect).result_processor(dialect, None)

    def general(value: Any) -> str:
        at = convert(value) if convert is not None else value
        if not isinstance(at, datetime):
            raise TypeError(f"change_event.at read as {at!r}, not a datetime")
        return at.isoformat()

    def sqlite_text(value: Any) -> str:
        if type(value) is str and len(value) == 26 and value[10] == " " and value[19] == ".":
            if value.endswith(".000000"):
                return value[:10] + "T" + value[11:19] + "+00:00"
            return value[:10] + "T" + value[11:] + "+00:00"
        return general(value)

    def aware(value: Any) -> str:
        if type(value) is datetime and value.tzinfo is not None:
            return value.astimezone(UTC).isoformat()
        return general(value)

    return sqlite_text if dialect.name == "sqlite" else aware


_DECODER = json.JSONDecoder()


def _decode(text: str | None) -> Any:
    """The details' JSON text as the JSON column would have given it (the
    engine keeps SQLAlchemy's default deserializer, `json.loads`).

    `raw_decode` is `loads` without its two whitespace scans and wrappers
    (https://docs.python.org/3/library/json.html#json.JSONDecoder.raw_decode),
    a third of the time of a typical row; text with surrounding space
    (PostgreSQL keeps a json value's text as given) takes `loads`."""
    if text is None:
        return None
    try:
        value, end = _DECODER.raw_decode(text)
    except json.JSONDecodeError:
        return json.loads(text)
    if end != len(text):
        return json.loads(text)
    return value


def stream_audit(
    engine: Engine, flt: AuditFilter = AuditFilter(), *, batch: int = BATCH
) -> Iterator[dict[str, Any]]:
    """The record as a flat table, one dict per row, in order (change, seq),
    then the settings changes by id. A Slack user is (team, user):
    `actor_team` and `requester_team` are the workspaces (empty for the
    bot, the policy, `cli:NAME`, and rows recorded before teams were)."""
    when = _timestamps(engine.dialect)
    decode = _decode
    with engine.connect() as conn:
        conn = conn.execution_options(stream_results=True, yield_per=batch, **READ_ONLY)
        # One change's six-odd events are consecutive (ordered by change):
        # its references are made once, not once per event.
        last = ref = batch_text = None
        # partitions(): each yield_per batch as a list, without a Python
        # call per row to fetch it
        # (https://docs.sqlalchemy.org/en/20/core/connections.html#sqlalchemy.engine.Result.partitions).
        for part in conn.execute(_events_query(flt)).partitions():
            for r in part:
                if r[0] != last:
                    last = r[0]
                    ref = change_ref(r[0])
                    batch_text = batch_ref(r[14]) if r[14] is not None else None
                # Keys in sorted order: the JSON lines writer sorts them
                # (sort_keys) and finds them sorted already.
                yield {
                    "actor": r[3],
                    "actor_team": r[4],
                    "at": when(r[2]),
                    "batch": batch_text,
                    "change": ref,
                    "details": decode(r[13]),
                    "event": r[5],
                    "from_state": r[6],
                    "host": r[9],
                    "message": r[12],
                    "requester": r[10],
                    "requester_team": r[11],
                    "seq": r[1],
                    "to_state": r[7],
                    "vm": r[8],
                }
        settings = _settings_query(flt)
        if settings is None:
            return
        for s in conn.execute(settings):
            yield {
                "change": f"SET-{s[0]:04d}",
                "seq": 1,
                "at": s[1].isoformat(),
                "actor": s[2],
                "actor_team": s[3],
                "event": "settings",
                "from_state": None,
                "to_state": None,
                "vm": s[4],
                "host": s[5],
                "requester": s[2],
                "requester_team": s[3],
                "message": s[6],
                "details": {"before": s[7], "after": s[8]},
                "batch": None,
            }
