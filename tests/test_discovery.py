"""`inventory discover`: the real pypsrp client against the emulated demo fleet
over WinRM on loopback, the pure merge plan, and the round-trip YAML edit.

What is proven here:
- discovery of the emulated demo hosts reproduces the demo inventory's VMs
  and every fact discovery can know (VMId, host, checkpoint type, disk kinds,
  Hyper-V Replica, guest OS, the DC role and domain from KVP, volume), in
  five PSRP invocations per host whatever its number of VMs;
- `--merge` keeps a hand-written role, tag and comment;
- a VM removed from its host (Remove-VM behind the bot's back) is marked
  `missing_since`, never deleted; one whose host did not answer is left alone;
- plan_merge's invariants hold for any inventory and any discovery (hypothesis).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.devtools.emulator import EmulatedFleet, EmulatorLog, Faults
from bot.devtools.hostmodel import (
    DiskSpec,
    GuestSpec,
    HostModel,
    HostSpec,
    InMemoryHostStateStore,
    ReplicationSpec,
    VMSpec,
    VolumeSpec,
    demo_hosts_path,
    load_host_model,
)
from bot.facts import contradictions, discovered_facts, inventory_facts
from bot.hyperv.errors import HyperVError
from bot.hyperv.types import CheckpointType, Volume
from bot.hyperv.winrm import mapping
from bot.hyperv.winrm.connect import Credentials
from bot.hyperv.winrm.host import WinRMHost
from bot.hyperv.winrm.pool import WinRMTimeouts
from bot.inventory import (
    Cluster,
    Host,
    Inventory,
    demo_inventory_path,
    load_inventory,
    parse_inventory,
)
from bot.inventory.discovery import (
    FoundVM,
    Kind,
    Scope,
    apply_to_mappings,
    found_vm,
    plan_merge,
    volumes_by_host,
)
from bot.inventory.models import VM
from bot.inventory.yamledit import (
    DocumentError,
    Layout,
    apply_plan,
    dump_document,
    fresh_document,
    layout_of,
    load_document,
)
from policies import (
    Action,
    Context,
    Decision,
    Fact,
    Facts,
    Request,
    Verdict,
    evaluate,
    load_policy,
)

USER, PASSWORD = "hvadmin", "Passw0rd!"
TODAY = date(2026, 12, 4)
DEMO_HOSTS = ("HV01", "HV02", "HV03")


def _client(inventory: Inventory, fleet: EmulatedFleet, name: str) -> WinRMHost:
    spec = Host.model_validate(
        {
            **inventory.host(name).model_dump(exclude={"credential"}),
            "address": "127.0.0.1",
            "transport": "http",
            "port": fleet.port_of(name),
            "auth": "basic",
            "allow_basic": True,
            "credential": {"username": USER, "password_env": "HV_PASSWORD"},
        }
    )
    credential = Credentials({"HV_PASSWORD": PASSWORD}).for_host(spec)
    timeouts = WinRMTimeouts(call=20, connect=2, read=20, operation=5, idle=300, stop_grace=1)
    return WinRMHost(spec, credential, timeouts=timeouts)


@pytest.fixture(scope="module")
def demo_inventory() -> Inventory:
    return load_inventory(demo_inventory_path())


@pytest.fixture
def demo_fleet() -> Iterator[EmulatedFleet]:
    fleet = EmulatedFleet.start(
        InMemoryHostStateStore(),
        model=load_host_model(demo_hosts_path()),
        users={USER: PASSWORD},
        auth=("basic",),
        log=EmulatorLog(),
    )
    yield fleet
    fleet.stop()


def _discover(inventory: Inventory, fleet: EmulatedFleet, hosts: tuple[str, ...]) -> list[FoundVM]:
    found: list[FoundVM] = []
    for name in hosts:
        client = _client(inventory, fleet, name)
        try:
            found.extend(found_vm(vm) for vm in client.discover_vms())
        finally:
            client.close()
    return found


def _scope(inventory: Inventory, answered: tuple[str, ...] = DEMO_HOSTS) -> Scope:
    return Scope(
        asked=DEMO_HOSTS,
        answered=answered,
        volumes=volumes_by_host(inventory),
    )


# What discovery can know, per VM; everything else is a person's to say.
def _discoverable(vm: VM) -> tuple[object, ...]:
    return (
        vm.name,
        vm.host,
        vm.checkpoint_type,
        vm.automatic_checkpoints,
        vm.disks.shared_vhdx,
        vm.disks.vhd_set,
        vm.disks.passthrough,
        vm.hyperv_replica,
        vm.guest_os,
        vm.volume,
        vm.is_domain_controller,
        vm.domain,
    )


def test_discovery_reproduces_the_demo_inventory_over_winrm(
    demo_inventory: Inventory, demo_fleet: EmulatedFleet
) -> None:
    found = _discover(demo_inventory, demo_fleet, DEMO_HOSTS)

    # A new inventory: the demo's hosts, and only what the hosts reported.
    doc = fresh_document(demo_inventory_path().read_text(encoding="utf-8"), "test")
    plan = plan_merge([], found, _scope(demo_inventory), TODAY)
    apply_plan(doc, plan, TODAY)
    written = parse_inventory(dump_document(doc), "discovered.yaml")

    expected = {vm.vm_id: _discoverable(vm) for vm in demo_inventory.vms}
    got = {vm.vm_id: _discoverable(vm) for vm in written.vms}
    assert got == expected
    assert all(vm.roles_unknown for vm in written.vms)
    # Merged into the demo inventory itself: nothing to change.
    again = plan_merge(demo_inventory.vms, found, _scope(demo_inventory), TODAY)
    assert {e.kind for e in again.entries} == {Kind.UNCHANGED}
    assert not again.changed
    # Five invocations per host (VMs, disks, replication, KVP, volumes), each
    # for all of its VMs, and only cmdlets with parameters.
    log = demo_fleet.log
    for host in DEMO_HOSTS:
        firsts = [e.cmdlet for e in log.for_host(host) if e.cmdlet != "Select-Object"]
        assert sorted(firsts) == sorted(
            [
                "Get-VM",
                "Get-VM",
                "Get-VM",
                "Get-VMHardDiskDrive",
                "Get-VMFibreChannelHba",
                "Get-VMReplication",
                "Get-CimInstance",
                "Get-Volume",
            ]
        )
    assert not any(e.is_script for e in log.entries)


def test_discovery_reads_what_the_host_model_says_not_the_inventory(
    demo_inventory: Inventory, demo_fleet: EmulatedFleet
) -> None:
    """The host disagrees with the inventory; the merge follows the host for
    discoverable facts and keeps what a person set."""
    web01 = "8b3f6e1a-d9c2-4b07-a6e5-1f4d7c9b2e83"
    host = demo_fleet.host("HV01")
    host.set_vm(web01, checkpoint_type=None, automatic_checkpoints=True)
    found = _discover(demo_inventory, demo_fleet, ("HV01",))
    web = next(f for f in found if f.vm_id == web01)
    assert web.automatic_checkpoints is True
    assert web.domain_controller is False
    assert web.fqdn == "web01.corp.example"
    plan = plan_merge(demo_inventory.vms, found, _scope(demo_inventory, ("HV01",)), TODAY)
    entry = next(e for e in plan.entries if e.vm_id == web01)
    assert entry.kind is Kind.UPDATED
    assert dict(entry.set) == {"automatic_checkpoints": True}
    # HV02 and HV03 were not asked: their VMs are left alone.
    not_asked = {e.host for e in plan.of(Kind.NOT_ASKED)}
    assert not_asked == {"HV02", "HV03"}


def test_guest_that_publishes_no_kvp_is_unknown_not_safe(
    demo_inventory: Inventory,
) -> None:
    """A VM that is off publishes no KVP items: whether it is a DC is unknown,
    and the new entry's roles are unknown to the guardrails."""
    vm_id = str(uuid.uuid4())
    model = HostModel(
        hosts=[
            HostSpec(
                name="HV03",
                volumes=[VolumeSpec(path="D:", capacity_gb=1500, used_gb=400)],
                vms=[
                    VMSpec(
                        name="OFF-DC",
                        vm_id=vm_id,
                        state="Off",
                        guest=GuestSpec(fqdn="off-dc.corp.example", product_type=2),
                    )
                ],
            )
        ]
    )
    with EmulatedFleet.start(
        InMemoryHostStateStore(), model=model, users={USER: PASSWORD}, auth=("basic",)
    ) as fleet:
        (found,) = _discover(demo_inventory, fleet, ("HV03",))
    assert found.domain_controller is None
    assert found.fqdn is None
    plan = plan_merge([], [found], _scope(demo_inventory, ("HV03",)), TODAY)
    (entry,) = plan.of(Kind.ADDED)
    assert any("no KVP items" in note for note in entry.notes)
    assert [e.name for e in plan.unknown_roles] == ["OFF-DC"]
    record = dict(entry.record)
    assert record["roles"] == [] and record["roles_unknown"] is True
    inventory = Inventory.model_validate(
        {"hosts": [demo_inventory.host("HV03").model_dump()], "vms": [record]}
    )
    facts = inventory_facts(inventory, inventory.vms[0], "inventory", datetime.now(UTC))
    assert not facts["roles"].known


def test_shared_and_passthrough_disks_and_replication_are_discovered(
    demo_inventory: Inventory,
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(3)]
    model = HostModel(
        hosts=[
            HostSpec(
                name="HV03",
                volumes=[VolumeSpec(path="D:", capacity_gb=1500, used_gb=400)],
                vms=[
                    VMSpec(
                        name="SET01",
                        vm_id=ids[0],
                        disks=[
                            DiskSpec(path="D:\\VMs\\SET01.vhdx"),
                            DiskSpec(path="C:\\ClusterStorage\\Volume1\\q.vhds", shared=True),
                        ],
                    ),
                    VMSpec(
                        name="LUN01",
                        vm_id=ids[1],
                        disks=[
                            DiskSpec(path="D:\\VMs\\LUN01.vhdx"),
                            DiskSpec(
                                path="Disk 3 2.00 TB Bus 0 Lun 2 Target 0",
                                passthrough=True,
                                disk_number=3,
                            ),
                        ],
                    ),
                    VMSpec(name="DR01", vm_id=ids[2], replication=ReplicationSpec()),
                ],
            )
        ]
    )
    with EmulatedFleet.start(
        InMemoryHostStateStore(), model=model, users={USER: PASSWORD}, auth=("basic",)
    ) as fleet:
        found = {f.name: f for f in _discover(demo_inventory, fleet, ("HV03",))}
    assert (found["SET01"].vhd_set, found["SET01"].shared_vhdx) == (True, False)
    assert found["LUN01"].passthrough and not found["LUN01"].vhd_set
    assert found["DR01"].replication == "Replicating" and found["DR01"].hyperv_replica
    assert found["SET01"].volume == "D:\\"


HAND_WRITTEN = """\
# Our estate. Edited by hand; keep this comment.
hosts:
  - name: HV01
    address: hv01.corp.example
    auth: negotiate
    volumes:
      - {path: 'D:\\', capacity_gb: 2000, used_gb: 700}
      - {path: 'E:\\', capacity_gb: 3000, used_gb: 2350}
  - name: HV02
    address: hv02.corp.example
    volumes:
      - {path: 'D:\\', capacity_gb: 2000, used_gb: 420}
      - {path: 'E:\\', capacity_gb: 3000, used_gb: 2350}
vms:
  # The AG replica: never checkpoint without the DBAs.
  - name: SQL01
    vm_id: 3c8e0f52-9a1d-4b76-a5e3-7d4b2c91f068
    host: HV01
    roles: [sql_server, sql_ag_replica]   # set by the DBAs, 2026-03
    tags: {env: prod, pager: dba-oncall}
    domain: corp.example
    checkpoint_type: Standard             # wrong on purpose: the host says ProductionOnly
  - name: GONE01                          # decommissioned? discovery will say
    vm_id: 11111111-2222-4333-8444-555555555555
    host: HV02
    roles: [web]
"""


def test_merge_keeps_hand_written_roles_tags_and_comments_and_marks_the_gone(
    demo_inventory: Inventory, demo_fleet: EmulatedFleet, tmp_path: Path
) -> None:
    found = _discover(demo_inventory, demo_fleet, ("HV01", "HV02"))
    current = parse_inventory(HAND_WRITTEN, "hand.yaml")
    scope = Scope(
        asked=("HV01", "HV02"),
        answered=("HV01", "HV02"),
        volumes=volumes_by_host(current),
    )
    plan = plan_merge(current.vms, found, scope, TODAY)
    doc = load_document(HAND_WRITTEN)
    apply_plan(doc, plan, TODAY)
    text = dump_document(doc)
    merged = parse_inventory(text, "merged.yaml")

    for comment in (
        "# Our estate. Edited by hand; keep this comment.",
        "# The AG replica: never checkpoint without the DBAs.",
        "# set by the DBAs, 2026-03",
        "# decommissioned? discovery will say",
    ):
        assert comment in text
    sql = merged.vm("SQL01")
    assert [r.value for r in sql.roles] == ["sql_server", "sql_ag_replica"]
    assert sql.tags == {"env": "prod", "pager": "dba-oncall"}
    assert sql.domain == "corp.example"
    assert not sql.roles_unknown
    # What the host says wins for what it can know.
    assert sql.checkpoint_type is CheckpointType.ProductionOnly
    assert sql.volume == "E:\\"
    # Gone from every asked host: marked, not deleted.
    gone = merged.vm("GONE01")
    assert gone.missing_since == TODAY
    assert [r.value for r in gone.roles] == ["web"]
    assert [e.name for e in plan.of(Kind.MISSING)] == ["GONE01"]
    # The rest of HV01 and HV02 is added, with roles unknown.
    assert len(merged.vms) == 2 + 14
    assert {e.name for e in plan.unknown_roles} == {
        vm.name for vm in merged.vms if vm.name not in ("SQL01", "GONE01")
    }
    # A second merge of the same answers changes nothing.
    second = plan_merge(merged.vms, found, scope, TODAY)
    assert not second.changed
    assert [e.name for e in second.of(Kind.STILL_MISSING)] == ["GONE01"]


def test_a_vm_removed_from_its_host_is_marked_and_comes_back(
    demo_inventory: Inventory, demo_fleet: EmulatedFleet
) -> None:
    web02 = "2a7c9d4f-e613-4b8a-9d52-6b0e3f8a1c57"
    demo_fleet.host("HV02").remove_vm(web02)
    found = _discover(demo_inventory, demo_fleet, DEMO_HOSTS)
    plan = plan_merge(demo_inventory.vms, found, _scope(demo_inventory), TODAY)
    assert [(e.name, e.kind) for e in plan.entries if e.kind is not Kind.UNCHANGED] == [
        ("WEB02", Kind.MISSING)
    ]
    doc = load_document(demo_inventory_path().read_text(encoding="utf-8"))
    apply_plan(doc, plan, TODAY)
    text = dump_document(doc)
    merged = parse_inventory(text, "merged.yaml")
    assert merged.vm("WEB02").missing_since == TODAY
    assert "not found by discovery on 2026-12-04" in text
    assert len(merged.vms) == len(demo_inventory.vms)
    # Its host did not answer: nothing is marked.
    unanswered = _scope(demo_inventory, ("HV01", "HV03"))
    quiet = plan_merge(demo_inventory.vms, found, unanswered, TODAY)
    assert not quiet.of(Kind.MISSING)
    # Found again (say, re-registered): the mark goes.
    back = plan_merge(
        merged.vms, [*found, _as_found(demo_inventory.vm("WEB02"))], _scope(demo_inventory), TODAY
    )
    (returned,) = back.of(Kind.RETURNED)
    assert returned.unset == ("missing_since",)


def _as_found(vm: VM) -> FoundVM:
    return FoundVM(
        name=vm.name,
        vm_id=vm.vm_id,
        host=vm.host,
        state="Running",
        checkpoint_type=vm.checkpoint_type,
        guest_os=vm.guest_os,
        volume=vm.volume,
    )


# -- the plan's invariants, for any inventory and any discovery ---------------------

_HOSTS = ("HV01", "HV02", "HV03")
_CLUSTERS = (Cluster(name="fc1", nodes=["HV01", "HV02"]),)
_IDS = [str(uuid.UUID(int=i + 1)) for i in range(12)]
_NAMES = [f"VM{i:02d}" for i in range(12)]


@st.composite
def _vm(draw: st.DrawFn, index: int) -> VM:
    return VM(
        name=_NAMES[index],
        vm_id=_IDS[index],
        host=draw(st.sampled_from(_HOSTS)),
        roles=draw(
            st.lists(
                st.sampled_from(["web", "sql_ag_replica", "dfsr_member"]), max_size=2, unique=True
            )
        ),
        tags=draw(st.dictionaries(st.sampled_from(["env", "team"]), st.sampled_from(["a", "b"]))),
        checkpoint_type=draw(st.sampled_from(list(CheckpointType))),
        missing_since=draw(st.sampled_from([None, date(2026, 1, 1)])),
    )


@st.composite
def _found(draw: st.DrawFn, index: int) -> FoundVM:
    return FoundVM(
        # Its own name, a new one, or one another VM has (renames, clashes).
        name=draw(st.sampled_from([_NAMES[index], f"NEW{index:02d}", *_NAMES[:3]])),
        vm_id=_IDS[index],
        host=draw(st.sampled_from(_HOSTS)),
        state="Running",
        checkpoint_type=draw(st.sampled_from(list(CheckpointType))),
        passthrough=draw(st.booleans()),
        domain_controller=draw(st.sampled_from([None, True, False])),
        fqdn=draw(st.sampled_from([None, f"vm{index}.corp.example"])),
    )


@st.composite
def _case(draw: st.DrawFn) -> tuple[list[VM], list[FoundVM], tuple[str, ...]]:
    current_ix = draw(st.sets(st.integers(0, 11), max_size=8))
    found_ix = draw(st.sets(st.integers(0, 11), max_size=8))
    current = [draw(_vm(i)) for i in sorted(current_ix)]
    found = [draw(_found(i)) for i in sorted(found_ix)]
    # Some VMIds reported by a second host too, neither a Replica copy.
    doubled = draw(st.lists(st.sampled_from(found), max_size=2)) if found else []
    found += [replace(f, host=next(h for h in _HOSTS if h != f.host)) for f in doubled]
    answered = tuple(draw(st.sets(st.sampled_from(_HOSTS))))
    return current, found, answered


@settings(max_examples=300, deadline=None)
@given(_case())
def test_merge_plan_invariants(case: tuple[list[VM], list[FoundVM], tuple[str, ...]]) -> None:
    current, found, answered = case
    scope = Scope(asked=_HOSTS, answered=answered, clusters=_CLUSTERS)
    plan = plan_merge(current, found, scope, TODAY)
    before = [vm.model_dump(exclude_defaults=True, mode="json") for vm in current]
    after = apply_to_mappings(before, plan)
    after_by_id = {str(e["vm_id"]): e for e in after}
    found_ids = {f.vm_id for f in found}
    hosts_of = {i: {f.host for f in found if f.vm_id == i} for i in found_ids}
    ambiguous = {i for i, hosts in hosts_of.items() if len(hosts) > 1}
    heard = {h.casefold() for h in answered}
    skipped = {e.vm_id for e in plan.of(Kind.SKIPPED)}
    assert ambiguous - {vm.vm_id for vm in current} <= skipped
    # Nothing is ever deleted; every VM found is in the result (or said why not).
    assert {vm.vm_id for vm in current} <= set(after_by_id)
    assert found_ids <= set(after_by_id) | skipped
    for vm, was in zip(current, before, strict=True):
        now = after_by_id[vm.vm_id]
        # A person's fields are never touched.
        for key in ("roles", "tags", "domain", "app_group", "owner"):
            assert now.get(key) == was.get(key)
        may_own = _CLUSTERS[0].nodes if _CLUSTERS[0].has_node(vm.host) else [vm.host]
        if vm.vm_id in ambiguous:
            assert now == was  # two hosts have it: nothing is guessed
        elif vm.vm_id in found_ids:
            assert "missing_since" not in now
        elif any(h.casefold() not in heard for h in may_own):
            assert now == was  # a host that may own it did not answer: left as it was
        else:
            assert now.get("missing_since") is not None
    # New VMs always carry roles_unknown.
    for entry in plan.of(Kind.ADDED):
        assert dict(entry.record)["roles_unknown"] is True
    # The result is always a valid inventory (names and VMIds unique, a DC
    # has its domain), so a merge never has to be refused for its own edits.
    hosts = [{"name": h, "address": f"{h.lower()}.corp.example"} for h in _HOSTS]
    result = Inventory.model_validate({"hosts": hosts, "vms": after}).vms
    # Idempotent: merging the same answers into the result changes nothing.
    again = plan_merge(result, found, scope, TODAY)
    assert not again.changed, [e.to_dict() for e in again.entries if e.set or e.unset]


def test_an_added_key_keeps_the_next_entrys_comment_in_place() -> None:
    """ruamel.yaml hangs the comment above a list item on the previous
    entry's last key; a key the merge adds or removes must not carry it into
    (or out of) the wrong entry."""
    text = """\
hosts:
  - {name: HV01, address: hv01.corp.example}
vms:
  - name: A01
    vm_id: 00000000-0000-4000-8000-00000000000a
    host: HV01  # eol of A01
  # B01 is the one we keep an eye on
  - name: B01
    vm_id: 00000000-0000-4000-8000-00000000000b
    host: HV01

  # C01 came back from the dead
  - name: C01
    vm_id: 00000000-0000-4000-8000-00000000000c
    host: HV01
    missing_since: 2026-01-01

  # D01: last
  - name: D01
    vm_id: 00000000-0000-4000-8000-00000000000d
    host: HV01
    roles: [web]
"""
    current = parse_inventory(text, "t.yaml")
    seen = [_as_found(current.vm(n)) for n in ("A01", "C01", "D01")]
    seen[0] = FoundVM(**{**seen[0].__dict__, "checkpoint_type": CheckpointType.Standard})
    plan = plan_merge(current.vms, seen, Scope(asked=("HV01",), answered=("HV01",)), TODAY)
    doc = load_document(text)
    apply_plan(doc, plan, TODAY)
    out = dump_document(doc)
    lines = out.splitlines()

    def after(comment: str) -> str:
        return lines[lines.index(comment) + 1]

    assert after("  # B01 is the one we keep an eye on") == "  - name: B01"
    assert after("  # C01 came back from the dead") == "  - name: C01"
    assert after("  # D01: last") == "  - name: D01"
    assert "    host: HV01  # eol of A01" in lines
    a01 = lines.index("  - name: A01")
    assert "    checkpoint_type: Standard" in lines[a01 : lines.index("  - name: B01")]
    assert "    missing_since: 2026-12-04  # not found by discovery on 2026-12-04" in lines
    merged = parse_inventory(out, "merged.yaml")
    assert merged.vm("B01").missing_since == TODAY
    assert merged.vm("C01").missing_since is None


def test_the_guardrails_fail_closed_on_a_discovered_inventory(
    demo_inventory: Inventory, demo_fleet: EmulatedFleet
) -> None:
    """A freshly discovered WEB01 (roles unknown) is not waved through where
    the hand-written demo WEB01 (roles: [web]) passes the application rule;
    the discovered domain controller is still refused."""
    found = _discover(demo_inventory, demo_fleet, DEMO_HOSTS)
    doc = fresh_document(demo_inventory_path().read_text(encoding="utf-8"), "test")
    apply_plan(doc, plan_merge([], found, _scope(demo_inventory), TODAY), TODAY)
    discovered = parse_inventory(dump_document(doc), "discovered.yaml")
    now = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # a Tuesday morning

    def decide(inventory: Inventory, name: str) -> Decision:
        vm = inventory.vm(name)
        client = _client(demo_inventory, demo_fleet, vm.host)
        try:
            on_host = client.vm_facts(vm.vm_id)
        finally:
            client.close()
        values = inventory_facts(inventory, vm, "inventory", now)
        values |= discovered_facts(on_host, f"host {vm.host}", now)
        values["contradictions"] = Fact(contradictions(values), "facts provider", now)
        request = Request(Action.CREATE, vm.name, vm.vm_id, "U0ALICE")
        return evaluate(request, Facts(values), Context(now=now, policy=load_policy()))

    hand = decide(demo_inventory, "WEB01").outcome("replicating_application")
    assert hand is not None and not hand.fired
    decision = decide(discovered, "WEB01")
    assert decision.verdict is not Verdict.ALLOW
    rule = decision.outcome("replicating_application")
    assert rule is not None and rule.fired
    assert "cannot tell which applications it runs" in rule.message
    assert "roles_unknown" in rule.message
    dc = decide(discovered, "CORP-DC01")
    assert dc.verdict is Verdict.DENY and "USN rollback" in " ".join(dc.reasons)


def test_a_replica_copy_is_not_a_second_vm_and_renames_never_collide() -> None:
    """A Hyper-V Replica copy keeps its primary's VMId (so one VMId is on two
    hosts): the inventory gets the primary, the copy is said. A VM renamed
    on its host to a name another VM has here keeps its name."""
    primary = FoundVM(
        name="APP01",
        vm_id=_IDS[0],
        host="HV01",
        state="Running",
        checkpoint_type=CheckpointType.Production,
        replication="Replicating",
        replication_mode="Primary",
    )
    copy = FoundVM(
        **{**primary.__dict__, "host": "DR01", "state": "Off", "replication_mode": "Replica"}
    )
    scope = Scope(asked=("DR01", "HV01"), answered=("DR01", "HV01"))
    for order in ([copy, primary], [primary, copy]):
        plan = plan_merge([], order, scope, TODAY)
        (added,) = plan.of(Kind.ADDED)
        assert added.host == "HV01"
        assert "a Hyper-V Replica copy is on DR01" in added.notes
    current = [
        VM(name="WEB01", vm_id=_IDS[1], host="HV01"),
        VM(name="WEB02", vm_id=_IDS[2], host="HV01"),
    ]
    renamed = FoundVM(
        name="WEB02",
        vm_id=_IDS[1],
        host="HV01",
        state="Running",
        checkpoint_type=CheckpointType.Production,
    )
    other = _as_found(current[1])
    plan = plan_merge(current, [renamed, other], Scope(("HV01",), ("HV01",)), TODAY)
    entry = next(e for e in plan.entries if e.vm_id == _IDS[1])
    assert entry.kind is Kind.UNCHANGED and not entry.set
    assert "renamed on its host to WEB02, another VM's name here: kept as WEB01" in entry.notes


def test_discovery_replies_are_read_in_every_shape_a_host_sends() -> None:
    """Enums as names or integers, GUIDs as UUIDs or braced text, KVP keyed
    by the upper-case SystemName (docs/winrm-client.md, "What comes back")."""
    vm_id = "3c8e0f52-9a1d-4b76-a5e3-7d4b2c91f068"
    vm = {
        "Name": "SQL01",
        "VMId": uuid.UUID(vm_id),
        "State": 2,
        "CheckpointType": 4,
        "ReplicationState": 4,
        "ComputerName": "HV01",
        "IsClustered": True,
        "Path": "E:\\Hyper-V\\SQL01",
    }
    disks = [
        {
            "VMId": "{" + vm_id.upper() + "}",
            "Path": "E:\\SQL01.vhdx",
            "DiskNumber": None,
            "SupportPersistentReservations": False,
        },
        {
            "VMId": vm_id,
            "Path": "Disk 4 Bus 0 Lun 4 Target 0",
            "DiskNumber": 4,
            "SupportPersistentReservations": False,
        },
    ]
    replication = [{"VMId": vm_id, "State": 4, "Mode": 2, "Health": 1}]
    item = (
        '<INSTANCE CLASSNAME="Msvm_KvpExchangeDataItem"><PROPERTY NAME="Data" TYPE="string">'
        '<VALUE>{}</VALUE></PROPERTY><PROPERTY NAME="Name" TYPE="string"><VALUE>{}</VALUE>'
        "</PROPERTY></INSTANCE>"
    )
    kvp = [
        {
            "SystemName": vm_id.upper(),
            "GuestIntrinsicExchangeItems": [
                item.format("sql01.corp.example", "FullyQualifiedDomainName"),
                item.format("3", "ProductType"),
            ],
        }
    ]
    volumes = [Volume("HV01", "E:\\", 3000, 650)]
    (found,) = mapping.discovered_vms(
        "HV01", [vm], disks, replication, kvp, volumes, fibre_channel=([], "")
    )
    assert found.vm.checkpoint_type is CheckpointType.ProductionOnly
    assert found.is_clustered and found.owner_node == "HV01"
    assert [d.passthrough for d in found.disks] == [False, True]
    assert found.replication is not None and found.replication.mode == "Replica"
    assert found.guest.fqdn == "sql01.corp.example" and found.guest.product_type == 3
    assert found.volume == "E:\\"
    record = found_vm(found)
    assert record.is_replica_copy and record.passthrough and record.domain == "corp.example"


def test_a_replica_server_and_its_primary_over_winrm() -> None:
    """The replica copy on the DR host keeps the primary's VMId and reports
    Mode Replica (Get-VMReplication); discovery of both hosts gives one VM,
    on its primary."""
    vm_id = str(uuid.uuid4())
    volume = VolumeSpec(path="D:", capacity_gb=1000, used_gb=100)
    model = HostModel(
        hosts=[
            HostSpec(
                name="HV01",
                volumes=[volume],
                vms=[
                    VMSpec(
                        name="APP07",
                        vm_id=vm_id,
                        replication=ReplicationSpec(replica_server="dr01.corp.example"),
                    ),
                ],
            ),
            HostSpec(
                name="DR01",
                volumes=[volume],
                vms=[
                    VMSpec(
                        name="APP07",
                        vm_id=vm_id,
                        state="Off",
                        replication=ReplicationSpec(mode="Replica"),
                    ),
                ],
            ),
        ]
    )
    inventory = Inventory.model_validate(
        {"hosts": [{"name": n, "address": f"{n.lower()}.corp.example"} for n in ("HV01", "DR01")]}
    )
    with EmulatedFleet.start(
        InMemoryHostStateStore(), model=model, users={USER: PASSWORD}, auth=("basic",)
    ) as fleet:
        found = _discover(inventory, fleet, ("HV01", "DR01"))
    assert sorted((f.host, f.replication_mode) for f in found) == [
        ("DR01", "Replica"),
        ("HV01", "Primary"),
    ]
    plan = plan_merge([], found, Scope(("HV01", "DR01"), ("HV01", "DR01")), TODAY)
    (added,) = plan.of(Kind.ADDED)
    assert (added.name, added.host) == ("APP07", "HV01")
    assert dict(added.record)["hyperv_replica"] is True
    assert "a Hyper-V Replica copy is on DR01" in added.notes


def test_guest_published_text_is_untrusted() -> None:
    """KVP items come from inside the guest: an FQDN that is not one is
    unknown, and a terminal's escape sequences never reach the output."""
    vm_id = str(uuid.uuid4())
    item = (
        '<INSTANCE CLASSNAME="Msvm_KvpExchangeDataItem"><PROPERTY NAME="Data" TYPE="string">'
        '<VALUE>{}</VALUE></PROPERTY><PROPERTY NAME="Name" TYPE="string"><VALUE>{}</VALUE>'
        "</PROPERTY></INSTANCE>"
    )
    kvp = [
        {
            "SystemName": vm_id.upper(),
            "GuestIntrinsicExchangeItems": [
                item.format("evil.corp.example; rm -rf /", "FullyQualifiedDomainName"),
                # XML 1.0 refuses C0 controls (such an item is dropped); C1's CSI passes.
                item.format("Windows\x9b2J Server\n2022", "OSName"),
            ],
        }
    ]
    vm = {"Name": "APP\x1b01", "VMId": vm_id, "State": "Running", "CheckpointType": "Production"}
    (found,) = mapping.discovered_vms("HV01", [vm], [], [], kvp, [], fibre_channel=([], ""))
    record = found_vm(found)
    assert record.fqdn is None and record.domain is None
    assert record.guest_os == "Windows 2J Server 2022"
    assert record.display_name == "APP?01"
    plan = plan_merge([], [record], Scope(("HV01",), ("HV01",)), TODAY)
    (skipped,) = plan.of(Kind.SKIPPED)  # the name is not a valid inventory name
    assert skipped.notes


def test_a_vm_that_moved_follows_its_host_and_leaves_a_volume_it_lacks(
    demo_inventory: Inventory,
) -> None:
    """SQL01 (on E:\\ of HV01) is now registered on HV03, which has only D:\\
    and where the host could not name its volume: the entry follows the
    host and drops the volume HV03 lacks, so the result stays valid."""
    sql = demo_inventory.vm("SQL01")
    moved = FoundVM(**{**_as_found(sql).__dict__, "host": "HV03", "volume": None})
    plan = plan_merge([sql], [moved], _scope(demo_inventory), TODAY)
    (entry,) = plan.entries
    assert entry.kind is Kind.UPDATED
    assert dict(entry.set) == {"host": "HV03"} and entry.unset == ("volume",)
    after = apply_to_mappings([sql.model_dump(mode="json", exclude_defaults=True)], plan)
    hosts = [h.model_dump(mode="json") for h in demo_inventory.hosts]
    (result,) = Inventory.model_validate({"hosts": hosts, "vms": after}).vms
    assert (result.host, result.volume) == ("HV03", "D:\\")
    assert [r.value for r in result.roles] == ["sql_server", "sql_ag_replica"]


def test_a_document_that_cannot_be_round_tripped_is_refused_in_one_line() -> None:
    with pytest.raises(DocumentError, match='found duplicate key "hosts"'):
        load_document("hosts: []\nhosts: []\nvms: []\n")
    with pytest.raises(DocumentError, match="vms: is not a list"):
        load_document("hosts: []\nvms: {}\n")


def test_a_narrower_jea_role_leaves_facts_unknown_never_safe(
    demo_inventory: Inventory,
) -> None:
    """An endpoint whose role capability does not expose Get-CimInstance,
    Get-VMReplication or Get-Volume (CommandNotFoundException): the VMs are
    still found, the guests' facts are unknown and say why, replication is
    Get-VM's word. Without Get-VMHardDiskDrive nothing is claimed about
    disks: the host is not discovered at all."""
    hidden = Faults(hidden=frozenset({"Get-CimInstance", "Get-VMReplication", "Get-Volume"}))
    with EmulatedFleet.start(
        InMemoryHostStateStore(),
        hosts=["HV01"],
        model=load_host_model(demo_hosts_path()),
        users={USER: PASSWORD},
        auth=("basic",),
        faults=hidden,
    ) as fleet:
        found = {f.name: f for f in _discover(demo_inventory, fleet, ("HV01",))}
        assert len(found) == 8
        assert all(f.domain_controller is None and f.fqdn is None for f in found.values())
        assert found["REPL-APP01"].hyperv_replica
        assert found["FC-NODE1"].shared_vhdx
        plan = plan_merge([], found.values(), _scope(demo_inventory, ("HV01",)), TODAY)
        dc = next(e for e in plan.of(Kind.ADDED) if e.name == "CORP-DC01")
        assert dict(dc.record)["roles"] == []
        assert any("did not list the guests' KVP items" in n for n in dc.notes)
        assert any("CommandNotFound" in n or "not recognized" in n for n in dc.notes)
        # The fix is the role's, and the note says where: not the guests'.
        assert any(
            "does not let the bot run Get-CimInstance" in n
            and "VisibleCmdlets" in n
            and "deploy/jea/CheckpointBot.psrc" in n
            for n in dc.notes
        ), dc.notes
        assert not any("integration services" in n for n in dc.notes)

        fleet.server("HV01").faults = Faults(hidden=frozenset({"Get-VMHardDiskDrive"}))
        client = _client(demo_inventory, fleet, "HV01")
        try:
            with pytest.raises(HyperVError):
                client.discover_vms()
        finally:
            client.close()


def test_the_hide_fault_parses_like_the_others() -> None:
    faults = Faults.parse("hide=Get-CimInstance, hide=Get-Volume, latency=5")
    assert faults.hidden == frozenset({"get-ciminstance", "get-volume"})
    assert faults.latency_ms == 5


@settings(max_examples=60, deadline=None)
@given(
    offset=st.integers(min_value=0, max_value=4),
    gap=st.integers(min_value=2, max_value=4),
    comment=st.booleans(),
)
def test_a_files_list_indentation_is_read_back_as_written(
    offset: int, gap: int, comment: bool
) -> None:
    """What ruamel.yaml writes with an indentation, `layout_of` reads back,
    so a merge writes the file as its author indented it."""
    layout = Layout(mapping=gap, sequence=offset + gap, offset=offset)
    doc = load_document(demo_inventory_path().read_text(encoding="utf-8"))
    text = dump_document(doc, layout)
    if comment:  # a comment between the key and its first item changes nothing
        text = text.replace("hosts:\n", "hosts:\n# the hypervisors\n", 1)
    assert layout_of(text) == layout
    assert dump_document(load_document(text), layout_of(text)) == text


def test_a_file_without_a_block_list_gets_the_default_layout() -> None:
    assert layout_of("hosts: []\nvms: []\n") == Layout()
    assert layout_of("") == Layout()
