"""The answers to the sweep digest's buttons (Adopt, Adopt & merge), in the
style of `handlers.messages`: mrkdwn with every value escaped, rendered by
the caller through `notice_ephemeral`."""

from __future__ import annotations

from bot.service import AdoptOutcome
from templates import mrkdwn_escape as esc


def adopted(result: AdoptOutcome) -> tuple[str, ...]:
    c = result.change
    owned = (
        f"*{c.ref}* now owns checkpoint `{esc(c.checkpoint_id or '-')}` of *{esc(c.vm_name)}* "
        f"on {esc(c.host)}, in your name; its thread has Roll back, Keep & merge and Extend."
    )
    title = f"{c.ref}: adopted the checkpoint of {c.vm_name}"
    merge = result.merge
    if result.merge_error:
        return title, owned, f":warning: The merge did not start: {esc(result.merge_error)}"
    if merge is None:
        return title, owned
    if merge.refused:
        reasons = "; ".join(merge.decision.reasons) or "the policy said no"
        return title, owned, f":no_entry: The policy refused the merge: {esc(reasons)}"
    if merge.waiting:
        return title, owned, "The merge waits for approval; approvers are asked in the thread."
    return title, owned, "The merge started; the thread shows how it goes."


def adopted_line(result: AdoptOutcome, user: str) -> str:
    """What the digest says in place of an adopted orphan's buttons."""
    c = result.change
    then = " · keep & merge asked" if result.merge is not None else ""
    return f":white_check_mark: adopted by <@{esc(user)}> as *{c.ref}*{then}"


def log_bad_value(value: str) -> str:
    return f"a sweep button carried an unexpected value: {value[:80]!r}"
