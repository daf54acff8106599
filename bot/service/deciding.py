"""Facts in, decision out: the one place the service asks the policy engine.

Used at request time and again right before execution, since facts, windows
and approvals change in between.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.facts import FactSources, gather, inventory_facts
from bot.hyperv import HyperVError, HyperVHost
from bot.inventory import VM, Inventory
from bot.store.models import Change
from policies import Action, Context, Decision, Facts, Policy, Request, evaluate


@dataclass(frozen=True)
class Principal:
    """Who acts: a Slack user id (`U…`) or a CLI operator (`cli:name`), the
    Slack user groups they belong to, and the channel they act from."""

    id: str
    groups: frozenset[str] = field(default_factory=frozenset)
    channel: str | None = None


def as_principal(who: str | Principal) -> Principal:
    """Callers may name a person by id alone (no groups, no channel)."""
    return who if isinstance(who, Principal) else Principal(who)


@dataclass
class Decider:
    inventory: Inventory
    host_for: Callable[[str], HyperVHost]
    policy: Policy
    clock: Callable[[], datetime]
    inventory_label: str = "inventory"

    def facts(self, vm: VM, *, change: Change | None = None, now: datetime | None = None) -> Facts:
        moment = now or self.clock()
        try:
            host: HyperVHost | None = self.host_for(vm.host)
        except HyperVError:
            host = None
        return gather(
            self.inventory,
            vm,
            host,
            sources=FactSources(inventory=self.inventory_label, host=f"host {vm.host}"),
            now=moment,
            change=change,
        )

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
    ) -> Decision:
        moment = now or self.clock()
        facts = self.facts(vm, change=change, now=moment)
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
