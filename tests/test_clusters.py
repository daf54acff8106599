"""Failover clusters over real WinRM (issue #15, items 1, 2 and 5).

A deployment on the WinRM backend whose hosts are the emulator serving an
independent host model: HV01 and HV02 are the nodes of prod-cluster and
share a Cluster Shared Volume. What the documentation says a cluster does,
the model does (bot/devtools/hostmodel/migration.py): `Get-VM` on a node
lists only the VMs it runs, a live migration moves a VM with its checkpoints
to another node, and a CSV is one letterless volume every node reports with
the same free space. The bot must follow:

- a VM moved between request and approval is checkpointed on its new node,
  and its thread says so;
- a VM moved while its create was on the way is neither lost nor doubled,
  also when the create's answer was lost and reconciliation has to find it;
- a VM no node has is "not found on prod-cluster (asked HV01, HV02)", on the
  service, the CLI and in Slack;
- `checkpoint list --vm` finds the checkpoint on the node the VM is on now;
- the drift rule reports the move, `inventory show` says where it was seen;
- CSV headroom is the cluster's: what one node's VM writes, the other sees.
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
from bot.devtools.hostmodel.migration import MigrationRefused
from bot.devtools.hostmodel.modelfile import ClusterSpec
from bot.hyperv import HyperVError, VMInfo, VMNotFound
from bot.inventory import Inventory, InventoryError, parse_inventory
from bot.service import (
    NotFound,
    approve,
    list_checkpoints,
    merge,
    request_checkpoint,
    rollback,
    show_change,
)
from bot.service.locate import (
    HostUnavailable,
    NotOnCluster,
    OwnerAmbiguous,
    owner_of,
    search_order,
)
from bot.service.reconcile import Reconciler
from bot.service.sweep import run_sweep
from bot.store.db import make_engine
from bot.store.migrate import upgrade
from bot.store.sightings import next_sighting
from tests.emulator_support import pool, run
from tests.slack_support import RunningBot, block_problem, running_bot
from tests.test_slack_flow import (
    REF,
    command,
    quiet_click,
    replies,
    root_button,
    shown,
    thread_ts_of,
)

USER, PASSWORD, PASSWORD_ENV = "hvadmin", "Passw0rd!", "CLUSTER_PASSWORD"
T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
CSV = "C:\\ClusterStorage\\Volume1"
WEB01 = "cccccccc-1111-4111-8111-111111111111"
APP01 = "cccccccc-1111-4111-8111-222222222222"
LOCAL01 = "cccccccc-1111-4111-8111-333333333333"
GONE01 = "cccccccc-1111-4111-8111-444444444444"
GB = 1024**3

MODEL = HostModel(
    clusters=[
        ClusterSpec(
            name="prod-cluster",
            nodes=["HV01", "HV02"],
            shared_volumes=[VolumeSpec(path=CSV, capacity_gb=1000, used_gb=700)],
        )
    ],
    hosts=[
        HostSpec(
            name="HV01",
            volumes=[VolumeSpec(path="D:", capacity_gb=2000, used_gb=700)],
            vms=[
                # Writes 100 GB an hour to its checkpoint's differencing disk.
                VMSpec(
                    name="WEB01",
                    vm_id=WEB01,
                    volume=CSV,
                    write_mb_per_hour=100 * 1024,
                    guest=GuestSpec(product_type=3),
                ),
                VMSpec(name="LOCAL01", vm_id=LOCAL01, guest=GuestSpec(product_type=3)),
            ],
        ),
        HostSpec(
            name="HV02",
            volumes=[VolumeSpec(path="D:", capacity_gb=2000, used_gb=100)],
            vms=[VMSpec(name="APP01", vm_id=APP01, volume=CSV, guest=GuestSpec(product_type=3))],
        ),
    ],
)
# Creating a checkpoint of a prod VM needs one approval here.
CREATE_NEEDS_APPROVAL = """
rules:
  approvals:
    overrides:
      - scope: {tags: {env: prod}}
        params: {count: 1, actions: [create]}
"""


def _inventory(ports: dict[str, int]) -> dict[str, object]:
    def host(name: str) -> dict[str, object]:
        return {
            "name": name,
            "address": "127.0.0.1",
            "port": ports[name],
            "transport": "http",
            "auth": "ntlm",
            "credential": {"username": USER, "password_env": PASSWORD_ENV},
            "volumes": [{"path": "D:\\", "capacity_gb": 2000}],
        }

    vm = {"tags": {"env": "prod"}, "roles": ["app"]}
    return {
        "hosts": [host("HV01"), host("HV02")],
        "clusters": [
            {
                "name": "prod-cluster",
                "nodes": ["HV01", "HV02"],
                "shared_volumes": [{"path": CSV, "capacity_gb": 1000}],
            }
        ],
        "vms": [
            {**vm, "name": "WEB01", "vm_id": WEB01, "host": "HV01", "volume": CSV},
            {**vm, "name": "APP01", "vm_id": APP01, "host": "HV02", "volume": CSV},
            {**vm, "name": "LOCAL01", "vm_id": LOCAL01, "host": "HV01", "tags": {"env": "lab"}},
            # In the inventory, on no node of the cluster.
            {**vm, "name": "GONE01", "vm_id": GONE01, "host": "HV01", "volume": CSV},
        ],
    }


@dataclass
class Estate:
    ctx: AppContext
    fleet: EmulatedFleet
    clock: ManualClock
    config: Path

    def run_jobs(self, change_id: int) -> None:
        for job in self.ctx.ledger.jobs_of_change(change_id):
            if job.state == "queued" and job.id is not None:
                self.ctx.runner.run(job.id)

    def run_jobs_while_time_passes(self, change_id: int) -> None:
        """As `run_jobs`, with the hosts' clock moving (a merge takes time)."""
        worker = threading.Thread(target=self.run_jobs, args=(change_id,))
        worker.start()
        while worker.is_alive():
            self.clock.advance(timedelta(seconds=10))
            worker.join(0.05)

    def migrate(self, vm_id: str, source: str, destination: str) -> None:
        """An administrator live-migrates the VM (Move-ClusterVirtualMachineRole)."""
        self.fleet.host(source).live_migrate(vm_id, destination)

    def checkpoints_on(self, host: str, vm_id: str) -> list[str]:
        return [s.id for s in self.fleet.host(host).get_snapshots() if s.vm_id == vm_id]

    def served(self, cmdlet: str) -> list[str]:
        """The nodes that ran `cmdlet`, in order."""
        return [e.host for e in self.fleet.log.entries if e.cmdlet == cmdlet]

    def cli(self, *args: str) -> int:
        return main(["--config", str(self.config), *args])


def _estate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: str = "") -> Iterator[Estate]:
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
        ports = {name: fleet.port_of(name) for name in ("HV01", "HV02")}
        (tmp_path / "inventory.yaml").write_text(
            yaml.safe_dump(_inventory(ports)), encoding="utf-8"
        )
        config = tmp_path / "bot.yaml"
        text = "inventory: inventory.yaml\nhyperv:\n  backend: winrm\n  call_timeout: 4s\n"
        if policy:
            (tmp_path / "policy.yaml").write_text(policy, encoding="utf-8")
            text += "policy: policy.yaml\n"
        config.write_text(text, encoding="utf-8")
        env = {PASSWORD_ENV: PASSWORD}
        monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
        monkeypatch.chdir(tmp_path)
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


@pytest.fixture
def estate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Estate]:
    yield from _estate(tmp_path, monkeypatch)


@pytest.fixture
def approving(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Estate]:
    yield from _estate(tmp_path, monkeypatch, CREATE_NEEDS_APPROVAL)


# -- the pure rules ------------------------------------------------------------------------


def test_the_last_sighting_is_asked_first_then_the_inventory_then_the_rest() -> None:
    nodes = ["HV01", "HV02", "HV03"]
    assert search_order(nodes, "HV01", None) == ["HV01", "HV02", "HV03"]
    assert search_order(nodes, "HV01", "hv03") == ["HV03", "HV01", "HV02"]
    # A sighting on a node no longer in the cluster is ignored.
    assert search_order(nodes, "HV02", "HV09") == ["HV02", "HV01", "HV03"]


def test_the_owner_is_the_one_node_that_has_it_and_silence_is_never_absence() -> None:
    inventory = Inventory.model_validate(_inventory({"HV01": 1, "HV02": 2}))
    vm = inventory.vm("WEB01")
    info = VMInfo(WEB01, "WEB01", "HV02", state=2, checkpoint_type=3)  # type: ignore[arg-type]
    missing = VMNotFound("Hyper-V was unable to find a virtual machine", host="HV01")
    down = HyperVError("Connecting to remote server HV02 failed", host="HV02")
    assert owner_of(vm, "prod-cluster", [("HV01", missing), ("HV02", info)]) == "HV02"
    with pytest.raises(NotOnCluster, match=r"not found on prod-cluster \(asked HV01, HV02\)"):
        owner_of(vm, "prod-cluster", [("HV01", missing), ("HV02", missing)])
    with pytest.raises(HostUnavailable, match="HV02 could not be reached"):
        owner_of(vm, "prod-cluster", [("HV01", missing), ("HV02", down)])
    # Two nodes with one VMId (a Replica copy registered in the cluster): never guess.
    with pytest.raises(OwnerAmbiguous, match="HV01 and HV02 both report VMId"):
        owner_of(vm, "prod-cluster", [("HV01", info), ("HV02", info)])


def test_a_sighting_remembers_the_move_and_never_goes_back_in_time() -> None:
    first = next_sighting(None, WEB01, "HV01", T0)
    same = next_sighting(first, WEB01, "hv01", T0 + timedelta(minutes=1))
    assert (same.host, same.since, same.seen_at, same.moved) == (
        "HV01",
        T0,
        T0 + timedelta(minutes=1),
        False,
    )
    moved = next_sighting(same, WEB01, "HV02", T0 + timedelta(minutes=5))
    assert (moved.host, moved.previous_host, moved.previous_seen_at, moved.since) == (
        "HV02",
        "HV01",
        T0 + timedelta(minutes=1),
        T0 + timedelta(minutes=5),
    )
    # A slower process recording an older answer changes nothing.
    assert next_sighting(moved, WEB01, "HV01", T0 + timedelta(minutes=2)) == moved


def test_the_inventory_refuses_a_cluster_that_does_not_fit_with_its_lines() -> None:
    text = yaml.safe_dump(
        {
            **_inventory({"HV01": 5985, "HV02": 5986}),
            "clusters": [
                {"name": "prod-cluster", "nodes": ["HV01", "HV09"]},
                {"name": "dr-cluster", "nodes": ["HV01"]},
            ],
        },
        sort_keys=False,
    )
    with pytest.raises(InventoryError) as caught:
        parse_inventory(text, "inventory.yaml")
    said = str(caught.value)
    assert "clusters[0].nodes[1]: unknown host 'HV09' (expected one of: HV01, HV02)" in said
    assert "clusters[1].nodes[0]: host HV01 is already a node of cluster prod-cluster" in said
    # This prod-cluster lists no shared volume, so WEB01's CSV is nobody's.
    assert "vms[0].volume: host HV01 has no volume 'C:\\ClusterStorage\\Volume1\\'" in said
    assert all(line.startswith("inventory.yaml:") for line in said.splitlines())


# -- following a VM --------------------------------------------------------------------------


def test_a_vm_moved_between_request_and_approval_is_checkpointed_on_its_new_node(
    approving: Estate,
) -> None:
    estate = approving
    asked = request_checkpoint(estate.ctx, "WEB01", reason="KB5044284", requester="alice")
    assert asked.change.state == "awaiting_approval"
    assert show_change(estate.ctx, asked.change.ref).host == "HV01"

    estate.clock.advance(timedelta(minutes=5))
    estate.migrate(WEB01, "HV01", "HV02")
    estate.clock.advance(timedelta(minutes=5))

    done = approve(estate.ctx, asked.change.ref, approver="bob")
    assert done.job_id is not None
    estate.run_jobs(asked.change.id)

    change = show_change(estate.ctx, asked.change.ref)
    assert (change.state, change.host) == ("active", "HV02"), [e.message for e in change.events]
    moved = [e for e in change.events if e.kind == "moved"]
    assert len(moved) == 1
    assert moved[0].message.startswith("WEB01 is now on HV02; it moved at or before ")
    assert "last seen on HV01 at 2026-12-04 09:00:00 UTC" in moved[0].message
    assert moved[0].details["from"] == "HV01" and moved[0].details["to"] == "HV02"
    # The checkpoint is on the node the VM is on, and only there.
    assert estate.checkpoints_on("HV02", WEB01) == [change.checkpoint_id]
    assert estate.checkpoints_on("HV01", WEB01) == []
    assert estate.served("Checkpoint-VM") == ["HV02"]


def test_change_approve_says_the_vm_moved_and_the_job_followed_it(
    approving: Estate, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`checkpoint create` and `rollback` print the move their job followed;
    `change approve`, which waits for the job the approval starts, printed
    only "create of WEB01 on HV01 is running…" for a VM on HV02 by then."""
    estate = approving
    asked = request_checkpoint(estate.ctx, "WEB01", reason="KB5044284", requester="alice")
    estate.clock.advance(timedelta(minutes=5))
    estate.migrate(WEB01, "HV01", "HV02")
    monkeypatch.setenv("CHECKPOINT_BOT_USER", "bob")

    assert estate.cli("change", "approve", asked.change.ref) == 0
    err = capsys.readouterr().err
    assert f"{asked.change.ref}: WEB01 is now on HV02" in err, err
    assert show_change(estate.ctx, asked.change.ref).host == "HV02"


def test_change_approve_of_a_rollback_prints_the_move_its_job_followed(
    estate: Estate, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The approval does not look for the VM: its job finds it moved, and
    the command says so once the job has ended (seen: "rollback of WEB01
    on HV01 is running…" and nothing more, for a VM on HV02)."""
    kept = request_checkpoint(estate.ctx, "WEB01", reason="patch", requester="alice")
    estate.run_jobs(kept.change.id)
    assert rollback(estate.ctx, kept.change.ref, requester="alice").waiting
    estate.migrate(WEB01, "HV01", "HV02")
    monkeypatch.setenv("CHECKPOINT_BOT_USER", "bob")

    assert estate.cli("change", "approve", kept.change.ref) == 0
    err = capsys.readouterr().err
    assert f"{kept.change.ref}: WEB01 is now on HV02" in err, err
    assert estate.served("Restore-VMSnapshot") == ["HV02"]


def test_a_clustered_vms_job_finds_it_once_and_asks_its_facts_there(estate: Estate) -> None:
    """The job follows the VM to its node (one probe), and the re-check
    right after asks that node for its facts: it does not locate the VM a
    second time (seen: two `Get-VM -Id` probes of HV01 moments apart). The
    bot's own count of its host calls (the metrics) says which it made."""
    from tests.test_observe import scrape

    asked = request_checkpoint(estate.ctx, "WEB01", reason="KB5044284", requester="alice")

    def calls() -> dict[str, float]:
        return {
            dict(labels)["cmdlet"]: value
            for (name, labels), value in scrape(estate.ctx.metrics).items()
            if name == "checkpoint_bot_host_calls_total" and dict(labels)["host"] == "HV01"
        }

    before = calls()
    estate.run_jobs(asked.change.id)
    made = {cmdlet: n - before.get(cmdlet, 0) for cmdlet, n in calls().items()}
    assert {c: n for c, n in made.items() if n} == {
        "Get-VM": 1,  # following the VM to its node
        "Get-VM+facts": 1,  # the re-check, asked there
        "Checkpoint-VM": 1,
    }
    assert show_change(estate.ctx, asked.change.ref).state == "active"


def test_a_vm_moved_during_its_create_is_neither_lost_nor_doubled(estate: Estate) -> None:
    """Checkpoint-VM is slow on HV01 (the guest's VSS takes its time); the VM
    is live-migrated to HV02 in between. HV01 then has no such VM, so nothing
    was made there; the job follows the VM and takes the one checkpoint on HV02."""
    asked = request_checkpoint(estate.ctx, "WEB01", reason="KB5044284", requester="alice")
    assert asked.job_id is not None
    estate.fleet.server("HV01").faults = Faults(slow={"Checkpoint-VM": 1500})
    worker = threading.Thread(target=estate.run_jobs, args=(asked.change.id,))
    worker.start()
    deadline = datetime.now(UTC) + timedelta(seconds=20)
    while "HV01" not in estate.served("Checkpoint-VM") and datetime.now(UTC) < deadline:
        threading.Event().wait(0.02)
    assert estate.served("Checkpoint-VM") == ["HV01"]  # on its way, and waiting
    estate.migrate(WEB01, "HV01", "HV02")
    worker.join(30)
    assert not worker.is_alive()

    change = show_change(estate.ctx, asked.change.ref)
    assert (change.state, change.host) == ("active", "HV02"), [e.message for e in change.events]
    assert estate.checkpoints_on("HV02", WEB01) == [change.checkpoint_id]
    assert estate.checkpoints_on("HV01", WEB01) == []
    assert [e.kind for e in change.events].count("moved") == 1
    assert estate.served("Checkpoint-VM") == ["HV01", "HV02"]
    # The per-VM lock is keyed by VMId: nothing holds WEB01 any more.
    again = request_checkpoint(estate.ctx, "WEB01", reason="second", requester="alice")
    estate.run_jobs(again.change.id)
    assert show_change(estate.ctx, again.change.ref).state == "active"
    assert len(estate.checkpoints_on("HV02", WEB01)) == 2


def test_a_rollback_and_a_merge_follow_the_vm_to_its_new_node(estate: Estate) -> None:
    kept = request_checkpoint(estate.ctx, "WEB01", reason="keep", requester="alice")
    estate.run_jobs(kept.change.id)
    back = request_checkpoint(estate.ctx, "APP01", reason="back", requester="alice")
    estate.run_jobs(back.change.id)
    estate.migrate(WEB01, "HV01", "HV02")
    estate.migrate(APP01, "HV02", "HV01")

    waiting = rollback(estate.ctx, back.change.ref, requester="alice")
    assert waiting.waiting  # rolling back prod needs one approval
    approve(estate.ctx, back.change.ref, approver="bob")
    estate.run_jobs(back.change.id)
    merge(estate.ctx, kept.change.ref, requester="alice")
    estate.run_jobs_while_time_passes(kept.change.id)  # the host merges in the background

    rolled, merged = (show_change(estate.ctx, c.change.ref) for c in (back, kept))
    assert (rolled.state, rolled.host) == ("rolled_back", "HV01")
    assert (merged.state, merged.host) == ("merged", "HV02")
    assert estate.served("Restore-VMSnapshot") == ["HV01"]
    assert estate.served("Remove-VMSnapshot") == ["HV02"]
    for change in (rolled, merged):
        assert [e.kind for e in change.events].count("moved") == 1


def test_the_sweep_never_takes_a_moved_checkpoint_for_a_vanished_one(estate: Estate) -> None:
    """The checkpoint left HV01 with its VM: HV02 lists it, so the sweep
    settles nothing. Deleted for real on HV02, it is a vanish candidate
    (HV01 answered without it); the check asks the node that has the VM now,
    follows it there, and only then ends the change as vanished."""
    asked = request_checkpoint(estate.ctx, "WEB01", reason="KB5044284", requester="alice")
    estate.run_jobs(asked.change.id)
    estate.migrate(WEB01, "HV01", "HV02")
    assert run_sweep(estate.ctx).vanished == ()
    change = show_change(estate.ctx, asked.change.ref)
    assert change.state == "active" and change.checkpoint_id is not None
    assert [r.host for r in list_checkpoints(estate.ctx).rows] == ["HV02"]

    estate.fleet.host("HV02").remove_behind_back(change.checkpoint_id)
    assert run_sweep(estate.ctx).vanished == (asked.change.ref,)
    change = show_change(estate.ctx, asked.change.ref)
    assert (change.state, change.host) == ("vanished", "HV02")
    assert [e.kind for e in change.events].count("moved") == 1
    assert "is no longer on HV02" in change.events[-1].message


def test_a_vm_on_no_node_is_reported_as_such(
    estate: Estate, capsys: pytest.CaptureFixture[str]
) -> None:
    wanted = r"GONE01 \(VMId [0-9a-f-]+\) not found on prod-cluster \(asked HV01, HV02\)"
    with pytest.raises(NotFound, match=wanted):
        request_checkpoint(estate.ctx, "GONE01", reason="patch", requester="alice")
    assert estate.cli("checkpoint", "create", "GONE01", "-r", "patch") == 1
    created = capsys.readouterr()
    assert "not found on prod-cluster (asked HV01, HV02)" in created.err
    assert estate.cli("checkpoint", "list", "--vm", "GONE01") == 1
    listed = capsys.readouterr()
    assert "not found on prod-cluster (asked HV01, HV02)" in listed.err
    for text in (created.out, created.err, listed.out, listed.err):
        assert "Traceback" not in text and "host not asked" not in text
    # policy explain (not strict) says the same of every host fact.
    assert estate.cli("policy", "explain", "GONE01") in (0, 1)
    explained = capsys.readouterr().out
    assert "not found on prod-cluster (asked HV01, HV02)" in explained
    assert "host not asked" not in explained


def test_checkpoint_list_finds_the_checkpoint_on_the_node_the_vm_is_on_now(
    estate: Estate, capsys: pytest.CaptureFixture[str]
) -> None:
    asked = request_checkpoint(estate.ctx, "WEB01", reason="KB5044284", requester="alice")
    estate.run_jobs(asked.change.id)
    taken = show_change(estate.ctx, asked.change.ref).checkpoint_id
    estate.migrate(WEB01, "HV01", "HV02")
    # The inventory and the last sighting both say HV01; the checkpoint moved along.
    listing = list_checkpoints(estate.ctx, vm="WEB01")
    assert [(r.host, r.id, r.change_ref) for r in listing.rows] == [
        ("HV02", taken, asked.change.ref)
    ]
    assert estate.cli("checkpoint", "list", "--vm", "WEB01", "--json") == 0
    rows = json.loads(capsys.readouterr().out)["checkpoints"]
    assert [(r["host"], r["id"]) for r in rows] == [("HV02", taken)]
    assert estate.cli("checkpoint", "list", "--vm", "WEB01") == 0
    text = capsys.readouterr().out
    assert "HV02" in text and "No checkpoints" not in text


def test_a_move_is_drift_of_the_inventory_and_inventory_show_says_where_it_was_seen(
    estate: Estate, capsys: pytest.CaptureFixture[str]
) -> None:
    assert estate.cli("inventory", "show") == 0
    assert "WEB01" in capsys.readouterr().out
    estate.migrate(WEB01, "HV01", "HV02")
    estate.clock.advance(timedelta(minutes=3))
    asked = request_checkpoint(estate.ctx, "WEB01", reason="KB5044284", requester="alice")
    drift = asked.decision.outcome("inventory_drift")
    assert drift is not None and drift.fired
    assert "WEB01 runs on HV02, the inventory says HV01" in drift.message
    assert show_change(estate.ctx, asked.change.ref).host == "HV02"

    assert estate.cli("inventory", "show") == 0
    shown_text = capsys.readouterr().out
    web = next(line for line in shown_text.splitlines() if line.strip().startswith("WEB01"))
    assert "last seen on HV02 at 2026-12-04 09:03 UTC (moved: the inventory says HV01)" in web
    gone = next(line for line in shown_text.splitlines() if line.strip().startswith("GONE01"))
    assert "not seen yet" in gone
    assert "cluster prod-cluster  nodes HV01, HV02" in shown_text
    assert estate.cli("inventory", "show", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    by_name = {vm["name"]: vm for vm in data["vms"]}
    assert by_name["WEB01"]["last_seen"]["host"] == "HV02"
    assert by_name["GONE01"]["last_seen"] is None
    assert data["clusters"][0]["nodes"] == ["HV01", "HV02"]


def test_inventory_show_narrows_to_one_vm_or_one_host(
    estate: Estate, capsys: pytest.CaptureFixture[str]
) -> None:
    estate.migrate(WEB01, "HV01", "HV02")
    request_checkpoint(estate.ctx, "WEB01", reason="KB5044284", requester="alice")
    capsys.readouterr()

    assert estate.cli("inventory", "show", "web01") == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    vm_lines = [line for line in lines if line.startswith("  ")]
    # Its host's line, its own line (where it was last seen), and its cluster.
    assert len(vm_lines) == 1 and vm_lines[0].strip().startswith("WEB01")
    assert "(moved: the inventory says HV01)" in vm_lines[0]
    assert any(line.startswith("HV01  ") for line in lines)
    assert not any(line.startswith("HV02  ") for line in lines)
    assert lines[0].startswith("cluster prod-cluster")

    assert estate.cli("inventory", "show", "WEB01", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert [vm["name"] for vm in data["vms"]] == ["WEB01"]
    assert [h["name"] for h in data["hosts"]] == ["HV01"]
    assert data["vms"][0]["last_seen"]["host"] == "HV02"

    assert estate.cli("inventory", "show", "hv01", "--json") == 0
    on_host = json.loads(capsys.readouterr().out)
    assert {vm["host"] for vm in on_host["vms"]} == {"HV01"}
    everything = estate.ctx.inventory
    assert len(on_host["vms"]) == len(everything.vms_on_host("HV01"))

    assert estate.cli("inventory", "show", "WEB1") == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == (
        "checkpoint-bot: error: no VM, host, cluster or group named 'WEB1' in the inventory; "
        "did you mean WEB01?"
    )


def test_a_vm_on_a_nodes_own_disk_cannot_be_live_migrated(estate: Estate) -> None:
    with pytest.raises(MigrationRefused, match="not a Cluster Shared Volume"):
        estate.migrate(LOCAL01, "HV01", "HV02")
    assert estate.ctx.host_for("HV01").get_vm(LOCAL01).name == "LOCAL01"


# -- Cluster Shared Volumes ----------------------------------------------------------------


def test_a_csv_is_one_letterless_volume_with_the_same_free_space_from_every_node(
    estate: Estate,
) -> None:
    asked = request_checkpoint(estate.ctx, "WEB01", reason="KB5044284", requester="alice")
    estate.run_jobs(asked.change.id)
    estate.clock.advance(timedelta(hours=1))  # WEB01 (on HV01) writes 100 GB

    seen = {
        node: next(v for v in estate.ctx.host_for(node).volumes() if "ClusterStorage" in v.path)
        for node in ("HV01", "HV02")
    }
    assert seen["HV01"].path == seen["HV02"].path == "C:\\ClusterStorage\\Volume1\\"
    assert seen["HV01"].capacity_bytes == seen["HV02"].capacity_bytes == 1000 * GB
    assert seen["HV01"].free_bytes == seen["HV02"].free_bytes
    assert 199 * GB < seen["HV02"].free_bytes < 200 * GB  # 300 GB less 100 GB written
    # What Get-Volume sent for it, as pypsrp reads it: no drive letter, CSVFS,
    # the mount path among the AccessPaths, one volume GUID from both nodes.
    raw = {}
    for node in ("HV01", "HV02"):
        with pool(estate.fleet.port_of(node), auth="ntlm") as opened:
            ps = run(opened, lambda p: p.add_cmdlet("Get-Volume"))
        raw[node] = next(
            o.adapted_properties for o in ps.output if o.adapted_properties["FileSystem"] == "CSVFS"
        )
    for props in raw.values():
        assert props["DriveLetter"] is None
        assert "C:\\ClusterStorage\\Volume1\\" in list(props["AccessPaths"])
    assert raw["HV01"]["Path"] == raw["HV02"]["Path"]


GUID_PATH = "\\\\?\\"  # how a volume GUID path starts


def _get_volume_free(port: int) -> dict[str, int]:
    """`Get-Volume` over WinRM, as pypsrp reads it: each volume's
    SizeRemaining by its mount path (the access path that is not its
    volume GUID path)."""
    with pool(port, auth="ntlm") as opened:
        ps = run(opened, lambda p: p.add_cmdlet("Get-Volume"))
    free: dict[str, int] = {}
    for o in ps.output:
        for path in o.adapted_properties["AccessPaths"]:
            if not str(path).startswith(GUID_PATH):
                free[str(path)] = int(o.adapted_properties["SizeRemaining"])
    return free


def test_files_written_to_a_csv_through_one_node_take_its_space_on_every_node() -> None:
    """A CSV is one volume "all nodes in a failover cluster can simultaneously
    read from and write to"
    (https://learn.microsoft.com/windows-server/failover-clustering/failover-cluster-csvs):
    files an administrator writes to it through one node take space every
    node's Get-Volume reports. A node's own disk is its own. Seen: 150 GB
    written through HV01 left HV02 reporting the CSV 150 GB emptier."""
    fleet = EmulatedFleet.start(
        InMemoryHostStateStore(),
        model=MODEL,
        users={USER: PASSWORD},
        auth=("ntlm",),
        clock=ManualClock(T0),
    )
    csv, local = CSV + "\\", "D:\\"
    try:
        before = {node: _get_volume_free(fleet.port_of(node)) for node in ("HV01", "HV02")}
        assert before["HV01"][csv] == before["HV02"][csv] == 300 * GB
        fleet.host("HV01").write_other_files(csv, 150 * GB)
        fleet.host("HV02").write_other_files(csv, 50 * GB)
        fleet.host("HV01").write_other_files(local, 10 * GB)
        after = {node: _get_volume_free(fleet.port_of(node)) for node in ("HV01", "HV02")}
    finally:
        fleet.stop()
    assert after["HV01"][csv] == after["HV02"][csv] == 100 * GB
    assert after["HV01"][local] == before["HV01"][local] - 10 * GB
    assert after["HV02"][local] == before["HV02"][local]


def test_csv_headroom_is_counted_once_for_the_cluster(estate: Estate) -> None:
    """300 GB of the CSV's 1,000 are free. WEB01's checkpoint (HV01) writes
    100 GB; then a checkpoint of APP01 (HV02, same CSV) expecting 70 GB of
    growth would leave 13%: refused, because HV02 sees what HV01 wrote."""
    first = request_checkpoint(estate.ctx, "APP01", reason="before", requester="alice")
    headroom = first.decision.outcome("storage_headroom")
    assert headroom is not None and not headroom.fired
    assert "300 GB free of 1,000 GB" in headroom.message
    estate.run_jobs(first.change.id)

    web = request_checkpoint(estate.ctx, "WEB01", reason="KB5044284", requester="alice")
    estate.run_jobs(web.change.id)
    estate.clock.advance(timedelta(hours=1))

    second = request_checkpoint(estate.ctx, "APP01", reason="after", requester="alice")
    refused = second.decision.outcome("storage_headroom")
    assert refused is not None and refused.fired
    assert second.change.state == "denied"
    assert "200 GB free of 1,000 GB" in refused.message and "leaves 13.0%" in refused.message


# -- Slack -----------------------------------------------------------------------------------


def _thread_texts(bot: RunningBot, ref: str) -> list[str]:
    ts = thread_ts_of(bot, ref)
    assert ts is not None
    return [shown(c.body) for c in replies(bot.api.calls, ts)]


def test_slack_the_thread_says_where_the_vm_moved_and_the_checkpoint_is_taken_there(
    tmp_path: Path,
) -> None:
    with running_bot(tmp_path, policy_text=CREATE_NEEDS_APPROVAL, emulated=True) as bot:
        assert bot.fleet is not None
        asked = command(bot, "create WEB02 --reason KB5044284 patch")
        found = REF.search(asked["text"])
        assert found is not None
        ref = found.group(0)
        approve_value = root_button(bot, ref, "checkpoint:approve")
        # WEB02 is on the demo's CSV: an admin drains HV02 for patching.
        bot.fleet.host("HV02").live_migrate("2a7c9d4f-e613-4b8a-9d52-6b0e3f8a1c57", "HV01")
        quiet_click(bot, "checkpoint:approve", approve_value, user="U0BOB")
        bot.api.wait_for(
            lambda _cs: (
                any("is now on HV01" in t for t in _thread_texts(bot, ref))
                and any("checkpoint" in t and "taken" in t for t in _thread_texts(bot, ref))
            ),
            timeout=60,
        )
        moved = next(t for t in _thread_texts(bot, ref) if "is now on HV01" in t)
        assert "*WEB02 is now on HV01*; it moved at or before <!date^" in moved
        assert "last seen on HV02 at <!date^" in moved
        # What a notification shows: found by the bot, never done by it (seen:
        # "moved by checkpoint-bot — WEB02 is now on HV01 …").
        ts = thread_ts_of(bot, ref)
        (said,) = [
            str(c.body["text"])
            for c in replies(bot.api.calls, ts or "")
            if "is now on HV01" in shown(c.body)
        ]
        assert said.startswith(f"{ref}: WEB02 is now on HV01; it moved at or before "), said
        assert "by checkpoint-bot" not in said
        assert bot.host_commands("Checkpoint-VM") == ["HV01"]
    problems = [(c.method, p) for c in bot.api.calls if (p := block_problem(c.body)) is not None]
    assert problems == []


def test_slack_a_vm_on_no_node_says_which_nodes_were_asked(tmp_path: Path) -> None:
    with running_bot(tmp_path, emulated=True) as bot:
        assert bot.fleet is not None
        bot.fleet.host("HV02").remove_vm("2a7c9d4f-e613-4b8a-9d52-6b0e3f8a1c57")
        said = shown(command(bot, "create WEB02 --reason patch"))
        assert "not found on prod-cluster (asked HV02, HV01)" in said
        assert "host not asked" not in said
        assert bot.host_commands("Checkpoint-VM") == []


def test_a_create_cut_off_after_the_host_took_it_is_adopted_on_the_vms_new_node(
    estate: Estate,
) -> None:
    """The worst case: Checkpoint-VM made the checkpoint on HV01, but its
    answer never came back (the call's deadline passed), so the change is
    `interrupted`; then WEB01 is live-migrated to HV02, checkpoint and all.
    Reconciliation asks the node the VM is on now and adopts the one
    checkpoint carrying this job's token: nothing lost, nothing taken twice."""
    asked = request_checkpoint(estate.ctx, "WEB01", reason="KB5044284", requester="alice")
    server = estate.fleet.server("HV01")
    server.faults = Faults(slow={"Checkpoint-VM": 1000})
    worker = threading.Thread(target=estate.run_jobs, args=(asked.change.id,))
    worker.start()
    deadline = datetime.now(UTC) + timedelta(seconds=20)
    while "HV01" not in estate.served("Checkpoint-VM") and datetime.now(UTC) < deadline:
        threading.Event().wait(0.02)
    # The checkpoint is made; its answer (the Select-Object after it) outlasts the call.
    server.faults = Faults(slow={"Select-Object": 8000})
    worker.join(30)
    assert not worker.is_alive()
    server.faults = Faults()
    assert show_change(estate.ctx, asked.change.ref).state == "interrupted"
    assert len(estate.checkpoints_on("HV01", WEB01)) == 1

    estate.migrate(WEB01, "HV01", "HV02")
    Reconciler(estate.ctx).reconcile(asked.change.id)
    change = show_change(estate.ctx, asked.change.ref)
    assert (change.state, change.host) == ("active", "HV02"), [e.message for e in change.events]
    assert estate.checkpoints_on("HV02", WEB01) == [change.checkpoint_id]
    assert estate.checkpoints_on("HV01", WEB01) == []
    assert [e.kind for e in change.events].count("moved") == 1
    assert estate.served("Checkpoint-VM") == ["HV01"]  # taken once, never again


def test_inventory_show_answers_while_the_database_is_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "inventory.yaml").write_text(
        yaml.safe_dump(_inventory({"HV01": 5985, "HV02": 5986})), encoding="utf-8"
    )
    config = tmp_path / "bot.yaml"
    config.write_text("inventory: inventory.yaml\nhyperv:\n  backend: winrm\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    # Nothing listens on port 1: the database does not answer.
    monkeypatch.setenv("DATABASE_URL", "postgresql://bot@127.0.0.1:1/checkpoints")
    assert main(["--config", str(config), "inventory", "show"]) == 0
    out = capsys.readouterr()
    assert "where the VMs were last seen is unknown: the database did not answer" in out.out
    assert "cluster prod-cluster  nodes HV01, HV02" in out.out
    assert "not seen yet" not in out.out and "Traceback" not in out.out + out.err
    assert main(["--config", str(config), "inventory", "show", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["last_seen_unknown"].startswith("where the VMs were last seen is unknown")
    assert {vm["last_seen"] for vm in data["vms"]} == {None}


def test_inventory_show_tells_a_database_without_its_schema_to_be_upgraded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The database answers; it has no tables yet. "Did not answer" would
    # send the operator looking for an outage that is not there.
    (tmp_path / "inventory.yaml").write_text(
        yaml.safe_dump(_inventory({"HV01": 5985, "HV02": 5986})), encoding="utf-8"
    )
    config = tmp_path / "bot.yaml"
    config.write_text(
        "inventory: inventory.yaml\ndatabase_url: sqlite:///fresh.db\nhyperv:\n  backend: winrm\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert main(["--config", str(config), "inventory", "show"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (
        "where the VMs were last seen is unknown: the database has no schema yet: "
        "run 'checkpoint-bot db upgrade'"
    )
    assert "did not answer" not in out
    assert main(["--config", str(config), "db", "upgrade"]) == 0
    capsys.readouterr()
    assert main(["--config", str(config), "inventory", "show"]) == 0
    out = capsys.readouterr().out
    assert "unknown" not in out and "not seen yet" in out


def test_inventory_show_in_demo_mode_on_a_new_directory_migrates_its_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Demo mode migrates its own database (every demo command does): the
    # first command a newcomer runs must not say the database is missing.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHECKPOINT_BOT_CONFIG", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert main(["inventory", "show"]) == 0
    out = capsys.readouterr().out
    assert "unknown" not in out and "did not answer" not in out
    assert "WEB01" in out and "not seen yet" in out
