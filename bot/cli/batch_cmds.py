"""Patch waves on the CLI: `checkpoint create` over several VMs (its batch
half lives here) and `checkpoint-bot batch ...` (docs/batches.md)."""

from __future__ import annotations

import click

from bot.changes.batch_views import BatchView
from bot.cli.runtime import Runtime, echo_json, pass_runtime, progress
from bot.service import (
    BatchOutcome,
    Selection,
    create_batch,
    list_batches,
    preview_batch,
    show_batch,
)

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
    return " ".join(words)


def render_batch(rt: Runtime, view: BatchView, *, events: bool) -> None:
    rt.out("cli/batch.txt.j2", b=view, selection=_selection_text(view), events=events)


def _wait_for_members(rt: Runtime, outcome: BatchOutcome) -> BatchView:
    """Run the queue in this process until every member's job has ended."""
    ctx = rt.ctx
    jobs = [o.job_id for o in outcome.outcomes if o.job_id is not None]
    if not jobs:
        return outcome.batch
    ctx.start_workers()
    progress(f"{outcome.batch.ref}: {len(jobs)} checkpoints are being taken…")
    for job_id in jobs:
        job = ctx.ledger.get(job_id)
        budget = (job.deadline_at - ctx.clock()).total_seconds() if job.deadline_at else 3600
        ctx.ledger.wait(job_id, timeout=max(budget, 0) + 30)
    return show_batch(ctx, outcome.batch.ref)


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
) -> None:
    """Preview the wave, ask for confirmation (unless --yes), record it and
    (unless --no-wait) wait for its checkpoints."""
    preview = preview_batch(
        rt.ctx,
        selection,
        requester=rt.principal,
        reason=reason,
        checkpoint_type=ctype,
        ttl=ttl,
    )
    # The preview goes to stderr with --json, so stdout stays one document.
    click.echo(rt.renderer.render("cli/batch_preview.txt.j2", p=preview), nl=False, err=as_json)
    if not preview.takeable:
        raise click.ClickException(
            "every VM of this selection is refused, so nothing was recorded; "
            "`checkpoint-bot policy explain VM create` says why for one VM"
        )
    count = len(preview.takeable)
    if not yes and not click.confirm(
        f"Take {count} checkpoint{'s' if count != 1 else ''}?", default=False, err=True
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
    )
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
    if not no_wait and (view.state.value in _BAD_BATCH_STATES or outcome.not_recorded):
        raise SystemExit(EXIT_REFUSED)


@click.group("batch")
def batch() -> None:
    """Look at patch waves: batches of checkpoints taken together (BAT-n)."""


@batch.command("show")
@click.argument("ref", metavar="BAT-n")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def show_cmd(rt: Runtime, ref: str, as_json: bool) -> None:
    """A batch: its state (derived from its members'), each member's change,
    and the batch's own history."""
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
    views = list_batches(rt.ctx, limit=limit)
    if as_json:
        echo_json({"batches": [v.to_dict() for v in views]})
    else:
        rt.out("cli/batches.txt.j2", batches=views)
