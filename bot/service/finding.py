"""Finding what a request names: a change by its id or its checkpoint's Id,
a VM by its name in the inventory. Read-only, and without the policy, so a
query (`change show`) loads only what it reads (bench/cli_start.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import func
from sqlmodel import select

from bot.changes.record import parse_ref
from bot.domain import TOO_MANY_DIGITS, BatchRef, ChangeRef, canonical_guid
from bot.service.errors import BadRequest, NotFound, from_inventory
from bot.store.db import session_scope
from bot.store.tables import change_ref
from bot.store.tables.changes import Change

if TYPE_CHECKING:
    from bot.inventory import VM, Inventory
    from bot.service.deps import ServiceDeps


# What acts on a whole wave where one change's verb was asked for: the
# `batch` command, what it does, and where Slack has it.
_WAVE_WIDE: dict[str, tuple[str, str, str]] = {
    "show": ("show", "shows all its members", "/checkpoint batch {ref}"),
    "roll back": (
        "rollback",
        "rolls back all its members",
        "Roll back all on /checkpoint batch {ref}",
    ),
    "merge": (
        "merge",
        "keeps and merges all its members",
        "Keep & merge all on /checkpoint batch {ref}",
    ),
    "approve": (
        "approve",
        "approves what its members wait for",
        "Approve all on /checkpoint batch {ref}",
    ),
    "withdraw": (
        "withdraw",
        "withdraws what waits in all its members",
        "/checkpoint withdraw {ref}",
    ),
}
# Verbs no wave does as a whole: how the words say it ("is not extended"),
# and where Slack has it per VM, if it does.
_ONE_BY_ONE: dict[str, tuple[str, str]] = {
    "extend": ("extended", "; each VM of /checkpoint batch {ref} in Slack has its Extend"),
    "start": ("started", ""),
    "reject": ("rejected", ""),
    "resolve": ("resolved", ""),
}


def _batch_shown(text: str) -> str:
    """A batch's ref as the bot writes it (`BAT-0007`), or as typed when no
    batch could have its number."""
    batch = BatchRef.parse(text)
    return str(batch) if batch is not None else text.strip().upper()


def _batch_exists(ctx: ServiceDeps, text: str) -> bool:
    # Imported here: only a batch's ref where a change belongs reads batches.
    from bot.store.tables.batches import Batch

    batch = BatchRef.parse(text)
    if batch is None:
        return False
    with session_scope(ctx.engine) as s:
        return s.get(Batch, batch.id) is not None


def _not_a_change(text: str, verb: str | None = None) -> str:
    """What to say when the ref of a batch that exists is given where one
    change belongs: the wave's own command for `verb` (what was asked of
    the change), or that a wave has none and its members are acted on one
    by one."""
    shown = _batch_shown(text)
    wave = f"{shown} is a patch wave, not one change"
    if verb in _WAVE_WIDE:
        command, does, slack = _WAVE_WIDE[verb]
        return (
            f"{wave}: checkpoint-bot batch {command} {shown} {does} "
            f"({slack.format(ref=shown)} in Slack); give a member's CHG-n to {verb} that one"
        )
    if verb in _ONE_BY_ONE:
        done, slack = _ONE_BY_ONE[verb]
        return (
            f"{wave}, and a wave is not {done} as a whole: {verb} each member by its CHG-n "
            f"(checkpoint-bot batch show {shown} lists them{slack.format(ref=shown)})"
        )
    return (
        f"{wave}: /checkpoint batch {shown} (or "
        f"checkpoint-bot batch show {shown}) shows its members and acts on them all; "
        "give a member's CHG-n to act on one"
    )


def checkpoint_id_of(text: str) -> str:
    """A checkpoint's Id as a person gave it, in the form the bot keeps, or
    BadRequest: a name where an Id belongs is told at once, before any
    host or table is asked."""
    kept = canonical_guid(text)
    if kept is None:
        shown = text.strip()[:80]
        raise BadRequest(
            f"'{shown}' is not a checkpoint Id: give its GUID as sweep run "
            "lists it, like 3f2504e0-4f89-41d3-9a0c-0305e82c3301"
        )
    return kept


def resolve_vm(ctx: ServiceDeps, name: str, *, wave: bool = False) -> VM:
    """The inventory's VM named `name`, or BadRequest (`vm_named`)."""
    return vm_named(ctx.inventory, name, wave=wave)


def vm_named(inventory: Inventory, name: str, *, wave: bool = False) -> VM:
    """The VM named `name`, or BadRequest. A host's, a failover cluster's or
    a group's name says which it is and names some of its VMs; with `wave`
    (a create, which takes `--host`, `--cluster` and `--group`) it also says
    how to take them all as one wave."""
    # Imported once the inventory is: finding a change by its id needs neither.
    from bot.inventory import InvalidName, UnknownVM

    try:
        return inventory.vm(name)
    except UnknownVM as exc:
        other = _not_a_vm(inventory, name, wave)
        raise (BadRequest(other) if other else from_inventory(exc)) from None
    except InvalidName as exc:
        raise from_inventory(exc) from None


def _not_a_vm(inventory: Inventory, name: str, wave: bool) -> str | None:
    """What to say when `name` is a host, a cluster or a group, not a VM."""
    from bot.inventory import InventoryLookupError

    finders: tuple[tuple[str, Callable[[str], tuple[str, list[VM]]]], ...] = (
        ("host", lambda n: (inventory.host(n).name, inventory.vms_on_host(n))),
        ("cluster", lambda n: (inventory.cluster(n).name, inventory.vms_on_cluster(n))),
        ("group", lambda n: (n.strip(), inventory.group(n))),
    )
    for kind, find in finders:
        try:
            named, vms = find(name)
        except InventoryLookupError:
            continue
        some = ", ".join(vm.name for vm in vms[:3]) + (", …" if len(vms) > 3 else "")
        said = f"{named} is a {kind}, not a VM: name one of its VMs ({some or 'it has none'})"
        if wave and vms:
            said += f", or checkpoint them all as one wave with --{kind} {named}"
        return said
    return None


def find_change(ctx: ServiceDeps, ref: str, *, verb: str | None = None) -> int:
    """A change id from `CHG-n`, or from the Id of a checkpoint it owns.
    `verb` (roll back, merge, withdraw, extend, …) is what was asked of it:
    a wave's ref given instead is told the wave's command for it."""
    text = ref.strip()
    change_id = parse_ref(text)
    checkpoint_id = canonical_guid(text) if change_id is None else None
    if checkpoint_id is not None:
        with session_scope(ctx.engine) as s:
            owner = s.exec(select(Change).where(Change.checkpoint_id == checkpoint_id)).first()
        if owner is None or owner.id is None:
            raise NotFound(
                f"checkpoint {text} is not owned by any change; the bot never touches a "
                "checkpoint no change owns. To act on it, adopt it first: the Adopt button "
                "of the sweep digest in Slack, `checkpoint-bot sweep adopt "
                f"{text}` on the CLI"
            )
        change_id = owner.id
    if change_id is None and ChangeRef.too_long(text):
        # A number no change id can have: saying only "no change" would
        # leave the operator looking for a change that was never possible.
        raise NotFound(f"no change {text.upper()}: {TOO_MANY_DIGITS}")
    if change_id is None and BatchRef.typed(text):
        # Pointing to `batch show BAT-7` when there is no BAT-7 sends the
        # operator to a second error: say the wave's command only for a wave.
        if not _batch_exists(ctx, text):
            raise NotFound(f"no batch {_batch_shown(text)}, and a change id looks like CHG-0042")
        raise BadRequest(_not_a_change(text, verb))
    if change_id is None:
        raise BadRequest(
            f"'{ref}' is neither a change id (like CHG-0042) nor a checkpoint Id (a GUID)"
        )
    with session_scope(ctx.engine) as s:
        if s.get(Change, change_id) is None:
            newest = s.exec(select(func.max(Change.id))).one()
            raise NotFound(f"no change {change_ref(change_id)}{_newest_said(newest)}")
    return change_id


def _newest_said(newest: int | None) -> str:
    """What ids there are, for an id that names none: a typo in the number
    is then plain."""
    if newest is None:
        return ": no change has been recorded yet"
    return f": the newest is {change_ref(newest)}"
