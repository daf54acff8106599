"""WinRMHost end to end: the real pypsrp client against the loopback emulator.

Every `HyperVHost` operation runs over Basic (plain HTTP, no encryption) and
over NTLM with message encryption (against a listener that refuses anything
else, AllowUnencrypted off as Windows ships it) against a modelled host, and must read what
the host's documented behaviour says (a production checkpoint is a Standard
snapshot that holds no memory) and exactly what the same client reads over
the in-process transport the simulator backend uses. Faults each give their
typed error within the configured deadline; the emulator's log shows that
only cmdlets with parameters ever arrive.
"""

from __future__ import annotations

import faulthandler
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.clock import ManualClock
from bot.devtools.emulator import EmulatorLog, EmulatorServer, Faults
from bot.devtools.hostmodel import (
    DiskSpec,
    GuestSpec,
    HostModel,
    HostSpec,
    InMemoryHostStateStore,
    ModelHost,
    ReplicationSpec,
    VMSpec,
    VolumeSpec,
    seed_missing,
)
from bot.devtools.simulator.fleet import SimulatedFleet
from bot.devtools.simulator.session import InProcessSession
from bot.hyperv.errors import (
    CheckpointNotFound,
    CheckpointsDisabled,
    CommandNotVisible,
    HostAuthError,
    HostTimeout,
    HostUnreachable,
    InvalidVMState,
    VMNotFound,
)
from bot.hyperv.types import CheckpointType, SnapshotType, VMState
from bot.hyperv.winrm.connect import Credentials, HostCredential
from bot.hyperv.winrm.host import WinRMHost
from bot.hyperv.winrm.pool import Outcome, Pipeline, WinRMTimeouts
from bot.inventory import InvalidName, Inventory, UnknownVM

USER, PASSWORD = "hvadmin", "Passw0rd!"
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
CALL_TIMEOUT = 4.0
ALLOWED = {
    "get-vm", "get-vmsnapshot", "checkpoint-vm", "restore-vmsnapshot", "remove-vmsnapshot",
    "start-vm", "set-vm", "get-vmharddiskdrive", "get-vmreplication", "get-ciminstance",
    "get-volume", "select-object", "where-object",
}  # fmt: skip

WEB01 = "aaaaaaaa-1111-4111-8111-11111111111b"
DC01 = "22222222-2222-4222-8222-222222222222"
SQL01 = "33333333-3333-4333-8333-333333333333"
OFF01 = "44444444-4444-4444-8444-444444444444"
NOCP01 = "55555555-5555-4555-8555-555555555555"
REP01 = "66666666-6666-4666-8666-666666666666"

INVENTORY = {
    "hosts": [
        {
            "name": "HV01",
            "address": "127.0.0.1",
            "transport": "http",
            "port": 5985,
            "auth": "ntlm",
            "credential": {"username": USER, "password_env": "HV_PASSWORD"},
            "volumes": [
                {"path": "D:\\", "capacity_gb": 2000, "used_gb": 700},
                {"path": "E:\\", "capacity_gb": 3000, "used_gb": 2350},
            ],
        }
    ],
    "vms": [
        {"name": "WEB01", "vm_id": WEB01, "host": "HV01", "roles": ["web"]},
        {"name": "DC01", "vm_id": DC01, "host": "HV01", "roles": ["domain_controller"],
         "domain": "corp.example", "guest_os": "Windows Server 2022 Datacenter"},
        {"name": "SQL01", "vm_id": SQL01, "host": "HV01", "app_group": "AG1",
         "disks": {"shared_vhdx": True}, "volume": "E:\\"},
        {"name": "OFF01", "vm_id": OFF01, "host": "HV01"},
        {"name": "NOCP01", "vm_id": NOCP01, "host": "HV01", "checkpoint_type": "Disabled"},
        {"name": "REP01", "vm_id": REP01, "host": "HV01", "hyperv_replica": True},
    ],
}  # fmt: skip


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    """A last resort: a stuck test dumps every thread and ends the run."""
    faulthandler.dump_traceback_later(90, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def inventory() -> Inventory:
    return Inventory.model_validate(INVENTORY)


HOSTS = HostModel(
    hosts=[
        HostSpec(
            name="HV01",
            volumes=[
                VolumeSpec(path="D:", capacity_gb=2000, used_gb=700),
                VolumeSpec(path="E:", capacity_gb=3000, used_gb=2350),
            ],
            vms=[
                VMSpec(name="WEB01", vm_id=WEB01, guest=GuestSpec(product_type=3)),
                VMSpec(
                    name="DC01",
                    vm_id=DC01,
                    guest=GuestSpec(
                        fqdn="dc01.corp.example",
                        os_name="Windows Server 2022 Datacenter",
                        product_type=2,
                    ),
                ),
                VMSpec(
                    name="SQL01",
                    vm_id=SQL01,
                    volume="E:",
                    disks=[
                        DiskSpec(path="E:\\Hyper-V\\SQL01\\SQL01.vhdx"),
                        DiskSpec(path="C:\\ClusterStorage\\Volume1\\AG1.vhdx", shared=True),
                    ],
                ),
                VMSpec(name="OFF01", vm_id=OFF01, state="Off"),
                VMSpec(name="NOCP01", vm_id=NOCP01, checkpoint_type="Disabled"),
                VMSpec(name="REP01", vm_id=REP01, replication=ReplicationSpec()),
            ],
        )
    ]
)


@pytest.fixture
def store() -> InMemoryHostStateStore:
    seeded = InMemoryHostStateStore()
    seed_missing(seeded, HOSTS)
    return seeded


@pytest.fixture
def model(store: InMemoryHostStateStore, clock: ManualClock) -> ModelHost:
    return ModelHost("HV01", store, clock)


@pytest.fixture
def sim(store: InMemoryHostStateStore, clock: ManualClock) -> WinRMHost:
    """The same client on the same host, over the simulator's in-process transport."""
    return SimulatedFleet(store, clock).host("HV01")


@pytest.fixture
def server(model: ModelHost) -> Iterator[EmulatorServer]:
    emulator = EmulatorServer(
        host=model, port=0, users={USER: PASSWORD}, auth=("basic", "ntlm"), log=EmulatorLog()
    )
    emulator.start()
    yield emulator
    emulator.stop()


def connect(
    inventory: Inventory, server: EmulatorServer, auth: str, **overrides: float
) -> WinRMHost:
    spec = inventory.host("HV01").model_copy(
        update={"port": server.port, "auth": auth, "allow_basic": auth == "basic"}
    )
    credential = Credentials({"HV_PASSWORD": PASSWORD}).for_host(spec)
    timeouts = WinRMTimeouts(
        call=float(overrides.get("call", CALL_TIMEOUT)),
        connect=2,
        read=10,
        operation=2,
        idle=float(overrides.get("idle", 300)),
        stop_grace=1,
    )
    return WinRMHost(spec, credential, timeouts=timeouts)


@pytest.fixture(params=["basic", "ntlm"])
def host(
    request: pytest.FixtureRequest, inventory: Inventory, server: EmulatorServer
) -> Iterator[WinRMHost]:
    # Basic over HTTP needs the listener's AllowUnencrypted; NTLM runs
    # against a listener as Windows ships it, without: every message the
    # client sends must be sealed, or the host refuses it.
    server.allow_unencrypted = request.param == "basic"
    winrm = connect(inventory, server, request.param)
    yield winrm
    winrm.close()


def assert_only_cmdlets(server: EmulatorServer) -> None:
    for entry in server.log.entries:
        assert entry.is_script is False, entry
        assert entry.cmdlet.casefold() in ALLOWED, entry


# -- every operation --------------------------------------------------------------------


def test_queries_match_the_in_process_transport(
    host: WinRMHost, sim: WinRMHost, server: EmulatorServer
) -> None:
    assert host.list_vms() == sim.list_vms()
    assert host.get_vm(WEB01) == sim.get_vm(WEB01)
    assert host.volumes() == sim.volumes()
    assert host.list_checkpoints() == []
    assert_only_cmdlets(server)


def test_checkpoint_lifecycle(
    host: WinRMHost, sim: WinRMHost, clock: ManualClock, server: EmulatorServer
) -> None:
    first = host.create_checkpoint(WEB01, "before KB5044284")
    assert first.vm_id == WEB01 and first.name == "before KB5044284"
    # A production checkpoint (VSS works): the host calls it Standard, and it
    # holds no memory.
    assert first.snapshot_type is SnapshotType.Standard
    assert first.captured_state is VMState.Off
    clock.advance(timedelta(minutes=5))
    second = host.create_checkpoint(WEB01, "")  # the host names it
    assert second.parent_id == first.id and second.name.startswith("WEB01 - (")
    assert host.list_checkpoints(WEB01) == sim.list_checkpoints(WEB01)
    assert host.list_checkpoints() == sim.list_checkpoints()

    restored = host.restore_checkpoint(WEB01, first.id)
    assert restored.state is VMState.Off  # production checkpoint: the VM comes back off
    assert restored.parent_checkpoint_id == first.id
    started = host.start_vm(WEB01)
    assert started.state is VMState.Running

    host.remove_checkpoint(WEB01, first.id, include_children=True)
    assert host.list_checkpoints(WEB01) == []
    assert host.get_vm(WEB01).merging is True
    clock.advance(timedelta(minutes=10))
    assert host.get_vm(WEB01).merging is False
    assert host.stats.opens == 1  # one pool for all of it
    assert_only_cmdlets(server)


def test_settings_and_facts(host: WinRMHost, sim: WinRMHost) -> None:
    changed = host.set_checkpoint_settings(
        WEB01, checkpoint_type=CheckpointType.ProductionOnly, automatic_checkpoints=True
    )
    assert changed.checkpoint_type is CheckpointType.ProductionOnly
    assert changed.automatic_checkpoints is True
    assert host.set_checkpoint_settings(WEB01) == sim.get_vm(WEB01)

    dc = host.vm_facts(DC01)
    expected = sim.vm_facts(DC01)
    assert dc.kvp_product_type == 2 == expected.kvp_product_type
    assert dc.kvp_fqdn == expected.kvp_fqdn == "dc01.corp.example"
    assert dc.kvp_os_name == "Windows Server 2022 Datacenter"
    assert dc.vm == expected.vm and dc.volume == expected.volume
    assert dc.replication_enabled is False and dc.checkpoint_count == 0

    sql = host.vm_facts(SQL01)
    assert any(d.shared for d in sql.disks) and sql.volume is not None
    assert sql.volume.path == "E:\\"
    off = host.vm_facts(OFF01)
    assert off.kvp_product_type is None and off.kvp_fqdn is None  # unknown, not "not a DC"
    assert off.kvp_unavailable == ""  # the endpoint answered: the guest said nothing
    assert host.vm_facts(REP01).replication_enabled is True


# -- host errors keep their message ------------------------------------------------------


def test_powershell_errors_are_typed(host: WinRMHost, model: ModelHost) -> None:
    with pytest.raises(CheckpointsDisabled) as disabled:
        host.create_checkpoint(NOCP01, "nope")
    assert "Checkpoints have been disabled" in disabled.value.message
    assert disabled.value.error_id.endswith("CheckpointVM")
    assert disabled.value.host == "HV01"

    with pytest.raises(VMNotFound):
        host.get_vm("99999999-9999-4999-8999-999999999999")
    with pytest.raises(CheckpointNotFound):
        host.restore_checkpoint(WEB01, "99999999-9999-4999-8999-999999999999")

    other = model.checkpoint_vm(DC01, "someone else's")
    with pytest.raises(CheckpointNotFound, match="belongs to VM"):
        host.remove_checkpoint(WEB01, other.id)
    assert [s.id for s in model.get_snapshots()] == [other.id]

    mine = host.create_checkpoint(WEB01, "a")
    keep = host.create_checkpoint(WEB01, "b")
    host.remove_checkpoint(WEB01, mine.id)
    with pytest.raises(InvalidVMState):  # still merging
        host.restore_checkpoint(WEB01, keep.id)


# -- restore and remove act on the VM's own checkpoint, in one call ----------------------
# Checkpoint Ids are unique on a host, not per VM, and `Get-VMSnapshot -Id`
# takes no VM (Get-VMSnapshot's parameter sets): a restore or remove of the
# wrong pairing must act on nothing.


def _sent(server: EmulatorServer, cmdlet: str) -> int:
    return sum(e.cmdlet.casefold() == cmdlet.casefold() for e in server.log.entries)


def test_restore_and_remove_prove_and_act_in_one_call(
    host: WinRMHost, model: ModelHost, server: EmulatorServer
) -> None:
    first = host.create_checkpoint(WEB01, "a")
    second = host.create_checkpoint(WEB01, "b")
    calls = host.stats.calls
    restored = host.restore_checkpoint(WEB01, first.id)
    assert host.stats.calls == calls + 1  # no owner query of its own
    assert restored.parent_checkpoint_id == first.id
    assert model.get_vm(WEB01).parent_snapshot_id == first.id

    host.remove_checkpoint(WEB01, second.id)
    assert host.stats.calls == calls + 2
    assert [s.id for s in model.get_snapshots()] == [first.id]
    assert _sent(server, "Get-VMSnapshot") == 4  # two statements each, no -Id query
    assert_only_cmdlets(server)


def test_a_checkpoint_of_another_vm_is_neither_restored_nor_removed(
    host: WinRMHost, model: ModelHost, server: EmulatorServer
) -> None:
    theirs = model.checkpoint_vm(DC01, "the DC's own")
    mine = model.checkpoint_vm(WEB01, "mine")
    before = model.get_vm(DC01)

    with pytest.raises(CheckpointNotFound, match=f"belongs to VM {DC01}, not {WEB01}"):
        host.restore_checkpoint(WEB01, theirs.id)
    with pytest.raises(CheckpointNotFound, match="belongs to VM"):
        host.remove_checkpoint(WEB01, theirs.id, include_children=True)
    assert model.get_vm(DC01) == before
    assert {s.id for s in model.get_snapshots()} == {theirs.id, mine.id}
    assert model.get_vm(WEB01).parent_snapshot_id == mine.id  # WEB01 untouched too
    assert _sent(server, "Restore-VMSnapshot") == 1 and _sent(server, "Remove-VMSnapshot") == 1

    gone = "99999999-9999-4999-8999-999999999999"
    with pytest.raises(CheckpointNotFound) as missing:
        host.restore_checkpoint(WEB01, gone)
    assert missing.value.error_id.endswith("GetVMSnapshot")  # the owner query's own words


def test_an_endpoint_without_where_object_asks_the_owner_first(
    host: WinRMHost, model: ModelHost, server: EmulatorServer
) -> None:
    """A role capability from before Where-Object was listed: the pipeline is
    refused before anything acts, and the host falls back to the owner
    query and the act by Id, once per host, not on every call."""
    server.faults = Faults(hidden=frozenset({"Where-Object"}))
    first = host.create_checkpoint(WEB01, "a")
    theirs = model.checkpoint_vm(DC01, "the DC's own")

    calls = host.stats.calls
    assert host.restore_checkpoint(WEB01, first.id).parent_checkpoint_id == first.id
    assert host.stats.calls == calls + 3  # refused, owner, restore
    with pytest.raises(CheckpointNotFound, match="belongs to VM"):
        host.restore_checkpoint(WEB01, theirs.id)
    assert host.stats.calls == calls + 4  # the owner query alone refused it
    host.remove_checkpoint(WEB01, first.id)
    assert host.stats.calls == calls + 6
    assert {s.id for s in model.get_snapshots()} == {theirs.id}
    # Each act was sent once by Id; the one refused pipeline acted on nothing.
    assert model.get_vm(DC01).parent_snapshot_id == theirs.id


def test_a_hidden_acting_cmdlet_is_an_error_not_a_fallback(
    host: WinRMHost, model: ModelHost, server: EmulatorServer
) -> None:
    first = host.create_checkpoint(WEB01, "a")
    server.faults = Faults(hidden=frozenset({"Restore-VMSnapshot"}))
    with pytest.raises(CommandNotVisible) as refused:
        host.restore_checkpoint(WEB01, first.id)
    assert refused.value.command == "Restore-VMSnapshot"
    assert "is not recognized" in refused.value.message
    assert model.get_vm(WEB01).parent_snapshot_id == first.id  # as Checkpoint-VM left it
    assert _sent(server, "Get-VMSnapshot") == 2  # the one pipeline; not retried by Id


class FilterMatchesNothing:
    """A host on which Where-Object matches no checkpoint by Id (what the
    bot would meet if a host compared a Guid unlike -EQ's documented
    conversion): the modelled host runs every pipeline as sent, except
    that each Where-Object asks for an Id no checkpoint has."""

    def __init__(self, inner: InProcessSession) -> None:
        self.inner = inner
        self.stats = inner.stats
        self.is_open = True

    def run(self, pipeline: Pipeline) -> Outcome:
        nowhere = uuid.UUID("99999999-9999-4999-8999-999999999999")
        return self.inner.run(
            tuple(
                replace(cmd, params=(("Property", "Id"), ("Value", nowhere), ("EQ", None)))
                if cmd.name == "Where-Object"
                else cmd
                for cmd in pipeline
            )
        )

    def close(self, *, wait: bool = True) -> None:
        self.inner.close(wait=wait)


def test_a_filter_that_finds_nothing_falls_back_to_acting_by_id(
    model: ModelHost, inventory: Inventory
) -> None:
    session = FilterMatchesNothing(InProcessSession(model))
    client = WinRMHost(inventory.host("HV01"), HostCredential(), session=session)
    first = model.checkpoint_vm(WEB01, "a")
    restored = client.restore_checkpoint(WEB01, first.id)
    assert restored.parent_checkpoint_id == first.id
    assert session.stats.calls == 3  # filtered (acted on nothing), owner, by Id
    client.remove_checkpoint(WEB01, first.id)
    assert session.stats.calls == 5  # from then on: owner, by Id
    assert model.get_snapshots() == []


def test_facts_without_get_ciminstance_leave_only_the_guests_word_unknown(
    host: WinRMHost, server: EmulatorServer
) -> None:
    """A role without Get-CimInstance: the facts call falls back to one
    statement at a time, and the refused one leaves the KVP facts unknown
    (rules that need them fail closed); it does not make the VM missing."""
    server.faults = Faults(hidden=frozenset({"Get-CimInstance"}))
    dc = host.vm_facts(DC01)
    assert dc.vm.vm_id == DC01 and dc.kvp_product_type is None and dc.kvp_fqdn is None
    assert dc.volume is not None
    # Why: the endpoint's role, named so that whoever reads it fixes the
    # role, not the guest (whose integration services are fine).
    assert dc.kvp_unavailable == (
        "the endpoint's JEA role does not let the bot run Get-CimInstance "
        "(CommandNotFoundException): its role capability must list Get-CimInstance in "
        "VisibleCmdlets, as deploy/jea/CheckpointBot.psrc does"
    )
    assert "KVP" not in dc.kvp_unavailable and "integration" not in dc.kvp_unavailable
    # The rest of the estate's guests were never the problem.
    server.faults = Faults()
    assert host.vm_facts(DC01).kvp_unavailable == ""


# -- injection ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["WEB01; Remove-VM *", "*", "$(Get-VM)", "WEB'01", 'WEB"01', "WEB01\nRemove-VM"]
)
def test_hostile_names_never_leave_the_inventory(inventory: Inventory, name: str) -> None:
    with pytest.raises((InvalidName, UnknownVM)):
        inventory.vm(name)


@pytest.mark.parametrize(
    "bad_id", ["*", "WEB01; Remove-VM *", "$(Get-VM)", WEB01.upper(), f"{WEB01}'", f"{WEB01}\n"]
)
def test_non_guid_ids_are_rejected_before_sending(
    host: WinRMHost, server: EmulatorServer, bad_id: str
) -> None:
    before = len(server.log.entries)
    with pytest.raises(VMNotFound, match="not a VM id"):
        host.get_vm(bad_id)
    with pytest.raises(VMNotFound):
        host.create_checkpoint(bad_id, "x")
    with pytest.raises(CheckpointNotFound, match="not a checkpoint id"):
        host.restore_checkpoint(WEB01, bad_id)
    assert len(server.log.entries) == before


def test_hostile_checkpoint_name_arrives_as_a_parameter_value(
    host: WinRMHost, server: EmulatorServer
) -> None:
    hostile = 'pre-patch\'; Remove-VM * -Force; $(Get-VM) "x"'
    created = host.create_checkpoint(WEB01, hostile)
    assert created.name == hostile
    entries = [e for e in server.log.entries if e.cmdlet.casefold() == "checkpoint-vm"]
    assert entries[-1].parameters["SnapshotName"] == hostile
    assert_only_cmdlets(server)


# -- faults within the deadline ----------------------------------------------------------


def test_hung_cmdlet_is_stopped_at_the_deadline(
    inventory: Inventory, server: EmulatorServer, sim: WinRMHost
) -> None:
    host = connect(inventory, server, "ntlm", call=2.0)
    try:
        host.list_vms()
        server.faults = Faults(hang=frozenset({"Checkpoint-VM"}))
        started = time.monotonic()
        with pytest.raises(HostTimeout) as timed_out:
            host.create_checkpoint(WEB01, "never")
        assert time.monotonic() - started < 2.0 + 1.0 + 0.5
        # The limit and the setting that raises it (seen: "no result in time").
        assert "no result within 2s (hyperv.call_timeout)" in str(timed_out.value)
        assert host.stats.stops == 1
        server.faults = Faults()
        assert host.get_vm(WEB01) == sim.get_vm(WEB01)  # a fresh pool works
    finally:
        host.close()


def test_wrong_password_is_an_auth_error(inventory: Inventory, server: EmulatorServer) -> None:
    for auth in ("basic", "ntlm"):
        spec = inventory.host("HV01").model_copy(
            update={"port": server.port, "auth": auth, "allow_basic": True}
        )
        wrong = "not-the-password"
        host = WinRMHost(
            spec,
            Credentials({"HV_PASSWORD": wrong}).for_host(spec),
            timeouts=WinRMTimeouts(call=CALL_TIMEOUT, connect=2, operation=2),
        )
        started = time.monotonic()
        with pytest.raises(HostAuthError) as caught:
            host.list_vms()
        assert time.monotonic() - started < CALL_TIMEOUT
        assert wrong not in str(caught.value) and PASSWORD not in str(caught.value)
        host.close()


@pytest.mark.parametrize(
    ("faults", "error"),
    [
        (Faults(refuse=True), HostUnreachable),
        (Faults(drop=True), HostUnreachable),
        (Faults(unauthorized=True), HostAuthError),
    ],
)
def test_transport_faults(
    inventory: Inventory, server: EmulatorServer, faults: Faults, error: type[Exception]
) -> None:
    server.faults = faults
    host = connect(inventory, server, "ntlm")
    try:
        started = time.monotonic()
        with pytest.raises(error):
            host.list_vms()
        assert time.monotonic() - started < CALL_TIMEOUT + 1
    finally:
        host.close()


def test_slow_host_times_out(inventory: Inventory, server: EmulatorServer) -> None:
    server.faults = Faults(latency_ms=1500)
    host = connect(inventory, server, "basic", call=1.0)
    try:
        started = time.monotonic()
        with pytest.raises(HostTimeout):
            host.list_vms()
        assert time.monotonic() - started < 1.0 + 1.0 + 0.5
    finally:
        host.close()


def test_idle_pool_is_closed_and_reopened(inventory: Inventory, server: EmulatorServer) -> None:
    host = connect(inventory, server, "ntlm", idle=0.3)
    try:
        host.list_vms()
        assert host.stats.opens == 1
        deadline = time.monotonic() + 3
        while host.stats.idle_closes == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert host.stats.idle_closes == 1
        assert not host.is_open
        host.list_vms()
        assert host.stats.opens == 2
    finally:
        host.close()


def test_facts_come_in_one_invocation_and_match_asking_one_by_one(
    host: WinRMHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Discovery asks its six questions in one pipeline of statements
    (commands.vm_facts); the answer is what six invocations give, and a
    VM the host lacks still says so through the one-by-one path."""
    invocations: list[object] = []
    run = host._run

    def counted(pipeline: object, **kwargs: object) -> list[object]:
        invocations.append(pipeline)
        return run(pipeline, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(host, "_run", counted)
    for vm_id in (DC01, WEB01):
        invocations.clear()
        together = host.vm_facts(vm_id)
        assert len(invocations) == 1, invocations
        assert together == host._vm_facts_one_by_one(vm_id)
        assert len(invocations) == 1 + 6
    with pytest.raises(VMNotFound):
        host.vm_facts("99999999-9999-4999-8999-999999999999")
