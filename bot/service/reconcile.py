"""Reconciliation: bring every change whose work stopped half-way back to
the truth on the host.

At start and on every tick, in any process (the transitions are
conditional on the change's version, so two reconcilers racing make one
step):

1. running jobs whose worker stopped heart-beating for `lock_stale_after`
   become `interrupted` (never earlier); their VM stays held (one
   operation per VM: the vanished worker's host call may go on on the
   host) until step 3 settles their change, then it is released
   (`release_settled`; a human's `resolve` releases it too);
2. queued jobs past their deadline fail, and a change that waited on one
   expires; queued jobs whose delivery was lost are enqueued again;
3. a change stuck in `creating`, `merging` or `rolling_back` with no live
   job is `interrupted`; the host is asked what really happened, and the
   change moves to the state the host shows. Where the host cannot tell (a
   restore leaves no trace that tells "done" from "not done"), the thread
   gets the facts and buttons for a human. An unreachable host leaves the
   change `interrupted`, never guessed, and is asked again next tick. A VM
   the host reports busy with a checkpoint operation (Get-VM's
   OperationalStatus: creating, applying, deleting a checkpoint, merging)
   is still being worked on — a killed worker's call goes on on the host —
   so nothing is concluded and nothing asked (one note) until it is idle,
   or until `HOST_BUSY_LIMIT` after the job started, when a human is
   asked; a VM whose busy state the host does not report is treated as
   busy until the job's host call could have ended (its start plus
   `hyperv.call_timeout`). A human is asked once per finding: again only
   when what the host shows changes (the VM's state), never per tick;
4. an approved or scheduled create whose job ended without starting it (it
   failed, or its worker vanished during the re-check) fails as "not
   started": the change moves to `creating` before `Checkpoint-VM` is
   sent, so one still approved was never taken. Before, such a change
   stayed approved for ever, its requester told nothing;
5. a rollback or merge whose job ended before it sent its host call (the
   job's `host_call` still "not_sent", bot.jobs.states.HostCall) fails as
   "not run", nothing done on the host: before, its change was
   interrupted and a human asked whether the restore ran.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from bot.changes import RESOLUTIONS, Command, State
from bot.changes.lifecycle import IN_FLIGHT, IllegalTransition
from bot.changes.record import (
    ConcurrentUpdate,
    events_of,
    get_change,
    note,
    recording,
    transition,
)
from bot.changes.views import (
    HOST_SAID,
    SETTING_KEPT,
    SETTING_NOT_RESTORED,
    SETTING_RAISED,
    SETTING_RESTORED,
    ChangeView,
)
from bot.clock import speed_of
from bot.domain import RECONCILER_ACTOR, CheckpointKind, user_mention
from bot.hyperv import Checkpoint, CheckpointType, HyperVError, VMInfo
from bot.jobs import HostCall, JobKind, JobState, vmlock
from bot.service.deciding import Principal, as_principal
from bot.service.errors import Conflict, Forbidden, NotFound, Unavailable, changed_meanwhile
from bot.service.execution import setting_for
from bot.service.finding import find_change
from bot.service.follow import follow
from bot.service.host_findings import HostFinding, judge_create, judge_merge, judge_rollback
from bot.service.showing import show_change
from bot.service.sweep import owners_of
from bot.store.db import session_scope
from bot.store.tables import change_ref
from bot.store.tables.changes import Change, ChangeEvent
from bot.store.tables.jobs import Job
from policies import is_admin

if TYPE_CHECKING:
    from bot.service.deps import ServiceDeps

log = logging.getLogger(__name__)

ACTOR = RECONCILER_ACTOR
# How long a due job may sit queued before its delivery counts as lost.
STRANDED_AFTER = timedelta(seconds=60)
# How often a create's failed set-back of the VM's CheckpointType is tried
# again while the record says nothing newer (`Reconciler._retry_set_backs`).
SET_BACK_EVERY = timedelta(hours=1)
# How long after its job started an interrupted change waits while the host
# reports the VM busy with a checkpoint operation before a human is asked
# (a production checkpoint waits on the guest's VSS; a merge of a large disk
# takes long). Generous: waiting costs nothing, a wrong verdict does.
HOST_BUSY_LIMIT = timedelta(hours=2)

# A create's change waits in these until its job moves it to `creating`,
# right before `Checkpoint-VM` is sent.
_WAITING_TO_START = frozenset({State.APPROVED, State.SCHEDULED})

_DEFINITE_FAILURE = {
    State.CREATING: Command.CREATE_FAILED,
    State.MERGING: Command.MERGE_FAILED,
    State.ROLLING_BACK: Command.ROLLBACK_FAILED,
}


def _owned_elsewhere(ctx: ServiceDeps, change_id: int, checkpoints: list[Checkpoint]) -> set[str]:
    """Which of these checkpoints another change already owns."""
    with session_scope(ctx.engine) as s:
        owners = owners_of(s, [c.id for c in checkpoints])
    return {cid for cid, owner in owners.items() if owner.change_id != change_id}


class Reconciler:
    """The periodic task; `reconcile(change_id)` also serves tests and the CLI."""

    name = "reconcile"

    def __init__(self, ctx: ServiceDeps) -> None:
        self.ctx = ctx

    def __repr__(self) -> str:
        return "Reconciler()"

    def tick(self, now: datetime) -> None:
        self.run_pass(now)

    def run_pass(self, now: datetime) -> list[int]:
        """One pass; the changes it looked at, those whose job it found stale
        this pass included."""
        ledger = self.ctx.ledger
        for job in ledger.interrupt_stale():
            log.warning("job %s (%s of %s): %s", job.id, job.kind, job.vm_id, job.error)
        for job_id in ledger.expire_overdue():
            self._expired(job_id)
        grace = STRANDED_AFTER * speed_of(self.ctx.clock)
        # One new delivery per job per grace period, whichever replica ticks.
        slot = int(now.timestamp() // grace.total_seconds())
        for job_id in ledger.stranded_queued(grace):
            if self.ctx.ticks.claim("requeue", f"{job_id}:{slot}"):
                try:
                    self.ctx.queue.enqueue(job_id)
                except Exception as exc:  # the queue's backend errors; the row waits
                    log.warning("job %s: the job queue did not answer (%s)", job_id, exc)
                    break
        self._retry_set_backs(now)
        looked = self.stuck()
        for change_id in looked:
            # Another process may move it first; it is looked at again next tick.
            with suppress(ConcurrentUpdate, IllegalTransition):
                self.reconcile(change_id)
        # Also the holds of changes settled elsewhere (a human's resolve in
        # another process, the sweep finding the checkpoint gone).
        release_settled(self.ctx)
        return looked

    def hand_over(self, now: datetime) -> list[Job]:
        """The job outbox's work, once (`checkpoint-bot reconcile`): every
        job recorded but never handed to the queue, handed over now; the
        jobs handed. A command killed between recording an approval's job
        and its enqueue left it so, and where no bot or worker ticks the
        outbox (the CLI alone) nothing else hands it over: its change stayed
        in flight, its job queued, until the job's deadline. Handing it over
        runs nothing here, and twice is harmless: the conditional
        `delivered_at` update picks one deliverer, the ledger's claim one
        runner."""
        from bot.service.dispatch import JobOutbox

        handed = JobOutbox(self.ctx).hand_over(now)
        return [self.ctx.ledger.get(job_id) for job_id in handed]

    def _retry_set_backs(self, now: datetime) -> list[int]:
        """Ask again, as a job (under the VM's lock, so never between another
        create's raise and its checkpoint), for each active change whose
        create could not set the VM's CheckpointType back and whose record
        says nothing since: the job reads the setting first and sets it only
        if it still is what this change left (bot.service.execution
        `set_back`). At most one job per failure per hour: a host that does
        not answer is asked again later, never on every tick."""
        kinds = [SETTING_RAISED, SETTING_RESTORED, SETTING_NOT_RESTORED, SETTING_KEPT]
        with session_scope(self.ctx.engine) as s:
            rows = s.exec(
                select(ChangeEvent)
                .join(Change, col(Change.id) == col(ChangeEvent.change_id))
                .where(
                    col(Change.state) == State.ACTIVE.value,
                    col(ChangeEvent.kind).in_(kinds),
                )
                .order_by(col(ChangeEvent.change_id), col(ChangeEvent.seq))
            ).all()
        last: dict[int, ChangeEvent] = {}
        for e in rows:
            last[e.change_id] = e
        slot = int(now.timestamp() // SET_BACK_EVERY.total_seconds())
        asked: list[int] = []
        for change_id, e in sorted(last.items()):
            details = e.details or {}
            if e.kind != SETTING_NOT_RESTORED or "original" not in details or "left" not in details:
                continue
            self.ctx.submit(
                JobKind.SET_BACK,
                change_id,
                # One job per failure and slot, whichever replica ticks.
                key=f"set_back:{change_id}:{e.seq}:{slot}",
                payload={"original": details["original"], "left": details["left"]},
            )
            asked.append(change_id)
        return asked

    # -- finding work -------------------------------------------------------

    def stuck(self) -> list[int]:
        """Changes in flight, or waiting to start, with no job that could
        still finish or start them, and interrupted ones."""
        states = [s.value for s in IN_FLIGHT | _WAITING_TO_START] + [State.INTERRUPTED.value]
        with session_scope(self.ctx.engine) as s:
            changes = s.exec(select(Change).where(col(Change.state).in_(states))).all()
            live = {
                j.change_id
                for j in s.exec(
                    select(Job).where(
                        col(Job.state).in_([JobState.QUEUED.value, JobState.RUNNING.value])
                    )
                ).all()
            }
        return sorted(c.id for c in changes if c.id is not None and c.id not in live)

    def _expired(self, job_id: int) -> None:
        job = self.ctx.ledger.get(job_id)
        if job.change_id is None:
            return
        with session_scope(self.ctx.engine) as s:
            change = get_change(s, job.change_id)
            if State(change.state) not in (State.APPROVED, State.SCHEDULED):
                return  # in flight: settled by reconcile() as a job that never started
            transition(
                s,
                change,
                Command.EXPIRE,
                actor=ACTOR,
                now=self.ctx.clock(),
                message=f"its {job.kind} job could not start before its deadline: nothing "
                "was done on the host; request it again",
            )
        self.ctx.notifier.changed(job.change_id)

    # -- one change ---------------------------------------------------------

    def reconcile(self, change_id: int) -> str:
        """Settle one change; returns its state afterwards. Settled, the VM
        its interrupted job held is free for the next operation at once."""
        state = self._reconcile(change_id)
        release_settled(self.ctx, change_id)
        return state

    def _reconcile(self, change_id: int) -> str:
        with session_scope(self.ctx.engine) as s:
            change = get_change(s, change_id)
            events = events_of(s, change_id)
        jobs = self.ctx.ledger.jobs_of_change(change_id)
        state = State(change.state)
        live = any(j.state in (JobState.QUEUED, JobState.RUNNING) for j in jobs)
        if state in _WAITING_TO_START:
            return self._never_started(change, jobs, live)
        if state not in IN_FLIGHT | {State.INTERRUPTED} or (state in IN_FLIGHT and live):
            # Moved on, or its job is still alive, since the change was picked.
            return change.state
        if state in IN_FLIGHT:
            last = jobs[-1] if jobs else None
            if last is not None and last.state == JobState.FAILED and last.started_at is None:
                # The job never ran, so the host was never touched: a definite failure.
                self._step(change, _DEFINITE_FAILURE[state], f"not done: {last.error}")
                return self._state(change_id)
            unsent = _unsent(state, last)
            if unsent is not None:
                self._step(change, _DEFINITE_FAILURE[state], unsent)
                return self._state(change_id)
            why = last.error if last is not None and last.error else "its job ended unseen"
            self._step(
                change,
                Command.INTERRUPT,
                f"{state.value.replace('_', ' ')}: outcome unknown ({why}); asking the host",
            )
            with session_scope(self.ctx.engine) as s:
                change = get_change(s, change_id)
                events = events_of(s, change_id)
            doing = state
        else:
            doing = _interrupted_from(events)
        verdict = self._ask_host(change, doing, events)
        if verdict is None or verdict.wait:
            return change.state
        if verdict.command is not None:
            self._step(
                change,
                verdict.command,
                "reconciled against the host: " + verdict.message,
                details={HOST_SAID: list(verdict.host_said)} if verdict.host_said else None,
                **(verdict.values or {}),
            )
        elif not _asked_already(events, verdict.asked_key, kind="needs_human"):
            self._note(
                change,
                "needs_human",
                "needs a human: " + verdict.message,
                choices=list(verdict.choices),
                key=verdict.asked_key,
                **({HOST_SAID: list(verdict.host_said)} if verdict.host_said else {}),
            )
        return self._state(change_id)

    def _never_started(self, change: Change, jobs: list[Job], live: bool) -> str:
        """An approved or scheduled create: if its job ended and the change
        never reached `creating`, nothing was sent to the host; say so."""
        assert change.id is not None
        creates = [j for j in jobs if j.kind == JobKind.CREATE]
        if live or not creates:
            return change.state  # waiting for its job, or none was ever made
        last = creates[-1]
        if last.state == JobState.INTERRUPTED:
            # Its error says the outcome is unknown; here it is known.
            why = "the worker running its job stopped before the checkpoint was asked for"
        else:
            why = f"its job failed before the checkpoint was asked for ({last.error or 'no error'})"
        self._step(
            change,
            Command.CREATE_FAILED,
            f"not started: {why}; nothing was done on the host, request it again",
        )
        return self._state(change.id)

    def _ask_host(
        self, change: Change, doing: State, events: list[ChangeEvent]
    ) -> HostFinding | None:
        try:
            # Its VM may have been live-migrated, checkpoint and all, since
            # the job was cut off: ask the node that has it now.
            moved = follow(
                self.ctx.engine,
                self.ctx.decider.locator,
                self.ctx.inventory,
                self.ctx.clock,
                change,
                self.ctx.notifier.changed,
            )
            # The caller's copy goes on with the record's host and version.
            change.host, change.version = moved.host, moved.version
        except (Unavailable, NotFound) as exc:
            text = f"cannot find {change.vm_name}'s node yet ({exc}); trying again"
            if not _asked_already(events, text, kind="reconcile_waiting"):
                self._note(change, "reconcile_waiting", text, key=text, **{HOST_SAID: [str(exc)]})
            return None
        host = self.ctx.host_for(change.host)
        try:
            # The VM first: a checkpoint its busy host finishes between the
            # two reads is then seen in the list, never missed.
            vm = host.get_vm(change.vm_id)
            still = self._still_on_host(change, events, vm)
            if still is not None and still.wait:
                return still
            busy = still.message if still is not None else None
            checkpoints = host.list_checkpoints(change.vm_id)
            if doing is State.CREATING:
                self._restore_setting(change, events, vm)
                token, started = self._create_job(change)
                return judge_create(
                    change,
                    checkpoints,
                    _owned_elsewhere(self.ctx, change.id or 0, checkpoints),
                    self.now(),
                    token=token,
                    job_started=started,
                    setting=_ran_under(change, events),
                    host_busy=busy,
                )
        except HyperVError as exc:
            text = f"cannot ask {change.host} yet ({exc.message}); trying again"
            if not _asked_already(events, text, kind="reconcile_waiting"):
                self._note(
                    change, "reconcile_waiting", text, key=text, **{HOST_SAID: [exc.message]}
                )
            return None
        if doing is State.MERGING:
            return judge_merge(change, checkpoints, vm, host_busy=busy)
        return judge_rollback(change, checkpoints, vm, host_busy=busy)

    def _still_on_host(
        self, change: Change, events: list[ChangeEvent], vm: VMInfo
    ) -> HostFinding | None:
        """Whether the host may still be doing the interrupted operation:
        a finding to wait on (noted once), one that says what the host
        still reports past `HOST_BUSY_LIMIT` (not `wait`: the caller asks a
        human rather than concluding), or None when the VM is idle."""
        started = self._job_started(change, events)
        now = self.now()
        if vm.busy is None:
            # The host did not say: its call may run until the job's deadline.
            until = started + self.ctx.settings.hyperv.call_timeout
            if now >= until:
                return None
            text = (
                f"{change.host} does not report whether it is still working on "
                f"{change.vm_name}; its job's host call could run until "
                f"{until.isoformat(timespec='seconds')}, so nothing is concluded before then"
            )
            self._note_once(change, events, text, key="busy:unknown")
            return HostFinding(text, wait=True, key="busy:unknown")
        if not vm.busy:
            return None
        doing = " and ".join(op.doing for op in sorted(vm.busy))
        if now - started >= HOST_BUSY_LIMIT * speed_of(self.ctx.clock):
            return HostFinding(doing, key=f"busy:{doing}")
        text = (
            f"{change.host} is still {doing} on {change.vm_name} (its job's call goes on on "
            "the host after its process left it): nothing is concluded until it is done; "
            "looking again every tick"
        )
        self._note_once(change, events, text, key=f"busy:{doing}")
        return HostFinding(text, wait=True, key=f"busy:{doing}")

    def _note_once(self, change: Change, events: list[ChangeEvent], text: str, key: str) -> None:
        if not _asked_already(events, key, kind="reconcile_waiting"):
            self._note(change, "reconcile_waiting", text, key=key)

    def _job_started(self, change: Change, events: list[ChangeEvent]) -> datetime:
        """When the interrupted change's last job began on the host; the
        interruption's time when no job records a start."""
        ran = [
            j.started_at
            for j in self.ctx.ledger.jobs_of_change(change.id or 0)
            if j.started_at is not None
        ]
        if ran:
            return _aware(ran[-1])
        for e in reversed(events):
            if e.to_state == State.INTERRUPTED.value:
                return _aware(e.at)
        return self.now()

    def _create_job(self, change: Change) -> tuple[str | None, datetime | None]:
        """The token and the start of the create job that may have left a
        checkpoint: the last one that ran."""
        ran = [
            j
            for j in self.ctx.ledger.jobs_of_change(change.id or 0)
            if j.kind == JobKind.CREATE and j.started_at is not None
        ]
        if not ran:
            return None, None
        job = ran[-1]
        token = job.payload.get("token")
        return (str(token) if token else None), job.started_at

    def _restore_setting(self, change: Change, events: list[ChangeEvent], vm: VMInfo) -> None:
        """A create switches the VM's CheckpointType for its checkpoint and
        back afterwards; a worker that died in between left it switched (a
        set-back that the host refused too: the create said so)."""
        said = [
            e
            for e in events
            if e.kind in (SETTING_RESTORED, SETTING_KEPT)
            or (e.kind in (SETTING_RAISED, SETTING_NOT_RESTORED) and "original" in e.details)
        ]
        if not said or said[-1].kind in (SETTING_RESTORED, SETTING_KEPT):
            return
        original = CheckpointType[str(said[-1].details["original"])]
        # What the create set: only that is set back. Anything else on the
        # host now is someone's later choice, never overwritten.
        # `left` on a failed set-back, `raised` on the raise; a record from
        # before either was kept: what `setting_for` gives, as the job chose.
        left = said[-1].details.get("left") or said[-1].details.get("raised")
        raised = (
            CheckpointType[str(left)] if left else setting_for(change.checkpoint_type, original)
        )
        if vm.checkpoint_type is not raised:
            return
        self.ctx.host_for(change.host).set_checkpoint_settings(
            change.vm_id, checkpoint_type=original
        )
        self._note(
            change,
            SETTING_RESTORED,
            f"CheckpointType set back from {vm.checkpoint_type.name} to {original.name} "
            "(the interrupted create had switched it)",
            restored=original.name,
        )

    # -- writing ------------------------------------------------------------

    def now(self) -> datetime:
        return self.ctx.clock()

    def _state(self, change_id: int) -> str:
        with session_scope(self.ctx.engine) as s:
            return get_change(s, change_id).state

    def _step(
        self,
        change: Change,
        command: Command,
        message: str,
        details: dict[str, Any] | None = None,
        **values: Any,
    ) -> None:
        assert change.id is not None
        with session_scope(self.ctx.engine) as s:
            current = get_change(s, change.id)
            if current.version != change.version:
                raise ConcurrentUpdate(change.id)
            transition(
                s,
                current,
                command,
                actor=ACTOR,
                now=self.now(),
                message=message,
                details=details,
                **values,
            )
            change.version = current.version
        self.ctx.notifier.changed(change.id)

    def _note(self, change: Change, kind: str, message: str, **details: Any) -> None:
        """A note on the change as this reconciler read it: another one that
        wrote first (seen: two starting at once asked a human the same
        question twice) makes this one look again next tick."""
        assert change.id is not None
        with session_scope(self.ctx.engine) as s:
            current = get_change(s, change.id)
            if current.version != change.version:
                raise ConcurrentUpdate(change.id)
            note(
                s, current, kind=kind, actor=ACTOR, now=self.now(), message=message, details=details
            )
            change.version = current.version
        self.ctx.notifier.changed(change.id)


def release_settled(ctx: ServiceDeps, change_id: int | None = None) -> list[int]:
    """Release the VMs held for interrupted jobs whose changes are settled
    (of `change_id` only, when given); returns those jobs' ids.

    A hold lasts while the change's outcome on the host is unknown: the
    change is `interrupted` (the host may still run the job's call, or a
    human is asked what happened: another operation on the VM would build
    on, or wipe out, the state they are asked to judge), or it is still in
    flight or waiting to start with that job as its last (the reconciler
    has not looked yet). Once the change moves on (the reconciler's verdict,
    `resolve`, the checkpoint found gone) the VM is free."""
    released: list[int] = []
    for hold in ctx.ledger.holds():
        if change_id is not None and hold.change_id != change_id:
            continue
        if hold.change_id is not None and _unsettled(ctx, hold.change_id, hold.job_id):
            continue
        if ctx.ledger.release_hold(hold.job_id):
            log.info("job %s: its change is settled; VM %s is free", hold.job_id, hold.vm_id)
            released.append(hold.job_id)
    return released


def _unsettled(ctx: ServiceDeps, change_id: int, job_id: int) -> bool:
    with session_scope(ctx.engine) as s:
        state = State(get_change(s, change_id).state)
        last = s.exec(
            select(Job.id).where(col(Job.change_id) == change_id).order_by(col(Job.id).desc())
        ).first()
    if state is State.INTERRUPTED:
        return True
    return state in IN_FLIGHT | _WAITING_TO_START and last == job_id


def _unsent(state: State, last: Job | None) -> str | None:
    """What to record when a rollback's or merge's last job ended before it
    sent its host call (its `host_call` still "not_sent": the job writes
    "sent" before the call, only while it is running and its own, so a job
    interrupted or failed first never sends it); None when it may have been
    sent, or the job does not say (claimed by a release before migration
    0020), and the host must be asked."""
    if state not in _SENDS or last is None or last.kind != _SENDS[state][0]:
        return None
    if last.host_call != HostCall.NOT_SENT or last.state not in _ENDED_UNSENT:
        return None
    verb, call = _SENDS[state][1], _SENDS[state][2]
    why = vmlock.cause_of(last.error) if last.error else "its job ended"
    return (
        f"{verb} not run: its job stopped before {call} was sent ({why}); nothing was "
        "done on the host, try again"
    )


# The job kind whose host call each in-flight state waits on, its verb and the call.
_SENDS = {
    State.ROLLING_BACK: (JobKind.ROLLBACK, "rollback", "Restore-VMSnapshot"),
    State.MERGING: (JobKind.MERGE, "merge", "Remove-VMSnapshot"),
}
_ENDED_UNSENT = frozenset({JobState.FAILED, JobState.INTERRUPTED, JobState.CANCELLED})


def _ran_under(change: Change, events: list[ChangeEvent]) -> CheckpointType | None:
    """The CheckpointType an interrupted create ran under, when the record
    proves it: the job noted the one it raised the VM from (`setting_for`
    then gives the one it raised it to); or production-only was asked, and
    nothing is stricter, so the VM had it already. Otherwise not known."""
    raised = [e for e in events if e.kind == "setting" and "original" in e.details]
    if raised:
        original = CheckpointType[str(raised[-1].details["original"])]
        return setting_for(change.checkpoint_type, original)
    if change.checkpoint_type == CheckpointKind.PRODUCTION_ONLY.value:
        return CheckpointType.ProductionOnly
    return None


def _interrupted_from(events: list[ChangeEvent]) -> State:
    for e in reversed(events):
        if e.to_state == State.INTERRUPTED.value and e.from_state:
            return State(e.from_state)
    raise ValueError("an interrupted change with no interrupt event")


def _asked_already(events: list[ChangeEvent], key: str, *, kind: str) -> bool:
    """Since the change's last transition, the newest reconciler note of
    this kind already said this (its `key` in the details: what was found,
    not the uptime that grows every tick; older notes: their text). So the
    thread gets one note or question per finding, not one per tick, and a
    new one when what the host shows changes."""
    for e in reversed(events):
        if e.to_state:
            return False
        if e.actor != ACTOR or e.kind != kind:
            continue
        said = (e.details or {}).get("key")
        return said == key if said is not None else e.message.endswith(key)
    return False


def _aware(at: datetime) -> datetime:
    """A time read back from the record (SQLite drops the zone) as UTC."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def resolve(ctx: ServiceDeps, ref: str, outcome: str, *, who: str | Principal) -> ChangeView:
    """A human records what happened to an interrupted change the host could
    not settle; only an outcome the reconciler offered, checked against the
    host once more."""
    principal = as_principal(who)
    change_id = find_change(ctx, ref, verb="resolve")
    with session_scope(ctx.engine) as s:
        change = get_change(s, change_id)
        events = events_of(s, change_id)
    offered = ChangeView.of(change, events).resolutions
    if change.state != State.INTERRUPTED or outcome not in offered:
        choices = ", ".join(offered) or "none"
        raise Conflict(
            f"{change_ref(change_id)} is {change.state.replace('_', ' ')}; "
            f"outcomes that can be recorded now: {choices}"
        )
    if principal.id != change.requester and not is_admin(
        ctx.policy, principal.id, principal.groups
    ):
        raise Forbidden(
            f"only the requester ({user_mention(change.requester)}) or an admin may say "
            f"what happened to {change_ref(change_id)}"
        )
    if outcome in ("active", "rolled_back"):
        try:
            present = any(
                c.id == change.checkpoint_id
                for c in ctx.host_for(change.host).list_checkpoints(change.vm_id)
            )
        except HyperVError as exc:
            raise Unavailable(f"cannot check {change.host}: {exc.message}") from None
        if not present:
            raise Conflict(
                f"checkpoint {change.checkpoint_id} is no longer on {change.host}: "
                f"{change_ref(change_id)} cannot be {outcome.replace('_', ' ')}"
            )

    def record(s: Session, current: Change) -> None:
        # The host was asked in between: another answer (a second person, a
        # double click) may have been recorded meanwhile. A note that landed
        # is read past (`recording`); a settled change is not answered twice.
        if current.state != State.INTERRUPTED:
            raise Conflict(
                f"{change_ref(change_id)} is {current.state.replace('_', ' ')} now: "
                "someone answered while you did; nothing was recorded"
            )
        transition(
            s,
            current,
            RESOLUTIONS[outcome],
            actor=principal.id,
            actor_team=principal.team,
            now=ctx.clock(),
            message=f"{user_mention(principal.id)} checked the VM and recorded: "
            f"{outcome.replace('_', ' ')}",
        )

    try:
        recording(ctx.engine, change_id, record)
    except ConcurrentUpdate:
        raise changed_meanwhile(change_id, "answered") from None
    # Recorded: the VM its interrupted job held is free for the next operation.
    release_settled(ctx, change_id)
    ctx.notifier.changed(change_id)
    return show_change(ctx, change_ref(change_id))
