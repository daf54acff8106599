"""Patch waves on the CLI: `checkpoint create` over several VMs (its batch
half lives here) and `checkpoint-bot batch ...` (docs/batches.md)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import click

from bot.cli.finishing import EXIT_OUTCOME_UNKNOWN
from bot.cli.runtime import Runtime, echo_json, pass_runtime, progress

if TYPE_CHECKING:
    from bot.changes.batch_views import BatchView, MemberView
    from bot.service import AtTime, BatchOutcome, Selection

# The service is imported inside each command, never here: `batch --help`
# and `checkpoint --help` (whose `create` makes waves) load this module and
# must pay for Click and the command definitions only (bench/cli_start.py).

# Exit codes as for every command: 1 refused or failed (main.py). A wave's
# action is judged on the members it acted on, never on the wave's state:
# one member whose create failed last week must not fail today's merge of
# the others (README "Exit codes"). A member whose job this command waited
# for ended interrupted (its host stopped answering mid-call, maybe after
# it did the work) exits 4 (`EXIT_OUTCOME_UNKNOWN`), before any 1: a script
# retrying on 1 would take a second checkpoint; the reconciler settles it.
EXIT_REFUSED = 1
# Where a member stands once its job did what the action asked of it.
GOALS: dict[str, frozenset[str]] = {
    "create": frozenset({"active"}),
    "rollback": frozenset({"rolled_back"}),
    "merge": frozenset({"merged", "vanished"}),
}
# Who runs a job due later, when this command has returned.
_LATER = "a worker ('checkpoint-bot worker' or the bot)"


def _selection_text(b: BatchView) -> str:
    sel = b.selection
    words = [*sel.get("names", [])]
    words += [f"--tag {t}" for t in sel.get("tags", [])]
    words += [f"--group {g}" for g in sel.get("groups", [])]
    words += [f"--host {h}" for h in sel.get("hosts", [])]
    words += [f"--cluster {c}" for c in sel.get("clusters", [])]
    return " ".join(words)


def not_recorded_rows(view: BatchView) -> list[dict[str, str]]:
    """The VMs the wave's create could not record, one {vm, why} each, read
    from its `members_recorded` event as the Slack card reads them
    (templates/waves.py); [] for a view without its events."""
    from templates.waves import not_recorded

    return [{"vm": vm, "why": u.why} for u in not_recorded(view) for vm in u.vms]


def render_batch(rt: Runtime, view: BatchView, *, events: bool, unrecorded: bool = True) -> None:
    """The wave's text: its members, then (unless `unrecorded` is False: the
    create says them in its own words) the VMs it could not record."""
    rows = not_recorded_rows(view) if unrecorded else []
    rt.out(
        "cli/batch.txt.j2",
        b=view,
        selection=_selection_text(view),
        events=events,
        unrecorded=rows,
    )


def due(not_before: datetime | None, now: datetime) -> bool:
    """May a worker run the job now? One due later waits for its member's
    change window (or its --at time): a command never waits for that."""
    return not_before is None or not_before <= now


def fell_short(view: BatchView, goals: Mapping[int, frozenset[str]]) -> list[MemberView]:
    """The members (change id → the states that mean done) whose job this
    command waited for and that did not end where the action meant them to:
    what makes the action fail (exit 1). Members it did not act on, or did
    not wait for, are not judged."""
    return [m for m in view.members if m.change_id in goals and m.state not in goals[m.change_id]]


class Retried(Protocol):
    """What `retry_words` reads of a job row (the ledger's `Job`, which
    entry points do not import)."""

    @property
    def error(self) -> str | None: ...

    @property
    def deadline_at(self) -> datetime | None: ...


def retry_words(member: MemberView, job: Retried) -> str:
    """What a member whose job was put back for a retry waits for: "PW08:
    its re-check could not reach HV02; trying again until 2026-12-06 04:59
    UTC" (the job's last error, its deadline)."""
    from bot.clock import utc_text

    # The job row's error names the exception's type first (describe_error).
    error = (job.error or "").removeprefix("RetryLater: ")
    error = error.removeprefix(f"could not check {member.vm_name}: ")
    if error.startswith(f"{member.host} could not be reached"):
        why = f"its re-check could not reach {member.host}"
    elif error:
        why = f"put back for a retry ({error})"
    else:
        why = "put back for a retry"
    until = f"; trying again until {utc_text(job.deadline_at)}" if job.deadline_at else ""
    return f"{member.vm_name}: {why}{until}"


def not_waited_for(ref: str, later: Iterable[tuple[MemberView, datetime]]) -> str:
    """ "BAT-0001: not waiting for APP01 (runs 2026-12-06 03:00 UTC, its
    change window): a worker … takes it then"; "" when every job ran now."""
    from bot.clock import utc_text

    said = [
        f"{m.vm_name} (runs {utc_text(at)}, "
        f"{'as asked, --at' if m.run_asked else 'its change window'})"
        for m, at in later
    ]
    if not said:
        return ""
    each = "it" if len(said) == 1 else "each"
    return f"{ref}: not waiting for {', '.join(said)}: {_LATER} takes {each} then"


@dataclass(frozen=True)
class Waited:
    """The wave after a command ran the jobs due now: `ran` maps each
    member whose job it waited for (change id) to the action's goal;
    `interrupted`, those of them whose job ended interrupted (its outcome
    unknown: never short of its goal, never failed)."""

    view: BatchView
    ran: dict[int, frozenset[str]]
    interrupted: frozenset[int] = frozenset()

    @property
    def short(self) -> list[MemberView]:
        return [m for m in fell_short(self.view, self.ran) if m.change_id not in self.interrupted]

    @property
    def unknown(self) -> list[MemberView]:
        """The members whose outcome this command cannot tell: exit 4."""
        return [m for m in self.view.members if m.change_id in self.interrupted]


def interrupted_words(rt: Runtime, m: MemberView) -> str:
    """What became of a member whose job ended interrupted, and who settles
    it, in the words a single change's summary uses (its `next:` and
    `settle:` lines, templates/cli/change_summary.txt.j2)."""
    head = f"{m.vm_name} ({m.change}) was interrupted"
    show = f"'checkpoint-bot change show {m.change}' says how it ended"
    if m.state != "interrupted":
        # A reconciler (a bot's, a worker's) settled it while this waited.
        state = m.state.replace("_", " ")
        return f"{head}: its outcome was unknown until the reconciler found it {state}; {show}"
    from bot.service import show_change

    choices = show_change(rt.ctx, m.change).resolutions
    if choices:
        return (
            f"{head}: its outcome is unknown and {m.host} cannot tell how it ended; do not run "
            f"it again: the requester or an admin runs 'checkpoint-bot change resolve "
            f"{m.change} {'|'.join(choices)}'"
        )
    return (
        f"{head}: its outcome is unknown; the reconciler asks {m.host} how it ended on its "
        "next pass (each tick of a running bot or worker, or 'checkpoint-bot reconcile' "
        f"now); do not run it again: {show}"
    )


def say_unknown(rt: Runtime, waited: Waited, *, as_json: bool) -> bool:
    """Name each member whose outcome is unknown (on stderr with --json, so
    stdout stays one document); whether there was one (exit 4)."""
    for m in waited.unknown:
        click.echo(f"  ? {interrupted_words(rt, m)}", err=as_json)
    return bool(waited.unknown)


def _wait_for_members(rt: Runtime, outcome: BatchOutcome) -> Waited:
    """Run the queue in this process until every member's job due now has
    ended; a member that waits for its change window is left to a worker."""
    jobs = {o.job_id: "create" for o in outcome.outcomes if o.job_id is not None}
    return _wait_jobs(rt, outcome.batch, jobs, "")


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
    from bot.service import create_batch, nothing_takeable, preview_batch

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
        # Refused: exit 1; a host that did not answer: exit 3, an outage (main.py).
        raise nothing_takeable(preview, "`checkpoint-bot policy explain VM create` says why")
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
    waited = Waited(outcome.batch, {}) if no_wait else _wait_for_members(rt, outcome)
    view = waited.view
    if as_json:
        echo_json(
            {
                **view.to_dict(),
                "preview": outcome.preview.to_dict(),
                "not_recorded": dict(outcome.not_recorded),
                "outcome_unknown": [m.change for m in waited.unknown],
            }
        )
    else:
        render_batch(rt, view, events=False, unrecorded=False)
        for vm, why in outcome.not_recorded:
            click.echo(f"  ! {vm} could not be recorded: {why}")
    short = outcome.fell_short(view) if not no_wait else ()
    for m in short:
        click.echo(f"  ! {fell_short_words(m)}", err=as_json)
    refused_vms = [c.vm for c in outcome.preview.refused]
    if refused_vms:
        # Said last, on stderr (stdout stays the wave, or its one JSON
        # document): why this command exits 1 though the others were taken.
        progress(refused_line(view.ref, refused_vms))
    # A refused member fails the command however long it waited: a script's
    # `create --yes && patch` must not patch a VM that has no checkpoint.
    if say_unknown(rt, waited, as_json=as_json):
        raise SystemExit(EXIT_OUTCOME_UNKNOWN)
    # A VM the wave could not record has no checkpoint either, waited or not.
    if refused_vms or outcome.not_recorded or (not no_wait and (short or waited.short)):
        raise SystemExit(EXIT_REFUSED)


def fell_short_words(m: MemberView) -> str:
    """ "LAB-DC01 (CHG-0008) passed the preview, then failed: <why>": a
    member the person confirmed that was not taken (its job's re-check
    refused it, or the host failed it), on one line."""
    from bot.reasons import one_line

    ended = "was refused" if m.state == "denied" else m.state.replace("_", " ")
    why = f": {one_line(m.note)}" if m.note else ""
    return f"{m.vm_name} ({m.change}) passed the preview, then {ended}{why}"


def refused_line(ref: str, vms: list[str]) -> str:
    """ "BAT-0001: 1 VM refused (SQL01): it has no checkpoint from this wave;
    …": the members the policy refused when the wave was recorded."""
    from templates import counted

    they = "it has" if len(vms) == 1 else "they have"
    return (
        f"{ref}: {counted(len(vms), 'VM')} refused ({', '.join(vms)}): {they} no checkpoint "
        "from this wave; `checkpoint-bot policy explain VM create` says why"
    )


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
        echo_json({**view.to_dict(), "not_recorded": not_recorded_rows(view)})
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
    # What each wave's create could not record, from its events.
    missing = {v.ref: not_recorded_rows(v) for v in views}
    if as_json:
        echo_json({"batches": [{**v.to_dict(), "not_recorded": missing[v.ref]} for v in views]})
    else:
        counts = {ref: len(rows) for ref, rows in missing.items()}
        rt.out("cli/batches.txt.j2", batches=views, not_recorded=counts)


def _wait_jobs(
    rt: Runtime, wave: BatchView, jobs: Mapping[int, str], what: str, *, asked: bool = True
) -> Waited:
    """Run the queue here until every job (id → the action it carries out)
    of the wave's run has ended, polling them all together and saying how
    far the wave is each time any member ends ("BAT-0001: 7 of 9 done, 1
    failed"). A job due later because its member is scheduled (its change
    window, or --at) is said and left to the workers; a job put back for a
    retry (a re-check that could not reach its host) is part of the run and
    waited for, up to the latest deadline of the jobs waited for: one still
    not ended then is said, with why, and counts as not done. A job that
    ended interrupted is its member's outcome unknown (`Waited.interrupted`),
    never a failure.

    Each member waited for is named by a Ctrl-C, and its job, while no
    process has taken it (a retry waiting for its host included), is taken
    back when this command `asked` for it (not when it only approved
    another person's: `batch approve`), as for one change (docs/batches.md).
    A retry is said as it is put back, so a wave waiting on a host that
    does not answer says so rather than sitting silent until its deadline."""
    import time

    from bot.service import show_batch
    from templates import counted

    ctx = rt.ctx
    ref, now = wave.ref, ctx.clock()
    members = {m.change_id: m for m in wave.members}
    known = ctx.ledger.get_many(jobs)
    found = [known[job_id] if job_id in known else ctx.ledger.get(job_id) for job_id in jobs]

    # Left to the workers: a job that never ran and is due later (its
    # member's change window, or --at). One that ran and was put back for a
    # retry is due later too, but is part of this run: waited for.
    left = {j.id for j in found if j.attempt == 0 and not due(j.not_before, now)}
    later = [
        (members[j.change_id], j.not_before)
        for j in found
        if j.id in left
        and j.change_id is not None
        and j.change_id in members
        and j.not_before is not None
    ]
    running = [j for j in found if j.id not in left]
    for j in running:
        if j.change_id in members:
            member_ref = members[j.change_id].change
            rt.said_changes.append(member_ref)
            if asked:
                rt.asked_changes.append(member_ref)
    if running:
        ctx.start_workers()
        n = len(running)
        if what:
            progress(f"{ref}: {what} of {counted(n, 'VM')} is running…")
        else:
            progress(f"{ref}: {counted(n, 'checkpoint')} {'is' if n == 1 else 'are'} being taken…")
    if said := not_waited_for(ref, later):
        progress(said)
    # The command's own bound: the latest deadline of what it waits for,
    # and half a minute for the job's own end to be written.
    budgets = [(j.deadline_at - now).total_seconds() for j in running if j.deadline_at]
    give_up = time.monotonic() + max([*budgets, 0.0] if budgets else [3600.0]) + 30
    open_ids = {j.id for j in running if j.id is not None and j.finished_at is None}
    told = ""
    retries: dict[int, str] = {}  # job id -> the retry last said of it
    while open_ids and time.monotonic() < give_up:
        time.sleep(_POLL)
        # One read of every job still open, not one per job.
        now_jobs = ctx.ledger.get_many(open_ids)
        for job_id, job in now_jobs.items():
            member = members.get(job.change_id) if job.change_id is not None else None
            if member is None or job.state != "queued" or job.attempt == 0 or not job.error:
                continue
            said = retry_words(member, job)
            if retries.get(job_id) != said:
                retries[job_id] = said
                stop = "withdraws it" if asked else "leaves it queued"
                progress(f"{ref}: {said} (Ctrl-C stops waiting and {stop})")
        ended = {i for i in open_ids if i in now_jobs and now_jobs[i].finished_at is not None}
        if not ended:
            continue
        open_ids -= ended
        if (now_said := show_batch(ctx, ref).progress) != told:
            progress(f"{ref}: {now_said}")
            told = now_said
    if running and not told:
        progress(f"{ref}: {show_batch(ctx, ref).progress}")
    for job_id in sorted(open_ids):
        job = ctx.ledger.get(job_id)
        member = members.get(job.change_id) if job.change_id is not None else None
        if member is not None:
            progress(f"{ref}: stopped waiting for {retry_words(member, job)}")
    ran = {
        j.change_id: GOALS[jobs[j.id]]
        for j in running
        if j.id is not None and j.change_id is not None and jobs[j.id] in GOALS
    }
    view = show_batch(ctx, ref) if running else wave
    # Whose job ended interrupted (the ledger keeps it so once the
    # reconciler settled its change), or whose change is interrupted now.
    over = ctx.ledger.get_many(
        j.id for j in running if j.id is not None and j.id not in open_ids
    ).values()
    interrupted = {j.change_id for j in over if j.state == "interrupted"}
    interrupted |= {
        m.change_id for m in view.members if m.change_id in ran and m.state == "interrupted"
    }
    return Waited(view, ran, frozenset(i for i in interrupted if i is not None))


# How often the wave's unfinished jobs are read while it waits (seconds).
_POLL = 0.2


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
    from templates import counted

    vms = counted(len(members), "VM")
    if action == "rollback":
        # "restores 1 VM to its checkpoint", "restores 3 VMs to their checkpoints"
        theirs = "its checkpoint" if len(members) == 1 else "their checkpoints"
        lines = [f"{view.ref}: rolling back restores {vms} to {theirs}:"]
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


def _batch_action(
    rt: Runtime, ref: str, action: str, *, yes: bool, no_wait: bool, as_json: bool
) -> None:
    from bot.service import merge_batch, rollback_batch

    _confirm_loss(rt, ref, action, yes, as_json)
    call = rollback_batch if action == "rollback" else merge_batch
    result = call(rt.ctx, ref, requester=rt.principal)
    waited = Waited(result.batch, {})
    if not no_wait and result.job_ids:
        waited = _wait_jobs(rt, result.batch, dict.fromkeys(result.job_ids, action), action)
    view = waited.view
    if as_json:
        echo_json(
            {
                **view.to_dict(),
                "action": action,
                "decision": result.decision.to_dict(),
                # True: it waited for this approval already; nobody was asked again.
                "already_asked": result.already_asked,
                "members_acted": [
                    {"change": m.change, "vm": m.vm, "result": m.result.value, "detail": m.detail}
                    for m in result.members
                ],
                "outcome_unknown": [m.change for m in waited.unknown],
            }
        )
    else:
        d = result.decision
        if d.verdict.value == "deny":
            click.echo(f"{view.ref}: {action} REFUSED — nothing was started")
            for reason in d.reasons:
                click.echo(f"  ✗ {reason}")
        elif d.verdict.value == "needs_approval" and d.approval is not None:
            if result.already_asked:
                # Asked before: its approvers were told then, not again now.
                from bot.domain import user_mention

                by = ", ".join(user_mention(p) for p in result.asked_by) or "someone"
                click.echo(
                    f"{view.ref}: {action} already WAITING FOR APPROVAL, asked by {by}; "
                    "nothing new was asked"
                )
            else:
                click.echo(
                    f"{view.ref}: {action} WAITING FOR APPROVAL — needs {d.approval.describe()} "
                    "(what its strictest member needs)"
                )
            click.echo(f"An approver runs: checkpoint-bot batch approve {view.ref}")
        render_batch(rt, view, events=False)
        for m in result.members:
            if m.result.value == "not_started":
                click.echo(f"  ! {m.vm} ({m.change}) was not started: {m.detail}")
    if say_unknown(rt, waited, as_json=as_json):
        raise SystemExit(EXIT_OUTCOME_UNKNOWN)
    not_started = any(m.result.value == "not_started" for m in result.members)
    if result.refused or not_started or waited.short:
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
    waited = Waited(result.batch, {})
    if not no_wait and result.job_ids:
        jobs = {o.job_id: o.action for o in result.outcomes if o.job_id is not None}
        waited = _wait_jobs(rt, result.batch, jobs, "the approved work", asked=False)
    view = waited.view
    if as_json:
        echo_json(
            {
                **view.to_dict(),
                "approved": [o.change.ref for o in result.outcomes],
                "problems": dict(result.problems),
                "outcome_unknown": [m.change for m in waited.unknown],
            }
        )
    else:
        render_batch(rt, view, events=False)
        for vm, why in result.problems:
            click.echo(f"  ! {vm}: {why}")
    # Judged on the members it approved: one whose approved work was
    # interrupted (4), one the policy refused when asked again, or whose
    # approved work failed (1; not on the wave's earlier past).
    if say_unknown(rt, waited, as_json=as_json):
        raise SystemExit(EXIT_OUTCOME_UNKNOWN)
    refused = any(o.state.value == "refused" for o in result.outcomes)
    if result.problems or refused or waited.short:
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
