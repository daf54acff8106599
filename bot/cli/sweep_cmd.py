"""`checkpoint-bot sweep ...`: the orphan and stale sweep, on demand."""

from __future__ import annotations

import click

from bot.cli.runtime import Runtime, echo_json, pass_runtime, progress

# The service is imported inside each command, never here: the group's
# --help loads this module and pays for Click and the command definitions
# only (bench/cli_start.py).

# Exit codes: 0 done, 1 refused or failed, 3 a host could not be asked (see bot.cli.main).
EXIT_FAILED = 1


@click.group("sweep")
def sweep() -> None:
    """Every checkpoint on every host: what is stale, what no change owns."""


@sweep.command("run")
@click.option("--post", is_flag=True, help="Also post the digests to Slack (one per channel).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_runtime
def run_cmd(rt: Runtime, post: bool, as_json: bool) -> None:
    """Sweep now: list every checkpoint on every host, sample its size, and
    report stale, orphaned and mismatched ones, and the changes out of sight
    (they hold a checkpoint, but their VM or host is no longer in the
    inventory). Never merges or deletes.

    The bot sweeps on its own every sweep.interval; this is the same sweep,
    with every row (the Slack digest shows the biggest and counts the rest).

    Exit 3 when a host could not be asked (the report of the others is
    still printed, and posted with --post)."""
    from bot.service import Unavailable, run_sweep

    report = run_sweep(rt.ctx, post=post)
    if as_json:
        echo_json(report.to_dict())
    else:
        rt.out("cli/sweep.txt.j2", report=report, posted=post and rt.ctx.channels.enabled)
    if post and not rt.ctx.channels.enabled:
        progress("checkpoint-bot: Slack is not configured (slack.bot_token): nothing was posted")
    if report.problems:
        # A host that could not be asked is not a host without checkpoints:
        # a cron job must not read an incomplete sweep as a clean one.
        names = ", ".join(p.host for p in report.problems)
        raise Unavailable(f"{names} could not be asked: the sweep is incomplete")


@sweep.command("history")
@click.argument("checkpoint_id", metavar="CHECKPOINT-ID")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def history_cmd(rt: Runtime, checkpoint_id: str, as_json: bool) -> None:
    """A checkpoint's size at every sweep that saw it: how fast it grows."""
    from bot.service import size_history
    from templates import human_bytes

    samples = size_history(rt.ctx, checkpoint_id)
    if as_json:
        echo_json([{"at": at.isoformat(), "size_bytes": size} for at, size in samples])
        return
    if not samples:
        click.echo(f"No size samples of {checkpoint_id}: no sweep has seen it.")
        return
    previous = None
    for at, size in samples:
        growth = "" if previous is None else f"  {'+' if size >= previous else '-'}"
        if previous is not None:
            growth += human_bytes(abs(size - previous))
        click.echo(f"{at:%Y-%m-%d %H:%M} UTC  {human_bytes(size):>10}{growth}")
        previous = size


@sweep.command("adopt")
@click.argument("checkpoint_id", metavar="CHECKPOINT-ID")
@click.option("--merge", "then_merge", is_flag=True, help="Then keep & merge it (policy applies).")
@click.option("--no-wait", is_flag=True, help="Do not wait for the merge job.")
@click.option("--json", "as_json", is_flag=True, help="Print the change as JSON.")
@pass_runtime
def adopt_cmd(
    rt: Runtime, checkpoint_id: str, then_merge: bool, no_wait: bool, as_json: bool
) -> None:
    """Open a change, in your name, that owns an orphan checkpoint (one no
    change owns), so it can be merged, rolled back or extended like any other;
    with --merge, also ask to keep & merge it."""
    ctx = rt.ctx
    from bot.service import adopt_checkpoint, locate_checkpoint, show_change

    found = locate_checkpoint(ctx, checkpoint_id)
    result = adopt_checkpoint(
        ctx, found.host, found.vm_id, found.id, rt.principal, then_merge=then_merge, source="cli"
    )
    view = result.change
    job_id = result.merge.job_id if result.merge else None
    if job_id is not None and not no_wait:
        ctx.start_workers()
        progress(f"{view.ref}: merge of {view.vm_name} on {view.host} is running…")
        job = ctx.ledger.get(job_id)
        budget = (job.deadline_at - ctx.clock()).total_seconds() if job.deadline_at else 3600
        ctx.ledger.wait(job_id, timeout=max(budget, 0) + 30)
    # The outcome's view is read without the change's events, and only the
    # adopt event tells an adopted change from one asked for: without it the
    # summary says which checkpoint type "was asked" when nothing was.
    view = show_change(ctx, view.ref)
    if as_json:
        echo_json({**view.to_dict(), "merge_job_id": job_id, "merge_error": result.merge_error})
    else:
        rt.out("cli/change_summary.txt.j2", c=view)
        if result.merge_error:
            click.echo(f"  merge not started: {result.merge_error}")
        elif result.merge and result.merge.refused:
            click.echo("  merge refused by the policy: " + "; ".join(result.merge.decision.reasons))
        elif result.merge and result.merge.waiting:
            click.echo(f"  merge waits for approval: checkpoint-bot change approve {view.ref}")
    if result.merge_error or (result.merge and result.merge.refused):
        raise SystemExit(EXIT_FAILED)
