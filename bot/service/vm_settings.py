"""A VM's checkpoint settings: anyone may look; changing them is for admins
and passes the policy engine (Standard on AD, SQL or Exchange is refused).
Every change is recorded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.domain import SETTING_WORDS, CheckpointKind, group_mention, user_mention
from bot.hyperv import (
    CheckpointType,
    HyperVError,
    VMInfo,
)
from bot.hyperv.errors import HostTimeout, HostUnreachable
from bot.reasons import ReasonError, check_reason
from bot.service.deciding import Principal, as_principal
from bot.service.errors import BadRequest, Forbidden, Unavailable, from_host
from bot.service.finding import resolve_vm
from bot.store.db import session_scope
from bot.store.tables.vm_record import VMSettingChange
from policies import Action, Effect, is_admin

if TYPE_CHECKING:
    from bot.hyperv import HyperVHost
    from bot.inventory import VM
    from bot.service.deps import ServiceDeps


@dataclass(frozen=True)
class SettingsOutcome:
    vm: VMInfo
    changed: tuple[str, ...] = ()
    record_id: int | None = None
    # The inventory's CheckpointType when the host's differs (the guardrails
    # read both and act on the riskier, docs/host-truth.md), else None.
    inventory_says: str | None = None
    # The host did not answer the change in time, and reading the VM back
    # showed it had taken it: said, so nobody asks again "to be sure".
    read_back: bool = False

    @property
    def read_back_note(self) -> str | None:
        if not self.read_back:
            return None
        return (
            "the host did not answer the change in time; read back, the VM had taken it, "
            "so it was recorded: there is no need to ask again"
        )

    @property
    def disagreement(self) -> str | None:
        """What the disagreement means for the next checkpoint, in words
        (seen: an admin enabled checkpoints on the host, was told "changed",
        and every create stayed refused on the inventory's Disabled)."""
        if self.inventory_says is None:
            return None
        host = self.vm.checkpoint_type.name
        return (
            f"the inventory still says CheckpointType {self.inventory_says} for {self.vm.name} "
            f"(the host: {host}); the guardrails act on the riskier of the two, so update "
            f"the inventory to {host} too (edit it, or 'checkpoint-bot inventory discover "
            "--merge FILE')"
        )


def _outcome(vm: VM, info: VMInfo, **values: Any) -> SettingsOutcome:
    listed = vm.checkpoint_type.name
    differs = listed != info.checkpoint_type.name
    return SettingsOutcome(info, **values, inventory_says=listed if differs else None)


def show_settings(ctx: ServiceDeps, vm_name: str) -> SettingsOutcome:
    vm = resolve_vm(ctx, vm_name)
    owner = ctx.decider.locator.locate(vm).host
    try:
        return _outcome(vm, ctx.host_for(owner).get_vm(vm.vm_id))
    except HyperVError as exc:
        raise from_host(exc) from None


def change_settings(
    ctx: ServiceDeps,
    vm_name: str,
    who: str | Principal,
    *,
    checkpoint_type: str | None = None,
    automatic: bool | None = None,
    reason: str = "",
) -> SettingsOutcome:
    actor = as_principal(who)
    if checkpoint_type is None and automatic is None:
        return show_settings(ctx, vm_name)
    vm = resolve_vm(ctx, vm_name)
    wanted = None
    if checkpoint_type is not None:
        word = checkpoint_type.strip().lower()
        wanted = CheckpointType.for_word(word) if word in SETTING_WORDS else None
        if wanted is None:
            raise BadRequest(
                f"unknown checkpoint type '{checkpoint_type}': use one of "
                f"{', '.join(SETTING_WORDS)}"
            )
    if not is_admin(ctx.policy, actor.id, actor.groups):
        admins = ctx.policy.admins
        named = [*map(user_mention, admins.users), *map(group_mention, admins.groups)]
        ask = (
            f"ask one of them: {', '.join(named)}"
            if named
            else "the policy names none yet (`admins:` in the policy file)"
        )
        raise Forbidden(
            f"changing a VM's checkpoint settings is for admins (the policy's `admins`); {ask}"
        )
    if wanted is CheckpointType.Standard:
        # The same rule that refuses a standard checkpoint refuses the setting.
        decision = ctx.decider.decide(
            vm, Action.CREATE, actor, checkpoint_type=CheckpointKind.STANDARD
        )
        rule = decision.outcome("checkpoint_type")
        if rule is not None and rule.fired and rule.effect is not Effect.WARN:
            raise Forbidden(f"CheckpointType Standard is refused for {vm.name}: {rule.message}")
    try:
        # The record says who, what and when of every change; a settings
        # change was the one kind recorded without why (seen in an export:
        # `"event": "settings", … "message": ""`). Checked as every reason
        # is (bot.reasons: no control characters, a bounded length).
        why = check_reason(reason)
    except ReasonError as exc:
        if exc.missing:
            raise BadRequest(
                f"a reason is required to change {vm.name}'s checkpoint settings: say why, "
                'for the record (--reason "…")'
            ) from None
        raise BadRequest(exc.message) from None
    owner = ctx.decider.locator.locate(vm).host
    try:
        host = ctx.host_for(owner)
        before = host.get_vm(vm.vm_id)
    except HyperVError as exc:
        raise from_host(exc) from None
    after, read_back = _apply(host, vm, before, wanted, automatic)
    changed = []
    if before.checkpoint_type is not after.checkpoint_type:
        changed.append(
            f"CheckpointType {before.checkpoint_type.name} → {after.checkpoint_type.name}"
        )
    if before.automatic_checkpoints != after.automatic_checkpoints:
        changed.append(
            f"automatic checkpoints {'on' if before.automatic_checkpoints else 'off'} → "
            f"{'on' if after.automatic_checkpoints else 'off'}"
        )
    record_id = None
    if changed:
        with session_scope(ctx.engine) as s:
            row = VMSettingChange(
                vm_id=vm.vm_id,
                vm_name=vm.name,
                host=owner,
                actor=actor.id,
                actor_team=actor.team,
                at=ctx.clock(),
                before=_settings_of(before),
                after=_settings_of(after),
                reason=why,
            )
            s.add(row)
            s.flush()
            record_id = row.id
    return _outcome(vm, after, changed=tuple(changed), record_id=record_id, read_back=read_back)


def _apply(
    host: HyperVHost,
    vm: VM,
    before: VMInfo,
    wanted: CheckpointType | None,
    automatic: bool | None,
) -> tuple[VMInfo, bool]:
    """`Set-VM`, and what the VM has after it; True when that was read back.

    A call that timed out or lost its connection may have reached the host
    and changed the VM all the same (seen: the host applied the new type, and
    the bot said "try again" and recorded nothing). So the VM is read back:
    what changed is recorded as any change is; if nothing did, or the VM
    cannot be read, the person is told the outcome as far as it is known."""
    try:
        return (
            host.set_checkpoint_settings(
                vm.vm_id, checkpoint_type=wanted, automatic_checkpoints=automatic
            ),
            False,
        )
    except (HostTimeout, HostUnreachable) as exc:
        lost = exc
    except HyperVError as exc:
        raise from_host(exc) from None
    try:
        seen = host.get_vm(vm.vm_id)
    except HyperVError:
        raise Unavailable(
            f"{lost}; whether {vm.name} took the new settings is not known (reading them "
            f"back failed too): look with `checkpoint settings {vm.name}` once {before.host} "
            "answers, before asking again"
        ) from None
    if _settings_of(seen) != _settings_of(before):
        return seen, True
    raise Unavailable(
        f"{lost}; read back just now, {vm.name} still has CheckpointType "
        f"{seen.checkpoint_type.name}, automatic checkpoints "
        f"{'on' if seen.automatic_checkpoints else 'off'}: the change has not taken so far. "
        f"Look with `checkpoint settings {vm.name}` before asking again"
    )


def _settings_of(vm: VMInfo) -> dict[str, object]:
    return {
        "checkpoint_type": vm.checkpoint_type.name,
        "automatic_checkpoints": vm.automatic_checkpoints,
    }
