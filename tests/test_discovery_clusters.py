"""Discovery of a failover cluster's VMs: any node may own any of them.

A clustered VM live-migrates between the nodes of its cluster
(docs/clusters.md), so the node the inventory names is where it was, not
where it must be. Before, `plan_merge` marked such a VM `missing_since` as
soon as its inventory node answered without it, even when the node it had
moved to did not answer or was not asked (`discover --host NODE1`); and a
VMId two nodes both reported as their own was given to one of them by host
name order, the other called "a Hyper-V Replica copy".

What is proven here:
- a VM of a cluster node is marked missing only when every node of that
  cluster answered and none has it; otherwise it is left as it was, and its
  note says which node was not heard from;
- a VMId two hosts report, neither of them a Hyper-V Replica copy, is
  neither added nor updated: skipped (a new VM) or left as it was (one the
  inventory lists), with both hosts named; only a real Replica copy is
  called one;
- `inventory discover --merge FILE --host HV01` of the demo estate leaves a
  VM the file puts on HV01 and that is on HV02 (the other node of
  prod-cluster) as it was;
- over real WinRM against emulated hosts where HV01 and HV02 both hold
  WEB02 (listed) and NEW-APP02 (new), `inventory diff` and `--json` say so
  and call neither a Replica copy.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV
from bot.devtools.hostmodel import HostModel, demo_hosts_path, parse_host_model
from bot.hyperv.types import CheckpointType
from bot.inventory import Cluster, demo_inventory_path
from bot.inventory.discovery import FoundVM, Kind, Scope, apply_to_mappings, plan_merge
from bot.inventory.models import VM
from tests.cli_support import emulated_estate, invoke

TODAY = date(2026, 12, 4)
CAPP01 = "5b0c6f1e-2a7d-4c83-9e14-8f3a1d6b2c90"
FC1 = (Cluster(name="fc1", nodes=["NODE1", "NODE2"]),)
EVERY_HOST = ("NODE1", "NODE2", "HVA", "HVB")
# Whether the hosts are one cluster's nodes or not, two owners are one too many.
ALL_ANSWERED = Scope(asked=EVERY_HOST, answered=EVERY_HOST)


def _found(host: str, **fields: Any) -> FoundVM:
    base = FoundVM(
        name="CAPP01",
        vm_id=CAPP01,
        host=host,
        state="Running",
        checkpoint_type=CheckpointType.Production,
        is_clustered=True,
    )
    return replace(base, **fields)


def _scope(asked: tuple[str, ...], answered: tuple[str, ...]) -> Scope:
    return Scope(asked=asked, answered=answered, clusters=FC1)


# -- a VM that moved to a node that was not heard from ----------------------------


def test_a_vm_on_a_node_that_did_not_answer_is_left_as_it_was() -> None:
    """CAPP01 (NODE1 in the file) is on NODE2 now, and NODE2 did not answer."""
    current = [VM(name="CAPP01", vm_id=CAPP01, host="NODE1")]
    plan = plan_merge(current, [], _scope(EVERY_HOST, ("NODE1", "HVA", "HVB")), TODAY)
    (entry,) = plan.entries
    assert entry.kind is Kind.NOT_ASKED, entry
    assert not entry.set and not plan.changed
    assert entry.notes == ("left as it was: NODE2, another node of fc1, was not heard from",)


def test_a_vm_on_a_node_that_was_not_asked_is_left_as_it_was() -> None:
    """`discover --host NODE1`: NODE2 was not asked at all."""
    current = [VM(name="CAPP01", vm_id=CAPP01, host="node1")]
    plan = plan_merge(current, [], _scope(("NODE1",), ("NODE1",)), TODAY)
    (entry,) = plan.entries
    assert entry.kind is Kind.NOT_ASKED and not plan.changed
    assert entry.notes == ("left as it was: NODE2, another node of fc1, was not heard from",)
    # A VM already marked stays marked, and is not said to be still missing.
    marked = [current[0].model_copy(update={"missing_since": date(2026, 11, 1)})]
    (entry,) = plan_merge(marked, [], _scope(("NODE1",), ("NODE1",)), TODAY).entries
    assert entry.kind is Kind.NOT_ASKED and not entry.set and not entry.unset


def test_every_node_answered_without_it_is_missing() -> None:
    current = [
        VM(name="CAPP01", vm_id=CAPP01, host="NODE1"),
        VM(name="SOLO01", vm_id="7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f", host="HVA"),
    ]
    plan = plan_merge(current, [], _scope(EVERY_HOST, EVERY_HOST), TODAY)
    assert [e.kind for e in plan.entries] == [Kind.MISSING, Kind.MISSING]
    assert plan.entries[0].notes == ("not found on NODE1, NODE2, HVA, HVB",)
    # A standalone host is its VMs' only owner: answering without it is enough.
    plan = plan_merge(current, [], _scope(("HVA",), ("HVA",)), TODAY)
    assert [e.kind for e in plan.entries] == [Kind.NOT_ASKED, Kind.MISSING]
    assert plan.entries[0].notes == ()  # its own node was not heard from: nothing to add


def test_a_vm_found_on_the_other_node_follows_it() -> None:
    current = [VM(name="CAPP01", vm_id=CAPP01, host="NODE1")]
    plan = plan_merge(current, [_found("NODE2")], _scope(("NODE2",), ("NODE2",)), TODAY)
    (entry,) = plan.entries
    assert entry.kind is Kind.UPDATED and dict(entry.set) == {"host": "NODE2"}


# -- one VMId reported by two hosts, neither a Replica copy -----------------------


def test_a_vm_two_nodes_report_is_not_added_and_both_are_named() -> None:
    for mode in (None, "Primary"):
        replication = None if mode is None else "Replicating"
        found = [
            _found(h, replication=replication, replication_mode=mode) for h in ("NODE2", "NODE1")
        ]
        plan = plan_merge([], found, ALL_ANSWERED, TODAY)
        (entry,) = plan.entries
        assert entry.kind is Kind.SKIPPED, entry
        assert entry.host == "NODE1, NODE2"
        assert entry.notes == (
            "not added: reported by both NODE1 and NODE2, and neither is a Hyper-V Replica "
            "copy: add it by hand once only one of them has it",
        )
        assert not plan.changed
        data = entry.to_dict()
        assert data["kind"] == "skipped" and data["notes"] == list(entry.notes)


def test_a_listed_vm_two_nodes_report_is_left_as_it_was() -> None:
    current = [VM(name="CAPP01", vm_id=CAPP01, host="NODE1", missing_since=date(2026, 11, 1))]
    found = [
        _found("NODE1", name="CAPP01-A"),
        _found("NODE2", checkpoint_type=CheckpointType.Standard),
    ]
    plan = plan_merge(current, found, ALL_ANSWERED, TODAY)
    (entry,) = plan.entries
    assert entry.kind is Kind.UNCHANGED and not entry.set and not entry.unset, entry
    assert entry.notes == (
        "left as it was: reported by both NODE1 and NODE2, and neither is a Hyper-V Replica "
        "copy: fix it by hand once only one of them has it",
    )
    before = [current[0].model_dump(mode="json", exclude_defaults=True)]
    assert apply_to_mappings(before, plan) == before


def test_only_a_real_replica_copy_is_called_one() -> None:
    """Two primaries and a Replica copy: the copy is said, the primaries are
    the ambiguity; a primary and its copy: the primary, the copy said."""
    primaries = [
        _found(h, replication="Replicating", replication_mode="Primary")
        for h in ("NODE1", "NODE2", "HVA")
    ]
    copy = _found("HVB", replication="Replicating", replication_mode="Replica")
    plan = plan_merge([], [*primaries, copy], ALL_ANSWERED, TODAY)
    (entry,) = plan.entries
    assert entry.kind is Kind.SKIPPED
    assert entry.notes == (
        "not added: reported by HVA, NODE1 and NODE2, and none is a Hyper-V Replica "
        "copy: add it by hand once only one of them has it",
        "a Hyper-V Replica copy is on HVB",
    )
    plan = plan_merge([], [copy, primaries[1]], ALL_ANSWERED, TODAY)
    (added,) = plan.of(Kind.ADDED)
    assert added.host == "NODE2" and "a Hyper-V Replica copy is on HVB" in added.notes


# -- as an operator runs it ----------------------------------------------------------


def test_discover_of_one_node_leaves_a_vm_the_other_node_has(tmp_path: Path) -> None:
    """The demo file puts WEB02 on HV01; it is on HV02 (the other node of
    prod-cluster), which `--host HV01` does not ask."""
    target = tmp_path / "inventory.yaml"
    shutil.copy(demo_inventory_path(), target)
    text = target.read_text(encoding="utf-8")
    web02 = "  - name: WEB02\n    vm_id: 2a7c9d4f-e613-4b8a-9d52-6b0e3f8a1c57\n    host: HV02\n"
    assert web02 in text
    text = text.replace(web02, web02.replace("host: HV02", "host: HV01"))
    target.write_text(text, encoding="utf-8")
    merged = invoke(
        tmp_path, "inventory", "discover", "--host", "HV01", "--merge", str(target), "--json"
    )
    assert merged.returncode == 0, merged.stderr
    report = json.loads(merged.stdout)
    assert report["counts"]["missing"] == 0, report["counts"]
    (entry,) = [e for e in report["entries"] if e["name"] == "WEB02"]
    assert entry["kind"] == "not_asked"
    assert entry["notes"] == [
        "left as it was: HV02, another node of prod-cluster, was not heard from"
    ]
    assert target.read_text(encoding="utf-8") == text
    shown = invoke(tmp_path, "inventory", "diff", str(target), "--host", "HV01")
    assert shown.returncode == 0, shown.stderr
    assert "Marked missing" not in shown.stdout
    assert (
        "  WEB02          left as it was: HV02, another node of prod-cluster, was not heard from"
        in shown.stdout
    )


ENV = {EMULATOR_PASSWORD_ENV: "Passw0rd!", "CHECKPOINT_BOT_SOCKET": "off"}
NEW_APP02 = "4e2d1c0b-9a8f-4e7d-8c6b-5a4f3e2d1c0b"


def _both_nodes_hold_two_vms() -> HostModel:
    """The demo host model with WEB02 (HV02's) registered on HV01 as well,
    and NEW-APP02 on both: no Replica anywhere."""
    doc: dict[str, Any] = yaml.safe_load(demo_hosts_path().read_text(encoding="utf-8"))
    hosts = {host["name"]: host for host in doc["hosts"]}
    (web02,) = [vm for vm in hosts["HV02"]["vms"] if vm["name"] == "WEB02"]
    hosts["HV01"]["vms"].append(dict(web02))
    for node in ("HV01", "HV02"):
        hosts[node]["vms"].append({"name": "NEW-APP02", "vm_id": NEW_APP02})
    return parse_host_model(yaml.safe_dump(doc), "demo-hosts (WEB02 twice)")


def test_a_vm_two_nodes_report_is_said_over_winrm(tmp_path: Path) -> None:
    with emulated_estate(tmp_path, model=_both_nodes_hold_two_vms(), env=ENV):
        diff = invoke(tmp_path, "-c", "bot.yaml", "inventory", "diff", env=ENV)
        assert diff.returncode == 0, diff.stderr
        assert "Hyper-V Replica copy is on" not in diff.stdout
        assert (
            "Not added (1):\n  NEW-APP02      HV01, HV02\n"
            "      not added: reported by both HV01 and HV02, and neither is a Hyper-V "
            "Replica copy: add it by hand once only one of them has it\n"
        ) in diff.stdout
        assert (
            "  WEB02          left as it was: reported by both HV01 and HV02, and neither "
            "is a Hyper-V Replica copy: fix it by hand once only one of them has it\n"
        ) in diff.stdout
        assert "Nothing to change." in diff.stdout
        as_json = invoke(tmp_path, "-c", "bot.yaml", "inventory", "diff", "--json", env=ENV)
        report = json.loads(as_json.stdout)
        kinds = {e["name"]: (e["kind"], e["notes"]) for e in report["entries"]}
        assert kinds["NEW-APP02"][0] == "skipped" and kinds["WEB02"][0] == "unchanged"
        assert "reported by both HV01 and HV02" in kinds["WEB02"][1][0]
        assert report["counts"]["added"] == 0 and report["changed"] is False


# -- two new VMs of one name --------------------------------------------------------


def test_two_new_vms_of_one_name_are_neither_added() -> None:
    """Seen: a lab VM CWEB01 on HVB took the name over the clustered
    production CWEB01 on NODE1, only because "HVB" sorts first, and the
    production one was "not added: the name is taken by VMId … in the
    inventory" of a file that listed no VM."""
    lab = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
    found = [_found("NODE1", name="CWEB01"), _found("HVB", name="CWEB01", vm_id=lab)]
    plan = plan_merge([], found, ALL_ANSWERED, TODAY)
    assert [(e.kind, e.host) for e in plan.entries] == [
        (Kind.SKIPPED, "HVB"),
        (Kind.SKIPPED, "NODE1"),
    ]
    assert plan.entries[0].notes == (
        f"not added: another new VM has the same name (VMId {CAPP01} on NODE1); "
        "add it by hand under another name",
    )
    assert plan.entries[1].notes == (
        f"not added: another new VM has the same name (VMId {lab} on HVB); "
        "add it by hand under another name",
    )
    # A name the file already gives another VMId is said as before.
    listed = [VM(name="CWEB01", vm_id="9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a", host="HVA")]
    plan = plan_merge(listed, found[:1], ALL_ANSWERED, TODAY)
    assert plan.entries[-1].notes == (
        "not added: the name is taken by VMId 9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a in the "
        "inventory; add it by hand under another name",
    )
