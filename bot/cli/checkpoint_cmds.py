"""The commands of `checkpoint-bot checkpoint ...` and `checkpoint-bot change ...`
(their groups, which load them when one runs: bot.cli.groups)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from bot.changes import State
from bot.cli.batch_cmds import create_wave
from bot.cli.colour import wants_colour
from bot.cli.finishing import (
    BAD_ENDS,
    EXIT_OUTCOME_UNKNOWN,
    EXIT_REFUSED,
    Waiter,
    cli_may_approve,
    finish,
    found_elsewhere,
    in_terminal_words,
    moved_line,
    moves_since,
    run_request,
    running_line,
    wait_for_job,
)
from bot.cli.runtime import Runtime, echo_json, pass_runtime, progress
from bot.cli.signed_args import SignedArgsCommand
from bot.domain import APPROVAL_ACTIONS, KIND_WORDS, SETTING_WORDS, ApprovalState

if TYPE_CHECKING:
    from bot.changes.views import ChangeView
    from bot.cli.local_socket import Request
    from bot.service import ApprovalOutcome

# The service is imported inside each command, never here: a command's own
# `--help` loads this module, and pays for Click and the command definitions
# only, not the service, SQLModel and the config (bench/cli_start.py).

TYPES = click.Choice(KIND_WORDS, case_sensitive=False)


class _Here:
    """The terminal of a command that runs in this process."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def progress(self, message: str, ref: str = "") -> None:
        if ref:
            # Said before its job is waited for: an interrupt names it, and
            # takes it back (this command asked for it).
            self.rt.said_changes.append(ref)
            self.rt.asked_changes.append(ref)
        progress(message)

    def out(self, template: str, **values: Any) -> None:
        self.rt.out(template, **values)

    def json(self, data: Any) -> None:
        echo_json(data)


def _wait_for(rt: Runtime, job_id: int, view: ChangeView, action: str) -> tuple[bool, ChangeView]:
    """Run the queue in this process until the job ends (within its
    deadline), saying as `finish` does where the VM is when it moved."""
    # The node its VM was last found on, when it moved since the change saw
    # it (the job follows it there).
    rt.said_changes.append(view.ref)  # an interrupt names it
    elsewhere = found_elsewhere(rt.ctx, view)
    if elsewhere is not None:
        progress(moved_line(view, elsewhere, action))
    progress(running_line(view, action, elsewhere))
    succeeded, after = _run_queue_until(rt, job_id, view.ref)
    for to, message in moves_since(view, after):
        if elsewhere is None or to.casefold() != elsewhere.casefold():
            # It moved while the job ran, and the job followed it.
            progress(f"{view.ref}: {message}")
    return succeeded, after


def _run_queue_until(rt: Runtime, job_id: int, ref: str) -> tuple[bool, ChangeView]:
    # Only the queue: the periodic work (reconciling, sweeps, TTL chasing,
    # notices) is what every bot and worker process ticks
    # (docs/architecture.md); a command that waits for its own job would
    # start a round of it at once and wait for that round when it exits.
    rt.ctx.start_workers(periodic=False)
    return wait_for_job(rt.ctx, job_id, ref)


def _run(rt: Runtime, request: Request) -> None:
    """Hand the request to a running bot of this config, else do it here."""
    from bot.cli.local_socket import (
        HandedOffError,
        connect,
        converse,
        directory_problem,
        socket_path,
    )

    # -v asks for this process's log, which a bot's work would not write.
    path = None if rt.verbose else socket_path(rt.config_path, rt.env, rt.cwd)
    if path is not None and path.parent.exists():
        unsafe = directory_problem(path.parent)
        if unsafe is not None:
            # Seen: another user made the directory first and listened in
            # it, and every command of this user failed. Nothing is sent
            # there; the command runs here, as with no bot running.
            progress(f"checkpoint-bot: not asking a running bot: {unsafe}; running it here")
            path = None
    sock = connect(path) if path is not None else None
    reply = converse(sock, request) if sock is not None else None
    if reply is not None and reply.declined is not None:
        progress(f"checkpoint-bot: {reply.declined}")
        reply = None
    if reply is not None:
        click.echo(reply.stdout, nl=False)
        if reply.error is not None:
            raise HandedOffError(reply.error, reply.code)
        code = reply.code
    else:
        code = run_request(
            rt.ctx, request, _Here(rt), lambda job_id, ref: _run_queue_until(rt, job_id, ref)
        )
    if code:
        raise SystemExit(code)


def _request(rt: Runtime, op: str, target: str | None, **fields: Any) -> Request:
    # Imported here: `change show`, `approve` and the other commands of
    # this module never hand anything over (bench/cli_start.py).
    from bot.cli.local_socket import Request

    colour = wants_colour(rt.env, sys.stdout.isatty())
    return Request(op=op, target=target, user=rt.user, colour=colour, **fields)


@click.command("create")
@click.argument("vms", nargs=-1, metavar="[VM]...")
@click.option(
    "--tag",
    "tags",
    multiple=True,
    help="Every VM with this tag, key=value (repeatable: all must match).",
)
@click.option(
    "--group",
    "groups",
    multiple=True,
    help="The VMs of a group in the inventory's `groups:` (repeatable).",
)
@click.option("--host", "hosts", multiple=True, help="Every VM on this host (repeatable).")
@click.option(
    "--cluster",
    "clusters",
    multiple=True,
    help="Every VM on the nodes of this failover cluster (the inventory's `clusters:`; "
    "repeatable).",
)
@click.option("--reason", "-r", help="Why: the change this checkpoint protects. Required.")
@click.option("--type", "ctype", type=TYPES, help="Checkpoint type (default from config).")
@click.option("--ttl", help="Lifetime before the bot chases it, e.g. 24h, 3d (default 72h).")
@click.option(
    "--at",
    "at_text",
    metavar="TIME",
    help='Take it then, not now: "2026-12-10 22:00" with a zone after it '
    '("… Europe/Berlin", "… UTC") or an offset ("2026-12-10T22:00+01:00"); '
    "without one, in defaults.timezone (UTC unless configured).",
)
@click.option(
    "--yes",
    "-y",
    is_flag=True,
    help="Several VMs: take them without asking to confirm the preview.",
)
@click.option("--no-wait", is_flag=True, help="Return the change id at once; a worker runs it.")
@click.option("--json", "as_json", is_flag=True, help="Print the change (or the batch) as JSON.")
@pass_runtime
def create(
    rt: Runtime,
    vms: tuple[str, ...],
    tags: tuple[str, ...],
    groups: tuple[str, ...],
    hosts: tuple[str, ...],
    clusters: tuple[str, ...],
    reason: str | None,
    ctype: str | None,
    ttl: str | None,
    at_text: str | None,
    yes: bool,
    no_wait: bool,
    as_json: bool,
) -> None:
    """Take a checkpoint of VM, if the guardrails allow it.

    Several VMs, --tag, --group, --host or --cluster make a patch wave (a batch,
    BAT-n): the selection is resolved and previewed with the policy's word
    for each VM, then taken once you confirm (--yes skips the question).
    Tags narrow what names, groups and hosts select.

    --at takes it (or the wave) at that time instead of now; a time when
    the VM's change windows are closed is refused with the opening to ask
    for. `checkpoint withdraw CHG-n` (`batch withdraw BAT-n`) cancels it."""
    # One VM by name is a single checkpoint, decided before the service is
    # imported: a running bot may take it (_run).
    from bot.domain import single_vm

    vm = single_vm(vms, tags=tags, adders=(*groups, *hosts, *clusters))
    if vm is not None:
        request = _request(
            rt,
            "create",
            vm,
            reason=reason,
            checkpoint_type=ctype,
            ttl=ttl,
            at=at_text,
            no_wait=no_wait,
            as_json=as_json,
        )
        _run(rt, request)
        return
    from zoneinfo import ZoneInfo

    from bot.service import Selection, parse_at

    selection = Selection.of(vms, tags=tags, groups=groups, hosts=hosts, clusters=clusters)
    at = None
    if at_text is not None:
        zone = ZoneInfo(rt.ctx.settings.defaults.timezone)
        at = parse_at(at_text, zone, source="configured")
        progress(f"--at {at_text.strip()!r} is {at.said}")
    create_wave(
        rt,
        selection,
        reason=reason,
        ctype=ctype,
        ttl=ttl,
        at=at,
        yes=yes,
        no_wait=no_wait,
        as_json=as_json,
    )


@click.command("withdraw")
@click.argument("ref", metavar="CHG-n")
@click.option("--request", "request", type=click.Choice(("create", "rollback", "merge", "extend")))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def withdraw_cmd(rt: Runtime, ref: str, request: str | None, as_json: bool) -> None:
    """Take back your own request before it runs: a checkpoint scheduled
    for later (--at, or its change window), or anything waiting for
    approvers (--request names which when several wait). Nothing ran for
    it; only whoever asked may."""
    from bot.service import Target, withdraw

    result = _which(
        ref,
        "withdraw",
        lambda: withdraw(rt.ctx, ref, requester=rt.principal, target=Target(action=request)),
    )
    _approval_result(rt, result, as_json=as_json)


@click.command("rollback")
@click.argument("target", metavar="CHANGE|CHECKPOINT|VM")
@click.option("--no-wait", is_flag=True, help="Return at once; a worker runs it.")
@click.option("--json", "as_json", is_flag=True, help="Print the change as JSON.")
@pass_runtime
def rollback_cmd(rt: Runtime, target: str, no_wait: bool, as_json: bool) -> None:
    """Restore the checkpoint of a change (CHG-n, the checkpoint's Id, or a
    VM's name for its one active change).

    Everything written to the VM since the checkpoint is lost. A production
    checkpoint leaves the VM off; the bot starts it again if it was running
    (defaults.start_after_restore)."""
    _run(rt, _request(rt, "rollback", target, no_wait=no_wait, as_json=as_json))


@click.command("merge")
@click.argument("target", metavar="CHANGE|CHECKPOINT|VM")
@click.option("--no-wait", is_flag=True, help="Return at once; a worker runs it.")
@click.option("--json", "as_json", is_flag=True, help="Print the change as JSON.")
@pass_runtime
def merge_cmd(rt: Runtime, target: str, no_wait: bool, as_json: bool) -> None:
    """Keep the change: delete the checkpoint and merge its disk (CHG-n, the
    checkpoint's Id, or a VM's name for its one active or rolled-back
    change)."""
    _run(rt, _request(rt, "merge", target, no_wait=no_wait, as_json=as_json))


@click.command("start")
@click.argument("target", metavar="CHANGE|CHECKPOINT|VM")
@click.option("--no-wait", is_flag=True, help="Return at once; a worker runs it.")
@click.option("--json", "as_json", is_flag=True, help="Print the change as JSON.")
@pass_runtime
def start_cmd(rt: Runtime, target: str, no_wait: bool, as_json: bool) -> None:
    """Start the VM a rollback left Off or Saved (whoever may roll it back may
    start it): CHG-n, the checkpoint's Id, or a VM's name for its one
    rolled-back change."""
    from bot.service import start_vm

    outcome = start_vm(rt.ctx, target, requester=rt.principal)
    view = outcome.change
    succeeded = True
    if not no_wait:
        succeeded, view = _wait_for(rt, outcome.job_id, view, "start")
    if as_json:
        echo_json({**view.to_dict(), "job_id": outcome.job_id})
    elif no_wait:
        click.echo(f"{view.ref}: starting {view.vm_name} is queued as job {outcome.job_id}")
    elif view.start_unknown:
        click.echo(
            f"{view.ref}: whether {view.vm_name} on {view.host} started is not known (Start-VM "
            "was sent, then the host stopped answering): look at it before starting it again"
        )
    else:
        state = view.vm_state_after or "unknown"
        click.echo(f"{view.ref}: {view.vm_name} on {view.host} is {state}")
    if not succeeded:
        # The host stopped answering after Start-VM was sent: the VM may be
        # running, so not "refused" (a script would start it again blind).
        raise SystemExit(EXIT_OUTCOME_UNKNOWN if view.start_unknown else EXIT_REFUSED)


@click.command("extend", cls=SignedArgsCommand)
@click.argument("target", metavar="CHANGE|CHECKPOINT|VM")
@click.argument("by", metavar="DURATION")
@click.option("--json", "as_json", is_flag=True, help="Print the change as JSON.")
@pass_runtime
def extend_cmd(rt: Runtime, target: str, by: str, as_json: bool) -> None:
    """Give a checkpoint DURATION more time (24h, 3d): CHG-n, the
    checkpoint's Id, or a VM's name for its one active change. Beyond the
    maximum lifetime the policy asks for an approver."""
    from bot.service import extend

    outcome = extend(rt.ctx, target, by, requester=rt.principal)
    never: Waiter = lambda job_id, ref: (False, outcome.change)  # noqa: E731
    code = finish(
        _Here(rt),
        never,
        outcome,
        "extension",
        wait=False,
        as_json=as_json,
        cli_approves=cli_may_approve(rt.ctx),
    )
    if code:
        raise SystemExit(code)


@click.command("settings")
@click.argument("vm")
@click.option(
    "--type",
    "ctype",
    type=click.Choice(sorted(SETTING_WORDS), case_sensitive=False),
    help="Set the VM's CheckpointType (admins only).",
)
@click.option(
    "--automatic",
    type=click.Choice(["on", "off"]),
    help="Turn Hyper-V's automatic checkpoints on or off (admins only).",
)
@click.option(
    "--reason", "-r", default="", help="Why, for the record (needed with --type or --automatic)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def settings_cmd(
    rt: Runtime, vm: str, ctype: str | None, automatic: str | None, reason: str, as_json: bool
) -> None:
    """Show a VM's checkpoint settings; with --type or --automatic, change them
    (admins only; Standard is refused for AD, SQL and Exchange)."""
    from bot.service import change_settings

    result = change_settings(
        rt.ctx,
        vm,
        rt.principal,
        checkpoint_type=ctype,
        automatic=None if automatic is None else automatic == "on",
        reason=reason,
    )
    info = result.vm
    if as_json:
        echo_json(
            {
                "vm": info.name,
                "host": info.host,
                "state": info.state.name,
                "checkpoint_type": info.checkpoint_type.name,
                "automatic_checkpoints": info.automatic_checkpoints,
                "changed": list(result.changed),
                "inventory_checkpoint_type": result.inventory_says,
                "read_back": result.read_back,
            }
        )
        return
    click.echo(
        f"{info.name} on {info.host}: {info.state.name}, CheckpointType "
        f"{info.checkpoint_type.name}, automatic checkpoints "
        f"{'on' if info.automatic_checkpoints else 'off'}"
    )
    for line in result.changed:
        click.echo(f"  changed: {line} (recorded)")
    if result.read_back_note is not None:
        click.echo(f"  ! {result.read_back_note}")
    if result.disagreement is not None:
        click.echo(f"  ! {result.disagreement}")


@click.command("list")
@click.argument("name", required=False, metavar="[VM|HOST|CLUSTER|GROUP]")
@click.option("--vm", help="Only this VM.")
@click.option("--host", help="Only this host (with --vm: that VM there).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def list_cmd(
    rt: Runtime, name: str | None, vm: str | None, host: str | None, as_json: bool
) -> None:
    """Every checkpoint on the hosts, as a tree per VM, with its owning change;
    with a name, only that host's, VM's, failover cluster's or group's."""
    if name is not None and (vm is not None or host is not None):
        raise click.UsageError(f"name the VM or host once: {name!r}, or --vm/--host")
    _run(rt, _request(rt, "list", name, vm=vm, host=host, as_json=as_json))


def _approval_result(rt: Runtime, result: ApprovalOutcome, *, as_json: bool) -> None:
    view = result.change
    # Whether the job the approval started succeeded; None when none ran
    # here (pending, refused, rejected, withdrawn, scheduled, an extension).
    succeeded: bool | None = None
    if result.job_id is not None and result.waits_for_queue:
        # Recorded, not lost: waiting here would only wait for the queue (as
        # `finish` says for a request).
        progress(
            f"{view.ref}: the job queue did not answer; the {result.action} is recorded and "
            "starts as soon as the queue is back (`checkpoint-bot outbox` shows it)"
        )
        from bot.service import show_change

        view = show_change(rt.ctx, view.ref)
    elif result.job_id is not None and view.state != State.SCHEDULED.value:
        # A failed rollback or merge leaves the change active, which is no
        # bad end: the job says it failed (as `finish` reads it).
        succeeded, view = _wait_for(rt, result.job_id, view, result.action)
    else:
        from bot.service import show_change

        # As `change show` reads it: what else still waits for approvers.
        view = show_change(rt.ctx, view.ref)
    if as_json:
        echo_json(
            {
                **view.to_dict(),
                "approval": {
                    "action": result.action,
                    "state": result.state,
                    "approvals": result.approvals,
                    "required": result.required,
                    "request_id": result.request_id,
                },
                "job_id": result.job_id,
                "job_succeeded": succeeded,
                "waits_for_queue": result.waits_for_queue,
            }
        )
    else:
        rt.out("cli/approval.txt.j2", r=result, c=view)
        if succeeded is False and not _says_it_failed(view):
            # The summary's "last error" says how it failed; without one
            # (the job ran out of time), the last line still says so.
            click.echo(f"{view.ref}: the approved {result.action} did not succeed")
    from bot.cli.finishing import EXIT_OUTCOME_UNKNOWN, interrupted_since

    if succeeded is not None and interrupted_since(result.change, view):
        # The job the approval started was interrupted: the host may have
        # done it, so neither 1 nor 3 (a script would ask again). The
        # summary's `next:` line says who finds out how it ended.
        raise SystemExit(EXIT_OUTCOME_UNKNOWN)
    if result.state == ApprovalState.REFUSED or view.state in BAD_ENDS or succeeded is False:
        raise SystemExit(EXIT_REFUSED)


def _says_it_failed(view: ChangeView) -> bool:
    """Whether cli/change_summary.txt.j2 ends with the change's last error."""
    shown = (State.FAILED.value, State.INTERRUPTED.value, State.ACTIVE.value)
    return bool(view.last_error) and view.state in shown and not view.resolutions


REQUESTS = click.Choice(APPROVAL_ACTIONS, case_sensitive=False)
_REQUEST_HELP = (
    "Which waiting request, when more than one waits (the answer names what it decided)."
)


def _which(ref: str, verb: str, call: Callable[[], ApprovalOutcome]) -> ApprovalOutcome:
    from bot.service import Ambiguous, Conflict

    try:
        return call()
    except Ambiguous as exc:
        options = " or ".join(f"--request {c}" for c in exc.choices)
        raise Conflict(f"{exc.message}: checkpoint-bot change {verb} {ref} {options}") from None
    except Conflict as exc:
        raise in_terminal_words(exc) from None


@click.command("approve")
@click.argument("ref", metavar="CHG-n")
@click.option("--request", "request", type=REQUESTS, default=None, help=_REQUEST_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def approve_cmd(rt: Runtime, ref: str, request: str | None, as_json: bool) -> None:
    """Approve what CHG-n waits for (a checkpoint, a rollback, a merge, an
    extension), and say which it was.

    The requester never counts as an approver; the policy is checked again
    once enough approvers have said yes. When more than one request waits,
    --request names the one you approve.

    You approve as cli:NAME, NAME from CHECKPOINT_BOT_USER (else $USER): an
    environment variable, not a proof, so one person can request under one
    name and approve under another. The policy's
    `permissions.approve.cli: false` refuses approvals from here."""
    from bot.service import Target, approve

    result = _which(
        ref,
        "approve",
        lambda: approve(rt.ctx, ref, approver=rt.principal, target=Target(action=request)),
    )
    _approval_result(rt, result, as_json=as_json)


@click.command("reject")
@click.argument("ref", metavar="CHG-n")
@click.option("--request", "request", type=REQUESTS, default=None, help=_REQUEST_HELP)
@click.option("--reason", "-r", default="", help="Why, for the record (required).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def reject_cmd(rt: Runtime, ref: str, request: str | None, reason: str, as_json: bool) -> None:
    """Reject what CHG-n waits for, saying why with --reason (--request
    names it when more than one waits)."""
    from bot.reasons import REJECT_EXAMPLE
    from bot.service import BadRequest, Target, reject

    if not reason.strip():
        # Asked before anything is read, in this command's own words (the
        # service refuses it too, without them).
        from bot.domain import ChangeRef

        # The ref as the bot writes it, never the typed text echoed back.
        shown = str(ChangeRef.parse(ref) or "CHG-n")
        which = f" --request {request}" if request else ""
        raise BadRequest(
            f"a reason is required to reject: say why, e.g. checkpoint-bot change reject "
            f'{shown}{which} --reason "{REJECT_EXAMPLE}"'
        )
    result = _which(
        ref,
        "reject",
        lambda: reject(
            rt.ctx, ref, approver=rt.principal, reason=reason, target=Target(action=request)
        ),
    )
    _approval_result(rt, result, as_json=as_json)


@click.command("show")
@click.argument("ref", metavar="CHG-n")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def show(rt: Runtime, ref: str, as_json: bool) -> None:
    """A change, its policy decision, its history and its jobs."""
    from bot.service import show_change

    view = show_change(rt.ctx, ref)
    if as_json:
        echo_json(view.to_dict())
    else:
        rt.out("cli/change.txt.j2", c=view)
