"""Plain snapshots of change records (`ChangeView`, `EventView`, `JobView`, …):
what the service hands its callers and what the notifier renders; no ORM
object leaves the service."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol

from bot.changes.lifecycle import Command
from bot.domain import CheckpointKind
from bot.store.tables import batch_ref, change_ref
from bot.store.tables.changes import Change, ChangeEvent
from bot.store.tables.jobs import Job


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# Events that ask approvers for an approval (their reply pings them): the
# create's own request, and a rollback, merge or extension waiting.
ASKS_APPROVAL = {
    "request_approval": "create",
    "rollback_awaits_approval": "rollback",
    "merge_awaits_approval": "merge",
    "extend_awaits_approval": "extend",
    "awaits_approval": "go ahead",
}
# Events whose message is what a person wrote (the request's reason), not
# the bot's words: shown escaped, never with mentions.
WRITTEN_BY_PERSON = frozenset({"requested"})
# The details key listing the parts of an event's message that a host (or
# an error) said, not the bot: a Hyper-V error quotes the VM's name as its
# host has it, which anyone who may rename a VM chooses. They are shown
# escaped, so a `<@U…>` or `<!subteam^…>` in them pings nobody; the rest
# of the message keeps the bot's own mentions.
HOST_SAID = "host_said"
# The notes of a create's `Set-VM -CheckpointType` (bot.service.execution
# `_take`): raised for the checkpoint (details `original`: the VM's own
# setting), set back to the VM's own after it, or not set back (the host
# refused or did not answer: the VM may still have the raised one). The
# reconciler sets back what an interrupted create raised and did not.
SETTING_RAISED = "setting"
SETTING_RESTORED = "setting_restored"
SETTING_NOT_RESTORED = "setting_restore_failed"
# The retry of a failed set-back left the setting as it found it (someone
# else's, or already set back), or failed again: either way not retried.
SETTING_KEPT = "setting_left"
# The note of a Start-VM that was sent and never answered (bot.service.
# execution): whether the VM started is not known.
START_UNKNOWN = "start_unknown"
# The details key naming the person whose request a `policy` event decided
# (a rollback that waits for approval, an extension refused): the actor is
# the policy, which decided; they asked. `audit export --actor` finds both.
ON_BEHALF_OF = "on_behalf_of"


@dataclass(frozen=True)
class EventView:
    seq: int
    at: datetime
    actor: str
    kind: str
    from_state: str | None
    to_state: str | None
    message: str
    details: dict[str, Any]
    # The actor's Slack workspace; None for the bot, the policy and `cli:NAME`.
    actor_team: str | None = None

    @classmethod
    def of(cls, e: ChangeEvent) -> EventView:
        return cls(
            e.seq,
            e.at,
            e.actor,
            e.kind,
            e.from_state,
            e.to_state,
            e.message,
            e.details,
            e.actor_team,
        )

    @property
    def asks_approval(self) -> bool:
        return self.kind in ASKS_APPROVAL

    @property
    def host_said(self) -> tuple[str, ...]:
        """The parts of `message` a host or an error said (`HOST_SAID`)."""
        said = self.details.get(HOST_SAID) or ()
        return tuple(str(part) for part in said if part) if isinstance(said, list) else ()

    @property
    def reason(self) -> str:
        """A person's why that the event's details keep (a rejection's,
        bot/service/approvals.py `reject`), "" when it has none."""
        said = self.details.get("reason")
        return said if isinstance(said, str) else ""

    @property
    def not_the_bots(self) -> tuple[str, ...]:
        """The parts of `message` the bot did not write, to be shown
        escaped: what a host said (`host_said`) and the person's reason
        when the message quotes it (recorded so since 2026-12-06; an
        older rejection's message has only the bot's words)."""
        reason = self.reason
        quoted = (reason,) if reason and reason in self.message else ()
        return (*self.host_said, *quoted)

    @property
    def asked_action(self) -> str:
        """What an approval request asks to do ("create", "rollback", …)."""
        return ASKS_APPROVAL.get(self.kind, self.kind)

    @property
    def written_by_person(self) -> bool:
        return self.kind in WRITTEN_BY_PERSON

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "at": _iso(self.at)}


def held_back_words(state: str, result: Mapping[str, Any]) -> str | None:
    """What a job that ran to its end without touching the host did, in
    words (its re-check refused it, or could not be made); None for any
    other. The ledger calls such a job "succeeded"; a person would not."""
    if state != "succeeded":
        return None
    if result.get("denied") or result.get("refused"):
        return "refused at its re-check, nothing done on the host"
    if result.get("not_started"):
        return "not run, its re-check could not be made; nothing done on the host"
    return None


@dataclass(frozen=True)
class JobView:
    id: int
    kind: str
    state: str
    attempt: int
    worker: str | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    # A job that ran to its end without touching the host (its re-check
    # refused it, or could not be made) is "succeeded" to the ledger, not
    # to a person: what it did, in words; None for any other.
    held_back: str | None = None
    # Whether the job was handed to the queue: a queued one that was not
    # had its command die between recording it and the enqueue, and only a
    # bot's or worker's tick (or `checkpoint-bot reconcile`) hands it over.
    delivered: bool = True
    # When a job not started by then fails unstarted (nothing done on the host).
    deadline_at: datetime | None = None
    # Not to start before (a change window, `--at`, a retry's backoff).
    not_before: datetime | None = None

    @classmethod
    def of(cls, j: Job) -> JobView:
        assert j.id is not None
        held_back = held_back_words(j.state, j.result or {})
        return cls(
            j.id,
            j.kind,
            j.state,
            j.attempt,
            j.worker,
            j.error,
            j.created_at,
            j.finished_at,
            held_back,
            j.delivered_at is not None,
            j.deadline_at,
            j.not_before,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "created_at": _iso(self.created_at),
            "finished_at": _iso(self.finished_at),
            "deadline_at": _iso(self.deadline_at),
            "not_before": _iso(self.not_before),
        }


@dataclass(frozen=True)
class ChangeView:
    id: int
    ref: str
    action: str
    state: str
    vm_name: str
    vm_id: str
    host: str
    checkpoint_type: str
    reason: str
    requester: str
    source: str
    created_at: datetime
    updated_at: datetime
    ttl_seconds: int
    expires_at: datetime | None
    checkpoint_id: str | None
    checkpoint_name: str | None
    decision: dict[str, Any]
    # What the host really took, and why the bot believes it
    # (`checkpoint_type` is what was asked for).
    taken_type: str | None = None
    taken_evidence: str | None = None
    # Whether it holds the VM's memory: False means a restore leaves the VM Off.
    holds_memory: bool | None = None
    # The VM's state after the last rollback, and whether someone must start it.
    vm_state_after: str | None = None
    # The record's optimistic-lock version: buttons carry it, so a click on
    # an outdated message is recognised.
    version: int = 0
    # The requester's Slack workspace (None for `cli:NAME`).
    requester_team: str | None = None
    # The time its requester asked for (`--at`); None: now or its window.
    run_at: datetime | None = None
    # The batch (patch wave) it is a member of; None when asked for alone.
    batch_id: int | None = None
    events: tuple[EventView, ...] = ()
    jobs: tuple[JobView, ...] = field(default=())
    # The actions whose approval requests wait (create, rollback, merge,
    # extend), oldest first; filled where the record's requests were read
    # (`change show`), else empty.
    waiting: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        c: Change,
        events: list[ChangeEvent] | None = None,
        jobs: list[Job] | None = None,
        waiting: tuple[str, ...] = (),
    ) -> ChangeView:
        assert c.id is not None
        return cls(
            id=c.id,
            ref=change_ref(c.id),
            action=c.action,
            state=c.state,
            vm_name=c.vm_name,
            vm_id=c.vm_id,
            host=c.host,
            checkpoint_type=c.checkpoint_type,
            reason=c.reason,
            requester=c.requester,
            source=c.source,
            created_at=c.created_at,
            updated_at=c.updated_at,
            ttl_seconds=c.ttl_seconds,
            expires_at=c.expires_at,
            checkpoint_id=c.checkpoint_id,
            checkpoint_name=c.checkpoint_name,
            decision=dict(c.decision),
            taken_type=c.taken_type,
            taken_evidence=c.taken_evidence,
            holds_memory=c.holds_memory,
            vm_state_after=c.vm_state_after,
            version=c.version,
            requester_team=c.requester_team,
            run_at=c.run_at,
            batch_id=c.batch_id,
            events=tuple(EventView.of(e) for e in events or ()),
            jobs=tuple(JobView.of(j) for j in jobs or ()),
            waiting=waiting,
        )

    @property
    def batch_ref(self) -> str | None:
        """`BAT-0007` when it is a member of a patch wave."""
        return batch_ref(self.batch_id) if self.batch_id is not None else None

    @property
    def last_error(self) -> str | None:
        """The failure that put the change where it is now; None once a later
        step settled it (an interrupted change reconciled to active, a failed
        merge followed by a successful one)."""
        for e in reversed(self.events):
            if e.kind.endswith("failed") or e.kind == "interrupt":
                return e.message
            if e.to_state:
                return None
        return None

    @property
    def last_step(self) -> EventView | None:
        """What happened last that a reader cares about: the latest event
        that moved the change, decided a request, asked approvers for one
        (a rollback waiting for approval leaves the change active: the card
        says what waits, not the step before it) or extended its life (not
        a reminder, not a warning)."""
        for e in reversed(self.events):
            if (
                e.to_state
                or e.kind in ("approval", "withdrawn", "extended")
                or e.kind.endswith("awaits_approval")
                or e.kind.endswith(("_rejected", "_refused", "_withdrawn", "_failed"))
            ):
                return e
        return None

    @property
    def taken_as_asked(self) -> bool:
        """Whether what the host took is what was asked for (no checkpoint
        yet, or an adopted one that asked for nothing: True)."""
        asked = CheckpointKind.parse(self.checkpoint_type)
        if self.taken_type is None or asked is None or self.adopted:
            return True
        return asked.taken_as_asked(self.taken_type)

    @property
    def adopted(self) -> bool:
        """Opened for a checkpoint the sweep found (`sweep adopt`), not asked
        for: its `checkpoint_type` is the policy's reading of what it holds
        (bot/service/adopt.py), not a request's."""
        return any(e.kind == Command.ADOPT for e in self.events)

    @property
    def waiting_for(self) -> list[tuple[str, str]]:
        """(action, what its request asked) for each approval that waits:
        the words of the latest event that asked approvers for it."""
        said: dict[str, str] = {}
        for e in self.events:
            action = ASKS_APPROVAL.get(e.kind)
            message = e.message
            if e.kind == "awaits_approval":
                # The policy raised what a waiting request needs ("now needs
                # …"); the event names the request's action (recorded since
                # 2026-12-05).
                action = e.details.get("action")
                message = f"{action} {e.message}"
            if action is not None:
                said[str(action)] = message
        return [(action, said.get(action, f"{action} needs approval")) for action in self.waiting]

    @property
    def needs_start(self) -> bool:
        """A rollback left the VM off or saved, and nobody has started it."""
        return self.state == "rolled_back" and self.vm_state_after in ("Off", "Saved")

    @property
    def start_unknown(self) -> bool:
        """The last Start-VM since the last rollback was sent and never
        answered (a `start_unknown` note, bot.service.execution): the VM may
        be running though `vm_state_after` still says what it read before."""
        for e in reversed(self.events):
            if e.kind == START_UNKNOWN:
                return True
            if e.kind in ("started", "start_rollback"):
                return False
        return False

    @property
    def resolutions(self) -> tuple[str, ...]:
        """For an interrupted change the host could not settle: the outcomes
        a human may record, as the last `needs_human` event offered them."""
        if self.state != "interrupted":
            return ()
        return offered_resolutions(self.events)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = _iso(self.created_at)
        data["updated_at"] = _iso(self.updated_at)
        data["expires_at"] = _iso(self.expires_at)
        data["run_at"] = _iso(self.run_at)
        data["batch"] = self.batch_ref
        data["events"] = [e.to_dict() for e in self.events]
        data["jobs"] = [j.to_dict() for j in self.jobs]
        return data


@dataclass(frozen=True)
class CheckpointRow:
    host: str
    vm_name: str
    vm_id: str
    id: str
    name: str
    parent_id: str | None
    depth: int
    created_at: datetime
    age_seconds: int
    size_bytes: int
    # What the host says: SnapshotType (Standard for production and standard
    # checkpoints alike) and the captured state (Off: no memory).
    snapshot_type: str
    captured_state: str | None
    change_ref: str | None
    change_state: str | None
    # What the checkpoint is (production | standard | unknown) and why: from
    # the owning change's record when there is one, else from what it holds.
    taken: str = "unknown"
    evidence: str = ""
    # What the owning change asked for, if a change owns it.
    asked: str | None = None
    # No change owns it and its name carries a token none of this bot's jobs
    # drew: another checkpoint-bot deployment's (bot.service.provenance), as
    # the sweep calls it. That token, e.g. "0badc0de".
    foreign_token: str | None = None
    # No change owns it and no job in the record drew its token, but its
    # mark is this record's (bot.service.ownership): one of this
    # deployment's whose job the record lacks (taken after the backup it was
    # restored from), an orphan to adopt, as the sweep says. That token.
    marked_token: str | None = None
    # No change owns it, but its name is the one a create job of this bot
    # gave it: that change's ref and state (interrupted: the reconciler has
    # yet to record it; settled: the job made it after, an orphan).
    made_by: str | None = None
    made_by_state: str | None = None
    # That create's job still runs (its worker heart-beats): it records it.
    made_by_running: bool = False
    # `vm_name` is the inventory's name for the VM (by its VMId), the name
    # every command takes; this is the host's own, when it differs (a DR
    # copy its host calls WEB02, the inventory's WEB02-DR). A VM the
    # inventory does not hold keeps the host's name in `vm_name`.
    host_vm_name: str | None = None

    @property
    def unrecorded(self) -> bool:
        """Its change's create was cut off and has not recorded it yet."""
        return self.made_by_state in _CREATE_UNSETTLED

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "created_at": _iso(self.created_at)}


# A create in these has not recorded what it took; the reconciler will.
_CREATE_UNSETTLED = frozenset({"creating", "interrupted"})


@dataclass(frozen=True)
class HostProblem:
    host: str
    error: str
    # The bot could not log in (the host refused its credential, or the
    # credential could not be read here): not "could not be reached".
    login_failed: bool = False

    @property
    def what(self) -> str:
        return "could not be logged in to" if self.login_failed else "could not be reached"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PendingApproval:
    """An approval that waits (the thread root, `/checkpoint status` and
    the App Home show it): the change, the action it would carry out, who may give it
    (`ApprovalRequirement.describe()`), how many have so far, the request's
    id (its Approve / Reject carry it; without one no button is offered) and
    who asked."""

    change: ChangeView
    action: str
    description: str
    approvals: int = 0
    required: int = 1
    request_id: int | None = None
    requested_by: str | None = None
    # Channels where the viewer may give it, when not where this is shown
    # (the policy limits approving to channels; App Home is none of them).
    only_in: tuple[str, ...] = ()
    # An extension's new expiry: an approver decides on how long, not only whether.
    extend_to: datetime | None = None

    @staticmethod
    def extension_of(params: dict[str, Any]) -> datetime | None:
        """The new expiry an extension request asks for (its params)."""
        text = params.get("extend_to")
        return datetime.fromisoformat(text) if isinstance(text, str) else None


@dataclass(frozen=True)
class UpcomingWindow:
    """A change window's next opening, or the current one while it is open
    (the App Home and `/checkpoint windows` show it)."""

    name: str
    opens_at: datetime
    closes_at: datetime
    open_now: bool = False
    # How the window is defined, in its own time zone ("cron 0 22 * * 6 in
    # Europe/Berlin"): the one place a reader sees that zone.
    defined: str = ""


class _Event(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def to_state(self) -> str | None: ...
    @property
    def details(self) -> dict[str, Any]: ...


def offered_resolutions(events: Sequence[_Event]) -> tuple[str, ...]:
    """The outcomes the reconciler's last question since the change's last
    transition offered a person (a `needs_human` event); () when it asked
    none, i.e. the reconciler is still checking the host itself."""
    for e in reversed(events):
        if e.to_state:
            return ()
        if e.kind == "needs_human":
            return tuple(str(x) for x in e.details.get("choices", ()))
    return ()
