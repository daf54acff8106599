"""Job handlers: the host work behind create, rollback and merge.

A handler never holds a database transaction across a host call (SQLite
would block every other writer for the call's duration). It records each
step on the change, and tells a definite failure (the host said no: the
change moves on) from an unknown outcome (timeout, lost connection, a bug:
the change is `interrupted` until reconciled against the host).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.changes import IN_FLIGHT, Command, State
from bot.changes.record import events_of, get_change, note, recording, transition
from bot.changes.views import (
    HOST_SAID,
    SETTING_KEPT,
    SETTING_NOT_RESTORED,
    SETTING_RAISED,
    SETTING_RESTORED,
    START_UNKNOWN,
    offered_resolutions,
)
from bot.clock import utc_text
from bot.config import DefaultsConfig
from bot.domain import BOT_ACTOR, ApprovalState, CheckpointKind
from bot.durations import format_duration
from bot.facts import VMSeen, busy_in, seen_in
from bot.hyperv import (
    Checkpoint,
    CheckpointNotFound,
    CheckpointType,
    HostAuthError,
    HostTimeout,
    HostUnreachable,
    HyperVError,
    HyperVHost,
    VMInfo,
    VMNotFound,
    VMOperation,
    VMState,
)
from bot.hyperv.evidence import Taken, holds_memory, judge_taken
from bot.inventory import Inventory
from bot.jobs import (
    HandledFailure,
    HandledInterruption,
    JobContext,
    JobDeadlineExceeded,
    JobKind,
    JobState,
    RetryLater,
)
from bot.service.deciding import Decider, Principal
from bot.service.errors import NotFound, Unavailable
from bot.service.follow import follow
from bot.service.locate import HostUnavailable
from bot.service.ownership import checkpoint_name, mark
from bot.service.provenance import deployment_key
from bot.service.vanished import gone
from bot.store.db import session_scope
from bot.store.outage import is_transient
from bot.store.tables import change_ref
from bot.store.tables.approvals import ApprovalRequest
from bot.store.tables.changes import Change
from bot.store.tables.jobs import Job
from policies import Action, Facts, Verdict

log = logging.getLogger(__name__)

_T = TypeVar("_T")

ACTOR = BOT_ACTOR
# The VM states a rollback may leave behind that someone has to start.
NOT_RUNNING_AFTER_RESTORE = frozenset({VMState.Off, VMState.Saved})


# A re-check that cannot reach the host is tried again only while this much
# of the job's deadline is left for the create itself.
_RETRY_MARGIN = timedelta(minutes=1)


class OperationFailed(HandledFailure):
    """The host refused; already recorded on the change. Fails the job."""


class OutcomeUnknown(HandledInterruption):
    """The host call ended with its outcome unknown; the change is already
    `interrupted`. Ends the job `interrupted`, not failed: seen, a create
    whose connection was reset after the host took the checkpoint recorded
    its job "failed" next to the reconciler's "taken"."""


# How an unknown outcome's job error ends: who settles it, so nobody
# reading the job list runs it again.
_SETTLES = "the reconciler settles it"


def _token(job: JobContext) -> str:
    """The job's ownership token (drawn when it was submitted); a job queued
    before tokens existed gets one derived from its own id."""
    token = job.payload.get("token")
    return str(token) if token else f"{job.job_id:08x}"[-8:]


def _why_not_checked(exc: Exception) -> str:
    """What stopped the re-check, without the request-time advice."""
    if isinstance(exc, HostUnavailable) and exc.login_failed:
        return f"could not check {exc.vm}: the bot could not log in to {exc.host} ({exc.error})"
    if isinstance(exc, HostUnavailable):
        return f"could not check {exc.vm}: {exc.host} could not be reached ({exc.error})"
    return str(exc)


class _NotThere(Exception):
    """The node the change names answered that the VM is not on it, so
    nothing was done there, and no other node could be named: a definite
    failure (the message says where the VM was looked for)."""


class _LeftAfterActing(Exception):
    """The VM was not on its node when the host read it back after acting:
    whether the act ran before it moved is not known (never tried again
    elsewhere)."""


class _NotAsked(Exception):
    """The job's deadline passed before the host was asked for the one call
    that changes it: nothing was done there (a definite outcome)."""

    def __init__(self, passed: JobDeadlineExceeded) -> None:
        super().__init__(str(passed))
        self.passed = passed


def _deadline_passed(exc: JobDeadlineExceeded) -> str:
    """ "its job's deadline (2026-11-24 11:40 UTC) passed": the record's
    words (a date token in Slack), not the exception's ISO timestamp."""
    when = f" ({utc_text(exc.deadline)})" if exc.deadline is not None else ""
    return f"its job's deadline{when} passed"


def setting_for(asked: str, current: CheckpointType) -> CheckpointType:
    """The CheckpointType a create runs under: the asked one when it is
    stricter than the VM's, else the VM's own (an admin's ProductionOnly is
    never weakened to Production, nor Production to Standard)."""
    wanted = CheckpointType.for_word(CheckpointKind(asked))
    if current.strictness is None or wanted.strictness is None:
        return current  # Disabled: the host refuses; never switch it on
    return wanted if wanted.strictness > current.strictness else current


def _remove(host: HyperVHost, change: Change) -> None:
    """Remove-VMSnapshot of the change's checkpoint on one node."""
    assert change.checkpoint_id is not None
    host.remove_checkpoint(change.vm_id, change.checkpoint_id)


def _seen_on(host: HyperVHost, vm_id: str, seen: VMSeen | None) -> VMSeen:
    """The VM on `host` as the job's re-check read it a moment ago (its
    facts call), or asked now (`Get-VM`) when that reading is from another
    node (the VM was followed since) or was not made."""
    if seen is not None and seen.host.casefold() == host.name.casefold():
        return seen
    vm = host.get_vm(vm_id)
    return VMSeen(host.name, vm.checkpoint_type, vm.state)


@dataclass
class HostJobs:
    engine: Engine
    inventory: Inventory
    host_for: Callable[[str], HyperVHost]
    decider: Decider
    defaults: DefaultsConfig
    clock: Callable[[], datetime]
    # Told after every step, so the change's Slack thread follows the job.
    on_change: Callable[[int], None] = lambda _change_id: None
    merge_poll_seconds: float = 0.5
    # How often (real seconds) long host work reports to the thread.
    progress_seconds: float = 10.0

    def handlers(self) -> dict[str, Callable[[JobContext], dict[str, Any]]]:
        return {
            JobKind.CREATE: self.create,
            JobKind.ROLLBACK: self.rollback,
            JobKind.MERGE: self.merge,
            JobKind.START: self.start,
            JobKind.SET_BACK: self.set_back,
        }

    # -- helpers -------------------------------------------------------------

    def _step(
        self,
        change_id: int,
        command: Command,
        message: str = "",
        details: dict[str, Any] | None = None,
        *,
        said: str | None = None,
        **values: Any,
    ) -> None:
        """Record a transition. `said`: the part of `message` a host or an
        error said, not the bot (bot.changes.views.HOST_SAID)."""
        if said:
            details = {**(details or {}), HOST_SAID: [said]}
        recording(
            self.engine,
            change_id,
            lambda s, change: transition(
                s,
                change,
                command,
                actor=ACTOR,
                now=self.clock(),
                message=message,
                details=details,
                **values,
            ),
        )
        self.on_change(change_id)

    def _note(
        self, change_id: int, kind: str, message: str, *, said: str | None = None, **details: Any
    ) -> None:
        if said:
            details[HOST_SAID] = [said]
        recording(
            self.engine,
            change_id,
            lambda s, change: note(
                s,
                change,
                kind=kind,
                actor=ACTOR,
                now=self.clock(),
                message=message,
                details=details,
            ),
        )
        self.on_change(change_id)

    def _load(self, change_id: int) -> Change:
        with session_scope(self.engine) as s:
            return get_change(s, change_id)

    def _follow(self, change: Change) -> Change:
        """The change routed to the node that has its VM now. A VM that moved
        (live migration) since the change last saw it is followed, and its
        thread says so; the per-VM lock and the record stay keyed by VMId, so
        a move never lets two operations run at once. Raises `Unavailable` /
        `NotFound` (bot.service.locate) when no node can be named."""
        return follow(
            self.engine, self.decider.locator, self.inventory, self.clock, change, self.on_change
        )

    def _stays_put(self, change: Change) -> bool:
        """A VM on a standalone host that the change already names cannot
        have moved: following it would only ask that host whether it has the
        VM, which the re-check right after asks anyway (its facts name the
        VM by VMId, and a VM not there or a host not answering raises what
        following would, bot.service.deciding). One PSRP invocation fewer
        per create (bench/op_latency.py)."""
        vm = self.inventory.vm_by_id(change.vm_id)
        return self.decider.locator.standalone(vm) and vm.host.casefold() == change.host.casefold()

    def _host_refused(
        self, change_id: int, on_refusal: Command, doing: str, exc: HyperVError
    ) -> OperationFailed:
        """Record the host's refusal of `doing` on the change; what fails the job."""
        self._step(
            change_id,
            on_refusal,
            f"{doing} failed: {exc.message}",
            details={"category": exc.category, "error_id": exc.error_id},
            said=exc.message,
        )
        return OperationFailed(f"{change_ref(change_id)}: {doing} failed: {exc}")

    @contextmanager
    def _host_call(self, change_id: int, on_refusal: Command, doing: str) -> Iterator[None]:
        """Record how a host call ended. A refusal by the host is definite;
        anything else (timeout, lost connection, deadline, a bug) leaves the
        outcome unknown, so the change is interrupted, never guessed."""
        try:
            yield
        except CheckpointNotFound as exc:
            if not self._vanished(change_id):
                raise self._host_refused(change_id, on_refusal, doing, exc) from exc
            # The checkpoint the change owns is gone from the host: nothing
            # is left to restore or merge, ever.
            self._step(
                change_id,
                Command.VANISH,
                f"{doing} not done: the host no longer has the checkpoint ({exc.message}); "
                "it was deleted outside the bot or the host was rebuilt, so nothing is left "
                "to roll back or merge",
                said=exc.message,
            )
            raise OperationFailed(f"{change_ref(change_id)}: checkpoint vanished") from exc
        except HyperVError as exc:
            if isinstance(exc, HostTimeout | HostUnreachable):
                # The call may have reached the host and done its work (a
                # connection reset while the answer was awaited): unknown.
                self._interrupt(change_id, doing, str(exc))
                raise OutcomeUnknown(
                    f"{change_ref(change_id)}: the host stopped answering during the {doing}: "
                    f"outcome unknown ({exc}); {_SETTLES}"
                ) from exc
            raise self._host_refused(change_id, on_refusal, doing, exc) from exc
        except _NotThere as exc:
            self._step(change_id, on_refusal, f"{doing} not run: {exc}", said=str(exc))
            raise OperationFailed(f"{change_ref(change_id)}: {doing} not run: {exc}") from exc
        except _LeftAfterActing as exc:
            self._interrupt(change_id, doing, str(exc))
            raise OutcomeUnknown(
                f"{change_ref(change_id)}: {doing}: outcome unknown ({exc}); {_SETTLES}"
            ) from exc
        except _NotAsked as exc:
            self._step(
                change_id,
                on_refusal,
                f"{doing} not taken: {_deadline_passed(exc.passed)} before it could be asked "
                "for; nothing was asked of the host, request it again",
            )
            raise OperationFailed(f"{change_ref(change_id)}: {doing} not run: {exc}") from exc
        except JobDeadlineExceeded as exc:
            # The job's own time limit, not a bug: words for people (seen in a
            # wave's thread: "JobDeadlineExceeded: job 3 passed its deadline
            # 2026-11-24T11:40:54.548969+00:00"), and no traceback in the log.
            log.warning("%s of %s: %s", doing, change_ref(change_id), exc)
            why = f"{_deadline_passed(exc)} before the host had finished"
            self._interrupt(change_id, doing, why)
            raise OutcomeUnknown(
                f"{change_ref(change_id)}: {doing}: outcome unknown ({why}); {_SETTLES}"
            ) from exc
        except Exception as exc:
            log.exception("%s of %s ended unexpectedly", doing, change_ref(change_id))
            # A bug's class and text are for the log: the record people read
            # says what it means for the change.
            self._step(
                change_id,
                Command.INTERRUPT,
                f"{doing}: outcome unknown (the bot ended it unexpectedly; the bot's log has "
                "why); the host must be checked before anything else happens to this change",
            )
            # The traceback is in the log (above); the job's error is words.
            raise OutcomeUnknown(
                f"{change_ref(change_id)}: {doing} ended unexpectedly (the log has why): "
                f"outcome unknown; {_SETTLES}"
            ) from exc

    @contextmanager
    def _reporting(self, job: JobContext, doing: str) -> Iterator[None]:
        """While the block runs, tell the thread every `progress_seconds`
        that `doing` is still going and for how long: a production
        checkpoint can take minutes and a merge longer, and silence reads
        as a hang."""
        started = self.clock()
        stop = threading.Event()
        reported = threading.Event()

        def report() -> None:
            while not stop.wait(self.progress_seconds):
                job.progress(f"{doing}… {format_duration(self.clock() - started)} so far")
                reported.set()

        reporter = threading.Thread(target=report, name=f"progress-{job.job_id}", daemon=True)
        reporter.start()
        try:
            yield
        finally:
            stop.set()
            reporter.join()
            if reported.is_set():
                # The reply said "so far"; leave it saying how it ended.
                job.progress(f"{doing}: ended after {format_duration(self.clock() - started)}")

    def _vanished(self, change_id: int) -> bool:
        """The host answers and the VM's checkpoints do not include the one
        the change owns (by Id): proof it is gone, not a guess."""
        change = self._load(change_id)
        if change.checkpoint_id is None:
            return False
        try:
            host = self.host_for(change.host)
        except HyperVError:
            return False
        return gone(host, change.vm_id, change.checkpoint_id) is True

    def _took(self, since: datetime) -> str:
        return format_duration(self.clock() - since)

    def _interrupt(self, change_id: int, doing: str, why: str) -> None:
        """`why` is what an error said, never the bot's own words."""
        self._step(
            change_id,
            Command.INTERRUPT,
            f"{doing}: outcome unknown ({why}); the host must be checked before "
            "anything else happens to this change",
            said=why,
        )

    # -- create --------------------------------------------------------------

    def create(self, job: JobContext) -> dict[str, Any]:
        assert job.change_id is not None
        try:
            ready = self._ready_to_create(job)
        except Exception as exc:
            if not is_transient(exc):
                raise
            # Nothing has reached the host yet, and the claim keeps anyone
            # else from running this job: trying again later is safe.
            raise RetryLater(
                f"the database is unavailable ({type(exc).__name__}); nothing was done "
                "on the host, trying again"
            ) from exc
        if isinstance(ready, dict):
            return ready
        change, seen = ready
        started = self.clock()
        with (
            self._host_call(job.change_id, Command.CREATE_FAILED, "checkpoint"),
            self._reporting(
                job, f"taking a {change.checkpoint_type} checkpoint of {change.vm_name}"
            ),
        ):
            change, (checkpoint, taken) = self._take_following(change, job, seen)
        expires = self.clock() + timedelta(seconds=change.ttl_seconds)
        differs = taken.kind.value != change.checkpoint_type
        asked = f"{change.checkpoint_type} was asked; " if differs else ""
        # The outcome line ends with how long it took; why the bot believes
        # what was taken is on the card and in `change show`.
        self._step(
            job.change_id,
            Command.CREATED,
            f"{asked}{taken.kind.value} checkpoint {checkpoint.id} taken in {self._took(started)}",
            # The thread names who asked, not only the bot that did it.
            details={
                "taken": taken.kind.value,
                "evidence": taken.evidence,
                "asked_by": change.requester,
            },
            checkpoint_id=checkpoint.id,
            checkpoint_name=checkpoint.name,
            expires_at=expires,
            taken_type=taken.kind.value,
            taken_evidence=taken.evidence[:500],
            holds_memory=holds_memory(checkpoint),
        )
        if taken.fell_back:
            self._note(
                job.change_id,
                "warning",
                "Hyper-V fell back to a standard checkpoint: the guest's VSS could not make a "
                "production one, so this checkpoint holds memory and is not "
                "application-consistent",
            )
        return {"checkpoint_id": checkpoint.id, "kind": taken.kind.value}

    def _ready_to_create(self, job: JobContext) -> tuple[Change, VMSeen | None] | dict[str, Any]:
        """Everything before the host call: the change now `creating` and
        what the re-check read of the VM, or the job's result when it must
        not run."""
        assert job.change_id is not None
        change = self._load(job.change_id)
        if change.state not in (State.APPROVED, State.SCHEDULED):
            raise OperationFailed(
                f"{change_ref(job.change_id)} is {change.state}, not approved or scheduled"
            )
        # Facts, windows and approvals change between request and execution.
        try:
            if not self._stays_put(change):
                change = self._follow(change)
            who = self.decider.principal(change.requester, change.requester_team, change.channel)
            refusal, facts = self._recheck(change, Action.CREATE, who)
            occupied = None if refusal else self._occupied(change, facts)
        except (Unavailable, NotFound) as exc:
            return self._cannot_check(job, change, exc)
        if refusal:
            self._step(job.change_id, Command.DENY, "re-checked before running: " + refusal)
            return {"denied": True}
        if occupied:
            # Busy is transient: waited out like a host that did not answer,
            # never recorded as a refusal.
            return self._not_now(job, change, occupied, retry=True, said=None)
        self._step(job.change_id, Command.START_CREATE, f"taking a checkpoint on {change.host}")
        return change, seen_in(facts)

    def _occupied(self, change: Change, facts: Facts | None = None) -> str | None:
        """Why another operation may still be at work on the change's VM
        (None when none is known): defence in depth behind the VM lock,
        which an interrupted job keeps until its change is settled
        (bot.jobs.vmlock). Two sources: the record (another change on the
        VM whose outcome is not settled: a job interrupted before holds
        existed, or whose hold was lost) and the host itself, which reports
        a checkpoint operation in progress on a VM, whoever started it, in
        Get-VM's OperationalStatus (Creating / Applying / Deleting Snapshot,
        Merging Disks: Msvm_ComputerSystem.OperationalStatus,
        https://learn.microsoft.com/windows/win32/hyperv_v2/msvm-computersystem;
        Get-VM, https://learn.microsoft.com/powershell/module/hyper-v/get-vm).
        A host that does not report OperationalStatus (`busy` None) is not
        taken as busy here: the lock covers the bot's own operations, and
        failing closed on it would stop every operation on that host.
        `facts`: the re-check's, which read OperationalStatus moments ago
        (`vm_busy`), so the host is not asked again; without them (a merge,
        which has no re-check) it is asked. Raises `HostUnavailable` when the
        host cannot be asked."""
        assert change.id is not None
        other = self._unsettled_sibling(change)
        if other is not None:
            return other
        busy = busy_in(facts) if facts is not None else self._busy_now(change)
        if not busy:
            return None
        doing = " and ".join(op.doing for op in sorted(busy))
        return (
            f"{change.host} is still {doing} on {change.vm_name} (another operation is in "
            "progress on the VM)"
        )

    def _busy_now(self, change: Change) -> frozenset[VMOperation] | None:
        """What the host reports running on the change's VM now."""
        try:
            return self.host_for(change.host).get_vm(change.vm_id).busy
        except VMNotFound:
            # Moved since it was followed: the operation follows it (never
            # run where it is not), and the VM lock, keyed by VMId, went along.
            return None
        except HyperVError as exc:
            raise HostUnavailable(
                change.vm_name,
                change.host,
                exc.message,
                login_failed=isinstance(exc, HostAuthError),
            ) from exc

    def _unsettled_sibling(self, change: Change) -> str | None:
        """Another change on the same VM whose host work ended with its
        outcome unknown and is not settled yet: interrupted, or in flight
        with no job left that could finish it (the reconciler's next pass
        interrupts it)."""
        with session_scope(self.engine) as s:
            others = s.exec(
                select(Change).where(
                    Change.vm_id == change.vm_id,
                    col(Change.id) != change.id,
                    col(Change.state).in_([st.value for st in IN_FLIGHT | {State.INTERRUPTED}]),
                )
            ).all()
            for other in others:
                assert other.id is not None
                if other.state != State.INTERRUPTED:
                    live = s.exec(
                        select(Job.id).where(
                            Job.change_id == other.id,
                            col(Job.state).in_([JobState.QUEUED.value, JobState.RUNNING.value]),
                        )
                    ).first()
                    if live is not None:
                        continue  # queued behind this job's VM lock, or about to be
                ref = change_ref(other.id)
                if other.state == State.INTERRUPTED and offered_resolutions(events_of(s, other.id)):
                    return (
                        f"{change.vm_name}'s previous operation ({ref}) ended with its outcome "
                        f"unknown and waits for someone to record what happened "
                        f"(`change resolve {ref}`)"
                    )
                return (
                    f"{change.vm_name}'s previous operation ({ref}) is still in progress on "
                    "the host, or its outcome is not settled yet"
                )
        return None

    def _cannot_check(self, job: JobContext, change: Change, exc: Exception) -> dict[str, Any]:
        """The re-check could not be made. Nothing ran on the host: try again
        while the deadline allows, then fail saying so, never as a refusal."""
        message = _why_not_checked(exc)
        return self._not_now(job, change, message, retry=isinstance(exc, Unavailable), said=message)

    def _not_now(
        self, job: JobContext, change: Change, message: str, *, retry: bool, said: str | None
    ) -> dict[str, Any]:
        """The create cannot start now for `message`, and nothing ran on the
        host: with `retry`, try again while the deadline allows; then fail
        saying so, never as a refusal. `said`: what of it an error said."""
        assert change.id is not None
        if retry and job.remaining() > _RETRY_MARGIN.total_seconds():
            with session_scope(self.engine) as s:
                last = events_of(s, change.id)[-1]
            if not (last.kind == "recheck_waiting" and last.message.startswith(message)):
                self._note(
                    change.id,
                    "recheck_waiting",
                    f"{message}; nothing was done, trying again until {utc_text(job.deadline)}",
                    said=said,
                )
            raise RetryLater(message)
        self._step(
            change.id,
            Command.CREATE_FAILED,
            f"not started: {message}; nothing was done on the host, request it again",
            said=said,
        )
        return {"not_started": message}

    def _asked_by(self, job: JobContext, change: Change) -> str:
        """Who asked for this job (its payload; older jobs: whoever moved the
        change into its state), without resolving their groups."""
        asked = job.payload.get("requester")
        if isinstance(asked, dict) and asked.get("id"):
            return str(asked["id"])
        assert change.id is not None
        return self._last_actor_and_team(change.id)[0]

    def _job_requester(self, job: JobContext, change: Change) -> Principal:
        """Who asked for this job, as of now: captured in its payload (older
        jobs: whoever moved the change into its state, from the change's
        channel), with their Slack user groups resolved again."""
        asked = job.payload.get("requester")
        if isinstance(asked, dict) and asked.get("id"):
            team, channel = asked.get("team"), asked.get("channel")
            return self.decider.principal(
                str(asked["id"]),
                str(team) if team else None,
                str(channel) if channel else change.channel,
            )
        assert change.id is not None
        actor, team = self._last_actor_and_team(change.id)
        return self.decider.principal(actor, team, change.channel)

    def _last_actor_and_team(self, change_id: int) -> tuple[str, str | None]:
        """Who moved the change into its current state, and their workspace."""
        with session_scope(self.engine) as s:
            events = events_of(s, change_id)
        last = next((e for e in reversed(events) if e.to_state), None)
        return (last.actor, last.actor_team) if last else (ACTOR, None)

    def _recheck(self, change: Change, action: Action, who: Principal) -> tuple[str | None, Facts]:
        """Why the action may no longer run (None when it still may), and the
        facts that was decided on. Raises `Unavailable` / `NotFound` when
        the host cannot be asked."""
        assert change.id is not None
        vm = self.inventory.vm_by_id(change.vm_id)
        # Both callers have just followed the VM to its node (or know it
        # cannot have moved): asked there, not located a second time.
        decision, facts = self.decider.decide_seeing(
            vm,
            action,
            who,
            checkpoint_type=change.checkpoint_type,
            ttl=timedelta(seconds=change.ttl_seconds) if action is Action.CREATE else None,
            change=None if action is Action.CREATE else change,
            found_on=change.host,
        )
        if decision.verdict is Verdict.DENY:
            # What refuses it, not an approval rule the change already met.
            return "; ".join(decision.refusals or decision.reasons), facts
        if decision.schedule_at is not None and decision.schedule_at > self.clock():
            return (
                f"its change window is closed (next opens {utc_text(decision.schedule_at)})",
                facts,
            )
        if decision.verdict is Verdict.NEEDS_APPROVAL:
            with session_scope(self.engine) as s:
                granted = s.exec(
                    select(ApprovalRequest)
                    .where(
                        ApprovalRequest.change_id == change.id,
                        ApprovalRequest.action == action.value,
                        ApprovalRequest.state == ApprovalState.APPROVED,
                    )
                    .order_by(col(ApprovalRequest.id).desc())
                ).first()
            needed = decision.approval.required if decision.approval else 1
            if granted is None or len(granted.approvals) < needed:
                return "it now needs approval: " + "; ".join(decision.reasons), facts
        return None, facts

    def _take_following(
        self, change: Change, job: JobContext, seen: VMSeen | None
    ) -> tuple[Change, tuple[Checkpoint, Taken]]:
        """`_take` on the VM's node; when that node no longer has the VM (it
        was live-migrated after the re-check), follow it once. Safe, not a
        blind retry: `Get-VM -Id` found nothing, so the pipeline ended before
        `Checkpoint-VM` and nothing was created on the old node."""
        try:
            return change, self._take(self.host_for(change.host), change, job, seen)
        except VMNotFound:
            try:
                moved = self._follow(change)
            except (Unavailable, NotFound):
                moved = change
            if moved.host.casefold() == change.host.casefold():
                raise
        return moved, self._take(self.host_for(moved.host), moved, job, None)

    def _take(
        self, host: HyperVHost, change: Change, job: JobContext, seen: VMSeen | None
    ) -> tuple[Checkpoint, Taken]:
        """Set the VM's CheckpointType for the kind asked (and back after),
        then take it. What the VM's type and state are comes from the
        re-check's facts call, made on this node a moment ago; only a VM
        that was followed elsewhere since is asked again (`Get-VM`)."""
        assert change.id is not None
        seen = _seen_on(host, change.vm_id, seen)
        original = seen.checkpoint_type
        setting = setting_for(change.checkpoint_type, original)
        switch = setting is not original
        if switch:
            host.set_checkpoint_settings(change.vm_id, checkpoint_type=setting)
            self._note(
                change.id,
                SETTING_RAISED,
                f"CheckpointType raised from {original.name} to {setting.name} for this "
                "checkpoint; it is set back afterwards",
                original=original.name,
                # What it was set to: a set-back after an interruption sends
                # Set-VM only while the host still has this.
                raised=setting.name,
            )
        try:
            try:
                job.check_deadline()
            except JobDeadlineExceeded as exc:
                # Checked just before Checkpoint-VM: the host was not asked for
                # it, so the change failed, not "outcome unknown".
                raise _NotAsked(exc) from exc
            name = self._name(change, _token(job))
            checkpoint = host.create_checkpoint(change.vm_id, name)
        finally:
            if switch:
                self._set_back(host, change, setting, original)
        return checkpoint, judge_taken(checkpoint, setting=setting, vm_state=seen.state)

    def _name(self, change: Change, token: str) -> str:
        """The checkpoint's name, marked with the record's key (a record
        without one gives the unmarked name: bot.service.ownership)."""
        assert change.id is not None
        ref = change_ref(change.id)
        with session_scope(self.engine) as s:
            key = deployment_key(s)
        marked = mark(key, token, ref, change.vm_id) if key is not None else None
        return checkpoint_name(ref, token, change.reason, marked)

    def _set_back(
        self, host: HyperVHost, change: Change, setting: CheckpointType, original: CheckpointType
    ) -> None:
        """Set the VM's CheckpointType back to its own after the checkpoint,
        and record that it was, or that it could not be and what to do: the
        audit trail shows every Set-VM the bot sent. A failure here never
        replaces what Checkpoint-VM did (a checkpoint taken stays the
        change's, a failure stays the create's)."""
        assert change.id is not None
        try:
            host.set_checkpoint_settings(change.vm_id, checkpoint_type=original)
        except HyperVError as exc:
            vm, ref = change.vm_name, change_ref(change.id)
            self._note(
                change.id,
                SETTING_NOT_RESTORED,
                f"CheckpointType could not be set back from {setting.name} to "
                f"{original.name} after the checkpoint ({exc.message}): {vm} may still have "
                # Read in the change's Slack thread as well as on the CLI:
                # Slack's command first, the terminal's after it.
                f"{setting.name}. See it with `/checkpoint settings {vm}`, and an admin sets "
                f"it back with `/checkpoint settings {vm} --type {original.word} --reason "
                f'"set back after {ref}"` (on the CLI: checkpoint-bot checkpoint settings '
                f'{vm} --type {original.word} -r "set back after {ref}"; or Set-VM '
                f"-CheckpointType {original.name} on {host.name})",
                said=exc.message,
                original=original.name,
                left=setting.name,
            )
            return
        self._note(
            change.id,
            SETTING_RESTORED,
            f"CheckpointType set back from {setting.name} to {original.name} after the checkpoint",
            restored=original.name,
        )

    # -- rollback and merge on the VM's node now ----------------------------

    def _following(
        self, change: Change, act: Callable[[HyperVHost, Change], _T], done: str
    ) -> tuple[Change, _T]:
        """`act` on the VM's node; when that node answers that the VM is not
        on it (live-migrated since the job followed it), follow it once and
        act where it is now. Never a blind retry: only a definite answer that
        nothing was done on the old node is followed (`_left_from`); a
        timeout, a lost answer, or a VM gone only when read back after
        acting (`_LeftAfterActing`) is an unknown outcome, not followed."""
        try:
            return change, act(self.host_for(change.host), change)
        except (VMNotFound, CheckpointNotFound) as exc:
            moved = self._left_from(change, exc, done)
        return moved, act(self.host_for(moved.host), moved)

    def _left_from(self, change: Change, exc: VMNotFound | CheckpointNotFound, done: str) -> Change:
        """The change followed to the VM's node now, after the node it names
        refused the act with `exc` (which proves nothing was done there: the
        checkpoint the act is given is found through the VM, and an act that
        finds none does nothing). Re-raises `exc` when that node still has
        the VM, or cannot say (the refusal is then about the checkpoint, and
        stands); `_NotThere` when no node can be named."""
        if isinstance(exc, CheckpointNotFound) and not self._vm_left(change):
            raise exc
        left = f"{change.vm_name} is not on {change.host} any more"
        try:
            return self._follow(change)
        except NotFound as nowhere:
            raise _NotThere(f"{left} and was looked for: {nowhere}; nothing was {done}") from exc
        except Unavailable as unknown:
            raise _NotThere(
                f"{left}, and where it is now could not be found "
                f"({_why_not_checked(unknown)}); nothing was {done}, try again"
            ) from exc

    def _vm_left(self, change: Change) -> bool:
        """Whether the node the change names positively answers that it has
        no such VM (a checkpoint it did not find went along with its VM).
        A node that cannot be asked says nothing: False."""
        try:
            self.host_for(change.host).get_vm(change.vm_id)
        except VMNotFound:
            return True
        except HyperVError:
            return False
        return False

    def _restorer(
        self, change: Change, seen: VMSeen | None
    ) -> Callable[[HyperVHost, Change], tuple[HyperVHost, VMSeen, VMInfo]]:
        """The restore on one node: the VM as it was just before (from the
        re-check when it is that node's), then Restore-VMSnapshot."""
        assert change.checkpoint_id is not None
        checkpoint_id = change.checkpoint_id

        def restore(host: HyperVHost, at: Change) -> tuple[HyperVHost, VMSeen, VMInfo]:
            before = _seen_on(host, at.vm_id, seen)
            try:
                after = host.restore_checkpoint(at.vm_id, checkpoint_id)
            except VMNotFound as exc:
                # The restore's own reply ends by reading the VM back: one
                # that left after the checkpoint was applied reads as not
                # found too. Never taken for "nothing was done".
                raise _LeftAfterActing(
                    f"{at.vm_name} is not on {host.name} any more: it was not there when read "
                    f"back after the restore ({exc.message}), so whether checkpoint "
                    f"{checkpoint_id} was applied before it moved is not known"
                ) from exc
            return host, before, after

        return restore

    def _merging(self, change: Change) -> tuple[Change, bool]:
        """Whether the VM still merges the removed checkpoint's disk, asked
        of its node; a VM live-migrated meanwhile (its merge goes along) is
        followed: only read, so asking again elsewhere is safe."""
        try:
            return change, self.host_for(change.host).get_vm(change.vm_id).merging
        except VMNotFound as exc:
            try:
                change = self._follow(change)
            except (Unavailable, NotFound) as lost:
                raise _LeftAfterActing(
                    f"checkpoint {change.checkpoint_id} was removed, then {change.vm_name} left "
                    f"{change.host} while its disk merged, and where it is now could not be "
                    f"found ({_why_not_checked(lost)}): whether the merge ended is not known"
                ) from exc
        return change, self.host_for(change.host).get_vm(change.vm_id).merging

    # -- restore -------------------------------------------------------------

    def rollback(self, job: JobContext) -> dict[str, Any]:
        assert job.change_id is not None
        change = self._load(job.change_id)
        if change.state != State.ROLLING_BACK or not change.checkpoint_id:
            raise OperationFailed(
                f"{change_ref(job.change_id)} is {change.state}, not rolling back"
            )
        try:
            if not self._stays_put(change):
                change = self._follow(change)
            assert change.checkpoint_id is not None  # followed, not changed
            who = self._job_requester(job, change)
            refusal, facts = self._recheck(change, Action.ROLLBACK, who)
            occupied = None if refusal else self._occupied(change, facts)
        except (Unavailable, NotFound) as exc:
            why = _why_not_checked(exc)
            self._step(
                job.change_id,
                Command.ROLLBACK_FAILED,
                f"rollback not run: {why}; nothing was done on the host, try again",
                said=why,
            )
            return {"not_started": why}
        if refusal:
            self._step(
                job.change_id,
                Command.ROLLBACK_FAILED,
                "rollback not run: re-checked before running: " + refusal,
            )
            return {"refused": refusal}
        if occupied:
            # A destructive job is never requeued (bot.jobs.runner): it ends
            # here, nothing done, the change back to active for a new try.
            self._step(
                job.change_id,
                Command.ROLLBACK_FAILED,
                f"rollback not run: {occupied}; nothing was done on the host, "
                "try again once it ends",
            )
            return {"busy": occupied}
        # Written first, so that a job cut off before this line is known
        # never to have touched the host (the reconciler's "not started").
        job.sending("Restore-VMSnapshot")
        began = self.clock()
        with (
            self._host_call(job.change_id, Command.ROLLBACK_FAILED, "rollback"),
            self._reporting(job, f"restoring {change.vm_name} to its checkpoint"),
        ):
            change, (host, before, after) = self._following(
                change, self._restorer(change, seen_in(facts)), "restored"
            )
        started = False
        start_unknown = False
        if (
            after.state is VMState.Off
            and before.state is VMState.Running
            and self.defaults.start_after_restore
        ):
            try:
                after = host.start_vm(change.vm_id)
                started = True
            except (HostTimeout, HostUnreachable) as exc:
                # Sent, its answer lost: the VM may be running (as `start`).
                start_unknown = True
                self._note(
                    job.change_id,
                    START_UNKNOWN,
                    f"restored; Start-VM was sent, then the host stopped answering "
                    f"({exc.message}): whether {change.vm_name} started is not known",
                    said=exc.message,
                )
            except HyperVError as exc:
                self._note(
                    job.change_id,
                    "warning",
                    f"restored, but starting the VM failed: {exc.message}",
                    said=exc.message,
                )
        if started:
            state_text = "started again"
        elif start_unknown:
            state_text = (
                f"was being started when the host stopped answering: look at it on "
                f"{change.host}, and start it if it is still off"
            )
        elif after.state in NOT_RUNNING_AFTER_RESTORE:
            state_text = f"left {after.state.name}: start it when you are ready"
        else:
            state_text = after.state.name
        self._step(
            job.change_id,
            Command.ROLLED_BACK,
            f"restored checkpoint {change.checkpoint_id} in {self._took(began)}; "
            f"{change.vm_name} {state_text}",
            details={"vm_state": after.state.name, "started": started, "asked_by": who.id},
            vm_state_after=after.state.name,
        )
        return {"vm_state": after.state.name, "started": started}

    # -- start (after a rollback left the VM off) ------------------------------

    def start(self, job: JobContext) -> dict[str, Any]:
        assert job.change_id is not None
        change = self._load(job.change_id)
        try:
            change = self._follow(change)
        except (Unavailable, NotFound) as exc:
            self._note(job.change_id, "start_failed", f"Start-VM not run: {exc}", said=str(exc))
            raise OperationFailed(f"{change_ref(job.change_id)}: start not run: {exc}") from exc
        host = self.host_for(change.host)
        try:
            vm = host.start_vm(change.vm_id)
        except HyperVError as exc:
            if isinstance(exc, HostTimeout | HostUnreachable):
                # Start-VM may have reached the host and started the VM, its
                # answer lost on the way back: not known, so never "failed".
                # The card still offers Start (its VM state is as it was).
                self._note(
                    job.change_id,
                    START_UNKNOWN,
                    f"Start-VM was sent, then the host stopped answering ({exc.message}): "
                    f"whether {change.vm_name} started is not known; look at it on "
                    f"{change.host}, and start it again if it is still off",
                    said=exc.message,
                )
                raise OperationFailed(
                    f"{change_ref(job.change_id)}: start: outcome unknown ({exc})"
                ) from exc
            self._note(
                job.change_id, "start_failed", f"Start-VM failed: {exc.message}", said=exc.message
            )
            raise OperationFailed(f"{change_ref(job.change_id)}: start failed: {exc}") from exc
        recording(
            self.engine,
            job.change_id,
            lambda s, current: note(
                s,
                current,
                kind="started",
                actor=str(job.payload.get("by") or ACTOR),
                actor_team=job.payload.get("by_team"),
                now=self.clock(),
                message=f"{change.vm_name} started; it is {vm.state.name}",
                vm_state_after=vm.state.name,
            ),
        )
        self.on_change(job.change_id)
        return {"vm_state": vm.state.name}

    # -- the set-back a create could not do, tried again ---------------------

    def set_back(self, job: JobContext) -> dict[str, Any]:
        """Set the VM's CheckpointType back to its own (`original`) where the
        create's set-back failed, leaving it at `left`: read first, and set
        only if the host still has `left`. Anything else is someone's later
        choice (or the set-back happened after all), never overwritten. What
        it found or did is recorded, which ends the retries; a host that did
        not answer the read is asked again later (bot.service.reconcile)."""
        assert job.change_id is not None
        original = CheckpointType[str(job.payload["original"])]
        left = CheckpointType[str(job.payload["left"])]
        change = self._load(job.change_id)
        try:
            change = self._follow(change)
        except (Unavailable, NotFound) as exc:
            raise OperationFailed(
                f"{change_ref(job.change_id)}: set-back not tried: {exc}"
            ) from exc
        host = self.host_for(change.host)
        try:
            now = host.get_vm(change.vm_id).checkpoint_type
        except HyperVError as exc:
            # Nothing was sent: the failure stays the record's last word,
            # so the reconciler asks again in its next hour.
            raise OperationFailed(
                f"{change_ref(job.change_id)}: set-back not tried: the host did not say the "
                f"VM's CheckpointType ({exc.message})"
            ) from exc
        if now is not left:
            kept = (
                f"it is {now.name} already"
                if now is original
                else f"it is {now.name} now, set since by someone or something else"
            )
            self._note(
                job.change_id,
                SETTING_KEPT,
                f"CheckpointType not set back on retry: {kept}, not the {left.name} this "
                "change left; left as it is",
                found=now.name,
                original=original.name,
                left=left.name,
            )
            return {"found": now.name, "set": False}
        try:
            host.set_checkpoint_settings(change.vm_id, checkpoint_type=original)
        except HyperVError as exc:
            self._note(
                job.change_id,
                SETTING_KEPT,
                # Not retried again: a Set-VM that went unanswered may have
                # been applied, and only a look at the VM tells.
                f"CheckpointType not set back from {left.name} to {original.name}: the "
                f"retry's Set-VM failed or went unanswered ({exc.message}). See it with "
                f"'checkpoint-bot checkpoint settings {change.vm_name}', and an admin sets "
                "it back with "
                f"'checkpoint-bot checkpoint settings {change.vm_name} --type {original.word} "
                f'-r "set back after {change_ref(job.change_id)}"\'',
                said=exc.message,
                found=now.name,
                original=original.name,
                left=left.name,
            )
            raise OperationFailed(
                f"{change_ref(job.change_id)}: set-back failed: {exc.message}"
            ) from exc
        self._note(
            job.change_id,
            SETTING_RESTORED,
            f"CheckpointType set back from {left.name} to {original.name} on retry (the set-back "
            "after the checkpoint had failed; the host still had what this change left)",
            restored=original.name,
        )
        return {"found": now.name, "set": True}

    # -- remove (keep & merge) -----------------------------------------------

    def merge(self, job: JobContext) -> dict[str, Any]:
        assert job.change_id is not None
        change = self._load(job.change_id)
        if change.state != State.MERGING or not change.checkpoint_id:
            raise OperationFailed(f"{change_ref(job.change_id)} is {change.state}, not merging")
        try:
            change = self._follow(change)
            occupied = self._occupied(change)
        except (Unavailable, NotFound) as exc:
            why = _why_not_checked(exc)
            self._step(
                job.change_id,
                Command.MERGE_FAILED,
                f"merge not run: {why}; nothing was done on the host, try again",
                said=why,
            )
            return {"not_started": why}
        if occupied:
            self._step(
                job.change_id,
                Command.MERGE_FAILED,
                f"merge not run: {occupied}; nothing was done on the host, try again once it ends",
            )
            return {"busy": occupied}
        assert change.checkpoint_id is not None  # followed, not changed
        job.sending("Remove-VMSnapshot")  # as the rollback's
        started = self.clock()
        with self._host_call(job.change_id, Command.MERGE_FAILED, "merge"):
            change, _ = self._following(change, _remove, "removed")
            job.progress("checkpoint removed; merging its disk into the parent")
            with self._reporting(job, f"merging the checkpoint's disk into {change.vm_name}"):
                while True:
                    change, merging = self._merging(change)
                    if not merging:
                        break
                    job.check_deadline()
                    time.sleep(self.merge_poll_seconds)
        took = self.clock() - started
        self._step(
            job.change_id,
            Command.MERGED,
            f"checkpoint {change.checkpoint_id} removed and merged in {format_duration(took)}",
            details={"asked_by": self._asked_by(job, change)},
        )
        return {"merge_seconds": round(took.total_seconds(), 1)}
