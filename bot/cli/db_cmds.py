"""`db backup` and `db downgrade`: the two database commands that need
care (a backup that is whole or absent, a downgrade that drops data only
when asked twice). `db upgrade` lives with the other admin commands."""

from __future__ import annotations

from pathlib import Path

import click

from bot.cli.runtime import Runtime, echo_json, pass_runtime

# The service is imported inside each command, never here: the group's
# --help loads this module and pays for Click and the command definitions
# only (bench/cli_start.py).

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
    from bot.service import backup_database

    report = backup_database(rt.settings, file, force=force)
    if as_json:
        echo_json(report.to_dict())
        return
    result = report.result
    what = f"schema {result.schema}" if result.schema else "the whole database"
    if result.changes is not None:
        what += f", {result.changes} changes, {result.events} events"
    click.echo(
        f"{report.database} → {result.file} ({result.method}, {result.bytes:,} bytes; {what})"
    )


@click.command("downgrade")
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Do not ask (for scripts): data is dropped.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def db_downgrade(rt: Runtime, revision: str, yes: bool, as_json: bool) -> None:
    """Roll the schema back to REVISION (0006, or `base` for empty), to run
    an older release. The columns and tables the undone migrations added are
    dropped with their data: back up first (db backup)."""
    from bot.service import downgrade_schema, plan_downgrade

    plan = plan_downgrade(rt.settings, revision)
    if not yes:
        click.echo(f"{plan.database}: schema {plan.before} → {revision} undoes", err=True)
        for rev, doc in plan.undone:
            click.echo(f"  {rev}  {doc}", err=True)
        click.confirm("What these added is dropped, with its data. Continue?", abort=True, err=True)
    done = downgrade_schema(rt.settings, plan)
    if as_json:
        echo_json(
            {
                "database": done.database,
                "from": done.before,
                "to": done.after,
                "undone": [rev for rev, _ in plan.undone],
            }
        )
        return
    click.echo(f"{done.database}: schema {done.before} → {done.after or 'empty'}")
