"""What the orphan and stale sweep found: plain values for templates, the
CLI's `--json` and tests (no ORM objects)."""

from __future__ import annotations

import enum
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.changes.views import ChangeView, HostProblem
from bot.domain import canonical_guid

if TYPE_CHECKING:
    from bot.inventory import Inventory


class Finding(enum.StrEnum):
    # Owned by a change that is past its expiry: someone should decide.
    STALE = "stale"
    # No change owns it and it is older than `sweep.orphan_after`.
    ORPHAN = "orphan"
    # A change names it, but says it should not exist any more (merged,
    # failed, interrupted…): the record and the host disagree.
    MISMATCH = "mismatch"
    # No change of ours owns it, and its name carries another checkpoint-bot
    # deployment's token (bot.service.ownership): that bot's to decide.
    FOREIGN = "foreign"


# The adopt buttons' value: where the orphan was seen. Host names never hold
# "/", Hyper-V ids are GUIDs (bot.domain).
_ORPHAN_VALUE = re.compile(r"^([^/\s]{1,255})/([^/]{36,38})/([^/]{36,38})$")


def parse_orphan_value(value: str) -> tuple[str, str, str]:
    """`"HV01/<vm id>/<checkpoint id>"` → `(host, vm_id, checkpoint_id)`, the
    ids in the form the bot keeps."""
    found = _ORPHAN_VALUE.match(value)
    vm_id = canonical_guid(found.group(2)) if found else None
    checkpoint_id = canonical_guid(found.group(3)) if found else None
    if found is None or vm_id is None or checkpoint_id is None:
        raise ValueError(f"not an orphan button value: {value!r} (expected HOST/VMID/CHECKPOINTID)")
    return found.group(1), vm_id, checkpoint_id


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class Gone(enum.StrEnum):
    """What of a change's whereabouts the inventory no longer has an entry for."""

    # Its host: with the host's entry went its address and credential, and
    # the entries of the VMs on it.
    HOST = "host"
    # The VM alone: its host is still in the inventory.
    VM = "vm"


def left_inventory(inventory: Inventory, vm_id: str, host: str) -> Gone | None:
    """What of a change's VM and host the inventory no longer has: None
    while it has the VM (by its VMId: a renamed VM is still there, and one
    the inventory moved to another host is followed there), else its host
    if that is gone too (it took the VM's entry with it), else the VM."""
    from bot.inventory import InventoryLookupError

    try:
        inventory.vm_by_id(vm_id)
        return None
    except InventoryLookupError:
        pass
    return Gone.VM if has_host(inventory, host) else Gone.HOST


def has_host(inventory: Inventory, host: str) -> bool:
    """Whether the inventory has an entry for `host` (any case)."""
    from bot.inventory import InventoryLookupError

    try:
        inventory.host(host)
    except InventoryLookupError:
        return False
    return True


# A verb's words with "it" where English puts it.
_DO_IT = {"roll back": "roll it back", "merge": "merge it", "extend": "extend it"}


def out_of_sight_words(ref: str, vm_name: str, host: str, gone: Gone, verb: str) -> str:
    """One line for an action asked of a change whose VM or host left the
    inventory: what left, and what to do (never "no VM named …", which
    reads like a typo). The bot reaches a host only through its inventory
    entry, so nothing is asked of any host."""
    do_it = _DO_IT.get(verb, f"{verb} it")
    if gone is Gone.HOST:
        return (
            f"{ref}'s checkpoint of {vm_name} is on {host}, which is no longer in the "
            f"inventory: put {host} and {vm_name} back in the inventory to {do_it}; the bot "
            "cannot reach a host it has no entry for; nothing was done"
        )
    return (
        f"{ref}'s checkpoint is of {vm_name} on {host}, and {vm_name} is no longer in the "
        f"inventory: put it back in the inventory to {do_it}; the bot acts only on VMs the "
        "inventory lists; nothing was done"
    )


@dataclass(frozen=True)
class OutOfSight:
    """A change that holds a checkpoint by the record (active, rolled back,
    merging, rolling back) whose VM or host is no longer in the inventory:
    the sweep cannot list it and the bot cannot act on it, so it is listed
    as out of sight, never dropped, and nothing is done to it (no buttons)."""

    change_ref: str
    change_state: str
    change_version: int
    vm_name: str
    vm_id: str
    # Where the record has it.
    host: str
    checkpoint_id: str | None
    requester: str
    expires_at: datetime | None
    gone: Gone
    # Where its digest goes (its change's channel, else the sweep's).
    channel: str | None
    # The last size a sweep sampled, and when (None: no kept sample).
    size_bytes: int | None = None
    size_at: datetime | None = None
    batch_ref: str | None = None

    @property
    def missing(self) -> str:
        """The name the inventory lacks: the host's, or the VM's."""
        return self.host if self.gone is Gone.HOST else self.vm_name

    @property
    def why(self) -> str:
        return f"{self.missing} is not in the inventory"

    @property
    def todo(self) -> str:
        if self.gone is Gone.HOST:
            return (
                f"put {self.host} back in the inventory to merge or roll it back; "
                "the bot cannot reach a host it has no entry for"
            )
        return (
            f"put {self.vm_name} back in the inventory to merge or roll it back; "
            "the bot acts only on VMs the inventory lists"
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["gone"] = self.gone.value
        data["expires_at"] = _iso(self.expires_at)
        data["size_at"] = _iso(self.size_at)
        data["why"] = self.why
        data["todo"] = self.todo
        return data


@dataclass(frozen=True)
class SweepItem:
    """One checkpoint the sweep reports, with its owner if it has one."""

    finding: Finding
    host: str
    vm_name: str
    vm_id: str
    checkpoint_id: str
    name: str
    kind: str
    created_at: datetime
    age_seconds: int
    size_bytes: int
    # Since the previous sample (None: first time the sweep sees it).
    growth_bytes: int | None
    # Where its digest goes; None when neither its change nor the config
    # names a channel (then it is only in the CLI's report).
    channel: str | None
    change_ref: str | None = None
    change_state: str | None = None
    change_version: int = 0
    requester: str | None = None
    expires_at: datetime | None = None
    # How the bot knows what it is: e.g. "left by CHG-0011's create job"
    # (its token is one of ours), or the foreign token it carries.
    provenance: str = ""
    # The wave (BAT-n) its change is a member of, if any.
    batch_ref: str | None = None

    # A digest row is a checkpoint (this) or a wave's (WaveRow).
    is_wave = False

    @property
    def orphan_value(self) -> str:
        return f"{self.host}/{self.vm_id}/{self.checkpoint_id}"

    @property
    def has_buttons(self) -> bool:
        return self.finding not in (Finding.MISMATCH, Finding.FOREIGN)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["finding"] = self.finding.value
        data["created_at"] = _iso(self.created_at)
        data["expires_at"] = _iso(self.expires_at)
        return data


@dataclass(frozen=True)
class WaveRow:
    """The stale checkpoints of one wave in a digest: one line, one Keep &
    merge all, however many VMs it holds (docs/batches.md "Lifetimes")."""

    batch_ref: str
    items: tuple[SweepItem, ...]

    is_wave = True

    @property
    def requester(self) -> str | None:
        return self.items[0].requester

    @property
    def expires_at(self) -> datetime | None:
        """When its first member expired."""
        known = [i.expires_at for i in self.items if i.expires_at is not None]
        return min(known) if known else None

    @property
    def size_bytes(self) -> int:
        return sum(i.size_bytes for i in self.items)

    @property
    def growth_bytes(self) -> int | None:
        grown = [i.growth_bytes for i in self.items if i.growth_bytes is not None]
        return sum(grown) if grown else None

    @property
    def vms(self) -> tuple[str, ...]:
        return tuple(i.vm_name for i in self.items)


@dataclass(frozen=True)
class ChannelDigest:
    """One message: everything the sweep reports to one channel."""

    channel: str
    items: tuple[SweepItem, ...]
    problems: tuple[HostProblem, ...]
    # When the sizes were sampled before (None: the first sweep).
    previous_at: datetime | None = None
    # Changes holding a checkpoint whose VM or host left the inventory.
    out_of_sight: tuple[OutOfSight, ...] = ()

    def count(self, finding: Finding) -> int:
        return sum(1 for i in self.items if i.finding is finding)

    @property
    def rows(self) -> tuple[SweepItem | WaveRow, ...]:
        """What the digest lists, biggest first: each checkpoint on its own
        line, except a wave's stale ones, which share ONE line (in the place
        of its biggest). A wave member at odds with the record stays on its
        own: a person has to look at that one."""
        waves: dict[str, list[SweepItem]] = {}
        for item in self.items:
            if item.batch_ref is not None and item.finding is Finding.STALE:
                waves.setdefault(item.batch_ref, []).append(item)
        rows: list[SweepItem | WaveRow] = []
        for item in self.items:
            if item.batch_ref in waves and item.finding is Finding.STALE:
                members = waves.pop(item.batch_ref)
                rows.append(WaveRow(item.batch_ref, tuple(members)))
            elif item.batch_ref is None or item.finding is not Finding.STALE:
                rows.append(item)
        return tuple(rows)

    @property
    def stale(self) -> int:
        return self.count(Finding.STALE)

    @property
    def orphans(self) -> int:
        return self.count(Finding.ORPHAN)

    @property
    def mismatches(self) -> int:
        return self.count(Finding.MISMATCH)

    @property
    def foreign(self) -> int:
        return self.count(Finding.FOREIGN)

    @property
    def total_bytes(self) -> int:
        return sum(i.size_bytes for i in self.items)

    @property
    def growth_bytes(self) -> int | None:
        grown = [i.growth_bytes for i in self.items if i.growth_bytes is not None]
        return sum(grown) if grown else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "stale": self.stale,
            "orphans": self.orphans,
            "mismatches": self.mismatches,
            "foreign": self.foreign,
            "total_bytes": self.total_bytes,
            "growth_bytes": self.growth_bytes,
            "previous_at": _iso(self.previous_at),
            "checkpoint_ids": [i.checkpoint_id for i in self.items],
            "unreachable": [p.host for p in self.problems],
            "out_of_sight": [o.change_ref for o in self.out_of_sight],
        }


@dataclass(frozen=True)
class SweepReport:
    at: datetime
    slot: str
    hosts: int
    # Every checkpoint seen on the hosts that answered.
    seen: int
    items: tuple[SweepItem, ...]
    problems: tuple[HostProblem, ...]
    digests: tuple[ChannelDigest, ...]
    # Orphans younger than `sweep.orphan_after`: possibly a change's own
    # checkpoint being taken right now, so not reported yet.
    young_orphans: int = 0
    # Hyper-V Replica's recovery points: managed by Replica, never ours.
    replica_points: int = 0
    previous_at: datetime | None = None
    # channel -> the digest's message ts (None: Slack refused or is off).
    posted: dict[str, str | None] = field(default_factory=dict)
    # Changes whose checkpoint a host that answered did not list (to be
    # confirmed per VM), then the refs of those settled as vanished.
    missing: tuple[ChangeView, ...] = ()
    vanished: tuple[str, ...] = ()
    # Changes holding a checkpoint whose VM or host left the inventory: not
    # swept (the bot has no way to them), listed so none is left behind.
    out_of_sight: tuple[OutOfSight, ...] = ()

    @property
    def undelivered(self) -> tuple[SweepItem, ...]:
        return tuple(i for i in self.items if i.channel is None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": _iso(self.at),
            "slot": self.slot,
            "hosts": self.hosts,
            "seen": self.seen,
            "young_orphans": self.young_orphans,
            "replica_points": self.replica_points,
            "previous_at": _iso(self.previous_at),
            "items": [i.to_dict() for i in self.items],
            "unreachable": [p.to_dict() for p in self.problems],
            "digests": [d.to_dict() for d in self.digests],
            "undelivered": len(self.undelivered),
            "posted": dict(self.posted),
            "vanished": list(self.vanished),
            "out_of_sight": [o.to_dict() for o in self.out_of_sight],
        }
