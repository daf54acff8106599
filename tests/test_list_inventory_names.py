"""`checkpoint list` names each VM as the inventory does (by its VMId), not
as its host does, and says so where the two differ. Seen 2026-12-06: a DR
VM whose host calls it WEB02 (another VMId, on another host), in the
inventory as WEB02-DR, was listed as "WEB02" next to the production WEB02;
acting on that, `checkpoint rollback WEB02` takes the production one.

The hosts are the WinRM emulator over real HTTP on loopback (the demo
host model with a fourth host, HV04); the CLI runs in this process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bot.devtools.emulator import EmulatedFleet
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV
from bot.devtools.hostmodel import demo_hosts_path
from bot.devtools.hostmodel.modelfile import parse_host_model
from tests.cli_support import CliResult, emulated_estate, invoke

ENV = {EMULATOR_PASSWORD_ENV: "Passw0rd!", "CHECKPOINT_BOT_SOCKET": "off"}
DR_ID = "7d3e1b6a-4c2f-4e8d-9a51-2f6c8b0d4e19"
PROD_ID = "2a7c9d4f-e613-4b8a-9d52-6b0e3f8a1c57"  # the demo's WEB02
# HV04, the DR site's host: it calls its VM WEB02.
HV04 = f"""
  - name: HV04
    volumes:
      - {{path: 'D:\\', capacity_gb: 2000, used_gb: 100}}
    vms:
      - name: WEB02
        vm_id: {DR_ID}
        volume: 'D:\\'
        memory_gb: 8
        disk_gb: 80
        guest:
          fqdn: web02.dr.corp.example
          os_name: Windows Server 2022 Standard
          os_version: 10.0.20348
          product_type: 3
      - name: DR-TOOLS
        vm_id: 5b0c7e2d-8a14-4f63-b9d7-1e4a6c2f8b30
        volume: 'D:\\'
        memory_gb: 4
        disk_gb: 40
"""


@pytest.fixture
def estate(tmp_path: Path) -> Iterator[tuple[Path, EmulatedFleet]]:
    """The demo estate, and HV04 in the inventory with WEB02-DR on it."""
    text = (
        demo_hosts_path().read_text(encoding="utf-8").replace("\nhosts:\n", "\nhosts:\n" + HV04, 1)
    )
    model = parse_host_model(text, "demo hosts and HV04")
    with emulated_estate(tmp_path, env=ENV, model=model) as fleet:
        path = tmp_path / "inventory.yaml"
        inventory = yaml.safe_load(path.read_text(encoding="utf-8"))
        hv04 = {**next(h for h in inventory["hosts"] if h["name"] == "HV03")}
        hv04.update(name="HV04", port=fleet.servers["HV04"].port, host_group="dr-site")
        hv04.pop("volumes", None)
        inventory["hosts"].append(hv04)
        inventory["vms"].append(
            {"name": "WEB02-DR", "vm_id": DR_ID, "host": "HV04", "tags": {"env": "dr"}}
        )
        path.write_text(yaml.safe_dump(inventory, sort_keys=False), encoding="utf-8")
        yield tmp_path, fleet


def _cli(cwd: Path, *args: str) -> CliResult:
    done = invoke(cwd, "-c", "bot.yaml", *args, env=ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _rows(cwd: Path, *args: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = json.loads(
        _cli(cwd, "checkpoint", "list", *args, "--json").stdout
    )["checkpoints"]
    return rows


def test_the_list_names_a_vm_as_the_inventory_does(estate: tuple[Path, EmulatedFleet]) -> None:
    cwd, fleet = estate
    _cli(cwd, "checkpoint", "create", "WEB02", "-r", "patch")
    _cli(cwd, "checkpoint", "create", "WEB02-DR", "-r", "t")
    # A checkpoint of a VM the inventory does not hold: the host's name.
    fleet.host("HV04").checkpoint_vm("5b0c7e2d-8a14-4f63-b9d7-1e4a6c2f8b30", "by hand")

    rows = {(r["vm_name"], r["host"]): r for r in _rows(cwd)}
    assert set(rows) == {("WEB02", "HV02"), ("WEB02-DR", "HV04"), ("DR-TOOLS", "HV04")}
    assert rows["WEB02-DR", "HV04"]["host_vm_name"] == "WEB02"
    assert rows["WEB02-DR", "HV04"]["vm_id"] == DR_ID
    assert rows["WEB02-DR", "HV04"]["change_ref"] == "CHG-0002"
    assert rows["WEB02", "HV02"]["host_vm_name"] is None  # the same name: nothing to say
    assert rows["WEB02", "HV02"]["vm_id"] == PROD_ID
    assert rows["DR-TOOLS", "HV04"]["host_vm_name"] is None  # an orphan VM: the host's name

    text = _cli(cwd, "checkpoint", "list").stdout.splitlines()
    dr = next(line for line in text if "CHG-0002" in line)
    prod = next(line for line in text if "CHG-0001" in line)
    assert dr.startswith("WEB02-DR (the host calls it WEB02) HV04 ")
    assert prod.split()[:2] == ["WEB02", "HV02"]

    narrowed = _cli(cwd, "checkpoint", "list", "--vm", "WEB02-DR").stdout.splitlines()
    assert narrowed[1].startswith("WEB02-DR (the host calls it WEB02) HV04 ")
    assert [(r["vm_name"], r["host_vm_name"]) for r in _rows(cwd, "WEB02-DR")] == [
        ("WEB02-DR", "WEB02")
    ]
