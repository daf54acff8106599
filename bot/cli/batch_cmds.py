"""Patch waves on the CLI: `checkpoint create` over several VMs (its batch
half lives here) and `checkpoint-bot batch ...` (docs/batches.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from bot.cli.runtime import Runtime, echo_json, pass_runtime, progress

if TYPE_CHECKING:
    from bot.changes.batch_views import BatchView
    from bot.service import AtTime, BatchOutcome, Selection

# The service is imported inside each command, never here: `batch --help`
# and `checkpoint --help` (whose `create` makes waves) load this module and
# must pay for Click and the command definitions only (bench/cli_start.py).

# Exit codes as for every command: 1 refused or failed (main.py).
EXIT_REFUSED = 1
# Batch states that are not what the person asked for.
_BAD_BATCH_STATES = {"failed", "partly_failed", "refused"}


def _selection_text(b: BatchView) -> str:
    sel = b.selection
    words = [*sel.get("names", [])]
    words += [f"--tag {t}" for t in sel.get("tags", [])]
    words += [f"--group {g}" for g in sel.get("groups", [])]
    words += [f"--host {h}" for h in sel.get("hosts", [])]
    words += [f"--cluster {c}" for c in sel.get("clusters", [])]
    return " ".join(words)


def render_batch(rt: Runtime, view: BatchView, *, events: bool) -> None:
    rt.out("cli/batch.txt.j2", b=view, selection=_selection_text(view), events=events)


def _wait_for_members(rt: Runtime, outcome: BatchOutcome) -> BatchView:
    """Run the queue in this process until every member's job has ended."""
    ctx = rt.ctx
    jobs = [o.job_id for o in outcome.outcomes if o.job_id is not None]
    if not jobs:
        return outcome.batch
    from templates import counted

    ctx.start_workers()
    being = "is" if len(jobs) == 1 else "are"
    progress(f"{outcome.batch.ref}: {counted(len(jobs), 'checkpoint')} {being} being taken…")
    return _wait_jobs(rt, outcome.batch.ref, jobs, "")


def create_wave(
    rt: Runtime,
    selection: Selection,
    *,
    reason: str | None,
    ctype: str | None,
    ttl: str | None,
    yes: bool,
    no_wait: bool,
    as_json: bool,
    at: AtTime | None = None,
) -> None:
    """Preview the wave, ask for confirmation (unless --yes), record it and
    (unless --no-wait, or it is asked for at a later time) wait for its
    checkpoints."""
    from bot.service import create_batch, preview_batch

    preview = preview_batch(
        rt.ctx,
        selection,
        requester=rt.principal,
        reason=reason,
        checkpoint_type=ctype,
        ttl=ttl,
        at=at,
    )
    # The preview goes to stderr with --json, so stdout stays one document.
    click.echo(rt.renderer.render("cli/batch_preview.txt.j2", p=preview), nl=False, err=as_json)
    if not preview.takeable:
        raise click.ClickException(
            "every VM of this selection is refused, so nothing was recorded; "
            "`checkpoint-bot policy explain VM create` says why for one VM"
        )
    count = len(preview.takeable)
    when = f" at {at.said}" if at is not None else ""
    if not yes and not click.confirm(
        f"Take {count} checkpoint{'s' if count != 1 else ''}{when}?", default=False, err=True
    ):
        progress("nothing was recorded")
        raise SystemExit(EXIT_REFUSED)
    outcome = create_batch(
        rt.ctx,
        selection,
        reason=reason,
        requester=rt.principal,
        checkpoint_type=ctype,
        ttl=ttl,
        source="cli",
        at=at,
    )
    # A wave asked for later runs then, on a worker, not while this waits.
    no_wait = no_wait or at is not None
    view = outcome.batch if no_wait else _wait_for_members(rt, outcome)
    if as_json:
        echo_json(
            {
                **view.to_dict(),
                "preview": outcome.preview.to_dict(),
                "not_recorded": dict(outcome.not_recorded),
            }
        )
    else:
        render_batch(rt, view, events=False)
        for vm, why in outcome.not_recorded:
            click.echo(f"  ! {vm} could not be recorded: {why}")
    short = outcome.fell_short(view) if not no_wait else ()
    for m in short:
        click.echo(
            f"  ! {m.vm_name} ({m.change}) could be taken at the preview, then was {m.state}"
        )
    if not no_wait and (view.state.value in _BAD_BATCH_STATES or outcome.not_recorded or short):
        raise SystemExit(EXIT_REFUSED)


@click.group("batch")
def batch() -> None:
    """Patch waves: batches of checkpoints taken, rolled back and merged together (BAT-n)."""


@batch.command("show")
@click.argument("ref", metavar="BAT-n")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def show_cmd(rt: Runtime, ref: str, as_json: bool) -> None:
    """A batch: its state (derived from its members'), each member's change,
    and the batch's own history."""
    from bot.service import show_batch

    view = show_batch(rt.ctx, ref)
    if as_json:
        echo_json(view.to_dict())
    else:
        render_batch(rt, view, events=True)


@batch.command("list")
@click.option("--limit", default=50, show_default=True, help="How many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def list_cmd(rt: Runtime, limit: int, as_json: bool) -> None:
    """The newest batches with their state and progress."""
    from bot.service import list_batches

    views = list_batches(rt.ctx, limit=limit)
    if as_json:
        echo_json({"batches": [v.to_dict() for v in views]})
    else:
        rt.out("cli/batches.txt.j2", batches=views)


def _wait_jobs(rt: Runtime, ref: str, job_ids: list[int], what: str) -> BatchView:
    """Run the queue here until every job has ended, saying how far the
    wave is each time one ends ("BAT-0001: 7 of 9 done, 1 failed")."""
    from bot.service import show_batch
    from templates import counted

    ctx = rt.ctx
    if job_ids:
        ctx.start_workers()
        if what:
            progress(f"{ref}: {what} of {counted(len(job_ids), 'VM')} is running…")
    said = ""
    for job_id in job_ids:
        job = ctx.ledger.get(job_id)
        budget = (job.deadline_at - ctx.clock()).total_seconds() if job.deadline_at else 3600
        ctx.ledger.wait(job_id, timeout=max(budget, 0) + 30)
        now = show_batch(ctx, ref).progress
        if now != said:
            progress(f"{ref}: {now}")
            said = now
    return show_batch(ctx, ref)


def _confirm_loss(rt: Runtime, ref: str, action: str, yes: bool, as_json: bool) -> None:
    """A rollback loses what each VM wrote since its checkpoint: say so per
    VM and ask (unless --yes). With --json the list goes to stderr, so
    stdout stays one document; when no member can be acted on it says
    nothing, and the service's error says why."""
    from bot.service import show_batch

    view = show_batch(rt.ctx, ref)
    members = [m for m in view.members if m.state in _ELIGIBLE[action]]
    # A merge leaves out a member whose rollback waits for approval
    # (bot/service/batch_actions.py `_held`): said here, before the question.
    held = [m for m in members if action == "merge" and m.waiting == "rollback"]
    members = [m for m in members if m not in held]
    if not members:
        return
    vms = f"{len(members)} VM{'s' if len(members) != 1 else ''}"
    if action == "rollback":
        lines = [f"{view.ref}: rolling back restores {vms} to their checkpoints:"]
        lines += [
            f"  {m.vm_name} on {m.host}: everything written since {m.change}'s checkpoint is lost"
            for m in members
        ]
    else:
        lines = [f"{view.ref}: merging keeps the changes of {vms}:"]
        lines += [f"  {m.vm_name} on {m.host}: {m.change}'s checkpoint is deleted" for m in members]
        lines += [
            f"  {m.vm_name} on {m.host}: not merged, its rollback waits for approval ({m.change})"
            for m in held
        ]
    click.echo("\n".join(lines), err=as_json)
    if not yes and not click.confirm("Go ahead?", default=False, err=True):
        progress("nothing was done")
        raise SystemExit(EXIT_REFUSED)


_ELIGIBLE = {"rollback": {"active"}, "merge": {"active", "rolled_back"}}
_GOAL = {"rollback": "rolled_back", "merge": "done"}


def _batch_action(
    rt: Runtime, ref: str, action: str, *, yes: bool, no_wait: bool, as_json: bool
) -> None:
    from bot.service import merge_batch, rollback_batch

    _confirm_loss(rt, ref, action, yes, as_json)
    call = rollback_batch if action == "rollback" else merge_batch
    result = call(rt.ctx, ref, requester=rt.principal)
    view = result.batch
    waited = not no_wait and bool(result.job_ids)
    if waited:
        view = _wait_jobs(rt, view.ref, result.job_ids, action)
    if as_json:
        echo_json(
            {
                **view.to_dict(),
                "action": action,
                "decision": result.decision.to_dict(),
                "members_acted": [
                    {"change": m.change, "vm": m.vm, "result": m.result.value, "detail": m.detail}
                    for m in result.members
                ],
            }
        )
    else:
        d = result.decision
        if d.verdict.value == "deny":
            click.echo(f"{view.ref}: {action} REFUSED — nothing was started")
            for reason in d.reasons:
                click.echo(f"  ✗ {reason}")
        elif d.verdict.value == "needs_approval" and d.approval is not None:
            click.echo(
                f"{view.ref}: {action} WAITING FOR APPROVAL — needs {d.approval.describe()} "
                "(what its strictest member needs)"
            )
            click.echo(f"An approver runs: checkpoint-bot batch approve {view.ref}")
        render_batch(rt, view, events=False)
        for m in result.members:
            if m.result.value == "not_started":
                click.echo(f"  ! {m.vm} ({m.change}) was not started: {m.detail}")
    if result.refused or (waited and view.state.value != _GOAL[action]):
        raise SystemExit(EXIT_REFUSED)


_YES = click.option("--yes", "-y", is_flag=True, help="Do not ask to confirm.")
_NO_WAIT = click.option("--no-wait", is_flag=True, help="Return at once; workers run it.")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@batch.command("rollback")
@click.argument("ref", metavar="BAT-n")
@_YES
@_NO_WAIT
@_JSON
@pass_runtime
def rollback_cmd(rt: Runtime, ref: str, yes: bool, no_wait: bool, as_json: bool) -> None:
    """Roll back every active member of a batch. It needs what its
    strictest member's rollback needs; a member whose restore fails is
    shown, the others complete."""
    _batch_action(rt, ref, "rollback", yes=yes, no_wait=no_wait, as_json=as_json)


@batch.command("merge")
@click.argument("ref", metavar="BAT-n")
@_YES
@_NO_WAIT
@_JSON
@pass_runtime
def merge_cmd(rt: Runtime, ref: str, yes: bool, no_wait: bool, as_json: bool) -> None:
    """Keep the changes: merge every member that still holds its checkpoint."""
    _batch_action(rt, ref, "merge", yes=yes, no_wait=no_wait, as_json=as_json)


@batch.command("approve")
@click.argument("ref", metavar="BAT-n")
@_NO_WAIT
@_JSON
@pass_runtime
def approve_cmd(rt: Runtime, ref: str, no_wait: bool, as_json: bool) -> None:
    """Approve what the members of a batch wait for (a rollback or merge of
    all, or their checkpoints), member by member as ordinary approvals."""
    from bot.service import approve_batch

    result = approve_batch(rt.ctx, ref, approver=rt.principal)
    view = result.batch
    if not no_wait and result.job_ids:
        view = _wait_jobs(rt, view.ref, result.job_ids, "the approved work")
    if as_json:
        echo_json(
            {
                **view.to_dict(),
                "approved": [o.change.ref for o in result.outcomes],
                "problems": dict(result.problems),
            }
        )
    else:
        render_batch(rt, view, events=False)
        for vm, why in result.problems:
            click.echo(f"  ! {vm}: {why}")
    if result.problems or view.state.value in _BAD_BATCH_STATES:
        raise SystemExit(EXIT_REFUSED)


@batch.command("withdraw")
@click.argument("ref", metavar="BAT-n")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def withdraw_cmd(rt: Runtime, ref: str, as_json: bool) -> None:
    """Take back what waits in a wave before it runs: every member still
    scheduled (--at, or its change window) or waiting for the approval of
    its checkpoint (if the wave is yours), or of the wave's rollback or
    merge (if you asked for it), is withdrawn, and nothing is done on its
    host for it. Members that already ran are left as they are (roll them
    back or merge them)."""
    from bot.service import withdraw_batch

    out = withdraw_batch(rt.ctx, ref, requester=rt.principal)
    if as_json:
        echo_json(
            {
                **out.batch.to_dict(),
                "withdrawn": list(out.withdrawn),
                "withdrawn_actions": list(out.actions),
                "problems": dict(out.problems),
            }
        )
        return
    click.echo(f"{out.batch.ref}: {out.said}: {', '.join(out.withdrawn)}")
    for vm, why in out.problems:
        click.echo(f"  ! {vm} could not be withdrawn: {why}")
    render_batch(rt, out.batch, events=False)
    if out.problems:
        raise SystemExit(EXIT_REFUSED)
