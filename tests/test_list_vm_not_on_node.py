"""`checkpoint list VM` when the VM's owner node cannot be asked: every node
of its cluster is asked, and a node that answers "no such VM" has answered
(it holds none of the VM's checkpoints); only the node that failed is a
problem. The real CLI, in-process, against the emulated demo cluster
(HV01 and HV02, NTLM over loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.devtools.emulator import DEFAULT_USERS, EmulatedFleet, Faults
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV, emulated_inventory
from bot.devtools.hostmodel import InMemoryHostStateStore, demo_hosts_path, load_host_model
from bot.inventory import demo_inventory_path, load_inventory
from tests.cli_support import invoke

ENV = {EMULATOR_PASSWORD_ENV: DEFAULT_USERS["hvadmin"]}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Path, EmulatedFleet]]:
    fleet = EmulatedFleet.start(
        InMemoryHostStateStore(), hosts=["HV01", "HV02"], model=load_host_model(demo_hosts_path())
    )
    try:
        ports = {name: server.port for name, server in fleet.servers.items()}
        (tmp_path / "inv.yaml").write_text(
            emulated_inventory(
                load_inventory(demo_inventory_path()), ports, "hvadmin", EMULATOR_PASSWORD_ENV
            ),
            encoding="utf-8",
        )
        config = tmp_path / "bot.yaml"
        config.write_text("inventory: inv.yaml\nhyperv: {backend: winrm}\n", encoding="utf-8")
        assert invoke(tmp_path, "--config", str(config), "db", "upgrade", env=ENV).returncode == 0
        yield config, fleet
    finally:
        fleet.stop()


def _down(fleet: EmulatedFleet, host: str) -> None:
    """The host stops answering: its connections close unanswered. Its port
    stays bound: stopped, it was free for another test's emulator (the
    suite runs in parallel) to answer in its place, with the same test
    credentials, no WEB01 and no error: the likely cause of a CI run's
    `"unreachable": []`, not reproduced alone."""
    fleet.server(host).faults = Faults(drop=True)


def test_a_peer_without_the_vm_is_not_called_unreachable(
    tmp_path: Path, cluster: tuple[Path, EmulatedFleet]
) -> None:
    config, fleet = cluster
    _down(fleet, "HV01")  # WEB01's owner is down
    listed = invoke(tmp_path, "--config", str(config), "checkpoint", "list", "WEB01", env=ENV)
    said = listed.stdout + listed.stderr
    assert "Traceback" not in said
    assert "HV01 could not be reached" in said
    # HV02 answered: WEB01 is not there, so it holds none of its checkpoints.
    assert "HV02 could not" not in said, said
    assert "unable to find a virtual machine" not in said, said
    assert listed.returncode == 3, said


def test_json_lists_only_the_node_that_failed(
    tmp_path: Path, cluster: tuple[Path, EmulatedFleet]
) -> None:
    import json

    config, fleet = cluster
    _down(fleet, "HV01")
    listed = invoke(
        tmp_path, "--config", str(config), "checkpoint", "list", "WEB01", "--json", env=ENV
    )
    data = json.loads(listed.stdout)
    assert [p["host"] for p in data["unreachable"]] == ["HV01"], data
    assert data["checkpoints"] == []
