"""The whole product told the truth about a host, over real WinRM.

A deployment on the WinRM backend whose hosts are the emulator serving an
independent host model (what the hosts really are; the inventory only says
what the operators believe). Each test is one of the host-truth rules:

- a production checkpoint is recorded as production, with no warning; a VSS
  fallback as standard, with one; ProductionOnly fails with the host's own
  text, leaves no checkpoint, and is never weakened to Production;
- a host that cannot be reached is never a decision: nothing is denied,
  nothing is recorded, the CLI exits 3, approvals wait, jobs retry;
- a checkpoint removed behind the bot's back ends its change as vanished,
  told once, by the sweep, the TTL chase and a merge alike;
- a rollback that leaves the VM off says so and offers Start;
- a create that hung adopts only the checkpoint its own job provably made.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlmodel import select

from bot.changes.record import get_change
from bot.cli.main import main
from bot.clock import ManualClock
from bot.config import load_settings
from bot.context import AppContext, build_context
from bot.devtools.emulator import EmulatedFleet, EmulatorLog, Faults
from bot.devtools.hostmodel import (
    GuestSpec,
    HostModel,
    HostSpec,
    InMemoryHostStateStore,
    VMSpec,
    VolumeSpec,
)
from bot.service import (
    Conflict,
    Unavailable,
    approve,
    list_checkpoints,
    merge,
    reject,
    request_checkpoint,
    rollback,
    show_change,
    start_vm,
)
from bot.service.ownership import checkpoint_name
from bot.service.reconcile import Reconciler
from bot.service.sweep import run_sweep
from bot.service.ttl_chase import TTLChaser
from bot.store.db import make_engine, session_scope
from bot.store.migrate import upgrade
from bot.store.models import ApprovalRequest, Change

USER, PASSWORD, PASSWORD_ENV = "hvadmin", "Passw0rd!", "HOST_TRUTH_PASSWORD"
T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
WEB01 = "aaaaaaaa-1111-4111-8111-111111111111"
STG01 = "aaaaaaaa-1111-4111-8111-222222222222"
SQL01 = "aaaaaaaa-1111-4111-8111-333333333333"
OFF01 = "aaaaaaaa-1111-4111-8111-444444444444"

MODEL = HostModel(
    hosts=[
        HostSpec(
            name="HV01",
            volumes=[VolumeSpec(path="D:", capacity_gb=2000, used_gb=700)],
            vms=[
                VMSpec(name="WEB01", vm_id=WEB01, guest=GuestSpec(product_type=3)),
                # Production, and the guest's VSS does not answer.
                VMSpec(name="STG01", vm_id=STG01, guest=GuestSpec(product_type=3, vss=False)),
                # An admin's ProductionOnly, and the guest's VSS does not answer.
                VMSpec(
                    name="SQL01",
                    vm_id=SQL01,
                    checkpoint_type="ProductionOnly",
                    guest=GuestSpec(product_type=3, vss=False),
                ),
                VMSpec(name="OFF01", vm_id=OFF01, state="Off", guest=GuestSpec(product_type=3)),
            ],
        )
    ]
)


def _inventory(port: int) -> dict[str, object]:
    vm = {"host": "HV01", "tags": {"env": "prod"}, "roles": ["app"]}
    return {
        "hosts": [
            {
                "name": "HV01",
                "address": "127.0.0.1",
                "port": port,
                "transport": "http",
                "auth": "ntlm",
                "credential": {"username": USER, "password_env": PASSWORD_ENV},
                "volumes": [{"path": "D:\\", "capacity_gb": 2000}],
            }
        ],
        "vms": [
            {**vm, "name": "WEB01", "vm_id": WEB01},
            {**vm, "name": "STG01", "vm_id": STG01, "tags": {"env": "staging"}},
            {**vm, "name": "SQL01", "vm_id": SQL01, "checkpoint_type": "ProductionOnly"},
            {**vm, "name": "OFF01", "vm_id": OFF01, "tags": {"env": "staging"}},
        ],
    }


@dataclass
class Estate:
    ctx: AppContext
    fleet: EmulatedFleet
    clock: ManualClock
    config: Path

    def down(self) -> None:
        self.fleet.server("HV01").faults = Faults(refuse=True)

    def up(self) -> None:
        self.fleet.server("HV01").faults = Faults()

    def run_jobs(self, change_id: int) -> None:
        """Run every queued job of the change in this thread, as a worker would."""
        for job in self.ctx.ledger.jobs_of_change(change_id):
            if job.state == "queued" and job.id is not None:
                self.ctx.runner.run(job.id)

    def run_jobs_while_time_passes(self, change_id: int) -> None:
        """As `run_jobs`, with the host's clock moving (a merge takes time)."""
        worker = threading.Thread(target=self.run_jobs, args=(change_id,))
        worker.start()
        while worker.is_alive():
            self.clock.advance(timedelta(seconds=10))
            worker.join(0.05)

    def cmdlets(self, name: str) -> list[dict[str, object]]:
        return [e.parameters for e in self.fleet.log.entries if e.cmdlet == name]


@pytest.fixture
def estate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Estate]:
    clock = ManualClock(T0)
    fleet = EmulatedFleet.start(
        InMemoryHostStateStore(),
        model=MODEL,
        users={USER: PASSWORD},
        auth=("ntlm",),
        log=EmulatorLog(),
        clock=clock,
    )
    try:
        (tmp_path / "inventory.yaml").write_text(
            yaml.safe_dump(_inventory(fleet.port_of("HV01"))), encoding="utf-8"
        )
        config = tmp_path / "bot.yaml"
        config.write_text(
            "inventory: inventory.yaml\n"
            "hyperv:\n  backend: winrm\n  call_timeout: 4s\n"
            "defaults:\n  start_after_restore: false\n",
            encoding="utf-8",
        )
        env = {PASSWORD_ENV: PASSWORD}
        monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
        settings = load_settings(config, env, tmp_path)
        engine = make_engine(settings.database_url)
        upgrade(engine)
        engine.dispose()
        ctx = build_context(settings, env=env, clock=clock, huey_kind="memory")
        try:
            yield Estate(ctx, fleet, clock, config)
        finally:
            ctx.close()
    finally:
        fleet.stop()


def _created(estate: Estate, vm: str, **kwargs: str) -> int:
    out = request_checkpoint(estate.ctx, vm, reason="KB5044284 patch", requester="alice", **kwargs)
    estate.run_jobs(out.change.id)
    return out.change.id


# -- what was taken ----------------------------------------------------------------------------


def test_a_production_checkpoint_is_recorded_as_production_with_no_warning(
    estate: Estate,
) -> None:
    change = show_change(estate.ctx, f"CHG-{_created(estate, 'WEB01')}")
    assert change.state == "active"
    assert (change.checkpoint_type, change.taken_type) == ("production", "production")
    assert change.holds_memory is False and "no memory" in (change.taken_evidence or "")
    assert not [e for e in change.events if e.kind == "warning"]
    data = change.to_dict()
    assert {"checkpoint_type", "taken_type", "taken_evidence", "holds_memory"} <= set(data)
    row = list_checkpoints(estate.ctx, vm="WEB01").to_dict()["checkpoints"][0]
    assert (row["asked"], row["taken"], row["snapshot_type"], row["captured_state"]) == (
        "production",
        "production",
        "Standard",
        "Off",
    )


def test_a_vss_fallback_is_recorded_as_standard_with_one_warning(estate: Estate) -> None:
    change = show_change(estate.ctx, f"CHG-{_created(estate, 'STG01')}")
    assert (change.checkpoint_type, change.taken_type) == ("production", "standard")
    assert change.holds_memory is True
    warnings = [e for e in change.events if e.kind == "warning"]
    assert len(warnings) == 1 and "fell back to a standard checkpoint" in warnings[0].message


def test_production_only_fails_cleanly_and_is_never_weakened(estate: Estate) -> None:
    change = show_change(
        estate.ctx, f"CHG-{_created(estate, 'SQL01', checkpoint_type='production')}"
    )
    assert change.state == "failed"
    assert "Production checkpoints cannot be created" in (change.last_error or "")
    assert list_checkpoints(estate.ctx, vm="SQL01").rows == ()
    # No Set-VM ever touched SQL01's ProductionOnly.
    assert not [p for p in estate.cmdlets("Set-VM") if p.get("CheckpointType") == "Production"]
    assert estate.ctx.host_for("HV01").get_vm(SQL01).checkpoint_type.name == "ProductionOnly"


def test_a_stricter_request_raises_the_setting_for_one_checkpoint_only(estate: Estate) -> None:
    change_id = _created(estate, "WEB01", checkpoint_type="production-only")
    assert show_change(estate.ctx, f"CHG-{change_id}").taken_type == "production"
    set_to = [p.get("CheckpointType") for p in estate.cmdlets("Set-VM")]
    assert set_to == ["ProductionOnly", "Production"]


# -- a host that cannot be reached --------------------------------------------------------------


def test_a_create_against_a_stopped_host_records_nothing(estate: Estate) -> None:
    estate.down()
    with pytest.raises(Unavailable, match="HV01 could not be reached"):
        request_checkpoint(estate.ctx, "WEB01", reason="patch", requester="alice")
    with session_scope(estate.ctx.engine) as s:
        assert s.exec(select(Change)).all() == []


def test_the_cli_says_which_host_could_not_be_reached_and_exits_3(
    estate: Estate, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(estate.config.parent)  # the CLI's work directory, as the fixture's
    estate.down()
    assert main(["--config", str(estate.config), "checkpoint", "list"]) == 3
    out = capsys.readouterr()
    assert "HV01 could not be reached" in out.out + out.err
    assert "No checkpoints." not in out.out
    assert main(["--config", str(estate.config), "checkpoint", "list", "--json"]) == 3
    listing = capsys.readouterr()
    assert '"unreachable"' in listing.out and "HV01" in listing.out
    code = main(["--config", str(estate.config), "checkpoint", "create", "WEB01", "-r", "x"])
    created = capsys.readouterr()
    assert code == 3 and "could not check WEB01" in created.err
    for text in (out.out, out.err, listing.out, listing.err, created.out, created.err):
        assert "Traceback" not in text
    with session_scope(estate.ctx.engine) as s:
        assert s.exec(select(Change)).all() == []


def test_an_approval_with_the_host_down_waits_instead_of_denying(estate: Estate) -> None:
    change_id = _created(estate, "WEB01")
    ref = f"CHG-{change_id}"
    waiting = rollback(estate.ctx, ref, requester="alice")
    assert waiting.waiting  # rolling back prod needs one approval
    estate.down()
    with pytest.raises(Unavailable, match="could not be reached"):
        approve(estate.ctx, ref, approver="bob")
    with session_scope(estate.ctx.engine) as s:
        request = s.get(ApprovalRequest, waiting.approval_id)
        assert request is not None and (request.state, request.approvals) == ("pending", [])
        assert get_change(s, change_id).state == "active"
    estate.up()
    done = approve(estate.ctx, ref, approver="bob")
    assert done.state == "approved" and done.job_id is not None


def test_a_job_whose_recheck_cannot_reach_the_host_retries_and_says_so_once(
    estate: Estate,
) -> None:
    out = request_checkpoint(estate.ctx, "WEB01", reason="patch", requester="alice")
    assert out.job_id is not None
    estate.down()
    for _ in range(3):
        job = estate.ctx.ledger.get(out.job_id)
        estate.clock.advance(timedelta(seconds=5))
        estate.ctx.runner.run(out.job_id)
        assert estate.ctx.ledger.get(out.job_id).state == "queued", job
    change = show_change(estate.ctx, out.change.ref)
    assert change.state == "approved"  # never denied for a network fault
    assert [e.kind for e in change.events].count("recheck_waiting") == 1
    estate.up()
    estate.clock.advance(timedelta(minutes=1))
    estate.ctx.runner.run(out.job_id)
    assert show_change(estate.ctx, out.change.ref).state == "active"


# -- checkpoints removed behind the bot's back -------------------------------------------------


def _remove_behind_back(estate: Estate, change_id: int, *, merged: bool = False) -> str:
    """`merged`: and let Hyper-V finish merging its disk (until then the VM
    reports Merging Disks, and a job's re-check waits for it to end)."""
    checkpoint_id = show_change(estate.ctx, f"CHG-{change_id}").checkpoint_id
    assert checkpoint_id is not None
    estate.fleet.host("HV01").remove_behind_back(checkpoint_id)
    if merged:
        estate.clock.advance(timedelta(minutes=5))
    return checkpoint_id


def test_the_sweep_ends_a_change_whose_checkpoint_vanished_and_says_so_once(
    estate: Estate,
) -> None:
    gone = _created(estate, "WEB01")
    kept = _created(estate, "STG01")
    _remove_behind_back(estate, gone)
    report = run_sweep(estate.ctx)
    assert report.vanished == (f"CHG-{gone:04d}",)
    assert show_change(estate.ctx, f"CHG-{kept}").state == "active"
    change = show_change(estate.ctx, f"CHG-{gone}")
    assert change.state == "vanished"
    assert run_sweep(estate.ctx).vanished == ()
    assert [e.kind for e in show_change(estate.ctx, f"CHG-{gone}").events].count("vanish") == 1
    with pytest.raises(Conflict, match="nothing left to keep & merge"):
        merge(estate.ctx, change.ref, requester="alice")


def test_no_reminder_is_sent_about_a_checkpoint_that_is_gone(estate: Estate) -> None:
    change_id = _created(estate, "WEB01")
    _remove_behind_back(estate, change_id)
    change = show_change(estate.ctx, f"CHG-{change_id}")
    assert change.expires_at is not None
    estate.clock.advance(change.expires_at - timedelta(minutes=30) - estate.clock())
    TTLChaser(estate.ctx).tick(estate.clock())
    kinds = [e.kind for e in show_change(estate.ctx, change.ref).events]
    assert "ttl_reminder" not in kinds and kinds[-1] == "vanish"


def test_a_merge_of_a_vanished_checkpoint_ends_the_change_instead_of_failing_forever(
    estate: Estate,
) -> None:
    change_id = _created(estate, "STG01")
    _remove_behind_back(estate, change_id, merged=True)
    merge(estate.ctx, f"CHG-{change_id}", requester="alice")
    estate.run_jobs(change_id)
    assert show_change(estate.ctx, f"CHG-{change_id}").state == "vanished"


def test_change_show_of_a_vanished_change_says_why(
    estate: Estate, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`vanished` alone does not say what happened: the summary quotes the
    step that ended it."""
    monkeypatch.chdir(estate.config.parent)
    change_id = _created(estate, "STG01")
    _remove_behind_back(estate, change_id, merged=True)
    rollback(estate.ctx, f"CHG-{change_id}", requester="alice")
    estate.run_jobs(change_id)
    assert main(["--config", str(estate.config), "change", "show", f"CHG-{change_id}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"CHG-{change_id:04d}: vanished — STG01 on HV01")
    why = next(line for line in lines if line.startswith("  why:"))
    assert "the host no longer has the checkpoint" in why
    assert "deleted outside the bot" in why


def test_a_host_that_cannot_be_asked_proves_nothing_vanished(estate: Estate) -> None:
    change_id = _created(estate, "WEB01")
    estate.down()
    report = run_sweep(estate.ctx)
    assert report.vanished == () and [p.host for p in report.problems] == ["HV01"]
    assert show_change(estate.ctx, f"CHG-{change_id}").state == "active"


# -- after a rollback ---------------------------------------------------------------------------


def test_a_rollback_that_leaves_the_vm_off_says_so_and_offers_start(estate: Estate) -> None:
    change_id = _created(estate, "STG01", checkpoint_type="standard")
    ref = f"CHG-{change_id}"
    rollback(estate.ctx, ref, requester="alice")  # staging: no approval
    estate.run_jobs(change_id)
    change = show_change(estate.ctx, ref)
    assert change.state == "rolled_back"
    # A standard checkpoint of a running VM restores its saved state.
    assert change.vm_state_after == "Saved" and change.needs_start
    assert "left Saved" in change.events[-1].message
    # The VM's name stands for its one rolled-back change, as the change's ref.
    started = start_vm(estate.ctx, "stg01", requester="alice")
    assert started.change.ref == show_change(estate.ctx, ref).ref
    estate.ctx.runner.run(started.job_id)
    after = show_change(estate.ctx, ref)
    assert after.vm_state_after == "Running" and not after.needs_start
    with pytest.raises(Conflict, match="nothing to start"):
        start_vm(estate.ctx, ref, requester="alice")


def test_a_start_whose_answer_never_came_is_unknown_not_failed(estate: Estate) -> None:
    """Seen: a Start-VM whose connection dropped after it was sent was
    recorded "Start-VM failed", though Hyper-V may have started the VM (a
    cmdlet's work is not undone when its answer is lost: Cmdlet.StopProcessing,
    https://learn.microsoft.com/dotnet/api/system.management.automation.cmdlet.stopprocessing).
    The emulated host starts the VM at once and answers after the call's
    4 s deadline (`late`)."""
    change_id = _created(estate, "STG01", checkpoint_type="standard")
    ref = f"CHG-{change_id}"
    rollback(estate.ctx, ref, requester="alice")
    estate.run_jobs(change_id)
    assert show_change(estate.ctx, ref).needs_start
    estate.fleet.server("HV01").faults = Faults(late={"start-vm": 6000})
    started = start_vm(estate.ctx, ref, requester="alice")
    estate.ctx.runner.run(started.job_id)
    estate.up()
    change = show_change(estate.ctx, ref)
    last = change.events[-1]
    assert last.kind == "start_unknown", last
    assert last.message.startswith("Start-VM was sent, then the host stopped answering ("), (
        last.message
    )
    assert last.message.endswith(
        "): whether STG01 started is not known; look at it on HV01, and start it again "
        "if it is still off"
    ), last.message
    assert "failed" not in last.message
    # It did start on the host; the card still offers Start (nothing recorded it running).
    assert estate.ctx.host_for("HV01").get_vm(change.vm_id).state.name == "Running"
    assert change.needs_start and change.start_unknown


def test_a_rollbacks_own_start_whose_answer_never_came_is_not_known(estate: Estate) -> None:
    """Seen: with `start_after_restore`, a Start-VM answered after the call's
    deadline read "restored, but starting the VM failed" and "left Off",
    and the terminal said "is Off after the rollback", for a VM the host
    had started."""
    from templates import Renderer
    from templates.blocks import SlackRenderer

    config = estate.config.with_name("start.yaml")
    config.write_text(
        estate.config.read_text(encoding="utf-8").replace(
            "start_after_restore: false", "start_after_restore: true"
        ),
        encoding="utf-8",
    )
    env = {PASSWORD_ENV: PASSWORD}
    settings = load_settings(config, env, config.parent)
    ctx = build_context(settings, env=env, clock=estate.clock, huey_kind="memory")

    def run_jobs(change_id: int) -> None:
        for job in ctx.ledger.jobs_of_change(change_id):
            if job.state == "queued" and job.id is not None:
                ctx.runner.run(job.id)

    try:
        # A production checkpoint of a running VM restores it Off.
        out = request_checkpoint(ctx, "WEB01", reason="patch", requester="alice")
        run_jobs(out.change.id)
        assert show_change(ctx, out.change.ref).taken_type == "production"
        rollback(ctx, out.change.ref, requester="alice")
        estate.fleet.server("HV01").faults = Faults(late={"start-vm": 6000})
        approve(ctx, out.change.ref, approver="bob")  # prod: a second person
        run_jobs(out.change.id)
        estate.up()
        change = show_change(ctx, out.change.ref)
        text = Renderer().render("cli/change_summary.txt.j2", c=change)
        root = SlackRenderer(Renderer()).payload(
            "change_root", c=change, pending=[], start_after_restore=True
        )
    finally:
        ctx.close()
    assert "started is not known" in str(root) and " is Off* after" not in str(root), root
    assert change.state == "rolled_back" and change.start_unknown
    kinds = [e.kind for e in change.events]
    assert "start_unknown" in kinds
    assert "starting the VM failed" not in " ".join(e.message for e in change.events)
    assert change.events[-1].message.endswith(
        "WEB01 was being started when the host stopped answering: look at it on HV01, "
        "and start it if it is still off"
    ), change.events[-1].message
    assert "whether WEB01 started is not known" in text, text
    assert estate.ctx.host_for("HV01").get_vm(WEB01).state.name == "Running"


# -- a create that hung ---------------------------------------------------------------------------


def _hung_create(estate: Estate) -> tuple[int, str]:
    """A create whose Checkpoint-VM never answered; the change is interrupted."""
    estate.fleet.server("HV01").faults = Faults(hang=frozenset({"Checkpoint-VM"}))
    out = request_checkpoint(estate.ctx, "WEB01", reason="patch", requester="alice")
    assert out.job_id is not None
    estate.ctx.runner.run(out.job_id)
    estate.up()
    change = show_change(estate.ctx, out.change.ref)
    assert change.state == "interrupted"
    assert "Get-VM | Checkpoint-VM on HV01" in (change.last_error or "")
    token = estate.ctx.ledger.get(out.job_id).payload["token"]
    return out.change.id, str(token)


def test_a_hung_create_adopts_the_checkpoint_its_job_made(estate: Estate) -> None:
    change_id, token = _hung_create(estate)
    host = estate.ctx.host_for("HV01")
    # Hyper-V finished the checkpoint after the client gave up on the call.
    real = host.create_checkpoint(WEB01, checkpoint_name(f"CHG-{change_id:04d}", token, "patch"))
    Reconciler(estate.ctx).reconcile(change_id)
    change = show_change(estate.ctx, f"CHG-{change_id}")
    assert (change.state, change.checkpoint_id) == ("active", real.id)


def test_a_hand_made_look_alike_and_another_deployments_checkpoint_are_not_adopted(
    estate: Estate,
) -> None:
    host = estate.ctx.host_for("HV01")
    # Named like the change, taken half an hour before the request.
    early = host.create_checkpoint(WEB01, "CHG-0001 before patching")
    estate.clock.advance(timedelta(minutes=30))
    change_id, _token = _hung_create(estate)
    assert change_id == 1
    # Another bot on the same hosts, with its own CHG-0001.
    theirs = host.create_checkpoint(WEB01, checkpoint_name("CHG-0001", "0badc0de", "theirs"))
    Reconciler(estate.ctx).reconcile(change_id)
    change = show_change(estate.ctx, "CHG-0001")
    assert change.state == "interrupted" and change.checkpoint_id is None
    question = change.events[-1]
    assert question.kind == "needs_human"
    assert early.id in question.message and "carries no token" in question.message
    assert theirs.id in question.message and "another deployment" in question.message
    assert {c.id for c in host.list_checkpoints(WEB01)} == {early.id, theirs.id}


def test_a_hand_made_copy_named_after_one_of_ours_is_an_orphan_this_bot_may_adopt(
    estate: Estate,
) -> None:
    """Seen: "before CHG-0001 (cb-5101f72d) patch A", made by hand on another
    VM, was "not this bot's: carries token cb-5101f72d, which none of this
    bot's jobs drew: another checkpoint-bot deployment's" (CHG-0001's job
    drew it), and adopting it was refused. It is an orphan of this estate,
    never CHG-0001's checkpoint."""
    from bot.service import adopt_checkpoint

    change_id = _created(estate, "WEB01")
    token = next(
        j.payload["token"]
        for j in estate.ctx.ledger.jobs_of_change(change_id)
        if j.kind == "create"
    )
    host = estate.ctx.host_for("HV01")
    copy = host.create_checkpoint(STG01, f"before CHG-{change_id:04d} (cb-{token}) patch A")
    estate.clock.advance(timedelta(days=2))  # past sweep.orphan_after
    report = run_sweep(estate.ctx)
    [item] = [i for i in report.items if i.checkpoint_id == copy.id]
    assert item.finding.value == "orphan", item
    assert item.provenance == (
        f"carries CHG-{change_id:04d}'s token cb-{token} under a name its create job does "
        "not give (made or renamed by hand)"
    )
    adopted = adopt_checkpoint(estate.ctx, "HV01", STG01, copy.id, "alice", source="cli")
    assert adopted.change.checkpoint_id == copy.id
    # CHG-0001 still owns its own checkpoint, not the copy.
    assert show_change(estate.ctx, f"CHG-{change_id}").checkpoint_id != copy.id


def test_the_sweeps_summary_counts_another_deployments_checkpoints(estate: Estate) -> None:
    """Seen: "3 checkpoints seen; 0 stale, 1 orphan, 0 at odds with the
    record, 0 out of sight." above a table with a `foreign` row too."""
    from templates import Renderer

    host = estate.ctx.host_for("HV01")
    host.create_checkpoint(WEB01, checkpoint_name("CHG-0009", "0badc0de", "theirs"))
    estate.clock.advance(timedelta(days=2))
    report = run_sweep(estate.ctx)
    text = Renderer().render("cli/sweep.txt.j2", report=report, posted=False)
    assert (
        "1 checkpoint seen; 0 stale, 0 orphans, 0 at odds with the record, 1 of another "
        "deployment (left alone), 0 out of sight."
    ) in text.splitlines()[0], text


def test_the_gauges_count_unowned_checkpoints_and_an_adopted_ones_real_age(
    estate: Estate,
) -> None:
    """Seen: an 8 GiB checkpoint made by hand was in `sweep run` but nowhere
    in /metrics (no alert could fire on it), and once adopted the oldest
    checkpoint's age read 5 s: the change's age, not the checkpoint's."""
    from prometheus_client.parser import text_string_to_metric_families

    from bot.observe.gauges import DatabaseGauges
    from bot.observe.metrics import Metrics
    from bot.service import adopt_checkpoint

    def gauges() -> dict[str, float]:
        metrics = Metrics()
        metrics.add_collector(
            DatabaseGauges(estate.ctx.engine, estate.ctx.inventory, estate.ctx.clock)
        )
        body, _ = metrics.exposition()
        return {
            f"{sample.name}{sorted(sample.labels.values())}": sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples
        }

    host = estate.ctx.host_for("HV01")
    by_hand = host.create_checkpoint(STG01, "before the upgrade")
    estate.clock.advance(timedelta(days=9))  # past sweep.orphan_after
    run_sweep(estate.ctx)
    size = next(c.size_bytes for c in host.list_checkpoints(STG01) if c.id == by_hand.id)
    assert size > 0
    group = next(iter({k for k in gauges() if k.startswith("checkpoint_bot_unowned_checkpoints")}))
    found = gauges()
    assert found[group] == 1
    assert found[group.replace("checkpoints", "checkpoint_bytes")] == size
    adopt_checkpoint(estate.ctx, "HV01", STG01, by_hand.id, "alice", source="cli")
    found = gauges()
    assert found[group] == 0  # owned now
    oldest = next(v for k, v in found.items() if k.startswith("checkpoint_bot_oldest_"))
    assert oldest >= 9 * 86400, oldest


def test_a_listing_names_another_deployments_checkpoint_as_the_sweep_does(
    estate: Estate,
) -> None:
    """Seen: `sweep run` said "foreign … not this bot's" and `checkpoint
    list` called the same checkpoint "orphan: no change owns it"."""
    from templates import Renderer

    host = estate.ctx.host_for("HV01")
    theirs = host.create_checkpoint(WEB01, checkpoint_name("CHG-0009", "0badc0de", "theirs"))
    by_hand = host.create_checkpoint(WEB01, "before the upgrade")
    listing = list_checkpoints(estate.ctx, vm="WEB01")
    tokens = {r.id: r.foreign_token for r in listing.rows}
    assert tokens == {theirs.id: "0badc0de", by_hand.id: None}
    text = Renderer().render("cli/checkpoints.txt.j2", listing=listing, scope="WEB01")
    line = next(line for line in text.splitlines() if theirs.id in line)
    assert line.endswith("not this bot's: another deployment's (token cb-0badc0de)"), line
    line = next(line for line in text.splitlines() if by_hand.id in line)
    assert line.endswith("orphan: no change owns it"), line


def test_a_listing_names_the_change_whose_cut_off_create_made_a_checkpoint(
    estate: Estate,
) -> None:
    """Seen (a patching admin): right after a wave whose Checkpoint-VM
    answered late, `checkpoint list` called its checkpoint "orphan: no
    change owns it" (an admin reads that as safe to delete), while `sweep
    run` said it was too young to report, and one reconcile later it was
    CHG-0005's. The listing now says whose create made it."""
    from templates import Renderer

    change_id, token = _hung_create(estate)
    ref = f"CHG-{change_id:04d}"
    host = estate.ctx.host_for("HV01")
    # Hyper-V finished the checkpoint after the client gave up on the call.
    real = host.create_checkpoint(WEB01, checkpoint_name(ref, token, "patch"))

    def said() -> str:
        listing = list_checkpoints(estate.ctx, vm="WEB01")
        text = Renderer().render("cli/checkpoints.txt.j2", listing=listing, scope="WEB01")
        return next(line for line in text.splitlines() if real.id in line)

    [row] = [r for r in list_checkpoints(estate.ctx, vm="WEB01").rows if r.id == real.id]
    assert (row.change_ref, row.made_by, row.made_by_state) == (None, ref, "interrupted")
    assert said().endswith(
        f"{ref}'s, not recorded yet: its create was cut off; the reconciler records it"
    )
    from templates.blocks import SlackRenderer
    from tests.test_slack_flow import block_kit_problems

    slack = SlackRenderer(Renderer()).payload(
        "checkpoint_list", listing=list_checkpoints(estate.ctx, vm="WEB01"), scope="WEB01"
    )
    assert block_kit_problems("checkpoint_list", slack["blocks"], 50) == []
    assert (
        f":hourglass_flowing_sand: {ref}'s, not recorded yet: its create was cut off; "
        "the reconciler records it"
    ) in json.dumps(slack["blocks"], ensure_ascii=False)
    assert "orphan" not in slack["text"]
    Reconciler(estate.ctx).reconcile(change_id)
    assert said().endswith(f"{ref} (active)")


def test_a_checkpoint_a_create_made_after_its_change_failed_is_an_orphan_named_so(
    estate: Estate,
) -> None:
    from templates import Renderer

    change_id, token = _hung_create(estate)
    ref = f"CHG-{change_id:04d}"
    estate.clock.advance(timedelta(hours=1))  # past the job's host call
    Reconciler(estate.ctx).reconcile(change_id)
    assert show_change(estate.ctx, ref).state == "failed"
    late = estate.ctx.host_for("HV01").create_checkpoint(
        WEB01, checkpoint_name(ref, token, "patch")
    )
    listing = list_checkpoints(estate.ctx, vm="WEB01")
    text = Renderer().render("cli/checkpoints.txt.j2", listing=listing, scope="WEB01")
    line = next(line for line in text.splitlines() if late.id in line)
    assert line.endswith(f"orphan: {ref}'s create made it after its change was failed"), line


def test_two_checkpoints_with_the_jobs_token_are_a_question_not_a_guess(estate: Estate) -> None:
    change_id, token = _hung_create(estate)
    host = estate.ctx.host_for("HV01")
    name = checkpoint_name(f"CHG-{change_id:04d}", token, "patch")
    first, second = host.create_checkpoint(WEB01, name), host.create_checkpoint(WEB01, name)
    Reconciler(estate.ctx).reconcile(change_id)
    change = show_change(estate.ctx, f"CHG-{change_id}")
    assert change.state == "interrupted"
    assert "several checkpoints carry this job's token" in change.events[-1].message
    assert first.id in change.events[-1].message and second.id in change.events[-1].message


# -- requests that a later step made pointless ---------------------------------------------------


def test_a_merge_waits_for_the_rollback_asked_before_it_to_be_settled(
    estate: Estate,
) -> None:
    # Until 2026-12-05 the merge went ahead and closed the waiting rollback
    # unseen ("superseded"); now the merge is refused until it is settled
    # (tests/test_merge_holds.py), and no restore ever runs after the merge.
    change_id = _created(estate, "WEB01")
    ref = f"CHG-{change_id}"
    waiting = rollback(estate.ctx, ref, requester="alice")
    assert waiting.waiting
    with pytest.raises(Conflict, match="a rollback asked by @alice waits for approval"):
        merge(estate.ctx, ref, requester="carol")
    reject(estate.ctx, ref, approver="bob", reason="patched fine after all")
    with session_scope(estate.ctx.engine) as s:
        request = s.get(ApprovalRequest, waiting.approval_id)
        assert request is not None and request.state == "rejected"
    merge(estate.ctx, ref, requester="carol")  # merging needs no approval
    # The approver's click finds nothing left to approve: no restore runs.
    with pytest.raises(Conflict, match="nothing waiting for approval"):
        approve(estate.ctx, ref, approver="bob")
    estate.run_jobs_while_time_passes(change_id)
    assert show_change(estate.ctx, ref).state == "merged"
    assert estate.cmdlets("Restore-VMSnapshot") == []
    with pytest.raises(Conflict, match="was kept & merged"):
        rollback(estate.ctx, ref, requester="alice")
