"""Backups, restores and schema rollbacks, as an operator runs them: the
installed CLI against SQLite and the local PostgreSQL, and every migration
up and down on both backends."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine, make_url

from bot.store.db import make_engine
from bot.store.migrate import current_revision, downgrade, head_revision, revisions, upgrade
from tests.cli_support import CliResult, invoke, one_line_error, run
from tests.migration_support import BACKENDS, engine_at

# --- every migration, up and down ---------------------------------------


def schema(engine: Engine) -> dict[str, Any]:
    """Tables with their columns, indexes, unique constraints and foreign
    keys: what a migration adds and its downgrade must take away."""
    insp = inspect(engine)
    out: dict[str, Any] = {}
    for table in sorted(insp.get_table_names()):
        if table == "alembic_version":
            continue
        out[table] = {
            "columns": sorted(
                (c["name"], str(c["type"]), bool(c["nullable"])) for c in insp.get_columns(table)
            ),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in insp.get_indexes(table)
            ),
            "unique": sorted(
                (u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(table)
            ),
            "fks": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"])
                for f in insp.get_foreign_keys(table)
            ),
        }
    return out


@pytest.fixture(params=BACKENDS)
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a database with no schema at all."""
    with engine_at(request, tmp_path, None) as engine:
        yield engine


def test_every_migration_goes_down_to_exactly_the_schema_before_it(
    empty_engine: Engine,
) -> None:
    revs = [rev for rev, _ in revisions()]
    assert revs[-1] == head_revision()
    built: dict[str, dict[str, Any]] = {"base": schema(empty_engine)}
    assert built["base"] == {}
    for rev in revs:
        upgrade(empty_engine, rev)
        assert current_revision(empty_engine) == rev
        built[rev] = schema(empty_engine)
    for rev in [*reversed(revs[:-1]), "base"]:
        downgrade(empty_engine, rev)
        assert current_revision(empty_engine) == (None if rev == "base" else rev)
        assert schema(empty_engine) == built[rev], f"downgrade to {rev} left a different schema"
    upgrade(empty_engine)
    assert schema(empty_engine) == built[revs[-1]]


def test_data_survives_a_round_trip_through_a_downgrade(empty_engine: Engine) -> None:
    """What the older schema had is kept: rows are not dropped, only the
    newer columns are, even where other rows point at the rebuilt table
    (SQLite rebuilds `change` to drop a column; change_event refers to it)."""
    upgrade(empty_engine)
    with empty_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO change (action, vm_id, vm_name, host, checkpoint_type, reason, "
                "requester, source, state, decision, ttl_seconds, created_at, updated_at, "
                "version, requester_team) VALUES ('checkpoint', 'v1', 'WEB01', 'HV01', "
                "'production', 'keep me', 'U1', 'slack', 'active', '{}', 60, "
                "'2026-01-01 00:00:00', '2026-01-01 00:00:00', 1, 'T1')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO change_event (change_id, seq, at, actor, kind, message, details) "
                "SELECT id, 1, created_at, 'U1', 'requested', 'keep me too', '{}' FROM change"
            )
        )
    downgrade(empty_engine, "0006")
    upgrade(empty_engine)
    with empty_engine.connect() as conn:
        row = conn.execute(text("SELECT reason, requester_team FROM change")).one()
        event = conn.execute(text("SELECT message FROM change_event")).scalar_one()
    # The team came with 0007: gone; the rest, and the events that point at
    # the rebuilt table, kept.
    assert (tuple(row), event) == (("keep me", None), "keep me too")


# --- db backup and the restore drill ------------------------------------


def _changes(cwd: Path, env: dict[str, str] | None = None) -> list[str]:
    """Changes made through the real service: one created, one refused."""
    made = invoke(cwd, "checkpoint", "create", "APP01", "-r", "deploy 4.2", env=env)
    assert made.returncode == 0, made.stderr
    refused = invoke(cwd, "checkpoint", "create", "CORP-DC01", "-r", "patch", env=env)
    assert refused.returncode == 1, refused.stderr
    return ["CHG-1", "CHG-2"]


def _seen(cwd: Path, refs: list[str], env: dict[str, str] | None = None) -> list[str]:
    outputs = []
    for ref in refs:
        for args in (["change", "show", ref], ["change", "show", ref, "--json"]):
            shown = invoke(cwd, *args, env=env)
            assert shown.returncode == 0, shown.stderr
            outputs.append(shown.stdout)
    audit = invoke(cwd, "audit", "export", env=env)
    assert audit.returncode == 0 and audit.stdout
    outputs.append(audit.stdout)
    return outputs


def test_restore_drill_on_sqlite(tmp_path: Path) -> None:
    refs = _changes(tmp_path)
    before = _seen(tmp_path, refs)
    assert _seen(tmp_path, refs) == before  # nothing moves on its own
    backup = tmp_path / "backups" / "bot.db"
    backup.parent.mkdir()
    done = invoke(tmp_path, "db", "backup", str(backup), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["method"] == "sqlite-backup-api" and report["schema"] == head_revision()
    assert (report["changes"], report["file"]) == (2, str(backup))
    assert report["bytes"] == backup.stat().st_size
    assert not list(backup.parent.glob("*.partial"))

    shutil.rmtree(tmp_path / "var")  # the disaster: state, WAL and queue gone
    (tmp_path / "var").mkdir()
    shutil.copy(backup, tmp_path / "var" / "checkpoint-bot.db")  # docs/upgrading.md

    assert _seen(tmp_path, refs) == before


def test_restore_drill_on_postgresql(tmp_path: Path, pg_engine: Engine) -> None:
    url = pg_engine.url.render_as_string(hide_password=False)
    env = {"DATABASE_URL": url}
    refs = _changes(tmp_path, env)
    before = _seen(tmp_path, refs, env)
    backup = tmp_path / "bot.dump"
    done = invoke(tmp_path, "db", "backup", str(backup), "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["method"] == "pg_dump"
    assert backup.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format

    with pg_engine.begin() as conn:  # the disaster: every table gone
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    restored = subprocess.run(
        ["pg_restore", "--no-owner", f"--dbname={libpq}", str(backup)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert restored.returncode == 0, restored.stderr

    assert _seen(tmp_path, refs, env) == before


def test_backup_refuses_to_overwrite_and_says_how(tmp_path: Path) -> None:
    _changes(tmp_path)
    target = tmp_path / "b.db"
    target.write_text("precious", encoding="utf-8")
    refused = invoke(tmp_path, "db", "backup", str(target))
    assert refused.returncode == 2
    assert "exists: pass --force" in one_line_error(refused)
    assert target.read_text(encoding="utf-8") == "precious"
    forced = invoke(tmp_path, "db", "backup", str(target), "--force")
    assert forced.returncode == 0, forced.stderr
    assert "sqlite-backup-api" in forced.stdout and "2 changes" in forced.stdout
    assert target.read_bytes().startswith(b"SQLite format 3\x00")


def test_backup_never_replaces_a_device_a_pipe_a_link_or_a_directory(tmp_path: Path) -> None:
    """Seen: `db backup --force /dev/null`, run as root, renamed the backup
    over /dev/null: a regular 0600 file where every process writes. --force
    replaces a backup file; anything else is refused, whatever the flag (a
    directory is refused by the argument's own check)."""
    _changes(tmp_path)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere.db")
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(str(tmp_path / "sock"))
    targets = [
        (fifo, "a named pipe (FIFO)"),
        (link, "a symbolic link"),
        (tmp_path / "sock", "a socket"),
    ]
    if os.geteuid() == 0:
        # A null device of the test's own (never the machine's /dev/null,
        # which the code before this fix replaced).
        os.mknod(tmp_path / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        targets.append((tmp_path / "null", "a character device"))
    for target, kind in targets:
        before = os.lstat(target)
        refused = invoke(tmp_path, "db", "backup", str(target), "--force")
        assert refused.returncode == 2, (target, refused.stderr)
        assert f"{target} is {kind}: db backup writes a regular file" in one_line_error(refused)
        after = os.lstat(target)
        assert (after.st_mode, after.st_ino, after.st_rdev) == (
            before.st_mode,
            before.st_ino,
            before.st_rdev,
        )
    assert not (tmp_path / "elsewhere.db").exists()
    listening.close()


def test_backup_into_a_missing_or_non_directory_says_which(tmp_path: Path) -> None:
    missing = invoke(tmp_path, "db", "backup", "backups/b.db")
    assert missing.returncode == 2
    assert one_line_error(missing) == (
        "checkpoint-bot: error: backups does not exist: create it first, or name a file elsewhere"
    )
    (tmp_path / "file").write_text("", encoding="utf-8")
    not_dir = invoke(tmp_path, "db", "backup", "file/b.db")
    assert not_dir.returncode == 2
    assert one_line_error(not_dir) == "checkpoint-bot: error: file is not a directory"
    assert not (tmp_path / "backups").exists()


def test_backup_to_a_file_that_cannot_be_written_names_the_file(tmp_path: Path) -> None:
    """procfs takes no new file, not even from root (proc(5)): the error is
    the destination's, not the live database's (it said "cannot back up
    var/checkpoint-bot.db" until 2026-12-05)."""
    _changes(tmp_path)
    refused = invoke(tmp_path, "db", "backup", "/proc/checkpoint-bot-backup.db")
    assert refused.returncode == 1
    assert one_line_error(refused) == (
        "checkpoint-bot: error: cannot write /proc/checkpoint-bot-backup.db: /proc takes no "
        "new file (No such file or directory)"
    )


def test_backup_follows_no_link_left_beside_it_and_is_its_owners_alone(tmp_path: Path) -> None:
    """Seen: the copy was written to a fixed FILE.partial, opened as it was
    found, so a symlink another user left under that name in a shared
    directory (/tmp) redirected the copy of the whole record; and the backup
    was created 0644 under a common umask."""
    _changes(tmp_path)
    shared = tmp_path / "shared"
    shared.mkdir()
    victim = tmp_path / "victim.conf"
    victim.write_text("not a backup", encoding="utf-8")
    (shared / "b.db.partial").symlink_to(victim)
    old = os.umask(0o022)
    try:
        done = invoke(tmp_path, "db", "backup", str(shared / "b.db"))
    finally:
        os.umask(old)
    assert done.returncode == 0, done.stderr
    assert victim.read_text(encoding="utf-8") == "not a backup"
    assert (shared / "b.db").read_bytes().startswith(b"SQLite format 3\x00")
    assert stat.S_IMODE((shared / "b.db").stat().st_mode) == 0o600
    assert sorted(p.name for p in shared.iterdir()) == ["b.db", "b.db.partial"]


def test_backup_of_a_missing_database_is_unavailable(tmp_path: Path) -> None:
    config = tmp_path / "bot.yaml"
    inventory = Path(__file__).parents[1] / "deploy" / "examples" / "demo-inventory.yaml"
    config.write_text(
        f"inventory: {inventory}\ndatabase_url: sqlite:///{tmp_path / 'none.db'}\n"
        "hyperv: {backend: simulator}\n",
        encoding="utf-8",
    )
    result = invoke(tmp_path, "--config", str(config), "db", "backup", str(tmp_path / "b.db"))
    assert result.returncode == 3
    assert "no SQLite database at" in one_line_error(result)
    assert not (tmp_path / "b.db").exists() and not (tmp_path / "none.db").exists()


def test_backup_without_pg_dump_points_at_the_procedure(tmp_path: Path, pg_engine: Engine) -> None:
    # A process of its own: `db backup` finds pg_dump on the process's PATH
    # (shutil.which reads os.environ, not the CLI's Runtime), so only a
    # process started with another PATH lacks it.
    url = pg_engine.url.render_as_string(hide_password=False)
    env = {"DATABASE_URL": url, "PATH": str(tmp_path / "empty-bin")}
    result = run(tmp_path, "db", "backup", str(tmp_path / "b.dump"), env=env)
    assert result.returncode == 1
    assert "pg_dump is not installed" in one_line_error(result)
    assert "docs/upgrading.md" in result.stderr


# --- db downgrade from the CLI ------------------------------------------


def test_downgrade_asks_names_what_it_undoes_and_goes_back_up(tmp_path: Path) -> None:
    _changes(tmp_path)
    head = head_revision()
    assert head is not None
    asked = invoke(tmp_path, "db", "downgrade", "0006", input="n\n")
    assert asked.returncode == 1, asked.stderr
    assert asked.stderr.splitlines()[-1] == "checkpoint-bot: error: not confirmed: nothing was done"
    assert "0007  a principal is (workspace, user)" in asked.stderr
    assert "dropped, with its data" in asked.stderr
    down = invoke(tmp_path, "db", "downgrade", "0006", "--yes", "--json")
    assert down.returncode == 0, down.stderr
    report = json.loads(down.stdout)
    assert (report["from"], report["to"]) == (head, "0006")
    assert report["undone"][0] == head and report["undone"][-1] == "0007"
    up = invoke(tmp_path, "db", "upgrade")
    assert up.returncode == 0 and f"0006 → {head}" in up.stdout
    shown = invoke(tmp_path, "change", "show", "CHG-1")
    assert shown.returncode == 0 and "APP01" in shown.stdout


@pytest.mark.parametrize(
    ("revision", "expected"),
    [
        ("0099", "no schema revision '0099': use one of 0001"),
        ("0010x", "no schema revision"),
    ],
)
def test_downgrade_to_an_unknown_revision_is_bad_input(
    tmp_path: Path, revision: str, expected: str
) -> None:
    result = invoke(tmp_path, "db", "downgrade", revision, "--yes")
    assert result.returncode == 2
    assert expected in one_line_error(result)


def test_downgrade_to_the_current_revision_is_refused(tmp_path: Path) -> None:
    _changes(tmp_path)
    result = invoke(tmp_path, "db", "downgrade", str(head_revision()), "--yes")
    assert result.returncode == 2
    assert "is not older" in one_line_error(result)


def test_downgrade_to_a_newer_revision_names_the_older_ones(tmp_path: Path) -> None:
    _changes(tmp_path)
    assert invoke(tmp_path, "db", "downgrade", "0006", "--yes").returncode == 0
    result = invoke(tmp_path, "db", "downgrade", "0007", "--yes")
    assert result.returncode == 2
    # docs/upgrading.md promised the list; until 2026-12-05 only an unknown
    # revision had it.
    assert one_line_error(result).endswith(
        "is at schema 0006: 0007 is not older; use one of 0001, 0002, 0003, 0004, 0005 or base"
    )
    assert invoke(tmp_path, "db", "downgrade", "0001", "--yes").returncode == 0
    oldest = invoke(tmp_path, "db", "downgrade", "0001", "--yes")
    assert one_line_error(oldest).endswith("is at schema 0001: 0001 is not older; use base")


# --- db status -----------------------------------------------------------


def test_status_says_where_the_schema_stands_and_changes_nothing(tmp_path: Path) -> None:
    """A configured database (which, unlike demo mode, never migrates by
    itself): empty, behind after a downgrade, current, and written by a
    release newer than this one."""
    inventory = Path(__file__).parents[1] / "deploy" / "examples" / "demo-inventory.yaml"
    db_file = tmp_path / "bot.db"
    config = tmp_path / "bot.yaml"
    config.write_text(
        f"inventory: {inventory}\ndatabase_url: sqlite:///{db_file}\n"
        "hyperv: {backend: simulator}\n",
        "utf-8",
    )
    head = head_revision()
    known = [rev for rev, _ in revisions()]

    def status(*extra: str) -> CliResult:
        return invoke(tmp_path, "--config", str(config), "db", "status", *extra)

    empty = status("--json")
    assert empty.returncode == 1, empty.stderr
    report = json.loads(empty.stdout)
    assert (report["state"], report["current"], report["needed"]) == ("empty", None, head)
    assert [p["revision"] for p in report["pending"]] == known
    engine = make_engine(f"sqlite:///{db_file}")
    try:
        assert current_revision(engine) is None  # status migrated nothing
        upgrade(engine, "0006")
        behind = status()
        assert behind.returncode == 1
        first = behind.stdout.splitlines()[0]
        said = f"schema 0006; this release needs {head}. 'checkpoint-bot db upgrade' applies"
        assert said in first
        assert "\n  0007  a principal is (workspace, user)" in behind.stdout
        assert current_revision(engine) == "0006"
        upgrade(engine)
        current = status()
        assert current.returncode == 0
        assert current.stdout.strip().endswith(f"schema {head}, this release's: up to date")
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        newer = status()
        assert newer.returncode == 1
        assert f"schema 9999, which this release does not know (its newest is {head})" in (
            newer.stdout
        )
    finally:
        engine.dispose()


def test_status_of_a_database_that_does_not_answer_is_exit_3(
    tmp_path: Path, pg_engine: Engine
) -> None:
    url = make_url(pg_engine.url.render_as_string(hide_password=False)).set(port=1)
    env = {"DATABASE_URL": url.render_as_string(hide_password=False)}
    result = invoke(tmp_path, "db", "status", env=env)
    assert result.returncode == 3
    assert "the database does not answer" in one_line_error(result)


def test_the_records_directory_the_bot_makes_is_its_owners_alone(tmp_path: Path) -> None:
    """Outside the shipped units (UMask=0077), a umask of 022 left the
    record (var/checkpoint-bot.db, var/queue.db) readable by every local
    user. The directory the bot makes for them is 0700; one that exists is
    left as its owner set it."""
    old = os.umask(0o022)
    try:
        made = invoke(tmp_path, "change", "list")
    finally:
        os.umask(old)
    assert made.returncode == 0, made.stderr
    var = tmp_path / "var"
    assert (var / "checkpoint-bot.db").exists()
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
    kept = tmp_path / "kept"
    (kept / "var").mkdir(parents=True)
    os.chmod(kept / "var", 0o750)  # noqa: S103 (an operator's own choice, kept)
    assert invoke(kept, "change", "list").returncode == 0
    assert stat.S_IMODE((kept / "var").stat().st_mode) == 0o750
