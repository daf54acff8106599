"""The host-model file: its format, its errors, and the demo estate's file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.devtools.hostmodel import (
    CheckpointType,
    HostModelError,
    InMemoryHostStateStore,
    VMReplicationState,
    VMState,
    demo_hosts_path,
    load_host_model,
    parse_host_model,
    seed_missing,
)
from bot.devtools.hostmodel.state import HostState, StaleState
from bot.inventory import InventoryError, demo_inventory_path, load_inventory, parse_inventory
from tests.cli_support import invoke
from tests.helpers import documented_yaml

EXAMPLE = """\
hosts:
  - name: HV01
    volumes:
      - {path: 'd:', capacity_gb: 100, used_gb: 10}
      - {path: 'E:\\', capacity_gb: 50}
    vms:
      - name: WEB01
        vm_id: '{8B3F6E1A-D9C2-4B07-A6E5-1F4D7C9B2E83}'
        state: off
        checkpoint_type: productiononly
        volume: 'e:\\'
        disks:
          - {path: 'E:\\WEB01.vhdx', controller: ide}
          - {path: 'Disk 4', passthrough: true, disk_number: 4}
        replication: {state: Replicating, replica_server: dr.example}
        guest: {fqdn: web01.corp.example, product_type: 2, vss: false}
"""


def test_the_format_reads_names_case_insensitively_and_canonicalises() -> None:
    model = parse_host_model(EXAMPLE, "hosts.yaml")
    [host] = model.hosts
    assert [v.path for v in host.volumes] == ["D:\\", "E:\\"]
    [vm] = host.vms
    assert vm.vm_id == "8b3f6e1a-d9c2-4b07-a6e5-1f4d7c9b2e83"
    assert (vm.state, vm.checkpoint_type, vm.volume) == (
        VMState.Off,
        CheckpointType.ProductionOnly,
        "E:\\",
    )
    [state] = model.states()
    seeded = state.vms[vm.vm_id]
    assert seeded.volume_path == "E:\\"
    assert [(d.path, d.controller.name, d.disk_number) for d in seeded.disks] == [
        ("E:\\WEB01.vhdx", "IDE", None),
        ("Disk 4", "SCSI", 4),
    ]
    assert seeded.replication is not None
    assert seeded.replication.state is VMReplicationState.Replicating
    assert (seeded.guest.product_type, seeded.guest.vss) == (2, False)


def test_a_vm_without_disks_gets_one_in_its_folder() -> None:
    text = EXAMPLE.split("        disks:")[0]
    [state] = parse_host_model(text, "hosts.yaml").states()
    [disk] = next(iter(state.vms.values())).disks
    assert disk.path == "E:\\Hyper-V\\WEB01\\Virtual Hard Disks\\WEB01.vhdx"


def test_a_vm_may_have_any_name_hyper_v_takes() -> None:
    """Quotes, accents, other scripts: Hyper-V documents no character set
    for a VM's name, and discovery must meet such names (it skips the ones
    an inventory cannot hold). The file refused them: "expected letters,
    digits, '.', '_', '-' or spaces"."""
    for name in ("Finance App 'Ü' 01", "財務 01", 'Build "nightly"'):
        text = EXAMPLE.replace("      - name: WEB01", f"      - name: {_yaml_str(name)}")
        [vm] = parse_host_model(text, "hosts.yaml").hosts[0].vms
        assert vm.name == name
    for bad in (" WEB01", "WEB\t01"):
        with pytest.raises(HostModelError, match="printable characters"):
            parse_host_model(
                EXAMPLE.replace("      - name: WEB01", f"      - name: {_yaml_str(bad)}"),
                "hosts.yaml",
            )


def _yaml_str(value: str) -> str:
    """A double-quoted YAML scalar (JSON's string is one)."""
    return json.dumps(value, ensure_ascii=False)


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        (
            EXAMPLE.replace("state: off", "state: Stopping"),
            "hosts.yaml:9: hosts[0].vms[0].state: expected one of: Running, Off, Saved, Paused",
        ),
        (
            EXAMPLE.replace("product_type: 2", "product_type: 7"),
            "hosts.yaml:16: hosts[0].vms[0].guest.product_type: must be at most 3, got 7",
        ),
        (
            EXAMPLE.replace("volume: 'e:\\'", "volume: 'F:\\'"),
            "hosts.yaml:11: hosts[0].vms[0].volume: host HV01 has no volume 'F:\\' (it has: ",
        ),
        (
            EXAMPLE.replace("vm_id: '{8B3F", "vm_id: '{XB3F"),
            "hosts.yaml:8: hosts[0].vms[0].vm_id: expected a GUID",
        ),
        (
            EXAMPLE.replace("        guest:", "        simulation: {}\n        guest:"),
            "hosts.yaml:16: hosts[0].vms[0].simulation: unknown field 'simulation'",
        ),
    ],
)
def test_problems_name_the_file_the_line_and_the_field(broken: str, expected: str) -> None:
    with pytest.raises(HostModelError) as caught:
        parse_host_model(broken, "hosts.yaml")
    assert str(caught.value).splitlines()[0].startswith(expected), str(caught.value)


def test_cross_checks_are_located_too() -> None:
    twice = EXAMPLE + EXAMPLE.split("hosts:\n")[1]
    with pytest.raises(HostModelError) as caught:
        parse_host_model(twice, "hosts.yaml")
    assert "hosts.yaml:17: hosts[1].name: host HV01 is listed twice" in str(caught.value)


def test_an_unreadable_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(HostModelError) as caught:
        load_host_model(tmp_path / "missing.yaml")
    assert str(caught.value).startswith(
        f"{tmp_path / 'missing.yaml'}: the host-model file cannot be read"
    )


def test_the_demo_hosts_hold_every_vm_of_the_demo_inventory() -> None:
    """Written out independently of the inventory, the demo's host model
    still puts each VM where the inventory looks for it."""
    model = load_host_model(demo_hosts_path())
    inventory = load_inventory(demo_inventory_path())
    held = {(vm.vm_id, host.name): (vm, host) for host in model.hosts for vm in host.vms}
    assert len(held) == len(inventory.vms)
    for declared in inventory.vms:
        vm, host = held[(declared.vm_id, declared.host)]
        assert vm.name == declared.name
        assert (vm.volume or host.volumes[0].path) == declared.volume
        # Two vocabularies, the host's and the bot's: they meet by name only.
        assert vm.checkpoint_type.name == declared.checkpoint_type.name
        # What the guest reports agrees with the declared role.
        assert (vm.guest.product_type == 2) is declared.is_domain_controller
    assert {h.name for h in model.hosts} == {h.name for h in inventory.hosts}
    stg = next(vm for vm in model.host("HV03").vms if vm.name == "STG-APP01")
    assert stg.guest.vss is False


def test_seeding_keeps_known_hosts_and_replaces_stale_ones() -> None:
    model = load_host_model(demo_hosts_path())
    store = InMemoryHostStateStore()
    assert seed_missing(store, model) == ["HV01", "HV02", "HV03"]
    with store.edit("HV01") as state:
        state.next_seq = 99
    assert seed_missing(store, model) == []
    assert store.read("HV01").next_seq == 99
    old = store.read("HV02").to_dict()
    old.pop("format")
    store._docs["HV02"] = old  # type: ignore[attr-defined]  # written by an older model
    with pytest.raises(StaleState):
        HostState.from_dict(old)
    assert seed_missing(store, model) == ["HV02"]
    assert store.read("HV02").host == "HV02"


def test_an_inventory_with_simulation_hints_is_told_where_they_went() -> None:
    text = (
        "hosts:\n  - {name: HV01, address: hv01.example}\n"
        "vms:\n  - name: WEB01\n    vm_id: 8b3f6e1a-d9c2-4b07-a6e5-1f4d7c9b2e83\n"
        "    host: HV01\n    simulation: {state: Off}\n"
    )
    with pytest.raises(InventoryError) as caught:
        parse_inventory(text, "inventory.yaml")
    lines = str(caught.value).splitlines()
    assert lines == [
        "inventory.yaml:7: vms[0].simulation: `simulation:` moved to the host-model file "
        "(hyperv.simulator_hosts, e.g. deploy/examples/demo-hosts.yaml); remove it from the "
        "inventory"
    ]


def test_the_emulator_reports_a_broken_file_one_problem_per_line(tmp_path: Path) -> None:
    """`checkpoint-bot emulator --hosts FILE` says each problem on its own
    line, as the simulator backend's configuration does, with a path as
    written (`'F:\\'`, not Python's `'F:\\\\'`) and no pointer to --help:
    the file is wrong, not the command line (docs/emulator.md)."""
    broken = EXAMPLE.replace("volume: 'e:\\'", "volume: 'F:\\'") + (
        "clusters:\n  - {name: prod-cluster, nodes: [HV01, HV09]}\n"
    )
    (tmp_path / "hosts.yaml").write_text(broken, encoding="utf-8")
    result = invoke(tmp_path, "emulator", "--hosts", "hosts.yaml", "--port", "0")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "checkpoint-bot: error: hosts.yaml:11: hosts[0].vms[0].volume: "
        "host HV01 has no volume 'F:\\' (it has: D:\\, E:\\)",
        "  hosts.yaml:18: clusters[0].nodes[1]: no host HV09 in this file",
    ], result.stderr


def test_the_documented_host_model_loads(tmp_path: Path) -> None:
    """The example docs/emulator.md shows is one the loader takes, as a
    file (with every commented-out disk line left out, as written)."""
    path = tmp_path / "hosts.yaml"
    path.write_text(documented_yaml("emulator.md", "The host-model file"), encoding="utf-8")
    model = load_host_model(path)
    assert [h.name for h in model.hosts] == ["HV01", "HV02"]
    [cluster] = model.clusters
    assert cluster.name == "prod-cluster"
    assert all(model.cluster_of(node) == cluster for node in cluster.nodes)
    [web] = model.host("HV01").vms
    assert (web.name, web.state, web.checkpoint_type) == (
        "WEB01",
        VMState.Running,
        CheckpointType.Production,
    )
    assert web.replication is not None
    assert web.replication.state == VMReplicationState.Replicating
