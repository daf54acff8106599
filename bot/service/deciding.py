"""Facts in, decision out: the one place the service asks the policy engine.

Used at request time and again right before execution, since facts, windows
and approvals change in between.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.facts import FactSources, gather, inventory_facts
from bot.hyperv import (
    HostAuthError,
    HostTimeout,
    HostUnreachable,
    HyperVError,
    HyperVHost,
    VMNotFound,
)
from bot.inventory import VM, Inventory
from bot.service.directory import Directory, NoDirectory
from bot.service.errors import NotFound, Unavailable
from bot.service.locate import HostUnavailable, Located, Locator, NotOnCluster
from bot.store.tables.changes import Change
from policies import (
    Action,
    Context,
    Decision,
    Effect,
    Facts,
    Policy,
    Request,
    RuleOutcome,
    evaluate,
)

# The host could not be asked at all: nothing about the VM is known, and
# the reason is the connection, not the VM. Deciding now would turn a
# network fault into a policy refusal.
_CANNOT_ASK = (HostUnreachable, HostTimeout, HostAuthError)


def _cannot_check(vm: VM, host: str, exc: HyperVError) -> Unavailable | NotFound:
    if isinstance(exc, VMNotFound):
        return NotFound(
            f"{vm.name} (VMId {vm.vm_id}) is not on {host}, where it was just found: {exc.message}"
        )
    return HostUnavailable(vm.name, host, exc.message, login_failed=isinstance(exc, HostAuthError))


@dataclass(frozen=True)
class Preview:
    """`Decider.preview`'s answer: the decision, the facts it was made on,
    and, when the VM's host could not be asked, the error a request would
    have stopped at (then those facts are unknown, and the verdict is only
    what failing closed on them gives)."""

    decision: Decision
    facts: Facts
    undecided: HostUnavailable | None = None


@dataclass(frozen=True)
class Principal:
    """Who acts: a Slack user id (`U…`) or a CLI operator (`cli:name`), the
    Slack user groups they belong to, the channel they act from, and the
    Slack workspace (team id) they belong to. A Slack user id names a person
    only within its workspace, so a Slack principal is (team, id); the Slack
    handlers accept only the configured workspace's. A CLI operator has no team."""

    id: str
    groups: frozenset[str] = field(default_factory=frozenset)
    channel: str | None = None
    team: str | None = None


def as_principal(who: str | Principal) -> Principal:
    """Callers may name a person by id alone (no groups, no channel)."""
    return who if isinstance(who, Principal) else Principal(who)


@dataclass
class Decider:
    inventory: Inventory
    host_for: Callable[[str], HyperVHost]
    policy: Policy
    clock: Callable[[], datetime]
    # Finds the node that owns a VM now (a clustered VM moves).
    locator: Locator
    inventory_label: str = "inventory"
    # Slack user groups, asked at every check (bot.service.directory).
    directory: Directory = field(default_factory=NoDirectory)

    def principal(self, who: str, team: str | None, channel: str | None) -> Principal:
        """`who` as of now: their Slack user groups resolved again, the same
        way as at the request. Raises `GroupsUnavailable` (nothing decided)."""
        return Principal(who, self.directory.groups_of(who, team), channel, team=team)

    def facts(
        self,
        vm: VM,
        *,
        change: Change | None = None,
        now: datetime | None = None,
        strict: bool = True,
        found_on: str | None = None,
    ) -> Facts:
        """Everything the policy may use about `vm`. Strict (for decisions
        that are recorded or acted on): a host that cannot be asked raises
        `HostUnavailable`, a VM the host does not have raises `NotFound`.
        Not strict: those facts are unknown, with why (`preview`, for
        `policy explain`, also keeps what stopped them).
        `found_on`: the node the caller found the VM on a moment ago (a job
        that followed its VM): asked directly, not located again."""
        moment = now or self.clock()
        if strict and found_on is not None:
            return self._facts_at(found_on, vm, change, moment)
        if strict and self.locator.standalone(vm):
            return self._facts_at(vm.host, vm, change, moment)
        found, stopped = self._facts_where_it_is(vm, change, moment)
        if strict and stopped is not None:
            raise stopped
        return found

    def _facts_where_it_is(
        self, vm: VM, change: Change | None, moment: datetime
    ) -> tuple[Facts, Unavailable | NotFound | None]:
        """The facts of `vm` asked of the node that has it now, and what
        stops a decision on them: its owner could not be found or asked
        (`Unavailable`), or no node has it (`NotFound`). Those facts are
        then unknown, with why."""
        try:
            located: Located = self.locator.locate(vm)
        except (Unavailable, NotFound) as exc:
            group = self.inventory.group_of(vm)
            asked = f"host {vm.host}" if group == vm.host else f"cluster {group}"
            unlocated = gather(
                self.inventory,
                vm,
                None,
                sources=FactSources(inventory=self.inventory_label, host=asked),
                now=moment,
                change=change,
                host_problem=str(exc),
            )
            return unlocated, exc
        found, problems = self._gather_on(located.host, vm, change, moment)
        if problems and isinstance(problems[0], (*_CANNOT_ASK, VMNotFound)):
            return found, _cannot_check(vm, located.host, problems[0])
        return found, None

    def _gather_on(
        self, owner: str, vm: VM, change: Change | None, moment: datetime
    ) -> tuple[Facts, list[HyperVError]]:
        """The facts of `vm` asked of `owner`, and what the host refused
        (those facts are unknown, with why)."""
        problems: list[HyperVError] = []
        try:
            host: HyperVHost | None = self.host_for(owner)
        except HyperVError as exc:
            problems.append(exc)
            host = None
        found = gather(
            self.inventory,
            vm,
            host,
            sources=FactSources(inventory=self.inventory_label, host=f"host {owner}"),
            now=moment,
            change=change,
            on_host_error=problems.append,
            owner=owner,
        )
        return found, problems

    def _facts_at(self, owner: str, vm: VM, change: Change | None, moment: datetime) -> Facts:
        """Strict facts of a VM where it can only be (a standalone host), or
        where it was found a moment ago (a job that just followed it to its
        node), in one host call, not two: `Locator.locate` would ask that
        same host for the VM and then the facts would ask it again (a PSRP
        invocation each, most of a create's host time, bench/op_latency.py).
        The facts call names the VM by its VMId, so its errors answer what
        the probe would have, and are raised as `Locator.locate` raises them
        (`owner_of`): the VM is not there (it moved again: the job fails
        closed and is retried), or the host could not be asked. The sighting
        is recorded as the probe would have recorded it."""
        previous = self.locator.last_seen(vm)
        found, problems = self._gather_on(owner, vm, change, moment)
        # As on the located path: a VM not there or a host not answering
        # stops the decision; any other refusal leaves those facts unknown,
        # for the rules to fail closed on (with why).
        if problems and isinstance(problems[0], VMNotFound):
            raise NotOnCluster(vm, owner, [owner], problems[0].message)
        if problems and isinstance(problems[0], _CANNOT_ASK):
            raise HostUnavailable(
                vm.name,
                owner,
                problems[0].message,
                login_failed=isinstance(problems[0], HostAuthError),
            )
        self.locator.seen(vm, owner, self.inventory.group_of(vm), previous)
        return found

    def inventory_facts(self, vm: VM) -> Facts:
        """What the inventory alone says of `vm` (no host call): enough to
        match scopes for notices and reminders, never for a verdict."""
        return Facts(inventory_facts(self.inventory, vm, self.inventory_label, self.clock()))

    def decide(
        self,
        vm: VM,
        action: Action,
        who: Principal,
        *,
        checkpoint_type: str | None = None,
        ttl: timedelta | None = None,
        extend_to: datetime | None = None,
        change: Change | None = None,
        now: datetime | None = None,
        strict: bool = True,
    ) -> Decision:
        """Raises `HostUnavailable` / `NotFound` when strict (see `facts`)."""
        return self.decide_seeing(
            vm,
            action,
            who,
            checkpoint_type=checkpoint_type,
            ttl=ttl,
            extend_to=extend_to,
            change=change,
            now=now,
            strict=strict,
        )[0]

    def decide_seeing(
        self,
        vm: VM,
        action: Action,
        who: Principal,
        *,
        checkpoint_type: str | None = None,
        ttl: timedelta | None = None,
        extend_to: datetime | None = None,
        change: Change | None = None,
        now: datetime | None = None,
        strict: bool = True,
        found_on: str | None = None,
    ) -> tuple[Decision, Facts]:
        """`decide`, and the facts it was made on: the job right after the
        re-check acts on what that re-check read of the VM instead of asking
        the host again. `found_on` as for `facts`."""
        moment = now or self.clock()
        facts = self.facts(vm, change=change, now=moment, strict=strict, found_on=found_on)
        decision = self._evaluate(vm, action, who, facts, moment, checkpoint_type, ttl, extend_to)
        self.observe(action, decision, strict=strict)
        return decision, facts

    def preview(
        self,
        vm: VM,
        action: Action,
        who: Principal,
        *,
        checkpoint_type: str | None = None,
        now: datetime | None = None,
    ) -> Preview:
        """`policy explain`: the decision on whatever could be read, never
        recorded nor acted on. When the VM's host could not be asked, a
        request would have stopped there (`HostUnavailable`, nothing
        decided): the preview keeps that error beside the decision, whose
        verdict then is no verdict at all."""
        moment = now or self.clock()
        facts, stopped = self._facts_where_it_is(vm, None, moment)
        decision = self._evaluate(vm, action, who, facts, moment, checkpoint_type, None, None)
        self.observe(action, decision, strict=False)
        # A VM its host does not have is an answer (every fact says so);
        # only a host that did not answer leaves the question open.
        undecided = stopped if isinstance(stopped, HostUnavailable) else None
        return Preview(decision, facts, undecided)

    def observe(self, action: Action, decision: Decision, *, strict: bool) -> None:
        """Called with every decision made; what watches decisions (metrics)
        overrides it. `strict=False` is `policy explain`: a preview."""

    def refusals_at_once(
        self, vm: VM, action: Action, who: Principal, ttl: timedelta | None = None
    ) -> list[RuleOutcome]:
        """The rules that refuse `action` on `vm` for `who` whatever the host
        says: decided on what the inventory and the request alone tell (no
        host call, fast enough for a modal's 3-second answer), keeping only
        refusals that known facts decided (a domain controller, a DAG
        member, a permission). A rule that fired for want of a host fact is
        not one of them: the full decision at the request settles it."""
        moment = self.clock()
        facts = self.inventory_facts(vm)
        decision = self._evaluate(vm, action, who, facts, moment, None, ttl, None)
        return [o for o in decision.fired if o.effect is Effect.DENY and not o.for_want_of_facts]

    def _evaluate(
        self,
        vm: VM,
        action: Action,
        who: Principal,
        facts: Facts,
        moment: datetime,
        checkpoint_type: str | None,
        ttl: timedelta | None,
        extend_to: datetime | None,
    ) -> Decision:
        request = Request(
            action=action,
            vm_name=vm.name,
            vm_id=vm.vm_id,
            requester=who.id,
            checkpoint_type=checkpoint_type,
            ttl=ttl,
            extend_to=extend_to,
            channel=who.channel,
        )
        context = Context(now=moment, policy=self.policy, groups=who.groups, channel=who.channel)
        return evaluate(request, facts, context)
