"""Databases an edited migration chain left without 0015's columns, a
schema that lacks what the code reads, and one a newer release wrote: as an
operator meets them, through the real CLI, on SQLite and PostgreSQL.

Two commits were deployed before the chain took its final shape:

- 53389d6: `0016_stale_homes` revised 0014 (0015 was on another branch). A
  database it took to 0016 never ran 0015; the releases after it took it
  on to 0018, and every change command failed ("no such column:
  change.run_at").
- 3d1b17c (and ca15dd6): 0015 added `change.run_at` and `batch.run_at`
  only; `batch_event.slack_ts` came later, so a database at 0015 then never
  got it, and the wave commands failed after each upgrade.

Each is rebuilt here as that commit built it (its migration's operations,
copied from `git show 53389d6:bot/store/migrations/versions/0016_stale_homes.py`
and `git show 3d1b17c:bot/store/migrations/versions/0015_run_at.py`), on a
record made through the CLI: a wave of two changes, rolled back to 0014 by
this release (rows are kept) before the old commit's migration runs.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import SQLModel

import bot.store.models  # noqa: F401 (registers the tables on the metadata)
from bot.service.outage import outage_message
from bot.store.db import make_engine
from bot.store.migrate import HEAD, current_revision, upgrade
from bot.store.outage import committed_writes, is_transient
from tests.cli_support import CliResult, invoke, one_line_error, run

INVENTORY = Path(__file__).parents[1] / "deploy" / "examples" / "demo-inventory.yaml"
# What 0015 adds, by table: what the old chains left out.
ADDED_BY_0015 = {"change.run_at", "batch.run_at", "batch_event.slack_ts"}


@dataclass
class Record:
    """A configured deployment (config file, DATABASE_URL) on one backend."""

    cwd: Path
    url: str

    def run(self, *args: str) -> CliResult:
        config = self.cwd / "bot.yaml"
        return invoke(self.cwd, "--config", str(config), *args, env={"DATABASE_URL": self.url})

    def script(self, *args: str) -> CliResult:
        """The installed console script, in a process of its own: its
        warnings reach stderr as a user sees them (in this process the
        test's log capture has them)."""
        config = self.cwd / "bot.yaml"
        done = run(self.cwd, "--config", str(config), *args, env={"DATABASE_URL": self.url})
        return CliResult(done.returncode, done.stdout, done.stderr)

    def engine(self) -> Engine:
        return make_engine(self.url)

    def columns(self) -> set[str]:
        engine = self.engine()
        try:
            insp = inspect(engine)
            return {
                f"{table}.{c['name']}"
                for table in ("change", "batch", "batch_event", "job")
                for c in insp.get_columns(table)
            }
        finally:
            engine.dispose()

    def execute(self, statement: str) -> None:
        """One statement in a transaction of its own (a hand's change)."""
        engine = self.engine()
        try:
            with engine.begin() as conn:
                conn.execute(text(statement))
        finally:
            engine.dispose()

    def revision(self) -> str | None:
        engine = self.engine()
        try:
            return current_revision(engine)
        finally:
            engine.dispose()


def _configured(cwd: Path, url: str) -> Record:
    cwd.mkdir(parents=True, exist_ok=True)
    (cwd / "bot.yaml").write_text(
        f"inventory: {INVENTORY}\nhyperv: {{backend: simulator}}\n", encoding="utf-8"
    )
    return Record(cwd, url)


def _seed(record: Record) -> None:
    """A wave of two changes (BAT-0001: CHG-0001 WEB01, CHG-0002 WEB02),
    made by this release, then its schema rolled back to 0014."""
    assert record.run("db", "upgrade").returncode == 0
    made = record.run("checkpoint", "create", "WEB01", "WEB02", "-r", "patch tuesday", "--yes")
    assert made.returncode == 0, made.stderr
    down = record.run("db", "downgrade", "0014", "--yes")
    assert down.returncode == 0, down.stderr


# --- a record at 0014, made once per backend, copied for each test -------------------------


@pytest.fixture(scope="module")
def sqlite_0014(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("seed")
    record = _configured(base, f"sqlite:///{base / 'bot.db'}")
    _seed(record)
    return base / "bot.db"


@pytest.fixture(scope="module")
def pg_0014(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    name = f"cbseed_{uuid.uuid4().hex[:10]}"
    admin = make_engine(pg_admin_url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    _seed(_configured(tmp_path_factory.mktemp("seed"), url))
    yield name
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def at_0014(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Record]:
    """A copy of the seeded record, at schema 0014, on each backend."""
    if request.param == "sqlite":
        seed: Path = request.getfixturevalue("sqlite_0014")
        target = tmp_path / "bot.db"
        with sqlite3.connect(seed) as src, sqlite3.connect(target) as dst:
            src.backup(dst)
        yield _configured(tmp_path, f"sqlite:///{target}")
        return
    admin_url: str = request.getfixturevalue("pg_admin_url")
    template: str = request.getfixturevalue("pg_0014")
    name = f"cbdrift_{uuid.uuid4().hex[:10]}"
    admin = make_engine(admin_url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield _configured(
        tmp_path, make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    )
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# --- what the old commits' migrations did ---------------------------------------------------


def _old_migration(record: Record, revision: str, steps: Callable[[Operations], None]) -> None:
    """Run an old commit's migration steps on the record and stamp it
    `revision`, as Alembic did then."""
    engine = record.engine()
    try:
        with engine.begin() as conn:
            opts = {"render_as_batch": conn.dialect.name == "sqlite"}
            steps(Operations(MigrationContext.configure(conn, opts=opts)))
            conn.execute(text("UPDATE alembic_version SET version_num = :rev"), {"rev": revision})
    finally:
        engine.dispose()


def _0016_of_53389d6(op: Operations) -> None:
    """53389d6's 0016_stale_homes.upgrade (down_revision = "0014")."""
    op.create_table(
        "stale_home",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("change_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=255), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["change_id"], ["change.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_stale_home_change_id", "stale_home", ["change_id"], unique=False)


def _0015_of_3d1b17c(op: Operations) -> None:
    """3d1b17c's 0015_run_at.upgrade (no batch_event.slack_ts yet)."""
    with op.batch_alter_table("change", schema=None) as batch_op:
        batch_op.add_column(sa.Column("run_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("batch", schema=None) as batch_op:
        batch_op.add_column(sa.Column("run_at", sa.DateTime(timezone=True), nullable=True))


@dataclass(frozen=True)
class History:
    name: str
    revision: str  # where the old commit's migration left the record
    steps: Callable[[Operations], None]
    # Then upgraded by a release after it (0017, 0018 as this release has them).
    upgraded_to: str | None
    lacks: frozenset[str]


HISTORIES = [
    History("53389d6 at 0016", "0016", _0016_of_53389d6, None, frozenset(ADDED_BY_0015)),
    History("53389d6, then 0018", "0016", _0016_of_53389d6, "0018", frozenset(ADDED_BY_0015)),
    History("3d1b17c at 0015", "0015", _0015_of_3d1b17c, None, frozenset({"batch_event.slack_ts"})),
    History(
        "3d1b17c, then 0018", "0015", _0015_of_3d1b17c, "0018", frozenset({"batch_event.slack_ts"})
    ),
]


@pytest.fixture(params=HISTORIES, ids=[h.name for h in HISTORIES])
def old_chain(request: pytest.FixtureRequest, at_0014: Record) -> tuple[Record, History]:
    history: History = request.param
    _old_migration(at_0014, history.revision, history.steps)
    if history.upgraded_to is not None:
        engine = at_0014.engine()
        try:
            upgrade(engine, history.upgraded_to)
        finally:
            engine.dispose()
    assert at_0014.columns() & ADDED_BY_0015 == ADDED_BY_0015 - history.lacks
    return at_0014, history


def _at(history: History) -> str:
    return history.upgraded_to or history.revision


# --- an old chain's database, before and after `db upgrade` ---------------------------------


def test_db_status_names_what_an_old_chain_left_out_and_that_db_upgrade_adds_it(
    old_chain: tuple[Record, History],
) -> None:
    record, history = old_chain
    status = record.script("db", "status")
    assert status.returncode == 1, status.stderr
    first, *pending = status.stdout.splitlines()
    assert f"schema {_at(history)}; this release needs {HEAD}." in first
    assert [line[:8] for line in pending[-3:]] == ["  0019  ", "  0020  ", "  0021  "]
    assert pending[-3].startswith("  0019  0015's columns (change.run_at, batch.run_at, ")
    warned = [line for line in status.stderr.splitlines() if "lacks" in line]
    assert len(warned) == 1, status.stderr
    for column in history.lacks:
        assert column in warned[0]
    assert warned[0].endswith(
        "'checkpoint-bot db upgrade' adds " + _them(history.lacks) + " (migration 0019)"
    )
    report = json.loads(record.run("db", "status", "--json").stdout)
    assert report["state"] == "behind" and set(report["missing"]) == history.lacks
    assert record.revision() == _at(history)  # status changed nothing


def _them(lacks: frozenset[str]) -> str:
    return "it" if len(lacks) == 1 else "them"


def test_every_command_says_to_upgrade_and_once_upgraded_works(
    old_chain: tuple[Record, History],
) -> None:
    record, history = old_chain
    commands = (("change", "list"), ("batch", "show", "BAT-0001"))
    for args in commands:
        result = record.run(*args)
        assert result.returncode == 2, result.stderr
        assert one_line_error(result).endswith(
            f"is at schema {_at(history)}, this release needs {HEAD}: "
            "run 'checkpoint-bot db upgrade'"
        )
    assert record.run("db", "upgrade").returncode == 0
    for args in commands:
        result = record.run(*args)
        assert result.returncode == 0, result.stderr


def test_db_upgrade_adds_the_columns_as_the_models_have_them_and_keeps_the_rows(
    old_chain: tuple[Record, History],
) -> None:
    record, history = old_chain
    up = record.run("db", "upgrade")
    assert up.returncode == 0, up.stderr
    assert up.stdout.strip().endswith(f"schema {_at(history)} → {HEAD}")
    assert record.columns() >= ADDED_BY_0015
    engine = record.engine()
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    finally:
        engine.dispose()
    assert [d for d in diff if "run_at" in repr(d) or "slack_ts" in repr(d)] == []
    status = record.run("db", "status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    assert json.loads(status.stdout)["missing"] == []
    listed = record.run("change", "list")
    assert listed.returncode == 0, listed.stderr
    assert "CHG-0001" in listed.stdout and "CHG-0002" in listed.stdout
    shown = record.run("batch", "show", "BAT-0001")
    assert shown.returncode == 0, shown.stderr
    assert "BAT-0001: active — 2 of 2 done" in shown.stdout
    # A wave's command that writes its milestones (batch_event.slack_ts).
    rolled = record.run("batch", "rollback", "BAT-0001", "--yes")
    assert rolled.returncode == 0, rolled.stderr
    again = record.run("db", "upgrade")
    assert again.returncode == 0 and again.stdout.strip().endswith(f"already at schema {HEAD}")


def test_db_downgrade_drops_only_the_columns_that_are_there(
    old_chain: tuple[Record, History],
) -> None:
    record, history = old_chain
    down = record.run("db", "downgrade", "0014", "--yes")
    assert down.returncode == 0, down.stderr
    assert down.stdout.strip().endswith(f"schema {_at(history)} → 0014")
    assert record.columns() & ADDED_BY_0015 == set()
    engine = record.engine()
    try:
        assert "stale_home" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()
    up = record.run("db", "upgrade")
    assert up.returncode == 0 and up.stdout.strip().endswith(f"schema 0014 → {HEAD}")
    listed = record.run("change", "list")
    assert listed.returncode == 0 and "CHG-0002" in listed.stdout


# --- a schema that lacks what the code reads -------------------------------------------------


@pytest.fixture
def at_head(at_0014: Record) -> Record:
    assert at_0014.run("db", "upgrade").returncode == 0
    return at_0014


@pytest.mark.parametrize(
    ("table", "column", "command"),
    [
        ("change", "run_at", ("change", "list")),
        ("batch_event", "slack_ts", ("batch", "show", "BAT-0001")),
    ],
)
def test_a_missing_column_is_one_line_exit_2_not_an_outage_and_db_upgrade_adds_it(
    at_head: Record, table: str, column: str, command: tuple[str, ...]
) -> None:
    record = at_head
    engine = record.engine()
    try:
        with engine.begin() as conn:
            conn.execute(text(f'ALTER TABLE "{table}" DROP COLUMN {column}'))
        sqlite = engine.dialect.name == "sqlite"
    finally:
        engine.dispose()
    failed = record.run(*command)
    assert failed.returncode == 2, failed.stderr
    said = (
        f"no such column: {table}.{column}" if sqlite else f"column {table}.{column} does not exist"
    )
    assert one_line_error(failed) == (
        f"checkpoint-bot: error: the database's schema does not match this release ({said}): "
        "run 'checkpoint-bot db status'"
    )
    assert "SELECT" not in failed.stderr and "unavailable" not in failed.stderr
    status = record.script("db", "status")
    assert status.returncode == 1
    assert (
        f"lacks the column {table}.{column}, which schema {HEAD} has: "
        "'checkpoint-bot db upgrade' adds it (migration 0019)"
    ) in status.stderr
    assert f"schema {HEAD}, this release's, but it lacks {table}.{column}" in status.stdout
    assert json.loads(record.run("db", "status", "--json").stdout)["state"] == "incomplete"
    up = record.run("db", "upgrade")
    assert up.returncode == 0, up.stderr
    assert f"{table}.{column}" in record.columns()
    assert record.run(*command).returncode == 0
    assert record.run("db", "status").returncode == 0


def test_a_database_past_0019_that_lost_one_of_its_columns_gets_it_from_db_upgrade(
    at_head: Record,
) -> None:
    """Migration 0019 ran on it already (a database at 0019 when 0020 came):
    `db upgrade` runs 0020, then 0019's repair, as it does at the head."""
    record = at_head
    down = record.run("db", "downgrade", "0019", "--yes")
    assert down.returncode == 0, down.stderr
    record.execute('ALTER TABLE "change" DROP COLUMN run_at')
    status = record.script("db", "status")
    assert status.returncode == 1
    assert (
        "lacks the column change.run_at, which schema 0019 has: "
        "'checkpoint-bot db upgrade' adds it (migration 0019)"
    ) in status.stderr
    up = record.run("db", "upgrade")
    assert up.returncode == 0, up.stderr
    assert up.stdout.strip().endswith(f"schema 0019 → {HEAD}")
    assert {"change.run_at", "job.host_call"} <= record.columns()
    assert record.run("db", "status").returncode == 0
    assert record.run("change", "list").returncode == 0


def test_a_missing_table_is_named_and_no_migration_is_promised(at_head: Record) -> None:
    at_head.execute("DROP TABLE approval_dm")
    status = at_head.script("db", "status", "--json")
    assert status.returncode == 1
    assert json.loads(status.stdout)["missing"] == ["approval_dm"]
    assert (
        f"lacks the table approval_dm, which schema {HEAD} has: no migration of this release "
        "adds it back: restore a backup (docs/upgrading.md)"
    ) in status.stderr


def test_a_missing_column_is_not_transient(tmp_path: Path) -> None:
    from bot.service.outage import schema_mismatch_message

    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (a INTEGER)"))
        with pytest.raises(sa.exc.OperationalError) as caught, engine.connect() as conn:
            conn.execute(text("SELECT t.b FROM t"))
    finally:
        engine.dispose()
    assert not is_transient(caught.value)
    assert outage_message(caught.value, committed_writes()) is None
    assert schema_mismatch_message(caught.value) == (
        "the database's schema does not match this release (no such column: t.b): "
        "run 'checkpoint-bot db status'"
    )


# --- a database a newer release wrote --------------------------------------------------------


def test_a_database_a_newer_release_wrote_is_left_alone_by_every_command(at_head: Record) -> None:
    record = at_head
    engine = record.engine()
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    finally:
        engine.dispose()
    before = record.columns()
    said = (
        f"is at schema 0099, which this release does not know (its newest is {HEAD}): a newer "
        "release wrote it; run that release, or roll the schema back with it (docs/upgrading.md)"
    )
    for args in (("change", "list"), ("batch", "show", "BAT-0001"), ("db", "upgrade")):
        result = record.run(*args)
        assert result.returncode == 2, result.stderr
        assert one_line_error(result).endswith(said)
    status = record.run("db", "status")
    assert status.returncode == 1 and "a newer release wrote it" in status.stdout
    assert record.revision() == "0099"
    assert record.columns() == before
