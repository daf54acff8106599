"""`checkpoint-bot outbox`: what waits to be handed over after a commit,
jobs the queue has not taken and Slack threads behind their record
(docs/operations-failures.md)."""

from __future__ import annotations

import click

from bot.cli.runtime import Runtime, echo_json, pass_runtime

# The service is imported inside the command, never here: `outbox
# --help` loads this module and pays for Click and the command definition
# only (bench/cli_start.py).


@click.command("outbox")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def outbox(rt: Runtime, as_json: bool) -> None:
    """Show the job outbox (jobs recorded but not yet handed to the queue)
    and the Slack outbox (changes whose thread is behind their record).
    Every bot and worker process empties both on its own; this only looks."""
    from bot.service import outbox_status

    status = outbox_status(rt.ctx)
    if as_json:
        echo_json(status.to_dict())
        return
    jobs = status.undelivered_jobs
    click.echo(f"jobs waiting for the queue: {len(jobs)}")
    for job in jobs:
        click.echo(
            f"  job {job['job']}  {job['kind']:<8} {job['change'] or '-'}  "
            f"recorded {job['recorded_at']}"
        )
    too_late = (
        f"; {status.slack_too_late} of them settled more than a day ago and will get no "
        "thread (docs/operations-failures.md)"
        if status.slack_too_late
        else ""
    )
    click.echo(
        f"Slack threads behind their record: {status.slack_changes} "
        f"({status.slack_entries} entries){too_late}"
    )
    for entry in status.slack_retrying:
        click.echo(
            f"  {entry['change']}  tried {entry['attempts']}x, next {entry['next_try']}: "
            f"{entry['error']}"
        )
