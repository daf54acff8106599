"""`db backup` and `db downgrade`: the two database commands that need
care (a backup that is whole or absent, a downgrade that drops data only
when asked twice). `db upgrade` lives with the other admin commands."""

from __future__ import annotations

from pathlib import Path

import click

from bot.cli.runtime import Runtime, echo_json, pass_runtime
from bot.service.errors import BadRequest, ServiceError, Unavailable
from bot.store import migrate
from bot.store.backup import BackupError, backup
from bot.store.db import make_engine

BACKUP_EPILOG = """\
SQLite is copied with SQLite's online backup API while the bot runs; the
copy is checked (PRAGMA integrity_check) and replaces FILE only when whole.
PostgreSQL is dumped with pg_dump --format=custom (it must be installed);
restore it with pg_restore (docs/upgrading.md).

Exit codes: 0 backed up, 1 the backup failed (pg_dump missing or failing,
a bad copy), 2 bad input (FILE exists without --force), 3 the database
could not be reached.
"""


@click.command("backup", epilog=BACKUP_EPILOG)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def db_backup(rt: Runtime, file: Path, force: bool, as_json: bool) -> None:
    """Back the whole database up to FILE, consistently, while the bot runs."""
    if file.exists() and not force:
        raise BadRequest(f"{file} exists: pass --force to replace it, or name a new file")
    if not file.parent.is_dir():
        raise BadRequest(f"{file.parent} is not a directory")
    settings = rt.settings
    try:
        result = backup(settings.database_url, file)
    except BackupError as exc:
        if exc.unavailable:
            raise Unavailable(str(exc)) from None
        raise ServiceError(str(exc)) from None
    if as_json:
        echo_json({"database": settings.database_label, **result.to_dict()})
        return
    what = f"schema {result.schema}" if result.schema else "the whole database"
    if result.changes is not None:
        what += f", {result.changes} changes, {result.events} events"
    click.echo(
        f"{settings.database_label} → {result.file} ({result.method}, "
        f"{result.bytes:,} bytes; {what})"
    )


@click.command("downgrade")
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Do not ask (for scripts): data is dropped.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def db_downgrade(rt: Runtime, revision: str, yes: bool, as_json: bool) -> None:
    """Roll the schema back to REVISION (e.g. 0006; `base` for empty), to run
    an older release. The columns and tables the undone migrations added are
    dropped with their data: back up first (db backup)."""
    known = [rev for rev, _ in migrate.revisions()]
    if revision != "base" and revision not in known:
        raise BadRequest(f"no schema revision '{revision}': use one of {', '.join(known)} or base")
    settings = rt.settings
    engine = make_engine(settings.database_url)
    try:
        before = migrate.current_revision(engine)
        if before is None:
            raise BadRequest(f"{settings.database_label} has no schema yet: nothing to roll back")
        target = -1 if revision == "base" else known.index(revision)
        current = known.index(before) if before in known else None
        if current is None:
            raise BadRequest(
                f"{settings.database_label} is at schema {before}, which this release "
                "does not know: downgrade with the release that wrote it"
            )
        if target >= current:
            raise BadRequest(
                f"{settings.database_label} is at schema {before}: {revision} is not older"
            )
        undone = migrate.revisions()[target + 1 : current + 1]
        if not yes:
            click.echo(f"{settings.database_label}: schema {before} → {revision} undoes", err=True)
            for rev, doc in reversed(undone):
                click.echo(f"  {rev}  {doc}", err=True)
            click.confirm(
                "What these added is dropped, with its data. Continue?", abort=True, err=True
            )
        migrate.downgrade(engine, revision)
        after = migrate.current_revision(engine)
    finally:
        engine.dispose()
    if as_json:
        echo_json(
            {
                "database": settings.database_label,
                "from": before,
                "to": after,
                "undone": [rev for rev, _ in reversed(undone)],
            }
        )
        return
    click.echo(f"{settings.database_label}: schema {before} → {after or 'empty'}")
