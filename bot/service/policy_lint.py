"""What `policy validate` warns about and `policy explain` notes beside a
rule, read against the inventory (policies/lint.py decides; this module
gives it the inventory as plain data and the policy files as parsed, for
FILE:LINE)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from bot.inventory import VM, Inventory, InventoryError, load_inventory
from bot.yamlio import YamlDoc, YamlValidationError, load_yaml, read_config_text
from policies import OutcomeKind, Policy, default_policy_path, load_policy
from policies.lint import Finding, InventoryVM, RuleNote, lint, rule_notes

if TYPE_CHECKING:
    from bot.config import Settings


def _vm_view(inventory: Inventory, vm: VM) -> InventoryVM:
    host = inventory.host(vm.host)
    return InventoryVM(
        name=vm.name,
        tags=dict(vm.tags),
        host_group=host.host_group,
        domain=vm.domain,
        roles=tuple(sorted(r.value for r in vm.roles)),
        shared_disk=vm.disks.shared,
        passthrough=vm.disks.passthrough,
        fibre_channel=vm.disks.virtual_fibre_channel,
        hyperv_replica=vm.hyperv_replica,
    )


def _policy_docs(files: tuple[Path, ...]) -> tuple[YamlDoc, list[YamlDoc]]:
    """The shipped policy and `files` as parsed, for FILE:LINE (each already
    read once by the policy's loader, so they parse)."""
    shipped = load_yaml(read_config_text(default_policy_path()), "policies/default.yaml")
    return shipped, [load_yaml(read_config_text(f), str(f)) for f in files]


def lint_policy(
    settings: Settings, file: Path, policy: Policy, today: date
) -> tuple[list[Finding], str]:
    """The warnings for `policy` (read from `file`, valid) against the
    configured inventory; with why the inventory could not be read ("" when
    it was: scopes are then not checked)."""
    try:
        inventory = load_inventory(settings.inventory_path)
    except (InventoryError, YamlValidationError) as exc:
        vms, unread = [], str(exc).splitlines()[0]
    else:
        vms, unread = [_vm_view(inventory, vm) for vm in inventory.vms], ""
    shipped_doc, docs = _policy_docs((file,))
    findings = lint(policy, load_policy(), vms, today=today, docs=docs, shipped_doc=shipped_doc)
    return findings, unread


def notes_for(
    policy: Policy,
    inventory: Inventory,
    vm: VM,
    files: tuple[Path, ...],
    today: date,
    outcomes: Mapping[str, OutcomeKind],
) -> dict[str, RuleNote]:
    """Per rule, for one VM: which overrides apply, and where a guardrail
    was weakened for it."""
    shipped_doc, docs = _policy_docs(files)
    return rule_notes(
        policy,
        load_policy(),
        _vm_view(inventory, vm),
        today=today,
        docs=docs,
        shipped_doc=shipped_doc,
        outcomes=outcomes,
    )
