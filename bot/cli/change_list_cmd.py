"""`checkpoint-bot change list`: the open changes (or those asked for),
newest first, one line each."""

from __future__ import annotations

import click

from bot.changes import State
from bot.cli.runtime import Runtime, echo_json, pass_runtime


@click.command("list")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice([s.value for s in State]),
    help="Only changes in this state (repeatable). Default: every open one.",
)
@click.option("--all", "every", is_flag=True, help="Every change, settled ones too.")
@click.option("--vm", help="Only this VM's (its name as recorded, any case, or its VM id).")
@click.option("--requester", help="Only this requester's (U0123ABCD, <@U0123ABCD>, cli:NAME).")
@click.option("--mine", is_flag=True, help="Only yours (as this CLI names you: cli:NAME).")
@click.option(
    "--overdue",
    is_flag=True,
    help="Only those holding a checkpoint past its lifetime, undecided "
    "(not the state 'expired': a job that could not start in time).",
)
@click.option("--limit", default=50, show_default=True, help="How many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def list_cmd(
    rt: Runtime,
    states: tuple[str, ...],
    every: bool,
    vm: str | None,
    requester: str | None,
    mine: bool,
    overdue: bool,
    limit: int,
    as_json: bool,
) -> None:
    """The open changes, newest first: state, VM, requester, what each waits
    for, and whether its checkpoint's lifetime is over (--state, --all,
    --vm, --requester, --mine or --overdue for others)."""
    from bot.service import list_changes

    if mine and requester is not None:
        raise click.UsageError("--mine and --requester both name a requester: give one")
    if every and states:
        raise click.UsageError("--all and --state both say which states: give one")
    listing = list_changes(
        rt.ctx,
        states=states,
        every=every,
        vm=vm,
        requester=rt.principal.id if mine else requester,
        limit=limit,
        overdue_only=overdue,
    )
    if as_json:
        echo_json(listing.to_dict())
        return
    narrowed = bool(states or every or vm or requester or mine or overdue)
    rt.out(
        "cli/changes.txt.j2",
        listing=listing,
        now=rt.ctx.clock(),
        open_only=not (states or every),
        narrowed=narrowed,
        limit=limit,
    )
