"""What a wave's card, its thread and the answers to its buttons say beyond
each member's own line, read from the batch's own events: the VMs its
create could not record (`members_recorded`, bot/service/batches.py) and
the members still waiting for their time (`members_scheduled`,
bot/changes/batch_scheduled.py).

A batch is read by its attributes only (`BatchView`'s `events`,
`members`, `run_at`): templates sit beside bot.changes in the layers of
pyproject.toml and cannot import its classes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.clock import utc_text
from bot.wave_keys import merge_item, value_of
from templates import mrkdwn_escape

# How many members a one-line summary names before "and N more".
_NAMED = 3


@dataclass(frozen=True)
class Unrecorded:
    """VMs of a wave's create that could not be recorded, for one reason:
    nothing was decided for them and nothing was asked of their host."""

    vms: tuple[str, ...]
    why: str


def not_recorded(batch: Any) -> list[Unrecorded]:
    """What the wave's create could not record, grouped by why (one host
    down is one line for its VMs); [] when every VM was recorded."""
    recorded = [e for e in batch.events if e.kind == "members_recorded"]
    found = recorded[-1].details.get("not_recorded") if recorded else None
    if not isinstance(found, Mapping):
        return []
    groups: dict[str, list[str]] = {}
    for vm, why in found.items():
        text = str(why)
        # "could not check STG-WEB01: HV03 could not be reached (…)": the
        # VMs of one host differ only by the name in front, named once.
        text = text.removeprefix(f"could not check {vm}: ")
        groups.setdefault(text, []).append(str(vm))
    return [Unrecorded(tuple(vms), why) for why, vms in groups.items()]


def not_recorded_count(batch: Any) -> int:
    return sum(len(u.vms) for u in not_recorded(batch))


@dataclass(frozen=True)
class StillScheduled:
    """A member whose checkpoint still waits for its time."""

    vm: str
    ref: str
    # When its create job runs; None when the thread has not said yet.
    at: datetime | None
    # Its requester asked for that time (`--at`); else its change window opens then.
    asked: bool

    def words(self, *, mrkdwn: bool = False) -> str:
        """ "APP01 (CHG-0005) is still scheduled: it is taken 2026-11-28
        22:00 UTC, when its change window opens" (in Slack's mrkdwn the time
        becomes a date token, templates/slack_times.py)."""
        name = f"*{mrkdwn_escape(self.vm)}*" if mrkdwn else self.vm
        why = "as asked" if self.asked else "when its change window opens"
        when = f"it is taken {utc_text(self.at)}, {why}" if self.at else f"it is taken {why}"
        return f"{name} ({self.ref}) is still scheduled: {when}"


def _aware(at: datetime) -> datetime:
    """A naive time is UTC, as the store keeps them."""
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return _aware(datetime.fromisoformat(value))
    except ValueError:
        return None


def still_scheduled(batch: Any) -> list[StillScheduled]:
    """The wave's members still scheduled, each with when it runs: the
    member's own `run_at` where its view carries one (its queued job's due
    time), else as the wave's thread said it (`members_scheduled`), else the
    wave's `--at` time if it has one."""
    told: dict[int, Mapping[str, Any]] = {}
    for event in batch.events:
        if event.kind != "members_scheduled":
            continue
        for member in event.details.get("members") or ():
            if isinstance(member, Mapping) and "change_id" in member:
                told[int(member["change_id"])] = member
    found: list[StillScheduled] = []
    for m in batch.members:
        if m.state != "scheduled":
            continue
        said = told.get(m.change_id)
        due = getattr(m, "run_at", None)
        if isinstance(due, datetime):
            asked = bool(getattr(m, "run_asked", False))
            found.append(StillScheduled(m.vm_name, m.change, _aware(due), asked))
        elif said is not None:
            found.append(
                StillScheduled(
                    m.vm_name, m.change, _instant(said.get("at")), bool(said.get("asked"))
                )
            )
        else:
            found.append(
                StillScheduled(m.vm_name, m.change, batch.run_at, batch.run_at is not None)
            )
    return found


def still_scheduled_summary(batch: Any) -> str:
    """The wave's scheduled members in one plain sentence, short enough for
    a confirm dialog beside what it confirms; "" when none is."""
    waits = still_scheduled(batch)
    if len(waits) == 1:
        return waits[0].words()
    if not waits:
        return ""
    names = ", ".join(f"{w.vm} ({w.ref})" for w in waits[:_NAMED])
    more = f" and {len(waits) - _NAMED} more" if len(waits) > _NAMED else ""
    times = [w.at for w in waits if w.at is not None]
    first = f" (the first at {utc_text(min(times))})" if times else ""
    return (
        f"{names}{more} are still scheduled: each is taken when its change window opens "
        f"or at the time asked{first}"
    )


def merge_items(members: Iterable[object], ref_attr: str, state_attr: str) -> list[str]:
    """What a Keep & merge all drawn for `members` covers: each one's ref
    and state, read from the attributes named (bot/wave_keys.py)."""
    return [merge_item(str(getattr(m, ref_attr)), str(getattr(m, state_attr))) for m in members]


def wave_value(ref: str, verb: str, items: Iterable[object]) -> str:
    """A wave button's value for `verb`, bound to the `items` it was drawn
    for (bot/wave_keys.py): what a TTL notice or a sweep digest
    lists, where the template has no BatchView to ask."""
    return value_of(ref, verb, items)
