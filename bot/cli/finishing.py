"""One checkpoint, rollback, merge or listing asked for by a CLI user, from
the request to what the terminal shows: the same code whether the command
runs in the CLI's process or a running bot answers it (bot.cli.local_socket).

The terminal is passed in: the CLI's writes to stdout and stderr, the bot's
writes lines to the socket.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from bot.changes import State

if TYPE_CHECKING:
    from bot.changes.views import ChangeView
    from bot.cli.local_socket import Request
    from bot.context import AppContext
    from bot.service import Conflict, Outcome, Principal

# Exit codes: 0 done, 1 refused or failed, 2 bad input, 3 unreachable, 4
# interrupted (bot.cli.main's EPILOG, README "Exit codes").
EXIT_REFUSED = 1
# The change was interrupted while this command waited: the host may have
# done it (seen: a checkpoint taken, then the connection reset before the
# answer), so neither 1 nor 3, on which a script may run it again and take
# a second checkpoint. The reconciler settles it; never run it again.
EXIT_OUTCOME_UNKNOWN = 4
# How a CLI user looks at what a command cut off part-way recorded.
CLI_LOOK = "checkpoint-bot change list"


def outage_exit(said: str) -> int:
    """3 only when nothing was recorded, as the README's exit codes promise
    ("nothing was decided or recorded: try again"): a script that runs a
    create again on 3 must not take a second checkpoint. Once something was
    recorded its outcome is unknown: 4, as for a host that stopped
    answering mid-call."""
    from bot.service import DATABASE_DOWN

    return 3 if said == DATABASE_DOWN else EXIT_OUTCOME_UNKNOWN


BAD_ENDS = frozenset({State.FAILED.value, State.INTERRUPTED.value, State.DENIED.value})
ACTIONS = {"create": "checkpoint", "rollback": "rollback", "merge": "merge"}


class Terminal(Protocol):
    def progress(self, message: str, ref: str = "") -> None:
        """A line for stderr: what is happening while the user waits."""

    def out(self, template: str, **values: Any) -> None:
        """The answer, rendered from a template, for stdout."""

    def json(self, data: Any) -> None:
        """The answer as JSON, for stdout."""


# Waits for a job: (job id, ref) -> (it succeeded, the change as it ended).
Waiter = Callable[[int, str], tuple[bool, "ChangeView"]]


def json_text(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"


# How the service says a change is already creating, merging or rolling
# back (bot.service.errors.not_now): Slack's words, whose thread a terminal
# does not have.
IN_THE_THREAD = "; the thread shows how it goes"


def in_terminal_words(exc: Conflict) -> Conflict:
    """`exc`, or, when it points at the Slack thread, the same refusal
    pointing at `change show` (which is what the terminal has); one that
    names what to type, with the terminal's commands."""
    from bot.service import Conflict, MergeBlocked

    if isinstance(exc, MergeBlocked):
        return Conflict(exc.words(cli=True))
    if not exc.message.endswith(IN_THE_THREAD):
        return exc
    ref = exc.message.split(" ", 1)[0]
    said = exc.message.removesuffix(IN_THE_THREAD)
    return Conflict(f"{said}; 'checkpoint-bot change show {ref}' shows how it goes")


def running_line(view: ChangeView, action: str, host: str | None = None) -> str:
    """`host`: the node the VM was found on since the change last saw it
    (the job follows it there), when that is known."""
    return f"{view.ref}: {action} of {view.vm_name} on {host or view.host} is running…"


def found_elsewhere(ctx: AppContext, view: ChangeView) -> str | None:
    """The node the VM was last found on (the request's decision has just
    looked for it) when that is not the one its change names: a live
    migration since the change last saw it, which the job follows."""
    from bot.service import last_seen_on

    seen = last_seen_on(ctx.engine, view.vm_id)
    if seen is None or seen.casefold() == view.host.casefold():
        return None
    return seen


def moved_line(view: ChangeView, now_on: str, action: str) -> str:
    """Said before the job runs when its VM was found on another node
    (`found_elsewhere`) than the one its change names."""
    return (
        f"{view.ref}: {view.vm_name} is now on {now_on} (its change last saw it on "
        f"{view.host}); the {action} follows it there"
    )


def moves_since(asked: ChangeView, after: ChangeView) -> list[tuple[str, str]]:
    """The moves the job recorded while it ran (it followed the VM to
    another node), each as (the node it went to, what the record says): the
    `moved` events after the one that put the change in the state it was
    asked into (`asked`: the request's answer, which carries no events)."""
    began = max((e.seq for e in after.events if e.to_state == asked.state), default=None)
    if began is None:
        return []
    return [
        (str(e.details.get("to") or ""), e.message)
        for e in after.events
        if e.kind == "moved" and e.seq > began
    ]


def interrupted_since(asked: ChangeView, after: ChangeView) -> bool:
    """Whether the change was interrupted after the state it was asked into
    (`asked`, as `moves_since` reads it): the outcome of the job this
    command waited for is unknown, even if a reconciler already settled it
    by the time the change was read back."""
    if after.state == State.INTERRUPTED.value:
        return True
    began = max((e.seq for e in after.events if e.to_state == asked.state), default=None)
    return began is not None and any(
        e.to_state == State.INTERRUPTED.value and e.seq > began for e in after.events
    )


def wait_for_job(ctx: AppContext, job_id: int, ref: str) -> tuple[bool, ChangeView]:
    """Until the job ends (within its deadline and 30 s), then the change."""
    from bot.service import show_change

    job = ctx.ledger.get(job_id)
    budget = (job.deadline_at - ctx.clock()).total_seconds() if job.deadline_at else 3600
    # Polled every 10 ms, not the ledger's default 50: the job ends in a
    # few hundred ms; each look is one indexed read (bench/op_latency.py
    # times the command to its exit).
    job = ctx.ledger.wait(job_id, timeout=max(budget, 0) + 30, poll=0.01)
    return job.state == "succeeded", show_change(ctx, ref)


def run_request(ctx: AppContext, request: Request, term: Terminal, wait_for: Waiter) -> int:
    """Do what the request asks and show it; the exit code."""
    if request.op == "list":
        # Before the imports below: a listing loads neither the request
        # path nor the policy (bench/cli_start.py).
        return show_listing(ctx, request, term)
    from bot.service import Conflict, Principal

    assert request.target is not None  # Request.from_line: every other op has one
    principal = Principal(f"cli:{request.user}")
    try:
        outcome = _ask(ctx, request, principal, term)
    except Conflict as exc:
        raise in_terminal_words(exc) from None
    # A create's change is made where its VM was found; a rollback's or a
    # merge's names where the VM was when it was taken.
    elsewhere = None if request.op == "create" else found_elsewhere(ctx, outcome.change)
    return finish(
        term,
        wait_for,
        outcome,
        ACTIONS[request.op],
        wait=not request.no_wait,
        as_json=request.as_json,
        now_on=elsewhere,
        cli_approves=cli_may_approve(ctx),
    )


def cli_may_approve(ctx: AppContext) -> bool:
    """Whether the policy lets a CLI operator approve (`permissions.approve.
    cli`): else "an approver runs `change approve`" names a command the
    policy refuses, and the approver is told to use Slack instead."""
    from policies import Permission

    return bool(ctx.policy.permission(Permission.APPROVE).cli)


def _ask(ctx: AppContext, request: Request, principal: Principal, term: Terminal) -> Outcome:
    """The service's answer to a create, rollback or merge."""
    from bot.service import merge, request_checkpoint, rollback

    assert request.target is not None  # as run_request checked
    if request.op == "create":
        at = None
        if request.at is not None:
            from zoneinfo import ZoneInfo

            from bot.service import parse_at

            zone = ZoneInfo(ctx.settings.defaults.timezone)
            at = parse_at(request.at, zone, source="configured")
            term.progress(f"--at {request.at.strip()!r} is {at.said}")
        return request_checkpoint(
            ctx,
            request.target,
            reason=request.reason,
            requester=principal,
            checkpoint_type=request.checkpoint_type,
            ttl=request.ttl,
            source="cli",
            at=at,
        )
    if request.op == "rollback":
        return rollback(ctx, request.target, requester=principal)
    return merge(ctx, request.target, requester=principal)


def show_listing(ctx: AppContext, request: Request, term: Terminal) -> int:
    """Every checkpoint on the hosts (or one VM's, one host's)."""
    from bot.service import Unavailable, list_checkpoints

    listing = list_checkpoints(ctx, vm=request.vm, host=request.host, target=request.target)
    if request.as_json:
        term.json(listing.to_dict())
    else:
        scope = request.target or request.vm or request.host
        term.out("cli/checkpoints.txt.j2", listing=listing, scope=scope)
    if listing.problems:
        # A host that could not be asked is not a host without checkpoints.
        # Each as its line above said it (seen: "could not be logged in
        # to" above "HV02 could not be reached: the list is incomplete").
        said = listing.problems_said()
        if listing.none_answered:
            # Nothing was listed, so there is no list to call incomplete.
            raise Unavailable(f"{said}: no host answered, so no checkpoint could be listed")
        raise Unavailable(f"{said}: the list is incomplete")
    return 0


def finish(
    term: Terminal,
    wait_for: Waiter,
    outcome: Outcome,
    action: str,
    *,
    wait: bool,
    as_json: bool,
    now_on: str | None = None,
    cli_approves: bool = True,
) -> int:
    """Wait for the job (unless told not to), show the change; the exit code.
    `now_on`: the node the VM was found on when that is not the one its
    change names (`found_elsewhere`): said, and named where the change is."""
    from bot.service import Outcome

    view, ended_badly, waited, unknown = outcome.change, outcome.refused, False, False
    asked = view
    if now_on is not None and not as_json:
        term.progress(moved_line(view, now_on, action), view.ref)
        # What is shown before the job runs names the node it runs on; the
        # record follows when the job does (a `moved` event).
        view = replace(view, host=now_on)
    if view.state == State.SCHEDULED.value:
        # It runs at its time (or window), not while this command waits.
        wait = False
    if outcome.waits_for_queue:
        # Recorded, not lost: waiting here would only wait for the queue.
        term.progress(
            f"{view.ref}: the job queue did not answer; the {action} is recorded and "
            "starts as soon as the queue is back (`checkpoint-bot outbox` shows it)",
            view.ref,
        )
        wait = False
    if outcome.job_id is not None and wait:
        term.progress(running_line(view, action), view.ref)
        succeeded, view = wait_for(outcome.job_id, view.ref)
        waited = True
        ended_badly = not succeeded or view.state in BAD_ENDS
        unknown = interrupted_since(asked, view)
        for to, message in moves_since(asked, view):
            if not as_json and (now_on is None or to.casefold() != now_on.casefold()):
                # The VM moved while the job ran, and the job followed it.
                term.progress(f"{view.ref}: {message}", view.ref)
    if as_json:
        term.json(
            {
                **view.to_dict(),
                "decision": outcome.decision.to_dict(),
                "job_id": outcome.job_id,
                "waits_for_queue": outcome.waits_for_queue,
            }
        )
    else:
        term.out(
            "cli/outcome.txt.j2",
            outcome=Outcome(
                view, outcome.decision, outcome.job_id, waits_for_queue=outcome.waits_for_queue
            ),
            action=action,
            waited=waited,
            c=view,
            cli_approves=cli_approves,
        )
    if unknown:
        # The summary above already says who finds out how it ended (its
        # `next:` line): the code alone tells a script not to run it again.
        return EXIT_OUTCOME_UNKNOWN
    return EXIT_REFUSED if ended_badly else 0
