"""Which node owns a VM now: the one answer every host operation is routed by.

    Locator(inventory, host_for, engine, clock, fanout).locate(vm) -> Located
    search_order(nodes, inventory_host, last_seen) -> [node, ...]     pure
    owner_of(vm, group, answers) -> host name, or raises               pure

On a failover cluster a VM moves between nodes (live migration for patching,
draining, balancing), and `Get-VM` on a node lists only the VMs that node runs
("Gets the virtual machines from one or more Hyper-V hosts",
https://learn.microsoft.com/powershell/module/hyper-v/get-vm; a clustered VM
is a cluster role owned by one node at a time,
https://learn.microsoft.com/powershell/module/failoverclusters/get-clustergroup).
So the owner is found by VMId: first on the node the last sighting names (else
the inventory's), then on the other nodes of its cluster, at most
`hyperv.fanout` at once. What was found is remembered (bot.store.sightings).

A VM no node has is "not found on prod-cluster (asked HV01, HV02)"; a node
that could not be asked makes the owner unknown, never absent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine

from bot.hyperv import HostAuthError, HyperVError, HyperVHost, VMNotFound
from bot.hyperv.fanout import ask_hosts
from bot.inventory import VM, Inventory
from bot.service.errors import NotFound, Unavailable
from bot.store.sightings import Sighting, last_seen, record_seen

__all__ = [
    "HostUnavailable",
    "Located",
    "Locator",
    "NotOnCluster",
    "OwnerAmbiguous",
    "moved_details",
    "moved_text",
    "owner_of",
    "search_order",
]


class HostUnavailable(Unavailable):
    """The facts a decision needs could not be gathered because the host
    could not be asked: nothing was decided, and asking again later may work.
    `login_failed`: the bot could not log in (a credential missing or
    refused), which asking again does not fix: the credential must be."""

    def __init__(self, vm: str, host: str, error: str, *, login_failed: bool = False) -> None:
        if login_failed:
            said = (
                f"could not check {vm}: the bot could not log in to {host} ({error}); nothing "
                "was decided or recorded, and trying again will not help until the "
                "credential is fixed"
            )
        else:
            said = (
                f"could not check {vm}: {host} could not be reached ({error}); nothing was "
                "decided or recorded, try again once it answers"
            )
        super().__init__(said)
        self.vm = vm
        self.host = host
        self.error = error
        self.login_failed = login_failed


class NotOnCluster(NotFound):
    """Every node that may own the VM answered, and none has it."""

    def __init__(self, vm: VM, group: str, asked: Sequence[str], detail: str = "") -> None:
        if len(asked) == 1 and group == asked[0]:
            # A standalone host: the inventory's host is the only place to look.
            text = f"{vm.name} (VMId {vm.vm_id}) is not on {group}, where the inventory puts it"
        else:
            text = f"{vm.name} (VMId {vm.vm_id}) not found on {group} (asked {', '.join(asked)})"
        text = f"{text}: {detail}" if detail else text
        # Moved off the inventory's hosts, or removed: what the hosts report
        # now is one command away (a patching admin was given no next step).
        super().__init__(
            f"{text}; 'checkpoint-bot inventory diff' (an admin's) shows where the hosts "
            "have it now"
        )
        self.vm = vm.name
        self.group = group
        self.asked = tuple(asked)


class OwnerAmbiguous(Unavailable):
    """More than one node reports the VMId: never guess which one to act on."""

    def __init__(self, vm: VM, hosts: Sequence[str]) -> None:
        super().__init__(
            f"could not check {vm.name}: {' and '.join(hosts)} both report VMId {vm.vm_id}; "
            "nothing was decided or recorded, try again once only one node has it"
        )
        self.vm = vm.name
        self.host = hosts[0]
        self.error = f"reported by {', '.join(hosts)}"


@dataclass(frozen=True)
class Located:
    """Where the VM is now, as its node just said."""

    vm: VM
    host: str
    group: str
    sighting: Sighting


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def moved_text(vm: str, old: str, new: str, seen: Sighting) -> str:
    """What a thread and `change show` say when a change follows its VM. The
    bot cannot know the instant of a live migration, only between which of its
    own sightings it happened; Slack renders the times from `moved_details`."""
    text = f"{vm} is now on {new}; it moved at or before {_utc(seen.since)}"
    if seen.previous_host is not None and seen.previous_seen_at is not None:
        text += f" (last seen on {seen.previous_host} at {_utc(seen.previous_seen_at)})"
    return text + f"; the change follows it from {old}"


def moved_details(old: str, new: str, seen: Sighting) -> dict[str, str | None]:
    return {
        "from": old,
        "to": new,
        "found_at": seen.since.astimezone(UTC).isoformat(),
        "last_seen_on": seen.previous_host,
        "last_seen_at": (
            seen.previous_seen_at.astimezone(UTC).isoformat() if seen.previous_seen_at else None
        ),
    }


def search_order(nodes: Sequence[str], inventory_host: str, last: str | None) -> list[str]:
    """The last sighting's node first (where it most likely still is), else the
    inventory's; then the rest in the cluster's order."""
    first = inventory_host
    if last is not None:
        first = next((n for n in nodes if n.casefold() == last.casefold()), inventory_host)
    return [first, *(n for n in nodes if n.casefold() != first.casefold())]


Answer = tuple[str, object | HyperVError]


def owner_of(vm: VM, group: str, answers: Sequence[Answer]) -> str:
    """The one node that has the VM, from every node's answer (a VMInfo, or
    the error it raised). Raises `NotOnCluster` when all answered without it,
    `HostUnavailable` when one that could not be asked might have it,
    `OwnerAmbiguous` when several have it."""
    found = [name for name, result in answers if not isinstance(result, HyperVError)]
    if len(found) == 1:
        return found[0]
    if found:
        raise OwnerAmbiguous(vm, found)
    failed = [(n, r) for n, r in answers if not isinstance(r, VMNotFound)]
    if failed:
        name, error = failed[0]
        assert isinstance(error, HyperVError)
        raise HostUnavailable(
            vm.name, name, error.message, login_failed=isinstance(error, HostAuthError)
        )
    asked = [name for name, _result in answers]
    # A standalone host's own words say enough; a cluster's are all alike.
    only = answers[0][1] if len(answers) == 1 else None
    raise NotOnCluster(vm, group, asked, only.message if isinstance(only, HyperVError) else "")


@dataclass
class Locator:
    inventory: Inventory
    host_for: Callable[[str], HyperVHost]
    engine: Engine
    clock: Callable[[], datetime]
    fanout: int = 32
    # A sighting on the same node younger than this is not written again.
    refresh: timedelta = timedelta(minutes=1)

    def last_seen(self, vm: VM) -> Sighting | None:
        return last_seen(self.engine, vm.vm_id)

    def locate(self, vm: VM) -> Located:
        """Ask the likeliest node first; only when it does not have the VM (or
        cannot be asked) ask the others. Records the sighting."""
        nodes = self.inventory.nodes_for(vm)
        group = self.inventory.group_of(vm)
        previous = self.last_seen(vm)
        order = search_order(nodes, vm.host, previous.host if previous else None)
        answers: list[Answer] = list(self._ask([order[0]], vm))
        if isinstance(answers[0][1], HyperVError) and len(order) > 1:
            answers += self._ask(order[1:], vm)
        host = owner_of(vm, group, answers)
        return self.seen(vm, host, group, previous)

    def standalone(self, vm: VM) -> bool:
        """Whether the inventory's host is the only place `vm` can be (no
        cluster): then `locate` asks no other node, and a caller about to
        ask that host anyway may skip its probe (bot.service.deciding)."""
        return len(self.inventory.nodes_for(vm)) == 1

    def seen(self, vm: VM, host: str, group: str, previous: Sighting | None) -> Located:
        """`vm` found on `host` just now: the sighting, recorded unless the
        last one says the same and is recent."""
        now = self.clock()
        if (
            previous is not None
            and previous.host.casefold() == host.casefold()
            and timedelta(0) <= now - previous.seen_at < self.refresh
        ):
            # Seen there a moment ago: no write for every decision (on SQLite
            # each one would queue behind the one writer).
            return Located(vm=vm, host=previous.host, group=group, sighting=previous)
        sighting = record_seen(self.engine, vm.vm_id, host, now)
        return Located(vm=vm, host=host, group=group, sighting=sighting)

    def _ask(self, names: Sequence[str], vm: VM) -> list[Answer]:
        def get(host: HyperVHost) -> object:
            return host.get_vm(vm.vm_id)

        return list(ask_hosts(self.host_for, names, get, fanout=self.fanout))
