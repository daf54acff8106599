"""A VM renamed on its Hyper-V host is renamed wherever the inventory names it.

The inventory names VMs by name in one place besides `vms:` itself: the
named groups (`groups:`, a group name -> VM names; clusters list hosts, not
VMs). A rename is an update (VMs are matched by VMId), so the merge renames
the VM's entry and every group member that named it, in the same edit, and
says where ("renamed STG-WEB01 → STG-WEB01-NEW (also in groups: staging)").
Before, the group kept the old name, the merged file failed validation and
`inventory diff` / `discover --merge` refused the whole estate's drift.

What is proven here:
- over real WinRM against the emulated demo hosts, a grouped VM renamed in
  the host model (with other drift beside it: a DC that moved, a VM removed,
  a VM added) is shown by `inventory diff` and merged by `discover --merge`,
  comments and hand-set fields kept, the group following the VM;
- the plan says which groups name a renamed VM; the YAML edit keeps a
  group's comments, flow or block style and quoting, and a chain of renames
  (A -> B while B -> C) renames each member once;
- for any inventory with groups and any discovery (hypothesis), the merged
  groups name the same VMs (by VMId) as before, the result is valid, and the
  commented-document edit agrees with the plain-mapping one.
"""

from __future__ import annotations

import difflib
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV
from bot.devtools.hostmodel import HostModel, demo_hosts_path, parse_host_model
from bot.hyperv.types import CheckpointType
from bot.inventory import Inventory, demo_inventory_path, load_inventory, parse_inventory
from bot.inventory.discovery import (
    FoundVM,
    Kind,
    Scope,
    apply_to_groups,
    apply_to_mappings,
    plan_merge,
)
from bot.inventory.models import VM
from bot.inventory.yamledit import apply_plan, dump_document, layout_of, load_document
from tests.cli_support import emulated_estate, invoke

ENV = {EMULATOR_PASSWORD_ENV: "Passw0rd!", "CHECKPOINT_BOT_SOCKET": "off"}
TODAY = date(2026, 12, 4)
STG_WEB01 = "6a1e4c8d-2b9f-4d73-b0a6-9c5e7f3d1b28"
NEW_APP = "5d1c0b7a-3e2f-4a19-8c64-7b9e2f0a1d35"


def _drifted_demo_hosts() -> HostModel:
    """The demo host model after a week nobody told the bot about:
    STG-WEB01 renamed STG-WEB01-NEW on HV03 (same VMId), CORP-DC02
    live-migrated HV02 -> HV01, WEB02 removed from HV02, NEW-APP01 created
    on HV03."""
    doc: dict[str, Any] = yaml.safe_load(demo_hosts_path().read_text(encoding="utf-8"))
    hosts = {host["name"]: host for host in doc["hosts"]}
    for vm in hosts["HV03"]["vms"]:
        if vm["name"] == "STG-WEB01":
            vm["name"] = "STG-WEB01-NEW"
    (dc,) = [vm for vm in hosts["HV02"]["vms"] if vm["name"] == "CORP-DC02"]
    hosts["HV02"]["vms"] = [
        vm for vm in hosts["HV02"]["vms"] if vm["name"] not in ("CORP-DC02", "WEB02")
    ]
    hosts["HV01"]["vms"].append(dc)
    hosts["HV03"]["vms"].append({"name": "NEW-APP01", "vm_id": NEW_APP})
    return parse_host_model(yaml.safe_dump(doc), "demo-hosts (drifted)")


def _commented_inventory(workdir: Path) -> str:
    """The demo inventory as people wrote it (comments, flow-style groups),
    its hosts pointed at the emulator (the hosts `emulated_estate` wrote)."""
    emulated = load_document((workdir / "inventory.yaml").read_text(encoding="utf-8"))
    text = demo_inventory_path().read_text(encoding="utf-8")
    doc = load_document(text)
    doc["hosts"] = emulated["hosts"]
    commented = dump_document(doc, layout_of(text))
    (workdir / "inventory.yaml").write_text(commented, encoding="utf-8")
    return commented


def test_a_grouped_vm_renamed_on_its_host_is_renamed_in_its_group(tmp_path: Path) -> None:
    with emulated_estate(tmp_path, model=_drifted_demo_hosts(), env=ENV):
        before = _commented_inventory(tmp_path)
        target = tmp_path / "inventory.yaml"

        diff = invoke(tmp_path, "-c", "bot.yaml", "inventory", "diff", env=ENV)
        assert diff.returncode == 0, diff.stderr
        out = diff.stdout
        # The rename is an update, shown as one; the rest of the drift is there too.
        assert "name STG-WEB01 → STG-WEB01-NEW" in out
        assert "host HV02 → HV01" in out  # CORP-DC02
        assert "Marked missing (1):\n  WEB02" in out
        assert "Added (1):\n  NEW-APP01" in out
        assert target.read_text(encoding="utf-8") == before  # diff writes nothing

        merged = invoke(
            tmp_path,
            "-c",
            "bot.yaml",
            "inventory",
            "discover",
            "--merge",
            "inventory.yaml",
            env=ENV,
        )
        assert merged.returncode == 0, merged.stderr
        after = target.read_text(encoding="utf-8")
        inventory = load_inventory(target)
        assert [vm.name for vm in inventory.group("staging")] == ["STG-WEB01-NEW", "STG-APP01"]
        assert inventory.vm("STG-WEB01-NEW").vm_id == STG_WEB01
        assert [r.value for r in inventory.vm("STG-WEB01-NEW").roles] == ["web"]  # hand-set
        assert inventory.vm("CORP-DC02").host == "HV01"
        assert inventory.vm("WEB02").missing_since is not None
        # The group follows in place: only the merge's own lines changed.
        removed = [
            line[1:]
            for line in difflib.unified_diff(before.splitlines(), after.splitlines(), n=0)
            if line.startswith("-") and not line.startswith("---")
        ]
        assert removed == [
            "  staging: [STG-WEB01, STG-APP01]",
            "    host: HV02",  # CORP-DC02's
            "  - name: STG-WEB01",
        ]
        assert "  staging: [STG-WEB01-NEW, STG-APP01]\n" in after
        assert "# Named groups of VMs, checkpointed together as one patch wave\n" in after
        assert "  # --- Staging -----" in after

        again = invoke(tmp_path, "-c", "bot.yaml", "inventory", "diff", env=ENV)
        assert again.returncode == 0, again.stderr
        assert "Nothing to change." in again.stdout


HAND_WRITTEN = """\
hosts:
  - {name: HV01, address: hv01.corp.example}
groups:
  # the web tier, patched first
  web: [WEB01, 'web02']   # quoted by hand
  chain:
    - A01    # first in the chain
    - B01
vms:
  - name: WEB01
    vm_id: 00000000-0000-4000-8000-000000000001
    host: HV01
    roles: [web]   # hand-set
  - name: WEB02
    vm_id: 00000000-0000-4000-8000-000000000002
    host: HV01
  - name: A01
    vm_id: 00000000-0000-4000-8000-00000000000a
    host: HV01
  - name: B01
    vm_id: 00000000-0000-4000-8000-00000000000b
    host: HV01
"""


# HAND_WRITTEN merged: the renamed entries and group members, nothing else (an
# end-of-line comment keeps its column).
MERGED = """\
hosts:
  - {name: HV01, address: hv01.corp.example}
groups:
  # the web tier, patched first
  web: [WEB01, 'WEB-02']  # quoted by hand
  chain:
    - B01    # first in the chain
    - C01
vms:
  - name: WEB01
    vm_id: 00000000-0000-4000-8000-000000000001
    host: HV01
    roles: [web]   # hand-set
  - name: WEB-02
    vm_id: 00000000-0000-4000-8000-000000000002
    host: HV01
  - name: B01
    vm_id: 00000000-0000-4000-8000-00000000000a
    host: HV01
  - name: C01
    vm_id: 00000000-0000-4000-8000-00000000000b
    host: HV01
"""


def _found(vm: VM, name: str) -> FoundVM:
    return FoundVM(
        name=name,
        vm_id=vm.vm_id,
        host=vm.host,
        state="Running",
        checkpoint_type=vm.checkpoint_type,
    )


def test_the_plan_says_where_a_renamed_vm_is_named_and_the_file_follows() -> None:
    """WEB02 -> WEB-02 (a member quoted by hand, in another case); A01 ->
    B01 while B01 -> C01 (a chain: B01 is free once it is renamed)."""
    current = parse_inventory(HAND_WRITTEN, "hand.yaml")
    renamed = {"WEB02": "WEB-02", "A01": "B01", "B01": "C01"}
    found = [_found(vm, renamed.get(vm.name, vm.name)) for vm in current.vms]
    scope = Scope(asked=("HV01",), answered=("HV01",))
    plan = plan_merge(current.vms, found, scope, TODAY, groups=current.groups)

    by_id = {e.vm_id: e for e in plan.entries}
    web02 = by_id[current.vm("WEB02").vm_id]
    assert web02.kind is Kind.UPDATED and dict(web02.set) == {"name": "WEB-02"}
    assert (web02.renamed_from, web02.in_groups) == ("WEB02", ("web",))
    assert "renamed WEB02 → WEB-02 (also in groups: web)" in web02.notes
    assert web02.to_dict()["renamed_from"] == "WEB02"
    assert web02.to_dict()["in_groups"] == ["web"]
    assert by_id[current.vm("A01").vm_id].name == "B01"
    assert by_id[current.vm("B01").vm_id].name == "C01"
    assert by_id[current.vm("WEB01").vm_id].kind is Kind.UNCHANGED
    assert apply_to_groups(current.groups, plan) == {
        "web": ["WEB01", "WEB-02"],
        "chain": ["B01", "C01"],
    }

    doc = load_document(HAND_WRITTEN)
    apply_plan(doc, plan, TODAY)
    text = dump_document(doc, layout_of(HAND_WRITTEN))
    assert text == MERGED
    merged = parse_inventory(text, "merged.yaml")
    assert [vm.vm_id for vm in merged.group("chain")] == [
        current.vm("A01").vm_id,
        current.vm("B01").vm_id,
    ]
    # Merged again with the same answers: nothing left to do.
    again = plan_merge(merged.vms, found, scope, TODAY, groups=merged.groups)
    assert not again.changed


# -- for any inventory with groups and any discovery --------------------------------

_IDS = [str(uuid.UUID(int=i + 1)) for i in range(8)]
_NAMES = [f"VM{i:02d}" for i in range(8)]


@st.composite
def _case(
    draw: st.DrawFn,
) -> tuple[list[VM], list[FoundVM], dict[str, list[str]]]:
    current_ix = sorted(draw(st.sets(st.integers(0, 7), min_size=1)))
    current = [VM(name=_NAMES[i], vm_id=_IDS[i], host="HV01") for i in current_ix]
    found = [
        FoundVM(
            # Its own name, a new one, or one another VM has (renames, chains, clashes).
            name=draw(st.sampled_from([_NAMES[i], f"NEW{i:02d}", f"new{i:02d}", *_NAMES[:4]])),
            vm_id=_IDS[i],
            host="HV01",
            state="Running",
            checkpoint_type=CheckpointType.Production,
        )
        for i in sorted(draw(st.sets(st.integers(0, 7))))
    ]
    names = [vm.name for vm in current]
    groups = {
        f"g{g}": draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
        for g in range(draw(st.integers(0, 3)))
    }
    # A member may be written in another case than the VM's entry.
    groups = {g: [m.lower() if draw(st.booleans()) else m for m in ms] for g, ms in groups.items()}
    return current, found, groups


@settings(max_examples=200, deadline=None)
@given(_case())
def test_groups_name_the_same_vms_after_any_merge(
    case: tuple[list[VM], list[FoundVM], dict[str, list[str]]],
) -> None:
    current, found, groups = case
    hosts = [{"name": "HV01", "address": "hv01.corp.example"}]
    entries = [vm.model_dump(mode="json", exclude_defaults=True) for vm in current]
    before = Inventory.model_validate({"hosts": hosts, "vms": entries, "groups": groups})
    scope = Scope(asked=("HV01",), answered=("HV01",))
    plan = plan_merge(before.vms, found, scope, TODAY, groups=before.groups)

    after = Inventory.model_validate(
        {
            "hosts": hosts,
            "vms": apply_to_mappings(entries, plan),
            "groups": apply_to_groups(groups, plan),
        }
    )
    for group in groups:
        assert [vm.vm_id for vm in after.group(group)] == [vm.vm_id for vm in before.group(group)]
    # Every rename says every group that named the VM.
    for entry in plan.entries:
        if entry.renamed_from is not None:
            named = [
                g
                for g, ms in groups.items()
                if entry.renamed_from.casefold() in {m.casefold() for m in ms}
            ]
            assert entry.in_groups is not None and list(entry.in_groups) == named
    # The commented document gets the same edit.
    text = yaml.safe_dump({"hosts": hosts, "groups": groups, "vms": entries}, sort_keys=False)
    doc = load_document(text)
    apply_plan(doc, plan, TODAY)
    edited = parse_inventory(dump_document(doc), "edited.yaml")
    assert edited.groups == after.groups
    assert [vm.name for vm in edited.vms] == [vm.name for vm in after.vms]
