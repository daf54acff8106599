"""The whole product on the WinRM backend: a configured deployment whose
inventory points at emulated hosts, driven through the service layer with
the real pypsrp client underneath (the path `hyperv: {backend: winrm}` takes
in production)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from bot.clock import ScaledClock
from bot.config import load_settings
from bot.context import AppContext, build_context
from bot.devtools.emulator import EmulatedFleet, EmulatorLog, Faults
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV, emulated_inventory
from bot.devtools.hostmodel import InMemoryHostStateStore, demo_hosts_path, load_host_model
from bot.devtools.hostmodel.enums import CheckpointType as ModelCheckpointType
from bot.hyperv import CheckpointType, VMInfo
from bot.hyperv.winrm.host import WinRMHost
from bot.inventory import VM, demo_inventory_path, load_inventory
from bot.service import approve, list_checkpoints, request_checkpoint, rollback, show_change
from bot.service.locate import Answer, Locator, NotOnCluster
from bot.store.db import make_engine
from bot.store.migrate import upgrade
from tests.helpers import T0, run_inline

PASSWORD = "Passw0rd!"


@pytest.fixture
def emulated(tmp_path: Path) -> Iterator[tuple[AppContext, EmulatedFleet]]:
    with emulated_context(tmp_path, inline=True) as both:
        yield both


@contextmanager
def emulated_context(tmp_path: Path, *, inline: bool) -> Iterator[tuple[AppContext, EmulatedFleet]]:
    inventory = load_inventory(demo_inventory_path())
    clock = ScaledClock(600, start=T0)
    fleet = EmulatedFleet.start(
        InMemoryHostStateStore(),
        model=load_host_model(demo_hosts_path()),
        log=EmulatorLog(),
        clock=clock,
    )
    try:
        ports = {name: server.port for name, server in fleet.servers.items()}
        (tmp_path / "inventory.yaml").write_text(
            emulated_inventory(inventory, ports, "hvadmin", EMULATOR_PASSWORD_ENV), encoding="utf-8"
        )
        (tmp_path / "bot.yaml").write_text(
            "inventory: inventory.yaml\nhyperv:\n  backend: winrm\n  call_timeout: 30s\n",
            encoding="utf-8",
        )
        env = {EMULATOR_PASSWORD_ENV: PASSWORD}
        settings = load_settings(tmp_path / "bot.yaml", env, tmp_path)
        engine = make_engine(settings.database_url)
        upgrade(engine)
        engine.dispose()
        # `inline`: a job runs when the call that recorded it returns;
        # otherwise it waits queued until the test runs it.
        ctx = build_context(
            settings,
            env=env,
            clock=clock,
            huey_kind="memory",
            after_delivery=run_inline if inline else None,
        )
        try:
            yield ctx, fleet
        finally:
            ctx.close()
    finally:
        fleet.stop()


def test_checkpoint_and_rollback_over_winrm(emulated: tuple[AppContext, EmulatedFleet]) -> None:
    ctx, fleet = emulated
    out = request_checkpoint(ctx, "WEB01", reason="KB5044284", requester="alice")
    assert out.job_id is not None
    assert ctx.ledger.get(out.job_id).state == "succeeded"
    change = show_change(ctx, out.change.ref)
    assert change.state == "active"
    rows = list_checkpoints(ctx, vm="WEB01").rows
    # The host calls it Standard; what it holds made it a production one.
    assert [r.id for r in rows] == [change.checkpoint_id] and rows[0].taken == "production"
    assert any("production checkpoint" in e.message for e in change.events)

    rollback(ctx, change.ref, requester="alice")
    done = approve(ctx, change.ref, approver="bob")
    assert done.job_id is not None
    assert ctx.ledger.get(done.job_id).state == "succeeded"
    assert show_change(ctx, change.ref).state == "rolled_back"

    cmdlets = {entry.cmdlet for entry in fleet.log.entries}
    assert {"Checkpoint-VM", "Restore-VMSnapshot", "Get-CimInstance"} <= cmdlets
    assert not any(entry.is_script for entry in fleet.log.entries)


def test_refusals_never_reach_the_host(emulated: tuple[AppContext, EmulatedFleet]) -> None:
    ctx, fleet = emulated
    out = request_checkpoint(ctx, "CORP-DC01", reason="patch", requester="alice")
    assert out.refused and "USN rollback" in " ".join(out.decision.reasons)
    assert "Checkpoint-VM" not in {entry.cmdlet for entry in fleet.log.entries}


def test_a_fact_changed_between_request_and_job_refuses_the_job(tmp_path: Path) -> None:
    """The job re-asks the host right before it runs (over WinRM, the facts
    in one invocation): checkpoints disabled on the VM after the request was
    allowed make the job refuse, and nothing is taken."""
    with emulated_context(tmp_path, inline=False) as (ctx, fleet):
        out = request_checkpoint(ctx, "WEB01", reason="KB5044284", requester="alice")
        assert out.change.state == "approved" and out.job_id is not None
        # Between the request and the job, someone disables checkpoints on the host.
        ctx.host_for("HV01").set_checkpoint_settings(
            out.change.vm_id, checkpoint_type=CheckpointType.Disabled
        )
        # Only now does the job run, as a consumer would run it.
        run_inline(ctx.runner, out.job_id)
        job = ctx.ledger.get(out.job_id)
        assert job.state == "succeeded" and job.result == {"denied": True}
        change = show_change(ctx, out.change.ref)
        assert change.state == "denied"
        assert change.events[-1].message.startswith("re-checked before running")
        assert "Checkpoint-VM" not in {entry.cmdlet for entry in fleet.log.entries}
        assert list_checkpoints(ctx, vm="WEB01").rows == ()


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The VMs the locator probes for (`Get-VM -Id` on a node), in order."""
    probed: list[str] = []
    ask = Locator._ask

    def counted(self: Locator, names: Sequence[str], vm: VM) -> list[Answer]:
        probed.append(vm.name)
        return ask(self, names, vm)

    monkeypatch.setattr(Locator, "_ask", counted)
    return probed


def test_a_standalone_vm_is_asked_once_per_decision_and_a_missing_one_refused_as_before(
    tmp_path: Path, probes: list[str]
) -> None:
    """A VM on a standalone host is not probed before its facts (the facts
    call names it by VMId); a clustered one still is. A standalone VM the
    host no longer has is refused with the message the probe gave, before
    anything is recorded."""
    # Jobs wait queued: STG-APP01's runs here; WEB01's is never run, so only
    # its decision's probe is counted.
    with emulated_context(tmp_path, inline=False) as (ctx, fleet):
        assert ctx.inventory.cluster_of("HV03") is None
        assert ctx.inventory.cluster_of("HV01") is not None
        out = request_checkpoint(ctx, "STG-APP01", reason="KB5044284", requester="alice")
        assert out.job_id is not None
        run_inline(ctx.runner, out.job_id)
        assert ctx.ledger.get(out.job_id).state == "succeeded"
        assert show_change(ctx, out.change.ref).state == "active"
        # Neither the decision nor the job's re-check probed the standalone host.
        assert probes == []
        request_checkpoint(ctx, "WEB01", reason="KB5044284", requester="alice")
        assert probes == ["WEB01"]

        gone = ctx.inventory.vm("STG-WEB01")
        fleet.host("HV03").remove_vm(gone.vm_id)
        with pytest.raises(NotOnCluster, match="is not on HV03, where the inventory puts it"):
            request_checkpoint(ctx, "STG-WEB01", reason="KB5044284", requester="alice")


def test_listing_a_standalone_vm_asks_its_host_once_and_concludes_as_before(
    tmp_path: Path, probes: list[str]
) -> None:
    """`checkpoint list --vm` of a VM on a standalone host runs the listing
    alone (its `Get-VM -Id` says whether the VM is there), where it first
    probed with `Get-VM`; a clustered VM is still located first. A VM the
    host lacks is still NotOnCluster in the host's words, an unreachable
    host still a problem of the listing, a VM found still a sighting."""
    with emulated_context(tmp_path, inline=True) as (ctx, fleet):
        out = request_checkpoint(ctx, "STG-APP01", reason="KB5044284", requester="alice")
        assert show_change(ctx, out.change.ref).state == "active"
        fleet.log.clear()
        listing = list_checkpoints(ctx, vm="STG-APP01")
        assert [row.vm_name for row in listing.rows] == ["STG-APP01"]
        assert listing.rows[0].change_ref == out.change.ref and listing.problems == ()
        assert probes == []
        asked = [e.cmdlet for e in fleet.log.for_host("HV03")]
        assert asked.count("Get-VM") == 1 and asked.count("Get-VMSnapshot") == 1
        seen = ctx.decider.locator.last_seen(ctx.inventory.vm("STG-APP01"))
        assert seen is not None and seen.host == "HV03"

        list_checkpoints(ctx, vm="WEB01")  # on a cluster: located first
        assert probes == ["WEB01"]

        gone = ctx.inventory.vm("STG-WEB01")
        fleet.host("HV03").remove_vm(gone.vm_id)
        with pytest.raises(
            NotOnCluster, match="is not on HV03, where the inventory puts it: "
        ) as lost:
            list_checkpoints(ctx, vm="STG-WEB01")
        # The next step (a patching admin was given none): where the hosts have it.
        assert str(lost.value).endswith(
            "; 'checkpoint-bot inventory diff' (an admin's) shows where the hosts have it now"
        )

        fleet.server("HV03").faults = Faults(refuse=True)
        unreachable = list_checkpoints(ctx, vm="STG-APP01")
        assert unreachable.rows == () and [p.host for p in unreachable.problems] == ["HV03"]
        assert probes == ["WEB01"]


def test_the_job_takes_the_checkpoint_on_what_its_recheck_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The re-check right before the job reads the VM's CheckpointType and
    state in its one facts call, and the checkpoint is taken on that
    reading, without a `Get-VM` of its own. An admin who set the VM to
    Standard between the request and the job (`Set-VM -CheckpointType`,
    https://learn.microsoft.com/powershell/module/hyper-v/set-vm) still
    gets the production checkpoint asked for, and the VM's own setting
    back afterwards."""
    asked: list[str] = []
    get_vm = WinRMHost.get_vm

    def counted(self: WinRMHost, vm_id: str) -> VMInfo:
        asked.append(vm_id)
        return get_vm(self, vm_id)

    monkeypatch.setattr(WinRMHost, "get_vm", counted)
    with emulated_context(tmp_path, inline=False) as (ctx, fleet):
        out = request_checkpoint(ctx, "STG-APP01", reason="KB5044284", requester="alice")
        assert out.change.state == "approved" and out.job_id is not None
        assert out.change.checkpoint_type == "production"
        model = fleet.host("HV03")
        vm_id = out.change.vm_id
        # At the console, after the request was allowed.
        model.set_vm(vm_id, checkpoint_type=ModelCheckpointType.Standard)
        fleet.log.clear()
        run_inline(ctx.runner, out.job_id)

        change = show_change(ctx, out.change.ref)
        assert change.state == "active"
        assert asked == []
        assert any("raised from Standard to Production" in e.message for e in change.events)
        settings = [
            e.parameters.get("CheckpointType") for e in fleet.log.entries if e.cmdlet == "Set-VM"
        ]
        assert [str(s) for s in settings] == ["Production", "Standard"]
        assert model.get_vm(vm_id).checkpoint_type is ModelCheckpointType.Standard
        # STG-APP01's guest VSS is broken (deploy/examples/demo-hosts.yaml):
        # under Production, Hyper-V falls back to a standard checkpoint
        # (https://learn.microsoft.com/windows-server/virtualization/hyper-v/manage/choose-between-standard-or-production-checkpoints-in-hyper-v);
        # under the Standard the admin set it would simply be one.
        assert any("fell back to a standard checkpoint" in e.message for e in change.events)
        assert [r.id for r in list_checkpoints(ctx, vm="STG-APP01").rows] == [change.checkpoint_id]


def test_a_rollback_job_on_a_standalone_host_asks_it_three_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rollback job re-checks with one facts call, restores, and starts
    the VM the restore left Off (a production checkpoint holds no memory:
    https://learn.microsoft.com/windows-server/virtualization/hyper-v/manage/choose-between-standard-or-production-checkpoints-in-hyper-v)
    because that facts call read it Running: no probe of a VM that cannot
    have moved and no `Get-VM` of its own."""
    calls: list[str] = []
    get_vm, ask = WinRMHost.get_vm, Locator._ask

    def counted_get_vm(self: WinRMHost, vm_id: str) -> VMInfo:
        calls.append("Get-VM")
        return get_vm(self, vm_id)

    def counted_ask(self: Locator, names: Sequence[str], vm: VM) -> list[Answer]:
        calls.append("probe")
        return ask(self, names, vm)

    monkeypatch.setattr(WinRMHost, "get_vm", counted_get_vm)
    monkeypatch.setattr(Locator, "_ask", counted_ask)
    with emulated_context(tmp_path, inline=False) as (ctx, fleet):
        out = request_checkpoint(ctx, "STG-WEB01", reason="KB5044284", requester="alice")
        assert out.job_id is not None
        run_inline(ctx.runner, out.job_id)
        assert show_change(ctx, out.change.ref).state == "active"
        back = rollback(ctx, out.change.ref, requester="alice")
        assert back.job_id is not None  # staging: no approval asked
        fleet.log.clear()
        run_inline(ctx.runner, back.job_id)

        change = show_change(ctx, out.change.ref)
        assert change.state == "rolled_back"
        assert change.events[-1].message.endswith("STG-WEB01 started again")
        assert calls == []
        invocations = [e.cmdlet for e in fleet.log.entries if e.cmdlet != "Get-VM"]
        assert "Restore-VMSnapshot" in invocations and "Start-VM" in invocations
        assert fleet.host("HV03").get_vm(out.change.vm_id).state.name == "Running"
