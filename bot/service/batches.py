"""Patch waves: one request over several VMs (docs/batches.md).

A batch is the parent of ordinary changes: each member is asked for with
`request_checkpoint`, so every guardrail, the approval rules, the per-VM
lock, the jobs and reconciliation work per VM exactly as for a change asked
for alone. The batch adds the selection, a preview before anything is
recorded, its own events, and a state derived from its members'.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select

from bot.changes import State
from bot.changes.batch_load import load_batch, members_of
from bot.changes.batch_record import BatchNotFound, batch_note, get_batch, open_batch
from bot.changes.batch_views import BatchView, MemberView
from bot.changes.lifecycle import FINAL_STATES
from bot.clock import utc_text
from bot.domain import WAVE_ACTIONS, BatchRef, ChangeRef, user_mention
from bot.inventory import VM
from bot.reasons import one_line
from bot.service.at_time import AtTime, check_future, outside_window, window_refusal
from bot.service.binding import Target
from bot.service.deciding import Principal, as_principal
from bot.service.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ServiceError,
    Unavailable,
)
from bot.service.requests import Outcome, request_checkpoint, validate_create
from bot.service.selection import Selection, resolve
from bot.service.strictest import WHY_THE_WAVE_ASKS, strictest
from bot.store.db import session_scope
from bot.store.tables import batch_ref, change_ref
from bot.store.tables.batches import Batch, BatchEvent
from bot.store.tables.changes import Change
from policies import Action, Decision, Verdict
from policies.scopes import scope_matches
from templates import counted

if TYPE_CHECKING:
    from bot.service.deps import ServiceDeps

# How many refusals the one-line summary names before "and N more".
_NAMED = 5


@dataclass(frozen=True)
class WindowWait:
    """A VM whose checkpoint waits for its change window to open: the
    window (None when no single window of the VM's opens then) and when."""

    window: str | None
    opens: datetime

    @property
    def what(self) -> str:
        """ "app-maintenance, opens 2026-12-06 03:00 UTC"."""
        return f"{self.window or 'its change window'}, opens {utc_text(self.opens)}"

    def to_dict(self) -> dict[str, Any]:
        return {"window": self.window, "opens": self.opens.isoformat()}


@dataclass(frozen=True)
class OpenChange:
    """A change already open on a previewed VM: a second wave over the same
    VMs (run again after a timeout, say) takes a second checkpoint of each,
    chained under the first, which the preview says before anyone confirms."""

    ref: str
    state: str
    reason: str
    created_at: datetime
    wave: str | None = None

    @property
    def said(self) -> str:
        """ "CHG-0001 (active, BAT-0001, asked 2026-12-06 15:02 UTC: KB5044284)",
        on one line as `change list` shows a reason (one_line): the preview
        lists one VM a line."""
        wave = f", {self.wave}" if self.wave else ""
        return (
            f"{self.ref} ({self.state.replace('_', ' ')}{wave}, asked "
            f"{utc_text(self.created_at)}: {one_line(self.reason)})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "change": self.ref,
            "state": self.state,
            "wave": self.wave,
            "reason": self.reason,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class Candidate:
    """One VM of a preview and what the policy says of checkpointing it."""

    vm: str
    host: str
    verdict: Verdict | None
    reasons: tuple[str, ...]
    # Set when the policy could not be asked (its host did not answer): the
    # VM could not be checked, which is never "refused" (nobody refused it:
    # its facts are unknown) and never checkpointable. The take asks again.
    problem: str | None = None
    # Asked for at a time (`--at`) when the VM's change windows are closed:
    # the rule's words and its next opening (bot.service.at_time).
    closed: tuple[str, datetime | None] | None = None
    # Outside its change window now, with a policy that schedules: taken
    # when the window opens, not at once (None: at once, or it is refused).
    waits: WindowWait | None = None
    # The policy's whole answer (None when it could not be asked).
    decision: Decision | None = field(default=None, compare=False, repr=False)
    # Changes already open on the VM (this wave would add one beside them).
    open_changes: tuple[OpenChange, ...] = ()

    @property
    def refused(self) -> bool:
        """The policy refused it."""
        return self.verdict is Verdict.DENY

    @property
    def unchecked(self) -> bool:
        """The policy could not be asked: its host did not answer."""
        return self.verdict is None

    @property
    def takeable(self) -> bool:
        return not self.refused and not self.unchecked

    @property
    def why(self) -> str:
        return self.problem or "; ".join(self.reasons) or "refused"

    def to_dict(self) -> dict[str, Any]:
        return {
            "vm": self.vm,
            "host": self.host,
            "verdict": self.verdict.value if self.verdict else "unknown",
            "reasons": list(self.reasons),
            "problem": self.problem,
            "waits_for_window": self.waits.to_dict() if self.waits else None,
            "open_changes": [o.to_dict() for o in self.open_changes],
        }


@dataclass(frozen=True)
class BatchPreview:
    """What a selection resolves to, before anything is recorded."""

    selection: Selection
    candidates: tuple[Candidate, ...]
    # When the wave was asked to run (`--at`); None: at once.
    at: AtTime | None = None

    @property
    def takeable(self) -> tuple[Candidate, ...]:
        return tuple(c for c in self.candidates if c.takeable)

    @property
    def refused(self) -> tuple[Candidate, ...]:
        return tuple(c for c in self.candidates if c.refused)

    @property
    def unchecked(self) -> tuple[Candidate, ...]:
        """The VMs whose host did not answer the policy's questions."""
        return tuple(c for c in self.candidates if c.unchecked)

    @property
    def waiting_for_windows(self) -> tuple[Candidate, ...]:
        """The takeable VMs taken only when their change window opens."""
        return tuple(c for c in self.takeable if c.waits is not None)

    @property
    def need_approval(self) -> int:
        return sum(c.verdict is Verdict.NEEDS_APPROVAL for c in self.candidates)

    @property
    def wave_approval(self) -> Decision | None:
        """What the wave's create needs when any member needs an approver:
        the strictest member's decision (bot.service.strictest); then every
        member that is not refused waits for that one approval. None when
        no member needs one."""
        taking = [c.decision for c in self.takeable if c.decision is not None]
        need = strictest(taking) if taking else None
        return need if need is not None and need.verdict is Verdict.NEEDS_APPROVAL else None

    def summary(self, *, why: bool = True) -> str:
        """ "12 VMs: 9 can be checkpointed, 2 are refused (CORP-DC01: …; …),
        1 could not be checked (PW31: HV03 could not be reached …)": the
        record's words. `why=False` names the VMs only, for a preview whose
        lines below give each one's reasons."""
        total, ok = len(self.candidates), len(self.takeable)
        text = f"{total} VM{'s' if total != 1 else ''}: {ok} can be checkpointed"
        if (need := self.wave_approval) is not None and need.approval is not None:
            text += f" after {need.approval.describe()} for the whole wave"
        if waiting := self.waiting_for_windows:
            text += ", " + _later(waiting, why=why)
        if refused := self.refused:
            verb = "is" if len(refused) == 1 else "are"
            text += f", {len(refused)} {verb} refused ({_named(refused, why=why)})"
        if unchecked := self.unchecked:
            named = _by_host(unchecked) if why else _named(unchecked, why=False)
            text += f", {len(unchecked)} could not be checked ({named})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "selection": self.selection.to_dict(),
            "summary": self.summary(),
            "takeable": len(self.takeable),
            "refused": len(self.refused),
            "unchecked": len(self.unchecked),
            "candidates": [c.to_dict() for c in self.candidates],
            "at": self.at.instant.isoformat() if self.at else None,
        }


def _named(candidates: tuple[Candidate, ...], *, why: bool) -> str:
    """ "CORP-DC01: why; APP01: why; and 3 more", or without `why`
    "CORP-DC01, APP01 and 3 more"."""
    shown = [f"{c.vm}: {c.why}" if why else c.vm for c in candidates[:_NAMED]]
    rest = len(candidates) - _NAMED
    if rest <= 0:
        return ("; " if why else ", ").join(shown)
    if why:
        return "; ".join(shown) + f"; and {rest} more"
    return ", ".join(shown) + f" and {rest} more"


def _longest(ctx: ServiceDeps, preview: BatchPreview) -> int:
    """The longest lifetime the policy gives the VMs the wave takes (the
    `ttl` rule's default for each one's scope, in its decision); the
    configured `defaults.ttl` where the rule gave none (it is disabled)."""
    fallback = int(ctx.settings.defaults.ttl.total_seconds())
    given = [
        int(c.decision.adjustments.get("ttl_seconds") or fallback)
        for c in preview.takeable
        if c.decision is not None
    ]
    return max(given, default=fallback)


def nothing_takeable(
    preview: BatchPreview, how_to_see: str = "ask for the wave again to see why"
) -> ServiceError:
    """Why a wave none of whose VMs can be taken records nothing: refused
    (Forbidden; `how_to_see` says where the reasons are), or, when a host
    did not answer, an outage to try again after (Unavailable), never a
    refusal."""
    if not preview.unchecked:
        return Forbidden(
            f"every VM of this selection is refused, so nothing was recorded; {how_to_see}"
        )
    hosts = sorted({c.host for c in preview.unchecked})
    count = len(preview.unchecked)
    refused = f"{len(preview.refused)} refused, and " if preview.refused else ""
    return Unavailable(
        f"nothing was recorded: {refused}the policy could not check "
        f"{count} VM{'s' if count != 1 else ''} ({', '.join(hosts)} did not answer); "
        f"try again once {'it answers' if len(hosts) == 1 else 'they answer'}"
    )


def _by_host(unchecked: tuple[Candidate, ...]) -> str:
    """ "STG-WEB01, STG-APP01: HV03 did not answer": each problem names its
    VM and the host's own words, which the preview's lines give."""
    hosts: dict[str, list[str]] = {}
    for c in unchecked:
        hosts.setdefault(c.host, []).append(c.vm)
    return "; ".join(
        f"{', '.join(vms[:_NAMED])}{f' and {len(vms) - _NAMED} more' if len(vms) > _NAMED else ''}"
        f": {host} did not answer"
        for host, vms in hosts.items()
    )


def _later(waiting: tuple[Candidate, ...], *, why: bool) -> str:
    """ "1 of them when its change window opens (APP01)": which VMs of a
    preview wait for their window; `why` says which window and when."""
    one = len(waiting) == 1
    shown = [
        f"{c.vm} waits for {c.waits.what}" if why and c.waits else c.vm for c in waiting[:_NAMED]
    ]
    more = f" and {len(waiting) - _NAMED} more" if len(waiting) > _NAMED else ""
    when = "when its change window opens" if one else "when their change windows open"
    return f"{len(waiting)} of them {when} ({('; ' if why else ', ').join(shown)}{more})"


@dataclass(frozen=True)
class BatchOutcome:
    """A batch recorded: the batch now, and each member's request outcome."""

    batch: BatchView
    preview: BatchPreview
    outcomes: tuple[Outcome, ...]
    # Members that could not be recorded at all (VM → why), e.g. its host
    # did not answer the policy's questions; the others went ahead.
    not_recorded: tuple[tuple[str, str], ...] = ()
    # The preview's token had made this batch already (a second click):
    # nothing new was recorded.
    existing: bool = False

    def fell_short(self, batch: BatchView) -> tuple[MemberView, ...]:
        """The members `batch` (this batch, read again) shows refused or
        failed although the preview said they could be taken: a re-check
        before the job refused them, or the host failed. The person
        confirmed the preview; the wave did not do all of it."""
        takeable = {c.vm.lower() for c in self.preview.takeable}
        ended_badly = (State.DENIED, State.FAILED)
        return tuple(
            m for m in batch.members if m.vm_name.lower() in takeable and m.state in ended_badly
        )


def _candidate(
    ctx: ServiceDeps, vm: VM, who: Principal, kind: str | None, at: AtTime | None
) -> Candidate:
    try:
        decision: Decision = ctx.decider.decide(
            vm, Action.CREATE, who, checkpoint_type=kind, now=at.instant if at else None
        )
    except ServiceError as exc:
        return Candidate(vm.name, vm.host, None, (), problem=exc.message)
    closed = window_refusal(decision) if at is not None else None
    # A refused VM is told what refuses it, not an approval it would also need.
    refused = decision.verdict is Verdict.DENY and decision.refusals
    # Asked for at a time, a closed window refuses the wave instead (above).
    waits = _window_wait(ctx, vm, decision) if at is None else None
    return Candidate(
        vm.name,
        vm.host,
        decision.verdict,
        tuple(decision.refusals if refused else decision.reasons),
        closed=closed,
        waits=waits,
        decision=decision,
    )


def _open_changes(ctx: ServiceDeps, vm_ids: list[str]) -> dict[str, tuple[OpenChange, ...]]:
    """VM id -> the changes open on it (not in a final state), oldest first:
    one read for the whole selection."""
    if not vm_ids:
        return {}
    final = [s.value for s in FINAL_STATES]
    with session_scope(ctx.engine) as s:
        rows = s.exec(
            select(Change)
            .where(col(Change.vm_id).in_(vm_ids), col(Change.state).not_in(final))
            .order_by(col(Change.id))
        ).all()
        found: dict[str, list[OpenChange]] = {}
        for c in rows:
            assert c.id is not None
            found.setdefault(c.vm_id, []).append(
                OpenChange(
                    change_ref(c.id),
                    c.state,
                    c.reason,
                    c.created_at,
                    batch_ref(c.batch_id) if c.batch_id is not None else None,
                )
            )
    return {vm_id: tuple(items) for vm_id, items in found.items()}


def _window_wait(ctx: ServiceDeps, vm: VM, decision: Decision) -> WindowWait | None:
    """When a VM the policy lets be checkpointed waits for its change window
    (the change-window rule schedules it), and which window that is: one of
    the VMs' windows that opens at that instant (the rule picks the soonest
    opening of those that apply to it)."""
    opens = decision.schedule_at
    if opens is None or decision.verdict is Verdict.DENY:
        return None
    facts = ctx.decider.inventory_facts(vm)
    names = [
        w.name
        for w in ctx.policy.windows
        if w.last_start(opens) == opens and scope_matches(w.scope, facts)[0] is not False
    ]
    return WindowWait(names[0] if len(names) == 1 else None, opens)


def preview_batch(
    ctx: ServiceDeps,
    selection: Selection,
    *,
    requester: str | Principal,
    reason: str | None,
    checkpoint_type: str | None = None,
    ttl: str | None = None,
    at: AtTime | None = None,
) -> BatchPreview:
    """Check what was typed, resolve the selection and ask the policy about
    each VM; records nothing. The reason is checked here too, so a person is
    never asked to confirm a wave that would then be refused for it. With
    `at`, each VM is decided as of that time, and a time when any VM's
    change windows are closed refuses the whole wave with the opening to
    ask for instead (docs/batches.md "At a time")."""
    who = as_principal(requester)
    _, kind, _ = validate_create(ctx, reason, checkpoint_type, ttl)
    vms = resolve(ctx.inventory, selection, maximum=ctx.settings.batches.max_vms)
    if at is not None:
        check_future(at, ctx.clock())
    opened = _open_changes(ctx, [vm.vm_id for vm in vms])
    candidates = tuple(
        replace(_candidate(ctx, vm, who, kind, at), open_changes=opened.get(vm.vm_id, ()))
        for vm in vms
    )
    if at is not None:
        closed = [(c.vm, *c.closed) for c in candidates if c.closed is not None]
        if closed:
            raise outside_window(at, closed)
    return BatchPreview(selection, candidates, at)


def create_batch(
    ctx: ServiceDeps,
    selection: Selection,
    *,
    reason: str | None,
    requester: str | Principal,
    checkpoint_type: str | None = None,
    ttl: str | None = None,
    source: str = "cli",
    channel: str | None = None,
    token: str | None = None,
    at: AtTime | None = None,
) -> BatchOutcome:
    """Record a batch and ask for a checkpoint of each VM it selects.
    With `token` (a preview's), a batch that token made already is returned
    as it is: a second click takes nothing twice.

    Everything typed is checked before anything is written; then the batch
    is recorded, and each member is an ordinary change (refusals too: the
    record is the audit). One member that cannot be recorded never stops
    the others."""
    who = as_principal(requester)
    text, kind, lifetime = validate_create(ctx, reason, checkpoint_type, ttl)
    if token is not None and (made := _by_token(ctx, token)) is not None:
        return BatchOutcome(
            show_batch(ctx, batch_ref(made)), BatchPreview(selection, ()), (), existing=True
        )
    preview = preview_batch(ctx, selection, requester=who, reason=text, checkpoint_type=kind, at=at)
    if not preview.takeable:
        # Between the preview a person confirmed and this take, every VM
        # became refused or its host stopped answering: a wave of nothing
        # would have no member, no thread and no card to follow.
        raise nothing_takeable(preview)
    # Asked for (--ttl): every member asks for it. Not asked for: each
    # member gets its own scope's policy default, as a single create does;
    # the wave records the longest of them (its card shows the range).
    member_ttl = f"{int(lifetime.total_seconds())}s" if lifetime is not None else None
    ttl_seconds = int(lifetime.total_seconds()) if lifetime is not None else _longest(ctx, preview)
    now = ctx.clock()
    record = Batch(
        requester=who.id,
        requester_team=who.team,
        reason=text,
        checkpoint_type=kind,
        ttl_seconds=ttl_seconds,
        selection=selection.to_dict(),
        source=source,
        channel=channel or who.channel,
        token=token,
        run_at=at.instant if at is not None else None,
    )
    details: dict[str, Any] = {
        "preview": preview.summary(),
        "vms": [c.vm for c in preview.candidates],
    }
    if at is not None:
        details["at"] = {"instant": at.instant.isoformat(), "zone": at.zone, "read": at.source}
    try:
        with session_scope(ctx.engine) as s:
            batch = open_batch(s, record, now=now, details=details)
            assert batch.id is not None
            batch_id = batch.id
    except IntegrityError:
        # Another click on the same preview won the insert (the unique token).
        made = _by_token(ctx, token or "")
        if made is None:
            raise
        return BatchOutcome(show_batch(ctx, batch_ref(made)), preview, (), existing=True)
    outcomes: list[Outcome] = []
    missing: list[tuple[str, str]] = []
    wave_approval = preview.wave_approval
    for candidate in preview.candidates:
        try:
            outcomes.append(
                request_checkpoint(
                    ctx,
                    candidate.vm,
                    reason=text,
                    requester=who,
                    checkpoint_type=kind,
                    # An asked-for lifetime, given as seconds so each reads
                    # exactly what the batch recorded; else the policy's.
                    ttl=member_ttl,
                    source=source,
                    channel=channel,
                    batch_id=batch_id,
                    at=at,
                    wave_approval=wave_approval,
                )
            )
        except ServiceError as exc:
            missing.append((candidate.vm, exc.message))
    with session_scope(ctx.engine) as s:
        batch = get_batch(s, batch_id)
        batch_note(
            s,
            batch,
            kind="members_recorded",
            actor="bot",
            now=ctx.clock(),
            message=f"{counted(len(outcomes), 'member')} recorded"
            + (f", {len(missing)} could not be: " if missing else "")
            + "; ".join(f"{vm}: {why}" for vm, why in missing),
            details={
                "members": {o.change.vm_name: o.change.ref for o in outcomes},
                "not_recorded": dict(missing),
                # What the create acts on: its end is told once none of
                # them is on its way any more (bot/changes/batch_milestones.py).
                "targets": [o.change.id for o in outcomes],
            },
        )
        if wave_approval is not None and wave_approval.approval is not None:
            waiting = [o.change.vm_name for o in outcomes if o.waiting]
            batch_note(
                s,
                batch,
                kind="create_awaits_approval",
                actor="policy",
                now=ctx.clock(),
                message=f"the {'checkpoint' if len(waiting) == 1 else 'checkpoints'} of "
                + ", ".join(waiting)
                + f" {'needs' if len(waiting) == 1 else 'need'} "
                f"{wave_approval.approval.describe()}: {WHY_THE_WAVE_ASKS}",
                details={"decision": wave_approval.to_dict(), "members": waiting},
            )
    recorded = show_batch(ctx, batch_ref(batch_id))
    retell(ctx, recorded)
    return BatchOutcome(recorded, preview, tuple(outcomes), tuple(missing))


class CardOutOfDate(Conflict):
    """A wave's button drawn for what the wave no longer is (its members
    moved, or what waits changed): nothing was done (bot/wave_keys.py).
    Carries the wave as it is now, so the answer can show its card."""

    def __init__(self, batch: BatchView, verb: str) -> None:
        self.batch = batch
        self.verb = verb
        super().__init__(
            f"{batch.ref} changed since this card was drawn, so its "
            f"{_CARD_WORDS.get(verb, verb)} is out of date: nothing was done. "
            "Its card as it is now shows what is left; decide from there"
        )


_CARD_WORDS = {
    "rollback": "Roll back all",
    "merge": "Keep & merge all",
    "approve": "Approve all",
    "withdraw": "Withdraw",
}


def check_drawn(batch: BatchView, verb: str, drawn: str | None) -> None:
    """Refuse a button (`drawn`: its key; "" for a value that names none)
    drawn for what `batch` no longer is. None: no button (the CLI names the
    wave and acts on it as it is, `batch rollback BAT-n`)."""
    if drawn is not None and not batch.shows_as_drawn(verb, drawn):
        raise CardOutOfDate(batch, verb)


def retell(ctx: ServiceDeps, batch: BatchView) -> None:
    """Bring the wave's thread up to date after a batch event (its card and
    its milestones are synced with any member's change, bot.notify.thread)."""
    if batch.members:
        ctx.notifier.changed(batch.members[0].change_id)


def batch_of_preview(ctx: ServiceDeps, token: str) -> BatchView | None:
    """The batch a preview's Take recorded (`token`, the preview's), or
    None while nothing was taken from it."""
    made = _by_token(ctx, token) if token else None
    return None if made is None else show_batch(ctx, batch_ref(made))


def _by_token(ctx: ServiceDeps, token: str) -> int | None:
    with session_scope(ctx.engine) as s:
        return s.exec(select(Batch.id).where(col(Batch.token) == token)).first()


def find_batch(ref: str) -> int:
    found = BatchRef.parse(ref)
    if found is None and BatchRef.typed(ref):
        raise NotFound(f"no batch {ref.strip().upper()} (batch ids look like BAT-0007)")
    if found is None and ChangeRef.typed(ref):
        change = ChangeRef.parse(ref)
        shown = str(change) if change is not None else ref.strip().upper()
        raise BadRequest(
            f"{shown} is one change, not a patch wave: checkpoint-bot change show {shown} "
            f"(/checkpoint status {shown} in Slack) shows it"
        )
    if found is None:
        raise BadRequest(f"'{ref}' is not a batch id: batch ids look like BAT-0007")
    return found.id


def show_batch(ctx: ServiceDeps, ref: str) -> BatchView:
    """A batch, its members as they stand now, and its own events."""
    batch_id = find_batch(ref)
    with session_scope(ctx.engine) as s:
        try:
            return load_batch(s, batch_id)
        except BatchNotFound:
            # Which waves there are, as `change show CHG-n` says of changes:
            # a typo in the number is then plain (every way to a wave, the
            # Slack command, the CLI and a wave's buttons, comes here).
            newest = s.exec(select(func.max(Batch.id))).one()
    said = (
        f"the newest is {BatchRef(newest)}"
        if newest is not None
        else "no patch wave has been recorded yet"
    )
    raise NotFound(f"no batch {BatchRef(batch_id)}: {said}")


def list_batches(ctx: ServiceDeps, *, limit: int = 50) -> list[BatchView]:
    """The newest batches first, each with its members and its events (in
    one query for all of them): its progress line counts its latest action,
    and its create says what it could not record."""
    if limit < 1:
        raise BadRequest("--limit must be at least 1")
    with session_scope(ctx.engine) as s:
        batches = s.exec(select(Batch).order_by(col(Batch.id).desc()).limit(limit)).all()
        ids = [b.id for b in batches if b.id is not None]
        events: dict[int, list[BatchEvent]] = {}
        for e in s.exec(
            select(BatchEvent)
            .where(col(BatchEvent.batch_id).in_(ids))
            .order_by(col(BatchEvent.batch_id), col(BatchEvent.seq))
        ).all():
            events.setdefault(e.batch_id, []).append(e)
        return [
            BatchView.of(b, members_of(s, b.id or 0), events.get(b.id or 0, [])) for b in batches
        ]


@dataclass(frozen=True)
class BatchWithdrawal:
    """A wave's requests taken back by whoever asked for them: each member
    that waited (for its time, its window or an approver) for its checkpoint
    or for the wave's rollback or merge; `problems` names those that could
    not be (one that started meanwhile)."""

    batch: BatchView
    withdrawn: tuple[str, ...]
    problems: tuple[tuple[str, str], ...]
    # What was withdrawn (create, rollback, merge), in the order first met.
    actions: tuple[str, ...] = ()

    @property
    def said(self) -> str:
        """`3 members withdrawn`, `the rollback of 2 members withdrawn`."""
        n = len(self.withdrawn)
        members = counted(n, "member")
        asked = [a for a in self.actions if a != "create"]
        if not asked:
            return f"{members} withdrawn"
        what = " and ".join(asked)
        if "create" in self.actions:
            theirs = "its checkpoint" if n == 1 else "their checkpoints"
            return f"{members} withdrawn ({theirs}, the {what})"
        return f"the {what} of {members} withdrawn"


def withdraw_batch(
    ctx: ServiceDeps,
    ref: str,
    *,
    requester: str | Principal,
    action: str | None = None,
    drawn: str | None = None,
) -> BatchWithdrawal:
    """Take back what waits in a wave before it runs (docs/batches.md
    "Cancelling"): each member still scheduled or waiting for the approval
    of its checkpoint (the wave's requester's to withdraw), and each waiting
    for the approval of the wave's rollback or merge (whoever asked for
    it), as `withdraw` does for one change; members that ran are left as
    they are. `action` (create, rollback or merge) takes back only that;
    `drawn`, a card's Withdraw: only what that card showed waiting."""
    from bot.service.withdrawal import withdraw  # it imports the approvals

    who = as_principal(requester)
    current = show_batch(ctx, ref)
    check_drawn(current, "withdraw", drawn)
    if action is not None and action not in ("create", *WAVE_ACTIONS):
        raise BadRequest(
            f"a wave's '{action}' cannot be withdrawn: say create, rollback or merge, "
            "or nothing for all that waits"
        )
    waiting = [w for w in current.withdrawals if action is None or w[1] == action]
    if not waiting:
        what = f"no {action} waiting" if action is not None else "nothing waiting"
        held = any(m.state in (State.ACTIVE, State.ROLLED_BACK) for m in current.members)
        # Roll back or merge only where a member still holds its checkpoint.
        instead = ": roll it back or merge it instead" if held else ""
        raise Conflict(
            f"{current.ref} has {what} to withdraw (it is "
            f"{current.state.value.replace('_', ' ')}){instead}"
        )
    mine = [(m, asked) for m, asked, by in waiting if by == who.id]
    if not mine:
        askers = ", ".join(dict.fromkeys(user_mention(by) for _m, _a, by in waiting))
        asked = " and ".join(dict.fromkeys(_what_waits(current, a) for _m, a, _by in waiting))
        raise Forbidden(f"only {askers}, who asked for {asked}, may withdraw it")
    done: list[str] = []
    actions: list[str] = []
    problems: list[tuple[str, str]] = []
    for member, asked in mine:
        try:
            withdraw(ctx, member.change, requester=who, target=Target(action=asked))
            done.append(member.vm_name)
            if asked not in actions:
                actions.append(asked)
        except ServiceError as exc:
            problems.append((member.vm_name, exc.message))
    outcome = BatchWithdrawal(current, tuple(done), tuple(problems), tuple(actions))
    with session_scope(ctx.engine) as s:
        batch_note(
            s,
            get_batch(s, current.id),
            kind="withdrawn",
            actor=who.id,
            actor_team=who.team,
            now=ctx.clock(),
            message=f"{outcome.said} by {user_mention(who.id)} before they ran"
            + "".join(f"; {vm}: {why}" for vm, why in problems),
            details={"withdrawn": done, "actions": actions, "problems": dict(problems)},
        )
    after = show_batch(ctx, ref)
    retell(ctx, after)
    return BatchWithdrawal(after, tuple(done), tuple(problems), tuple(actions))


def _what_waits(batch: BatchView, action: str) -> str:
    return batch.ref if action == "create" else f"{batch.ref}'s {action}"
