"""The short texts the Slack listeners answer with, in one place.

Each function returns mrkdwn with every user-supplied value escaped; the
listeners render them through a template (so the demo footer and Block Kit
validation apply), never as bare strings. Log texts are here too, in the
Bolt style (`slack_bolt/logger/messages.py`).
"""

from __future__ import annotations

from bot.service import ApprovalOutcome, Outcome
from bot.service.views import ChangeView
from templates import mrkdwn_escape as esc


def created(outcome: Outcome) -> tuple[str, str]:
    c = outcome.change
    if outcome.waiting:
        tail = "it waits for approval; approvers are asked in its thread."
    elif c.state == "scheduled":
        tail = "it is scheduled for its change window."
    else:
        tail = "the checkpoint is being taken; every step is a reply in its thread."
    return f"{c.ref}: checkpoint of {c.vm_name} requested", (
        f"*{c.ref}* · {esc(c.checkpoint_type)} checkpoint of *{esc(c.vm_name)}* "
        f"on {esc(c.host)}: {tail}"
    )


def acted(verb: str, outcome: Outcome) -> tuple[str, str]:
    c = outcome.change
    if outcome.waiting:
        what = f"{verb} waits for approval; approvers are asked in the thread."
    else:
        what = f"{verb} started; the thread shows how it goes."
    return f"{c.ref}: {verb}", f"*{c.ref}* ({esc(c.vm_name)}): {what}"


def starting(c: ChangeView) -> tuple[str, str]:
    return f"{c.ref}: starting {c.vm_name}", (
        f"*{c.ref}*: starting *{esc(c.vm_name)}*; the thread says when it runs."
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
    c = result.change
    verbs = {
        "pending": f"approval recorded ({result.approvals} of {result.required}); "
        "it waits for more",
        "approved": f"approved: the {esc(result.action)} goes ahead",
        "refused": f"approved, but the policy refused the {esc(result.action)} on re-check",
        "rejected": f"{esc(result.action)} rejected",
    }
    text = verbs.get(result.state, esc(result.state))
    return f"{c.ref}: {result.state}", f"*{c.ref}* ({esc(c.vm_name)}): {text}."


def outdated(seen: int, now: int) -> str:
    return f"That message was out of date (v{seen}; the change is at v{now} now)."


def nothing_active(vm: str) -> str:
    return f"{esc(vm)} has no active change to roll back; `/checkpoint list {esc(vm)}` shows it."


NO_WINDOWS = "The policy defines no change windows, so work runs whenever the policy allows it."
NO_WINDOWS_HINT = "Admins add them under `windows:` in the policy file."


def window_line(name: str, opens: str, closes: str, scope: str, scheduled: int = 0) -> str:
    waiting = (
        f" · {scheduled} checkpoint{'s' if scheduled != 1 else ''} scheduled" if scheduled else ""
    )
    return f":calendar: *{esc(name)}* · opens {opens} · closes {closes} · {esc(scope)}{waiting}"


UNEXPECTED = "Something went wrong on our side; nothing was changed that you were not told of."
NO_CHANNEL_FOR_RESULT = "the bot could not tell you in a channel, so it tells you here"


def log_unexpected(what: str) -> str:
    return f"unexpected error while handling {what}"


def log_group_lookup_failed(error: str) -> str:
    return f"usergroups.list failed ({error}); acting with no Slack user groups"


def log_retry_dropped(key: str, attempt: str) -> str:
    return f"dropped a retried delivery {key} (retry {attempt}): already handled"
