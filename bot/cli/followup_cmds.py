"""Following changes to their end from the terminal: change windows, the
reconciler run once, and a human's answer for an interrupted change."""

from __future__ import annotations

from typing import Any

import click

from bot.changes import RESOLUTIONS
from bot.cli.runtime import Runtime, echo_json, pass_runtime

# The service is imported inside each command, never here: `change --help`
# and `checkpoint --help` load this module (bench/cli_start.py).


@click.command("resolve")
@click.argument("ref", metavar="CHG-n")
@click.argument("outcome", metavar="OUTCOME", type=click.Choice(sorted(RESOLUTIONS)))
@click.option("--json", "as_json", is_flag=True, help="Print the change as JSON.")
@pass_runtime
def resolve_cmd(rt: Runtime, ref: str, outcome: str, as_json: bool) -> None:
    """Say what happened to an interrupted change the host could not settle
    (the thread and `change show` list the outcomes offered). OUTCOME is one
    of active, failed, merged, rolled_back. Only the requester or an admin;
    recorded with your name."""
    from bot.service import resolve

    view = resolve(rt.ctx, ref, outcome, who=rt.principal)
    if as_json:
        echo_json(view.to_dict())
    else:
        rt.out("cli/change.txt.j2", c=view)


@click.command("reconcile")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def reconcile_cmd(rt: Runtime, as_json: bool) -> None:
    """Run the reconciler once now (every bot and worker also runs it on each
    tick): interrupted work is checked against the hosts, and a job recorded
    but never handed to the job queue (its command stopped first) is handed
    over."""
    from bot.domain import ChangeRef
    from bot.service import Reconciler, show_change

    ctx = rt.ctx
    reconciler = Reconciler(ctx)
    # What the pass looked at, a change whose job it found stale included
    # (asked before the pass, that one was still in flight with a job).
    stuck = reconciler.run_pass(ctx.clock())
    # Then what no process handed to the queue (after the pass, which fails
    # a job whose deadline passed: that one is settled, not handed over).
    handed = [
        {"change": str(ChangeRef(job.change_id)), "job": job.id, "kind": job.kind}
        for job in reconciler.hand_over(ctx.clock())
        if job.change_id is not None
    ]
    rows = [
        {"change": view.ref, "vm": view.vm_name, "state": view.state}
        for view in (show_change(ctx, f"CHG-{change_id}") for change_id in stuck)
    ]
    if as_json:
        echo_json({"looked_at": rows, "handed_over": handed})
        return
    for h in handed:
        click.echo(
            f"{h['change']}  its {h['kind']} (job {h['job']}) was recorded but never handed to "
            "the job queue: handed over now; a bot or worker of this config, or the next "
            f"command here that runs jobs, runs it ('checkpoint-bot change show {h['change']}')"
        )
    if not rows and not handed:
        click.echo("nothing to reconcile: no change is stuck in flight or interrupted")
    for row in rows:
        click.echo(f"{row['change']}  {row['vm']:<12} now {row['state']}")


@click.command("windows")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def windows_cmd(rt: Runtime, as_json: bool) -> None:
    """The change windows: each one's next (or current) opening, its scope,
    the checkpoints still scheduled for it and those waiting for approval
    that it would run, and the notice due now, if any; then the changes and
    waves asked for at a time (--at) that wait for it."""
    from bot.clock import utc_text
    from bot.service import WindowNotices, due_notices, scheduled_runs

    ctx = rt.ctx
    now = ctx.clock()
    waiting = WindowNotices(ctx)
    rows: list[dict[str, Any]] = []
    for w in ctx.policy.windows:
        until = w.open_until(now)
        opens = until - w.duration if until is not None else w.next_start(now)
        # What still waits, as `/checkpoint windows` counts it.
        queue = waiting.waiting_for(w, opens)
        rows.append(
            {
                "name": w.name,
                "schedule": w.schedule_text,
                "timezone": w.tz.key,
                "open_now": until is not None,
                "opens": w.local_text(opens),
                "closes": w.local_text(opens + w.duration),
                "scope": w.scope.describe(),
                "applies_to": w.applies_to,
                "scheduled": [c.ref for c in queue.scheduled],
                "awaiting_approval": [c.ref for c in queue.awaiting_approval],
                "due": [n.phase.value for n in due_notices(w, now)],
            }
        )
    timed = scheduled_runs(ctx)
    if as_json:
        echo_json({"windows": rows, "at": [t.to_dict() for t in timed]})
        return
    if not rows:
        click.echo("no change windows: the policy defines none (`windows:` in the policy file)")
    for r in rows:
        state = "OPEN until " + r["closes"] if r["open_now"] else f"opens {r['opens']}"
        click.echo(f"{r['name']}: {state} ({r['schedule']}, applies to {r['applies_to']})")
        if r["scheduled"]:
            click.echo(f"  scheduled: {', '.join(r['scheduled'])}")
        if r["awaiting_approval"]:
            click.echo(f"  waiting for approval: {', '.join(r['awaiting_approval'])}")
    if timed:
        click.echo("asked for at a time (--at):")
    for t in timed:
        vms = ", ".join(t.vms)
        click.echo(f"  {utc_text(t.run_at)}  {t.ref}  {vms} — {t.reason} ({t.requester})")
