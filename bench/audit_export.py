"""Audit export at 100,000 changes x 6 events, the new way against the old.

    .venv/bin/python bench/audit_export.py [--changes 100000] [--backend sqlite|postgres|both]
                                           [--pg-url postgresql://postgres@127.0.0.1:5432/test]

Seeds one database per backend by bulk insert (executemany on SQLite,
COPY on PostgreSQL): `--changes` changes of six events each, the approve
event carrying a three-rule policy decision as real ones do, and a few
settings changes. Then each export runs in its own child process writing
JSON lines to /dev/null, and the child reports its events/s and its peak
RSS (VmHWM of the child itself; see `_peak_mb`):

- new: `bot.service.audit.audit_text`, what `audit export` runs
  (server-side cursor / yield_per, a partition of rows per chunk),
- old: the export as it was before (every row loaded as ORM objects by
  one `.all()`, then each written by `json.dumps`), reproduced below as
  the baseline.

Under a shared, loaded machine the wall-clock rate depends on what else
runs; the export's own CPU time (the child's user + system over the
export, imports excluded) is printed beside it, and on PostgreSQL also
with the CPU time of the server process that answered it added (read from
/proc, so only when the server runs on this machine).

Then the same scaling check for what people open all day: `checkpoint
list`, `change show` and App Home, timed on 1,000 changes and on
`--changes` changes (best of 9, the two sizes interleaved call by call);
the ratio should stay near 1.

Targets: the new export at least 100,000 events/s with a peak RSS under
200 MB on both backends.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event as sqla_event
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import col, select

from bot.store.db import make_engine, session_scope
from bot.store.migrate import upgrade
from bot.store.models import Change, ChangeEvent, VMSettingChange, batch_ref, change_ref

EVENTS = (
    ("requested", None, "requested", "cli:seed"),
    ("approve", "requested", "approved", "policy"),
    ("start_create", "approved", "creating", "checkpoint-bot"),
    ("created", "creating", "active", "checkpoint-bot"),
    ("start_merge", "active", "merging", "U0000007"),
    ("merged", "merging", "merged", "checkpoint-bot"),
)
USERS = 50
T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime.now(UTC)


def _decision(vm: str) -> dict[str, Any]:
    def rule(rid: str, message: str) -> dict[str, Any]:
        return {
            "adjustments": {},
            "effect": None,
            "exemption": None,
            "facts": {
                "roles": {
                    "known": True,
                    "observed_at": "2026-01-01T00:00:00+00:00",
                    "source": "inventory inventory.yaml",
                    "value": ["web"],
                }
            },
            "fired": False,
            "id": rid,
            "message": message,
            "outcome": "passed",
            "remediation": "",
            "rule": rid,
            "schedule_at": None,
        }

    return {
        "adjustments": {"ttl_seconds": 259200},
        "approval": None,
        "rules": [
            rule("domain_controller", f"{vm} is not a domain controller"),
            rule("checkpoint_count", f"{vm} has 0 of at most 3 checkpoints"),
            rule("ttl", "no TTL asked for: the checkpoint expires after the default 3d"),
        ],
        "schedule_at": None,
        "verdict": "allow",
    }


CHANGE_COLS = [
    "id",
    "action",
    "vm_id",
    "vm_name",
    "host",
    "checkpoint_type",
    "reason",
    "requester",
    "requester_team",
    "source",
    "channel",
    "state",
    "decision",
    "ttl_seconds",
    "created_at",
    "updated_at",
    "expires_at",
    "checkpoint_id",
    "checkpoint_name",
    "taken_type",
    "version",
]
EVENT_COLS = [
    "id",
    "change_id",
    "seq",
    "at",
    "actor",
    "actor_team",
    "kind",
    "from_state",
    "to_state",
    "message",
    "details",
]
SETTING_COLS = [
    "id",
    "vm_id",
    "vm_name",
    "host",
    "actor",
    "actor_team",
    "at",
    "before",
    "after",
    "reason",
]


def _rows(changes: int) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
    event_id = 0
    for n in range(1, changes + 1):
        vm = f"VM{n % 5000:04d}"
        at = T0 + timedelta(seconds=30 * n)
        requester = f"U{n % USERS:07d}"
        # The newest 100 changes still hold their checkpoints (the older
        # half of them past their TTL); every older one was merged, as most
        # changes end. Open work stays the same at any history size.
        state = "active" if n > changes - 100 else "merged"
        change = (
            n,
            "checkpoint",
            str(uuid.UUID(int=n % 5000)),
            vm,
            f"HV{n % 40:02d}",
            "production",
            f"deploy {n}",
            requester,
            "T0001",
            "slack",
            "C0001",
            state,
            json.dumps(_decision(vm)),
            259200,
            at,
            at + timedelta(minutes=5),
            (NOW - timedelta(hours=1)) if n <= changes - 50 else (NOW + timedelta(days=3)),
            str(uuid.UUID(int=(1 << 64) + n)),
            f"CHG-{n:04d} deploy",
            "production",
            6,
        )
        events = []
        for seq, (kind, before, after, actor) in enumerate(EVENTS, start=1):
            event_id += 1
            details = _decision(vm) if kind == "approve" else {"host": change[4], "vm": vm}
            events.append(
                (
                    event_id,
                    n,
                    seq,
                    at + timedelta(seconds=seq),
                    actor if actor != "cli:seed" else requester,
                    "T0001" if actor.startswith("U") or actor == "cli:seed" else None,
                    kind,
                    before,
                    after,
                    f"{kind} of {vm}",
                    json.dumps(details),
                )
            )
        yield change, events


def _settings_rows() -> list[tuple[Any, ...]]:
    return [
        (
            i,
            str(uuid.UUID(int=i)),
            f"VM{i:04d}",
            "HV00",
            "U0000001",
            "T0001",
            T0 + timedelta(hours=i),
            json.dumps({"CheckpointType": "Standard"}),
            json.dumps({"CheckpointType": "Production"}),
            "make it production",
        )
        for i in range(1, 21)
    ]


def _sqlite_value(value: Any) -> Any:
    # SQLAlchemy's SQLite DateTime stores naive UTC text, always with
    # microseconds (bot.store.columns); comparisons in SQL are on that text.
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def seed(engine: Engine, changes: int) -> None:
    """Bulk insert, bypassing the ORM: the point is the export, not the seeding."""
    batch: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        postgres = engine.dialect.name == "postgresql"

        def flush() -> None:
            if postgres:
                pg = cur  # psycopg: COPY is a method of the cursor
                for table, cols, rows in (
                    ("change", CHANGE_COLS, batch),
                    ("change_event", EVENT_COLS, events),
                ):
                    with pg.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
            else:
                for table, cols, rows in (
                    ("change", CHANGE_COLS, batch),
                    ("change_event", EVENT_COLS, events),
                ):
                    marks = ", ".join("?" for _ in cols)
                    cur.executemany(
                        f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})",  # noqa: S608
                        [tuple(_sqlite_value(v) for v in r) for r in rows],
                    )
            batch.clear()
            events.clear()

        for change, evs in _rows(changes):
            batch.append(change)
            events.extend(evs)
            if len(batch) >= 5000:
                flush()
        flush()
        settings = _settings_rows()
        if postgres:
            with cur.copy(f"COPY vm_setting_change ({', '.join(SETTING_COLS)}) FROM STDIN") as copy:
                for row in settings:
                    copy.write_row(row)
            for table in ("change", "change_event", "vm_setting_change"):
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                    f"(SELECT max(id) FROM {table}))"
                )
        else:
            marks = ", ".join("?" for _ in SETTING_COLS)
            cur.executemany(
                f"INSERT INTO vm_setting_change ({', '.join(SETTING_COLS)}) VALUES ({marks})",  # noqa: S608
                [tuple(_sqlite_value(v) for v in r) for r in settings],
            )
        raw.commit()
    finally:
        raw.close()
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            # A history of 100,000 changes was written long before anyone
            # exports it, and autovacuum has been over it since: VACUUM sets
            # the rows' hint bits and the visibility map now, so that the
            # first export (the new way, run first) does not pay for setting
            # them and the second (the old way) gets them for free
            # (https://www.postgresql.org/docs/current/routine-vacuuming.html,
            # https://wiki.postgresql.org/wiki/Hint_Bits).
            conn.execute(text("VACUUM ANALYZE"))


# --- the old way, as `audit export` did it before it streamed -------------


def old_rows(engine: Engine) -> Iterator[dict[str, Any]]:
    with session_scope(engine) as s:
        result = s.exec(
            select(ChangeEvent, Change)
            .where(ChangeEvent.change_id == Change.id)
            .order_by(col(ChangeEvent.change_id), col(ChangeEvent.seq))
        ).all()
        settings = s.exec(select(VMSettingChange).order_by(col(VMSettingChange.id))).all()
    for event, change in result:
        assert change.id is not None
        yield {
            "change": change_ref(change.id),
            "seq": event.seq,
            "at": event.at.isoformat(),
            "actor": event.actor,
            "actor_team": event.actor_team,
            "event": event.kind,
            "from_state": event.from_state,
            "to_state": event.to_state,
            "vm": change.vm_name,
            "host": change.host,
            "requester": change.requester,
            "requester_team": change.requester_team,
            "message": event.message,
            "details": event.details,
            "batch": batch_ref(change.batch_id) if change.batch_id is not None else None,
        }
    for row in settings:
        yield {
            "change": f"SET-{row.id:04d}",
            "seq": 1,
            "at": row.at.isoformat(),
            "actor": row.actor,
            "actor_team": row.actor_team,
            "event": "settings",
            "from_state": None,
            "to_state": None,
            "vm": row.vm_name,
            "host": row.host,
            "requester": row.actor,
            "requester_team": row.actor_team,
            "message": row.reason,
            "details": {"before": row.before, "after": row.after},
            "batch": None,
        }


def _peak_mb(usage: resource.struct_rusage) -> float:
    """This process's own peak RSS: VmHWM, the high-water mark of its
    address space (https://man7.org/linux/man-pages/man5/proc_pid_status.5.html).
    Not `ru_maxrss`: Linux carries it over from the address space an
    `execve` replaces, which for a child started by `subprocess` (vfork,
    then exec) is the parent's, so it reported the bench's own peak once
    that was higher: 104 and 147 MB here where the exports peaked at 77
    and 90 MB."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return usage.ru_maxrss / 1024


def child(way: str, url: str, fmt: str) -> None:
    """One export in this process; prints what it measured as JSON."""
    from bot.service.audit import audit_text

    engine = make_engine(url)
    backends: list[int] = []
    if engine.dialect.name == "postgresql":

        def backend_pid(dbapi_conn: Any, _record: Any) -> None:
            with dbapi_conn.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
                backends.append(cur.fetchone()[0])

        sqla_event.listen(engine, "connect", backend_pid)
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    if way == "new":
        chunks = audit_text(engine, fmt=fmt)
    else:
        chunks = (json.dumps(row, sort_keys=True) + "\n" for row in old_rows(engine))
    lines = 0
    with open(os.devnull, "w", encoding="utf-8") as out:
        for chunk in chunks:
            out.write(chunk)
            lines += chunk.count("\n")
    seconds = time.perf_counter() - start
    # Each backend was started for this export: its CPU time is the
    # export's share of the server (user + system, fields 14 and 15 of
    # /proc/PID/stat, https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html).
    server_cpu: float | None = 0.0 if backends else None
    for pid in backends:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            server_cpu = None
            break
        if server_cpu is not None:
            server_cpu += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    engine.dispose()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "events": lines,
                "seconds": seconds,
                "cpu_seconds": (usage.ru_utime + usage.ru_stime)
                - (before.ru_utime + before.ru_stime),
                "peak_mb": _peak_mb(usage),
                "ru_maxrss_mb": usage.ru_maxrss / 1024,
                "server_cpu_seconds": server_cpu,
            }
        )
    )


def measure(way: str, url: str, fmt: str = "jsonl") -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", way, "--url", url, "--format", fmt],
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- the pages people open all day, at 1k and at N changes -----------------


def page_times(sizes: dict[int, str], workdir: Path, runs: int = 9) -> dict[str, dict[int, float]]:
    """Each page on each database, the sizes interleaved call by call so a
    burst of load on this shared machine hits both alike; the best of
    `runs` (the least disturbed) in ms."""
    from bot.config import demo_settings
    from bot.context import build_context
    from bot.service import list_checkpoints, show_change
    from bot.service.deciding import Principal
    from bot.service.lookups import home

    who = Principal("U0000007", team="T0001")
    contexts = {
        n: build_context(
            dataclasses.replace(demo_settings({}, workdir / str(n)), database_url=url),
            env={},
            huey_kind="memory",
        )
        for n, url in sizes.items()
    }
    try:
        calls: dict[str, Callable[[Any, int], object]] = {
            "checkpoint list": lambda ctx, _n: list_checkpoints(ctx),
            "change show": lambda ctx, n: show_change(ctx, change_ref(n // 2)),
            "App Home": lambda ctx, _n: home(ctx, who),
        }
        best: dict[str, dict[int, float]] = {page: {} for page in calls}
        for page, call in calls.items():
            for n, ctx in contexts.items():
                call(ctx, n)  # warm: connection pool, caches
            for _ in range(runs):
                for n, ctx in contexts.items():
                    start = time.perf_counter()
                    call(ctx, n)
                    ms = (time.perf_counter() - start) * 1000
                    best[page][n] = min(best[page].get(n, ms), ms)
        return best
    finally:
        for ctx in contexts.values():
            ctx.close()


# --- databases ------------------------------------------------------------


class Databases:
    """Throwaway databases: SQLite files in a temp dir, PostgreSQL databases
    created and dropped through the admin URL."""

    def __init__(self, pg_url: str) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-audit-"))
        self.pg_url = pg_url
        self.pg_names: list[str] = []

    def new(self, backend: str, name: str) -> str:
        if backend == "sqlite":
            url = f"sqlite:///{self.tmp / name}.db"
        else:
            db = f"bench_audit_{os.getpid()}_{name}"
            admin = make_engine(self.pg_url)
            with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text(f'CREATE DATABASE "{db}"'))
            admin.dispose()
            self.pg_names.append(db)
            url = make_url(self.pg_url).set(database=db).render_as_string(hide_password=False)
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        return url

    def close(self) -> None:
        admin = make_engine(self.pg_url)
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for db in self.pg_names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()
        for path in self.tmp.glob("*"):
            path.unlink()
        self.tmp.rmdir()


def machine() -> str:
    model = "unknown CPU"
    with open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {model}"


def run_backend(dbs: Databases, backend: str, changes: int) -> bool:
    small_n = min(1000, changes)
    print(f"\n== {backend}: seeding {changes:,} changes x 6 events and {small_n:,} for scale")
    small, big = dbs.new(backend, "small"), dbs.new(backend, "big")
    for url, n in ((small, small_n), (big, changes)):
        engine = make_engine(url)
        start = time.perf_counter()
        seed(engine, n)
        engine.dispose()
        print(f"   seeded {n:,} changes in {time.perf_counter() - start:.1f} s")

    new, old = measure("new", big), measure("old", big)
    ok = True
    for label, m in (("new (streamed)", new), ("old (baseline)", old)):
        rate = m["events"] / m["seconds"]
        server = ""
        if m["server_cpu_seconds"] is not None:
            total = m["cpu_seconds"] + m["server_cpu_seconds"]
            server = (
                f"; {m['events'] / total:,.0f} counting the server's "
                f"{m['server_cpu_seconds']:.1f} CPU-s"
            )
        print(
            f"   audit export {label}: {m['events']:,.0f} lines in {m['seconds']:.1f} s = "
            f"{rate:,.0f} events/s ({m['events'] / m['cpu_seconds']:,.0f} per CPU-second of "
            f"the export{server}), peak RSS {m['peak_mb']:.0f} MB"
        )
    new_rate, old_rate = new["events"] / new["seconds"], old["events"] / old["seconds"]
    print(
        f"   new/old: {new_rate / old_rate:.2f}x the rate, "
        f"{new['peak_mb'] / old['peak_mb']:.2f}x the peak RSS"
    )
    meets = new_rate >= 100_000 and new["peak_mb"] < 200
    ok &= meets
    print(f"   targets (>= 100,000 events/s, < 200 MB): {'MET' if meets else 'NOT MET'}")

    with tempfile.TemporaryDirectory() as wd:
        times = page_times({small_n: small, changes: big}, Path(wd))
    for page, by_size in times.items():
        ms, big_ms = by_size[small_n], by_size[changes]
        ratio = big_ms / ms
        print(
            f"   {page:16} {small_n:>7,} changes {ms:7.1f} ms   {changes:>7,} changes "
            f"{big_ms:7.1f} ms   ratio {ratio:.2f}"
        )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=100_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument("--child", choices=["new", "old"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--format", default="jsonl", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url, args.format)
        return 0
    print(f"machine: {machine()}")
    dbs = Databases(args.pg_url)
    try:
        backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
        results = [run_backend(dbs, b, args.changes) for b in backends]
    finally:
        dbs.close()
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
