"""The short texts the Slack listeners answer with, in one place.

Each function returns mrkdwn with every user-supplied value escaped; the
listeners render them through a template (so the demo footer and Block Kit
validation apply), never as bare strings. Log texts are here too, in the
Bolt style (`slack_bolt/logger/messages.py`).
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.changes.views import ChangeView
from bot.clock import utc_text
from bot.service import (
    AlreadyStarted,
    Ambiguous,
    ApprovalOutcome,
    BatchWithdrawal,
    Happened,
    Outcome,
    ScheduledRun,
    Stale,
    settled_words,
)
from templates import mrkdwn_escape as esc
from templates.blocks import channel_mention, mention, people, slack_date

# What an approval request is for, in a few words.
REQUEST_WORDS = {
    "create": "checkpoint",
    "rollback": "rollback",
    "merge": "merge",
    "extend": "extension",
}


# The job is recorded (the change moved) but the job queue did not answer:
# the job outbox hands it over when the queue is back (bot.service.dispatch).
QUEUE_DOWN = "{what} will start as soon as the job queue is back; the thread says when it starts."


def _refused_approvers(outcome: Outcome) -> str:
    """The policy's warning that approvers it names may not approve (and,
    when nobody else may, that the request can never be approved):
    the requester is told with the answer, not left waiting. Bot's words
    naming people with the mention helpers: their tokens stay."""
    said = [
        f" :warning: {people(o.message)}; {people(o.remediation)}."
        for o in outcome.decision.fired
        if o.rule == "approvals" and o.effect is not None and o.effect.value == "warn"
    ]
    return "".join(said)


def created(outcome: Outcome, channel: str | None = None) -> tuple[str, str]:
    """`channel`: where its thread is, when the person asked from somewhere
    else (the App Home's form): "its thread" alone would not say where."""
    c = outcome.change
    thread = f"its thread in {channel_mention(channel)}" if channel else "its thread"
    if outcome.waiting:
        tail = f"it waits for approval; approvers are asked in {thread}."
        if c.run_at is not None:
            tail += f" Once approved it runs at {utc_text(c.run_at)}, as you asked."
        tail += _refused_approvers(outcome)
    elif outcome.waits_for_queue:
        tail = f"allowed; {QUEUE_DOWN.format(what='the checkpoint')}"
    elif c.state == "scheduled" and c.run_at is not None:
        # The UTC text becomes a date token: each reader sees their own zone.
        tail = (
            f"it is scheduled for {utc_text(c.run_at)}, as you asked; "
            f"`/checkpoint withdraw {c.ref}` cancels it before then."
        )
    elif c.state == "scheduled":
        tail = "it is scheduled for its change window."
    else:
        tail = f"the checkpoint is being taken; every step is a reply in {thread}."
    return f"{c.ref}: checkpoint of {c.vm_name} requested", (
        f"*{c.ref}* · {esc(c.checkpoint_type)} checkpoint of *{esc(c.vm_name)}* "
        f"on {esc(c.host)}: {tail}"
    )


def acted(verb: str, outcome: Outcome) -> tuple[str, str]:
    c = outcome.change
    if outcome.waiting and outcome.already_asked:
        by = f", asked by {mention(outcome.asked_by)}" if outcome.asked_by else ""
        what = f"its {verb} already waits for approval{by}; nothing new was asked."
    elif outcome.waiting:
        # A wave's member has no thread of its own: its wave's thread pings.
        where = f"the thread of its wave, {c.batch_ref}" if c.batch_ref else "the thread"
        what = f"{verb} waits for approval; approvers are asked in {where}."
        what += _refused_approvers(outcome)
    elif outcome.waits_for_queue:
        what = f"{verb} recorded; {QUEUE_DOWN.format(what=f'the {verb}')}"
    else:
        what = f"{verb} started; the thread shows how it goes."
    return f"{c.ref}: {verb}", f"*{c.ref}* ({esc(c.vm_name)}): {what}"


def starting(c: ChangeView) -> tuple[str, str]:
    return f"{c.ref}: starting {c.vm_name}", (
        f"*{c.ref}*: starting *{esc(c.vm_name)}*; the thread says when it runs."
    )


def already_started(exc: AlreadyStarted) -> tuple[str, str]:
    """A Start someone else's click (or an earlier one) already asked for:
    who, when, and that nothing was done twice."""
    vm, who = esc(exc.vm_name), mention(exc.by)
    when = f" {slack_date(exc.at)}" if exc.at is not None else ""
    if exc.ran:
        now = f"; it is {esc(exc.state)} now" if exc.state else ""
        return f"{exc.ref}: {exc.vm_name} was already started", (
            f"*{exc.ref}*: *{vm}* was already started by {who}{when}{now}. Nothing was done."
        )
    return f"{exc.ref}: {exc.vm_name} is already being started", (
        f"*{exc.ref}*: *{vm}* is already being started, as {who} asked{when}; "
        "nothing was done twice. The thread says when it runs."
    )


def resolved(c: ChangeView) -> tuple[str, str]:
    state = c.state.replace("_", " ")
    return f"{c.ref}: recorded as {state}", f"*{c.ref}* ({esc(c.vm_name)}) is now {state}."


def extended(outcome: Outcome) -> tuple[str, str]:
    c = outcome.change
    if outcome.waiting:
        return f"{c.ref}: extension asked", f"*{c.ref}*: the extension waits for approval."
    until = f"{c.expires_at:%Y-%m-%d %H:%M} UTC" if c.expires_at else "-"
    return f"{c.ref}: extended", f"*{c.ref}* ({esc(c.vm_name)}) now expires {until}."


def approval(result: ApprovalOutcome) -> tuple[str, str]:
    """Names what was approved or rejected: the approver sees which request
    their click, command or App Home button acted on."""
    c = result.change
    what = esc(REQUEST_WORDS.get(result.action, result.action))
    verbs = {
        "pending": f"your approval of the {what} is recorded ({result.approvals} of "
        f"{result.required}); it waits for more",
        "approved": f"you approved the {what}: the {esc(result.action)} goes ahead",
        "refused": f"approved, but the policy refused the {what} on re-check",
        "rejected": f"you rejected the {what}; nothing runs for it",
        "withdrawn": f"you withdrew your {what} request; nothing runs for it",
    }
    titles = {
        "pending": f"{c.ref}: {REQUEST_WORDS.get(result.action, result.action)} approval recorded",
        "approved": f"{c.ref}: {REQUEST_WORDS.get(result.action, result.action)} approved",
        "refused": f"{c.ref}: {REQUEST_WORDS.get(result.action, result.action)} refused",
        "rejected": f"{c.ref}: {REQUEST_WORDS.get(result.action, result.action)} rejected",
        "withdrawn": f"{c.ref}: {REQUEST_WORDS.get(result.action, result.action)} withdrawn",
    }
    if result.state == "approved" and result.waits_for_queue:
        verbs["approved"] = f"approved; {QUEUE_DOWN.format(what=f'the {what}')}"
    elif result.state == "approved" and c.state == "scheduled":
        verbs["approved"] = f"you approved the {what}: {_scheduled_for(result)}"
        titles["approved"] = f"{titles['approved']} and scheduled"
    text = verbs.get(result.state, esc(result.state))
    title = titles.get(result.state, f"{c.ref}: {result.state}")
    return title, f"*{c.ref}* ({esc(c.vm_name)}): {text}."


def _scheduled_for(result: ApprovalOutcome) -> str:
    """When an approved checkpoint that waits runs: at the later of the time
    its requester asked for and its change window's opening, as the job was
    recorded (bot.service.requests.record_create)."""
    c, window = result.change, result.decision.schedule_at if result.decision else None
    asked = c.run_at
    if asked is not None and (window is None or window <= asked):
        return f"it is scheduled for {utc_text(asked)}, the time its requester asked for"
    if window is not None:
        # The UTC text becomes a date token: each reader sees their own zone.
        return f"it is scheduled for its change window, which opens {utc_text(window)}"
    return "it is scheduled for its change window"


def stale(exc: Stale, control: str = "button") -> tuple[str, ...]:
    """A click (or a form submitted: `control` "form") that changed nothing
    because what it was for no longer holds: what it was for, what happened
    since, what waits now."""
    lines = [f"This {control} was for *{esc(exc.was_for)}*"]
    if exc.settled_state is not None:
        # The service's words name whoever settled it with a mention token;
        # a superseded request's reason is the bot's words too.
        lines[0] += f", {people(settled_words(exc.settled_state, exc.settled_by))}"
        if exc.settled_at is not None:
            lines[0] += f" {slack_date(exc.settled_at)}"
        lines[0] += "."
    else:
        lines[0] += f", and {esc(exc.ref)} moved on since the card was drawn."
    if exc.since:
        lines.append(f"Since then: {happened(exc.since, exc.more_since)}.")
    if exc.waiting:
        names = " and ".join(f"*the {esc(w.action)}*" for w in exc.waiting)
        lines.append(f"Waiting now: {names}, with its own Approve / Reject in the thread's card.")
    else:
        lines.append(f"Nothing waits for approval on {exc.ref} now.")
    return (f"{exc.ref}: this {control} is out of date, so nothing was done", *lines)


STALE_HINT = "The change's card in its thread has been brought up to date."


def say_which(exc: Ambiguous, how: str) -> str:
    """`how`: the command to repeat with the request named, e.g.
    `/checkpoint approve CHG-0042`."""
    options = " or ".join(f"`{how} {esc(choice)}`" for choice in exc.choices)
    return f"Say which: {options}."


def happened(since: Sequence[Happened], more: int) -> str:
    """What happened to a change after a card was drawn, each step with who
    and when ("approval by @bob <date> · created by checkpoint-bot <date>")."""
    shown = " · ".join(
        f"{esc(h.kind.replace('_', ' '))} by {mention(h.actor)} {slack_date(h.at)}" for h in since
    )
    return shown + (f" · …and {more} more" if more else "")


def outdated(since: Sequence[Happened], more: int) -> str:
    """The hint under a refused click on an out-of-date message."""
    if not since:
        return "That message was out of date: the change moved on since it was drawn."
    return f"That message was out of date. Since it was drawn: {happened(since, more)}."


NO_WINDOWS = "The policy defines no change windows, so work runs whenever the policy allows it."
NO_WINDOWS_HINT = "Admins add them under `windows:` in the policy file."


def window_line(
    name: str,
    opens: str,
    closes: str,
    scope: str,
    scheduled: int = 0,
    *,
    open_now: bool = False,
    defined: str = "",
) -> str:
    """One window for `/checkpoint windows`: while it is open, "open now until"
    its close (never "opens today" for an opening already under way)."""
    waiting = (
        f" · {scheduled} checkpoint{'s' if scheduled != 1 else ''} scheduled" if scheduled else ""
    )
    when = f"*open now* until {closes}" if open_now else f"opens {opens} · closes {closes}"
    how = f" · {esc(defined)}" if defined else ""
    return f":calendar: *{esc(name)}* · {when} · {esc(scope)}{waiting}{how}"


def wave_withdrawn(out: BatchWithdrawal) -> tuple[str, ...]:
    """A wave its requester took back: which VMs, and any that could not be."""
    b = out.batch
    lines = [f"*{b.ref}*: you withdrew {esc(', '.join(out.withdrawn))}; nothing runs for them."]
    lines += [member_line(vm, why) for vm, why in out.problems]
    return (f"{b.ref}: withdrawn", *lines)


def member_line(vm: str, why: str) -> str:
    """One wave member a wave action could not act on, and why. `why` is the
    service's words (a refusal, "approved by <@U0CAROL> at …"): its mention
    tokens stay so Slack shows the people; everything else is escaped."""
    return f"{esc(vm)}: {people(why)}"


def scheduled_line(t: ScheduledRun) -> str:
    """One change or wave asked for at a time, for `/checkpoint windows`;
    its UTC time becomes a date token in each reader's zone."""
    vms, who = esc(", ".join(t.vms)), mention(t.requester)
    return f":alarm_clock: *{t.ref}* · {vms} · runs {utc_text(t.run_at)} · asked by {who}"


UNEXPECTED = "Something went wrong on our side; nothing was changed that you were not told of."
NO_CHANNEL_FOR_RESULT = "the bot could not tell you in a channel, so it tells you here"


def log_unexpected(what: str) -> str:
    return f"unexpected error while handling {what}"


def foreign_workspace() -> str:
    return (
        "checkpoint-bot works only for the Slack workspace it was set up for, and this "
        "request came from another one: nothing was done."
    )


def foreign_user() -> str:
    return (
        "checkpoint-bot acts only for members of its own workspace; you are here from "
        "another organisation (a shared channel), so nothing was done."
    )


def log_foreign_request(kind: str, team: str | None, user: str | None, why: str) -> str:
    return f"refused a {kind} from team {team or '?'} user {user or '?'}: {why}"


def log_mismatched_value(action_id: str, value: str) -> str:
    return f"refused button {action_id}: its value {value!r} is for another kind of button"


def log_user_lookup_failed(error: str) -> str:
    return f"users.info failed ({error}); the user's team is unknown, so they are refused"


def log_no_workspace() -> str:
    return (
        "auth.test names no team for the bot token: no workspace to serve, every request "
        "is refused (set slack.team_ids)"
    )


def log_retry_dropped(key: str, attempt: str) -> str:
    return f"dropped a retried delivery {key} (retry {attempt}): already handled"


def log_malformed_payload(problem: str) -> str:
    return f"refused a payload not shaped as Slack's: {problem}"


def log_replay_dropped(key: str) -> str:
    return f"dropped a repeated delivery {key}: already taken (a replay?)"


def log_replay_check_failed(error: str) -> str:
    return f"could not check for a repeated delivery ({error}); handling it"
