"""Operator commands: database, audit, policy, worker."""

from __future__ import annotations

import contextlib
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from bot.cli.db_cmds import db_backup, db_downgrade
from bot.cli.observe_opts import observe_options, readiness, setup_logging, start_health
from bot.cli.runtime import Runtime, echo_json, pass_runtime
from bot.domain import ACTOR_FORMS, APPROVAL_ACTIONS, KIND_WORDS

# The service, the context and the libraries are imported inside each
# command, never here: the group's --help loads this module and pays for
# Click and the command definitions only (bench/cli_start.py).


@click.group("db")
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def db_upgrade(rt: Runtime, as_json: bool) -> None:
    """Migrate the database to the newest schema (safe to run again).

    Exit 2 when the database URL does not parse (nothing was tried), 3 when
    the database does not answer (nothing was changed: try again)."""
    from bot.service import upgrade_schema

    done = upgrade_schema(rt.settings)
    if as_json:
        echo_json(
            {
                "database": done.database,
                "before": done.before,
                "after": done.after,
                "changed": done.changed,
            }
        )
    elif not done.changed:
        click.echo(f"{done.database}: already at schema {done.after}")
    else:
        click.echo(f"{done.database}: schema {done.before or 'empty'} → {done.after}")


@db.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def db_status(rt: Runtime, as_json: bool) -> None:
    """Where the database's schema stands against this release's, and what
    `db upgrade` would apply. Changes nothing.

    Exit 0 when the database is at this release's schema, 1 when it is not
    (older, empty, written by a newer release, or lacking a table or column
    this release's schema holds), 3 when the database does not answer."""
    from bot.service import SchemaState, schema_status

    status = schema_status(rt.settings)
    state = status.state
    if as_json:
        echo_json(status.to_dict())
    elif state is SchemaState.CURRENT:
        click.echo(f"{status.database}: schema {status.current}, this release's: up to date")
    elif state is SchemaState.INCOMPLETE:
        # At this release's revision, yet lacking what it holds (the warning
        # above names it, and whether `db upgrade` adds it).
        click.echo(
            f"{status.database}: schema {status.current}, this release's, but it lacks "
            f"{', '.join(status.missing)}: see the warning above (docs/upgrading.md)"
        )
    elif state is SchemaState.UNKNOWN:
        click.echo(
            f"{status.database}: schema {status.current}, which this release does not know "
            f"(its newest is {status.needed}): a newer release wrote it; run that release, "
            "or roll the schema back with it (docs/upgrading.md)"
        )
    else:
        was = "no schema yet" if state is SchemaState.EMPTY else f"schema {status.current}"
        if status.missing_file is not None:
            was = "no record there (the file does not exist yet)"
        count = len(status.pending)
        click.echo(
            f"{status.database}: {was}; this release needs {status.needed}. "
            f"'checkpoint-bot db upgrade' applies {count} migration{'' if count == 1 else 's'} "
            "(back up first: 'checkpoint-bot db backup FILE'):"
        )
        for rev, doc in status.pending:
            click.echo(f"  {rev}  {doc}")
        if state is SchemaState.EMPTY and status.from_cwd is not None:
            # Seen: run from another directory, it found (and made) an empty
            # record there; upgrading it would split the deployment's record.
            click.echo(
                f"If this deployment's record is elsewhere, run from its directory or set "
                f"database_url (or workdir) in {rt.settings.config_path}: without them the "
                f"record is var/checkpoint-bot.db under the directory the command runs in "
                f"({status.from_cwd})."
            )
    if state is not SchemaState.CURRENT:
        raise SystemExit(1)


@click.group("audit")
def audit() -> None:
    """The change record, exported."""


@audit.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    default=None,
    help="Output format: jsonl, or csv when -o names a .csv file and --format is not "
    "given. CSV: a cell that begins with = + - @, a tab or a CR gets a leading ' (a "
    "spreadsheet shows it as text, never runs it as a formula).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to FILE instead of stdout (complete or not at all). FILE is a regular "
    "file, or a symlink to one (its target is written) that is yours or root's and that "
    "the kernel's fs.protected_symlinks would follow. A replaced file keeps its "
    "permission bits; a new one is 0600 (less the umask).",
)
@click.option("--since", help="From this time on: ISO 8601 (UTC unless an offset) or 7d, 24h.")
@click.option("--until", help="Before this time (exclusive); same forms as --since.")
@click.option("--vm", help="Only this VM (its name as recorded, any case, or its VM id).")
@click.option(
    "--change", "change_ref", help="Only this change (CHG-0042), or settings change (SET-0001)."
)
@click.option(
    "--actor",
    help=f"Only what this actor did, or what the policy decided on their request: {ACTOR_FORMS}.",
)
@pass_runtime
def audit_export(
    rt: Runtime,
    fmt: str | None,
    output: Path | None,
    since: str | None,
    until: str | None,
    vm: str | None,
    change_ref: str | None,
    actor: str | None,
) -> None:
    """Every event of every change, then every settings change: who did
    what, when, and why. Rows are streamed, never held."""
    from bot.cli.output_file import export_target, write_export
    from bot.service import audit_text, check_filter, nothing_matched, parse_filter
    from bot.service.audit import Tally

    # Seen: `-o report.csv` wrote JSON lines into a file named .csv, silently.
    fmt = fmt or format_for(output)
    flt = parse_filter(
        now=datetime.now(UTC), since=since, until=until, vm=vm, change=change_ref, actor=actor
    )
    # Before the database is read: a place that cannot be written is bad input.
    target = None if output is None else export_target(output)
    check_filter(rt.ctx.engine, flt)
    tally = Tally()
    chunks = audit_text(rt.ctx.engine, flt, fmt, tally=tally)
    if target is None:
        # One buffered write per chunk of rows, no flush per chunk (click.echo flushes).
        out = sys.stdout
        for chunk in chunks:
            out.write(chunk)
        out.flush()
    else:
        write_export(target, chunks)
        shown = output if target.path == output else f"{target.shown} (through {output})"
        events = f"{tally.rows} event{'' if tally.rows == 1 else 's'}"
        click.echo(f"wrote {shown} ({fmt}, {events})", err=True)
    if tally.rows == 0:
        click.echo(nothing_matched(flt), err=True)


def format_for(output: Path | None) -> str:
    """The export's format when --format is not given: CSV for a file whose
    name ends in .csv (any case), else JSON lines."""
    return "csv" if output is not None and output.suffix.lower() == ".csv" else "jsonl"


@click.group("policy")
def policy() -> None:
    """The guardrails."""


def _vm_and_action(words: tuple[str, ...], option: str | None) -> tuple[str, str]:
    """`VM`, `VM ACTION` (Slack's `/checkpoint policy SQL01 rollback`) or
    `ACTION VM` (as the help reads), and `--action`: the VM and the action,
    create unless one is named. Names the mistake otherwise."""
    example = "e.g. checkpoint-bot policy explain SQL01 rollback"
    actions = [w for w in words if w.lower() in APPROVAL_ACTIONS]
    vms = [w for w in words if w.lower() not in APPROVAL_ACTIONS]
    if not words:
        raise click.UsageError(f"name the VM (and the action, if not create): {example}")
    if len(vms) != 1 or len(actions) > 1:
        raise click.UsageError(
            f"name one VM and at most one action ({', '.join(APPROVAL_ACTIONS)}), "
            f"got {' '.join(words)}: {example}"
        )
    named = actions[0].lower() if actions else None
    if named and option and named != option:
        raise click.UsageError(f"two actions: {named} and --action {option}: name one")
    return vms[0], named or option or "create"


@policy.command("explain")
@click.argument("words", nargs=-1, metavar="VM [ACTION]")
@click.option(
    "--action",
    type=click.Choice(APPROVAL_ACTIONS),
    help="The action asked about (or name it after the VM). Default: create.",
)
@click.option(
    "--type",
    "ctype",
    type=click.Choice(KIND_WORDS, case_sensitive=False),
    help="The checkpoint type asked for (create).",
)
@click.option("--user", help="Who asks: a Slack user id (default: you, as cli:NAME).")
@click.option("--group", "groups", multiple=True, help="A Slack user group the user is in.")
@click.option("--channel", help="The Slack channel id the request comes from.")
@click.option(
    "--at",
    "at_text",
    metavar="TIME",
    help='Evaluate at this time, read as `checkpoint create --at` reads it: "2026-12-10 22:00" '
    "in the configured defaults.timezone, or with a zone or offset after it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def policy_explain(
    rt: Runtime,
    words: tuple[str, ...],
    action: str | None,
    ctype: str | None,
    user: str | None,
    groups: tuple[str, ...],
    channel: str | None,
    at_text: str | None,
    as_json: bool,
) -> None:
    """What the guardrails say to ACTION (create unless named: rollback,
    merge, extend) on VM, rule by rule, with the facts they used and where
    those came from. Changes nothing.

    Exit 3 when the VM's host could not be asked (no answer, or no login):
    nothing can be decided then, as for a create; the rules are shown as
    far as the inventory and the request settle them."""
    from bot.service import Principal, explain

    vm, action = _vm_and_action(words, action)
    who = Principal(user or rt.principal.id, frozenset(groups), channel)
    when = None
    if at_text is not None:
        from zoneinfo import ZoneInfo

        from bot.cli.runtime import progress
        from bot.service import parse_at

        # create's parser and zone (bot/service/at_time.py): explain answers
        # for the instant a create with the same --at would run at. A past
        # time is fine here: nothing is scheduled.
        at = parse_at(at_text, ZoneInfo(rt.settings.defaults.timezone), source="configured")
        progress(f"--at {at_text.strip()!r} is {at.said}")
        when = at.instant
    explanation = explain(rt.ctx, vm, action, who, checkpoint_type=ctype, at=when)
    if as_json:
        # What was asked, beside the answer: a script reading several
        # explanations can tell them apart.
        asked = {"action": action, "vm": vm, "user": who.id}
        echo_json(asked | explanation.to_dict())
    else:
        rt.out(
            "cli/decision.txt.j2",
            explanation=explanation,
            rows=explanation.rows,
            notes=explanation.notes,
            action=action,
            vm=vm,
            who=who.id,
        )
    if explanation.undecided is not None:
        # After what could be shown (as `checkpoint list` does for a host
        # it could not ask): the one error line a create gives, and exit 3.
        # A fault of the connection never reads as a refusal.
        raise explanation.undecided


@policy.command("validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON (when the file is valid).")
@pass_runtime
def policy_validate(rt: Runtime, file: Path, as_json: bool) -> None:
    """Check a policy file (merged over the shipped default) and say what is wrong.

    A valid file may still get WARNING lines (exit 0 all the same): a safety
    guardrail (domain_controller, guest_cluster, replicating_application,
    unsupported_disks, checkpoint_type, hyperv_replica) weakened below the
    shipped policy, with the inventory's VMs it affects; a scope that matches
    no VM of the configured inventory; a base param a shipped override
    still overrides for some VMs; a named approver the approve permission
    would refuse; a user or group value that names no one. Exit 2 when the
    file is not valid."""
    from bot.config import ConfigError
    from bot.service import lint_policy
    from policies import PolicyError, validate_policy_file

    try:
        policy = validate_policy_file(file)
    except PolicyError as exc:
        raise ConfigError(str(exc)) from None
    findings, unread = lint_policy(rt.settings, file, policy, datetime.now(UTC).date())
    if as_json:
        echo_json(
            {
                "file": str(file),
                "ok": True,
                "rules": sorted(policy.rules),
                "windows": sorted(w.name for w in policy.windows),
                "exemptions": len(policy.exemptions),
                "warnings": [f.to_dict() for f in findings],
                "inventory": None if unread else str(rt.settings.inventory_path),
            }
        )
        return
    counts = [
        _count(len(policy.rules), "rule"),
        _count(len(policy.windows), "change window"),
        _count(len(policy.exemptions), "exemption"),
    ]
    warned = f"; {_count(len(findings), 'warning')}" if findings else ""
    click.echo(f"{file}: OK — {', '.join(counts)}{warned}")
    for finding in findings:
        click.echo(f"WARNING {finding}")
    if unread:
        click.echo(f"(scopes not checked against the inventory: {unread})", err=True)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@click.command("worker")
@observe_options
@pass_runtime
def worker(
    rt: Runtime, health_port: int | None, health_host: str | None, log_format: str | None
) -> None:
    """Run queued jobs in this process until Ctrl-C."""
    from bot.cli.reload import Reload
    from bot.interrupts import StopRequest

    Reload.hold()  # SIGHUP: a reload, once started (below)
    setup_logging(rt, log_format)
    ctx = rt.ctx
    stop = StopRequest()
    signal.signal(signal.SIGTERM, stop.on_signal)
    reload = Reload(rt, stop.ask)
    reload.install()
    consumer = ctx.start_workers()
    ctx.watch_files()  # says when an edited file waits for a reload
    from bot.cli.local_server import start_cli_socket

    local = start_cli_socket(rt, ctx)
    health = start_health(rt, readiness(ctx, consumer), health_port, health_host)
    click.echo(f"worker {ctx.worker_id}: running jobs from the queue (Ctrl-C stops)", err=True)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: stops as SIGTERM does
        stop.wait()

    def stopping() -> None:
        if local is not None:
            local.close()
        if health is not None:
            health.stop()
        click.echo("worker: stopping", err=True)
        reload.restart_if_requested()

    rt.shut_down(stopping)


db.add_command(db_backup)
db.add_command(db_downgrade)
