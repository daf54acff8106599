"""Gather the facts the policy engine decides on.

Until discovery lands (the policy issue), facts come from the inventory and
say so in their source; a fact the inventory cannot give stays unknown.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from policies import Fact, Facts

if TYPE_CHECKING:
    from bot.inventory import VM, Inventory


def inventory_facts(inventory: Inventory, vm: VM, source: str, now: datetime) -> Facts:
    def fact(value: object) -> Fact:
        return Fact(value=value, source=source, observed_at=now)

    roles = sorted(role.value for role in vm.roles)
    values = {
        "roles": fact(roles),
        "shared_disks": fact(bool(vm.disks.shared_vhdx or vm.disks.vhd_set)),
        "app_group": fact(vm.app_group),
    }
    if vm.domain:
        values["domain"] = fact(vm.domain)
        values["domain_dcs"] = fact(sorted(d.name for d in inventory.dcs_in_domain(vm.domain)))
    else:
        why = "the inventory gives no domain for this VM"
        values["domain"] = Fact.unknown(source, why)
        values["domain_dcs"] = Fact.unknown(source, why)
    return Facts(values)
