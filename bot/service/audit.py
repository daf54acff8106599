"""The audit trail as a stream: every event of every change, then every
settings change, filtered in SQL and read in batches.

It never holds the table: rows come from a server-side cursor on
PostgreSQL (psycopg's named cursor, SQLAlchemy `stream_results`) and in
`yield_per` batches on SQLite, and each batch is written (or turned into
dicts) and forgotten before the next is read (on PostgreSQL, the next one
is being fetched meanwhile: `_read_ahead`). Both queries run in one read
transaction, so the export is one consistent snapshot; on SQLite that
transaction is a plain (deferred) read, which in WAL mode never blocks
the bot's writers (https://www.sqlite.org/wal.html).
"""

from __future__ import annotations

import json
import queue
import re
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    String,
    Text,
    and_,
    cast,
    false,
    func,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy.engine import Dialect, Engine

from bot.changes.record import parse_ref
from bot.changes.views import ON_BEHALF_OF
from bot.domain import ACTOR_FORMS, TOO_MANY_DIGITS, ChangeRef
from bot.durations import DurationError, parse_duration
from bot.interrupts import joined, taken
from bot.service.actors import actor_id
from bot.service.audit_format import encode_sorted, export_audit
from bot.service.errors import BadRequest, NotFound
from bot.store.columns import UTCDateTime
from bot.store.db import READ_ONLY, session_scope
from bot.store.tables import batch_ref, change_ref
from bot.store.tables.changes import Change, ChangeEvent
from bot.store.tables.vm_record import VMSettingChange

# Rows per round trip: large enough that the per-fetch cost vanishes,
# small enough that a batch is about a megabyte of text.
BATCH = 2000


@dataclass(frozen=True)
class AuditFilter:
    """Which rows an export keeps. `since` is inclusive, `until` exclusive
    (half-open, so consecutive exports never repeat or skip an event)."""

    since: datetime | None = None
    until: datetime | None = None
    vm: str | None = None
    change_id: int | None = None
    actor: str | None = None
    # One settings change (`SET-0001`, as the export writes its `change`):
    # it belongs to no change, so no change's events go with it.
    settings_id: int | None = None


def _when(option: str, text: str, now: datetime) -> datetime:
    cleaned = text.strip()
    try:
        return now - parse_duration(cleaned)
    except DurationError as exc:
        # Written as a duration, wrong as one: say what, not "not a time".
        if exc.too_long:
            raise BadRequest(
                f"{option} {exc}; for an earlier start give a date, like {now.year - 2}-01-01"
            ) from None
        if exc.not_positive:
            raise BadRequest(f"{option} {exc}, counted back from now") from None
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
            f"--since {since} ({start:%Y-%m-%d %H:%M:%S} UTC) must be before --until "
            f"{until} ({end:%Y-%m-%d %H:%M:%S} UTC)"
        )
    change_id = settings_id = None
    settings = _SETTINGS_REF.fullmatch(change.strip()) if change is not None else None
    if settings is not None:
        settings_id = int(settings.group(1))
    elif change is not None:
        change_id = parse_ref(change.strip())
        if change_id is None and ChangeRef.too_long(change):
            # Written as a ref, so not "not a change": as `change show`
            # answers it (exit 1), with why no change can have it.
            raise NotFound(
                f"no change {change.strip().upper()}: {TOO_MANY_DIGITS}; nothing was exported"
            )
        if change_id is None:
            raise BadRequest(
                f"--change {change!r} is not a change: use a reference like CHG-0042 (or "
                "SET-0001 for a settings change)"
            )
    vm_name = None
    if vm is not None:
        vm_name = vm.strip()
        if not vm_name:
            raise BadRequest("--vm is empty: give a VM's name (as recorded) or its VM id")
    who = None
    if actor is not None:
        who = actor_id(
            actor,
            option="--actor",
            what="an actor",
            forms=ACTOR_FORMS,
        )
    return AuditFilter(start, end, vm_name, change_id, who, settings_id)


# How the export names a settings change (`_settings_row`), any case.
_SETTINGS_REF = re.compile(r"(?i)SET-0*(\d{1,9})")


def settings_ref(settings_id: int) -> str:
    return f"SET-{settings_id:04d}"


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


def _events_query(flt: AuditFilter, dialect: Dialect) -> Any:
    events, changes = ChangeEvent.__table__, Change.__table__  # type: ignore[attr-defined]
    e, c = events.c, changes.c
    clauses = [*_window(e.at, flt)]
    if flt.settings_id is not None:
        clauses.append(false())  # one settings change: no change's events
    if flt.change_id is not None:
        clauses.append(e.change_id == flt.change_id)
    if flt.actor is not None:
        # What the person did, and what the policy decided on their request
        # (a rollback waiting for approval, an extension refused: the actor
        # is `policy`, the person is in the details, bot.changes.views).
        asked = events.c.details[ON_BEHALF_OF].as_string()
        clauses.append(or_(e.actor == flt.actor, asked == flt.actor))
    if flt.vm is not None:
        clauses.append(_vm_match(c.vm_name, c.vm_id, flt.vm))
    return (
        select(
            c.id,
            e.seq,
            # Text, without the column types' result processing: see
            # _at_text and _timestamps; the details as their JSON text
            # (see _decode).
            _at_text(e.at, dialect),
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
    if flt.settings_id is not None:
        clauses.append(v.id == flt.settings_id)
    if flt.actor is not None:
        clauses.append(v.actor == flt.actor)
    if flt.vm is not None:
        clauses.append(_vm_match(v.vm_name, v.vm_id, flt.vm))
    return (
        select(v.id, v.at, v.actor, v.actor_team, v.vm_name, v.host, v.reason, v.before, v.after)
        .where(and_(true(), *clauses))
        .order_by(v.id)
    )


def _at_text(column: Any, dialect: Dialect) -> Any:
    """`change_event.at` as text in one shape, "YYYY-MM-DD HH:MM:SS.ffffff"
    in UTC, read without the column type's conversion.

    That is how SQLAlchemy stores a SQLite DATETIME, naive UTC with six
    digits of microseconds
    (https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#sqlalchemy.dialects.sqlite.DATETIME).
    PostgreSQL is asked for the same text (`timezone('UTC', at)` then
    `to_char` with `US`, microseconds,
    https://www.postgresql.org/docs/current/functions-datetime.html#FUNCTIONS-DATETIME-ZONECONVERT,
    https://www.postgresql.org/docs/current/functions-formatting.html)
    rather than a datetime per row that Python moves to UTC and formats:
    a fifth of the export's CPU."""
    if dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24:MI:SS.US")
    return type_coerce(column, String)


def _timestamps(dialect: Dialect) -> Callable[[Any], str]:
    """`at` (as `_at_text` reads it) as `UTCDateTime` then `isoformat()`
    gave it, without a datetime per row.

    `isoformat()` of a UTC instant is the same digits as the text with a
    "T", the fraction only when it is not zero, and "+00:00"
    (https://docs.python.org/3/library/datetime.html#datetime.datetime.isoformat).
    Text of another shape (written by hand, or by SQLite's own
    CURRENT_TIMESTAMP) goes through the column type's own conversion on
    SQLite, as the export did before, and is read as UTC elsewhere."""
    convert = UTCDateTime().dialect_impl(dialect).result_processor(dialect, None)
    sqlite = dialect.name == "sqlite"

    def general(value: Any) -> str:
        if isinstance(value, str) and not sqlite:
            return datetime.fromisoformat(value).replace(tzinfo=UTC).isoformat()
        at = convert(value) if convert is not None else value
        if not isinstance(at, datetime):
            raise TypeError(f"change_event.at read as {at!r}, not a datetime")
        return at.isoformat()

    def fast(value: Any) -> str:
        if type(value) is str and len(value) == 26 and value[10] == " " and value[19] == ".":
            if value.endswith(".000000"):
                return value[:10] + "T" + value[11:19] + "+00:00"
            return value[:10] + "T" + value[11:] + "+00:00"
        return general(value)

    return fast


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


def _event_row(r: Any, when: Callable[[Any], str]) -> dict[str, Any]:
    return {
        "actor": r[3],
        "actor_team": r[4],
        "at": when(r[2]),
        "batch": batch_ref(r[14]) if r[14] is not None else None,
        "change": change_ref(r[0]),
        "details": _decode(r[13]),
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


def _settings_row(s: Any) -> dict[str, Any]:
    return {
        "actor": s[2],
        "actor_team": s[3],
        "at": s[1].isoformat(),
        "batch": None,
        "change": settings_ref(s[0]),
        "details": {"before": s[7], "after": s[8]},
        "event": "settings",
        "from_state": None,
        "host": s[5],
        "message": s[6],
        "requester": s[2],
        "requester_team": s[3],
        "seq": 1,
        "to_state": None,
        "vm": s[4],
    }


_T = TypeVar("_T")
_END = object()


def _read_ahead(parts: Iterator[_T]) -> Iterator[_T]:
    """`parts`, each fetched by a thread while the caller works on the one
    before.

    A PostgreSQL server-side cursor is read one FETCH at a time, each a
    round trip: without this the server computes the next batch while the
    exporting process waits, and the process formats it while the server
    waits. A psycopg connection may be used from another thread
    (https://www.psycopg.org/psycopg3/docs/advanced/async.html) and other
    threads run while it waits for the server, so the two overlap: at
    100,000 changes 4.7-5.3 s against 5.5-6.0 s of wall clock on two cores.
    At most two batches are held besides the caller's. The thread is the
    only one to use the cursor until it has stopped: on the caller's error
    or early exit it is told to stop and joined before the connection is
    given back; an error in the thread is raised to the caller."""
    ready: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def hand_over(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def fetch() -> None:
        try:
            for part in parts:
                if not hand_over(part):
                    return
        except BaseException as exc:  # raised again in the caller's thread
            hand_over(exc)
            return
        hand_over(_END)

    thread = threading.Thread(target=fetch, name="audit-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = taken(ready)  # a Ctrl-C is seen while the server computes
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        joined(thread)


def _partitions(conn: Any, query: Any) -> Generator[Any, None, None]:
    """The query's rows, a `yield_per` batch at a time: `partitions()`, each
    batch as a list without a Python call per row to fetch it
    (https://docs.sqlalchemy.org/en/20/core/connections.html#sqlalchemy.engine.Result.partitions),
    read ahead on PostgreSQL (`_read_ahead`). Not on SQLite: there reading
    is building the rows in this process, which a thread only slows down
    (measured: 5.4 s against 5.8-6.1 s at 100,000 changes). Close it
    (`contextlib.closing`) before the connection: that stops the reader."""
    parts = conn.execute(query).partitions()
    if conn.dialect.name == "postgresql":
        yield from _read_ahead(parts)
    else:
        yield from parts


def _reading(engine: Engine, batch: int) -> Any:
    return engine.connect().execution_options(stream_results=True, yield_per=batch, **READ_ONLY)


def stream_audit(
    engine: Engine, flt: AuditFilter = AuditFilter(), *, batch: int = BATCH
) -> Iterator[dict[str, Any]]:
    """The record as a flat table, one dict per row, in order (change, seq),
    then the settings changes by id. A Slack user is (team, user):
    `actor_team` and `requester_team` are the workspaces (empty for the
    bot, the policy, `cli:NAME`, and rows recorded before teams were)."""
    when = _timestamps(engine.dialect)
    with _reading(engine, batch) as conn:
        with closing(_partitions(conn, _events_query(flt, conn.dialect))) as parts:
            for part in parts:
                for r in part:
                    yield _event_row(r, when)
        settings = _settings_query(flt)
        if settings is not None:
            for s in conn.execute(settings):
                yield _settings_row(s)


def _event_lines(conn: Any, flt: AuditFilter) -> Iterator[str]:
    """The events as JSON lines, `json.dumps(row, sort_keys=True)` byte for
    byte, a partition (`BATCH` rows) per chunk.

    A line is its fields' JSON put in the sorted keys' order with the
    default separators (", " and ": "), each string by the function `json`
    itself uses for it (`encode_basestring_ascii`,
    https://github.com/python/cpython/blob/3.11/Lib/json/encoder.py), and
    the details by the same sorted encoder as every other row. A change's
    own fields (reference, batch, VM, host, requester) are the same for
    each of its events, which come together (ordered by change): they are
    encoded once per change, not once per event. Against a dict per row
    and the C encoder over it this is a sixth less CPU at 100,000 changes
    (bench/audit_export.py). A row with a value of another type than its
    column's (SQLite stores what it is given) is written from its dict."""
    when = _timestamps(conn.dialect)
    encode, decode, esc = encode_sorted, _decode, encode_basestring_ascii
    last = None
    head = host = tail = vm = ""
    with closing(_partitions(conn, _events_query(flt, conn.dialect))) as parts:
        for part in parts:
            lines: list[str] = []
            for r in part:
                try:
                    if r[0] != last:
                        head = (
                            f', "batch": {"null" if r[14] is None else esc(batch_ref(r[14]))}'
                            f', "change": {esc(change_ref(r[0]))}, "details": '
                        )
                        host = f', "host": {esc(r[9])}, "message": '
                        tail = (
                            f', "requester": {esc(r[10])}'
                            f', "requester_team": {"null" if r[11] is None else esc(r[11])}'
                            ', "seq": '
                        )
                        vm = f', "vm": {esc(r[8])}}}'
                        last = r[0]
                    if type(r[1]) is not int:
                        raise TypeError(r[1])
                    lines.append(
                        '{"actor": '
                        + esc(r[3])
                        + ', "actor_team": '
                        + ("null" if r[4] is None else esc(r[4]))
                        + ', "at": "'
                        + when(r[2])
                        + '"'
                        + head
                        + encode(decode(r[13]))
                        + ', "event": '
                        + esc(r[5])
                        + ', "from_state": '
                        + ("null" if r[6] is None else esc(r[6]))
                        + host
                        + esc(r[12])
                        + tail
                        + str(r[1])
                        + ', "to_state": '
                        + ("null" if r[7] is None else esc(r[7]))
                        + vm
                    )
                except TypeError:
                    last = None
                    lines.append(encode(_event_row(r, when)))
            lines.append("")
            yield "\n".join(lines)


def check_filter(engine: Engine, flt: AuditFilter) -> None:
    """Before anything is written: a change the record does not hold is
    `NotFound`, as `change show` says it, not an empty export."""
    if flt.change_id is not None:
        with session_scope(engine) as s:
            if s.get(Change, flt.change_id) is None:
                raise NotFound(f"no change {change_ref(flt.change_id)}: nothing was exported")
    if flt.settings_id is not None:
        with session_scope(engine) as s:
            if s.get(VMSettingChange, flt.settings_id) is None:
                raise NotFound(
                    f"no settings change {settings_ref(flt.settings_id)}: nothing was exported"
                )


def nothing_matched(flt: AuditFilter) -> str:
    """What to say of an export that matched no event: which filters matched
    nothing, so an empty file is not mistaken for a quiet record."""
    given: list[str] = []
    if flt.change_id is not None:
        given.append(f"--change {change_ref(flt.change_id)}")
    if flt.settings_id is not None:
        given.append(f"--change {settings_ref(flt.settings_id)}")
    if flt.since is not None:
        given.append(f"--since {flt.since:%Y-%m-%d %H:%M:%S} UTC")
    if flt.until is not None:
        given.append(f"--until {flt.until:%Y-%m-%d %H:%M:%S} UTC")
    if flt.vm is not None:
        given.append(f"--vm {flt.vm}")
    if flt.actor is not None:
        given.append(f"--actor {flt.actor}")
    if not given:
        return "the record holds no events yet"
    return f"no events matched {', '.join(given)}"


@dataclass
class Tally:
    """How many events (rows: a change's events, then settings changes) an
    export wrote: not its lines, which a CSV cell with a line break in it
    and the CSV header would add to (seen: "wrote c.csv (8 lines)" and
    "wrote c.jsonl (6 lines)" for the same six events)."""

    rows: int = 0


def _counted(rows: Iterator[dict[str, Any]], tally: Tally) -> Iterator[dict[str, Any]]:
    for row in rows:
        tally.rows += 1
        yield row


def audit_text(
    engine: Engine,
    flt: AuditFilter = AuditFilter(),
    fmt: str = "jsonl",
    *,
    batch: int = BATCH,
    tally: Tally | None = None,
) -> Iterator[str]:
    """`export_audit(stream_audit(engine, flt), fmt)`, the same text in
    chunks, JSON lines written without a dict per event (`_event_lines`).
    `tally` counts the events written."""
    counts = tally if tally is not None else Tally()
    if fmt != "jsonl":
        yield from export_audit(_counted(stream_audit(engine, flt, batch=batch), counts), fmt)
        return
    with _reading(engine, batch) as conn:
        # One line per event: JSON escapes every line break inside a value.
        for chunk in _event_lines(conn, flt):
            counts.rows += chunk.count("\n")
            yield chunk
        settings = _settings_query(flt)
        if settings is not None:
            rows = (_settings_row(s) for s in conn.execute(settings))
            yield from export_audit(_counted(rows, counts), fmt)
