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

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, true
from sqlalchemy.engine import Engine

from bot.changes.record import parse_ref
from bot.durations import DurationError, parse_duration
from bot.service.errors import BadRequest
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
            e.at,
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
            e.details,
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


def stream_audit(
    engine: Engine, flt: AuditFilter = AuditFilter(), *, batch: int = BATCH
) -> Iterator[dict[str, Any]]:
    """The record as a flat table, one dict per row, in order (change, seq),
    then the settings changes by id. A Slack user is (team, user):
    `actor_team` and `requester_team` are the workspaces (empty for the
    bot, the policy, `cli:NAME`, and rows recorded before teams were)."""
    with engine.connect() as conn:
        conn = conn.execution_options(stream_results=True, yield_per=batch, **READ_ONLY)
        for r in conn.execute(_events_query(flt)):
            yield {
                "change": change_ref(r[0]),
                "seq": r[1],
                "at": r[2].isoformat(),
                "actor": r[3],
                "actor_team": r[4],
                "event": r[5],
                "from_state": r[6],
                "to_state": r[7],
                "vm": r[8],
                "host": r[9],
                "requester": r[10],
                "requester_team": r[11],
                "message": r[12],
                "details": r[13],
                "batch": batch_ref(r[14]) if r[14] is not None else None,
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
