"""Start the VM a rollback left Off or Saved (the card's **Start <VM>**, `checkpoint
start`): once, whoever clicks.

Two people clicking the same Start at the same moment both reach the ledger
with the same idempotency key (the change and the version their card
showed), so only one job is recorded; each click also carries a token of
its own in the job's payload, so the click whose token is not the job's
learns that someone else's start is the one that runs, and who it was.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from bot.changes.views import ChangeView, EventView
from bot.clock import utc_text
from bot.domain import user_mention
from bot.hyperv import HyperVError
from bot.jobs import JobKind
from bot.service.deciding import Principal, as_principal
from bot.service.errors import Conflict, Forbidden, from_host
from bot.service.finding import find_change
from bot.service.requests import _change_named, view
from bot.service.showing import show_change
from bot.service.vm_target import vm_of_change
from policies import Permission, authorize

if TYPE_CHECKING:
    from bot.service.deps import ServiceDeps


@dataclass(frozen=True)
class StartOutcome:
    """A Start-VM asked for after a rollback left the VM off: the job runs it."""

    change: ChangeView
    job_id: int


class AlreadyStarted(Conflict):
    """Someone's start of the VM is already under way (`ran` False) or done
    (`ran` True): nothing was done twice. `by` is whoever asked for it (a
    Slack id or `cli:NAME`), so each surface can name them its own way;
    `message` names them with a mention token (the CLI shows an @name)."""

    names_people = True

    def __init__(
        self, change: ChangeView, *, by: str, at: datetime | None, ran: bool, state: str | None
    ) -> None:
        self.ref = change.ref
        self.vm_name = change.vm_name
        self.by = by
        self.at = at
        self.ran = ran
        self.state = state
        when = f" at {utc_text(at)}" if at is not None else ""
        if ran:
            now = f"; it is {state}" if state else ""
            said = f"nothing to start: {self.vm_name} was already started by "
            said += f"{user_mention(by)}{when}{now}"
        else:
            said = f"{self.vm_name} is already being started, as {user_mention(by)} asked{when}; "
            said += "nothing was done twice"
        super().__init__(f"{self.ref}: {said}")


def start_vm(ctx: ServiceDeps, ref: str, *, requester: str | Principal) -> StartOutcome:
    """Start the VM a rollback left Off or Saved (`ref`: `CHG-n`, its
    checkpoint's Id, or the VM's name for its one rolled-back change).
    Whoever may roll the VM back may start it again; nothing else is
    allowed to. A start someone else asked for first is AlreadyStarted."""
    who = as_principal(requester)
    change_id = find_change(ctx, _change_named(ctx, ref, "start"), verb="start")
    current = view(ctx, change_id)
    if not current.needs_start:
        started = _started_since_rollback(show_change(ctx, current.ref))
        if started is not None:
            raise AlreadyStarted(
                current,
                by=started.actor,
                at=started.at,
                ran=True,
                state=current.vm_state_after,
            )
        left = current.vm_state_after
        if current.state == "rolled_back" and left is None:
            # Settled by hand (`change resolve CHG-n rolled_back` after an
            # interrupted restore): the record never learnt the VM's state,
            # so the host is asked rather than refusing a VM left off.
            left = _state_on_host(ctx, current)
            if left not in _STARTABLE:
                raise Conflict(f"{current.ref}: nothing to start: {current.vm_name} is {left}")
        else:
            raise Conflict(
                f"{current.ref}: nothing to start"
                + (f" ({current.vm_name} is {left} after its rollback)" if left else "")
                + "; Start is offered only after a rollback leaves the VM off or saved"
            )
    vm = vm_of_change(ctx, current, "start")
    permitted = authorize(
        ctx.policy,
        Permission.ROLLBACK,
        ctx.decider.inventory_facts(vm),
        who.id,
        who.groups,
        who.channel,
    )
    if permitted.fired:
        raise Forbidden(f"you cannot start {vm.name}: {permitted.message}")
    # The key makes every click on this version one job; the token tells
    # this click whether that job is its own.
    click = secrets.token_hex(8)
    job_id = ctx.submit(
        JobKind.START,
        change_id,
        key=f"start:{change_id}:{current.version}",
        payload={"by": who.id, "by_team": who.team, "click": click},
    )
    job = ctx.ledger.get(job_id)
    if job.payload.get("click") != click:
        raise AlreadyStarted(
            current, by=str(job.payload.get("by") or "?"), at=job.created_at, ran=False, state=None
        )
    return StartOutcome(current, job_id)


_STARTABLE = ("Off", "Saved")


def _state_on_host(ctx: ServiceDeps, change: ChangeView) -> str:
    """The VM's state as its host reports it now (read-only)."""
    try:
        return ctx.host_for(change.host).get_vm(change.vm_id).state.name
    except HyperVError as exc:
        raise from_host(exc) from None


def _started_since_rollback(change: ChangeView) -> EventView | None:
    """The `started` step after the change's last rollback, if any."""
    for e in reversed(change.events):
        if e.kind == "started":
            return e
        if e.to_state == "rolled_back":
            return None
    return None
