"""`inventory discover` records where it saw each VM, as every other path
that asks a node about a VM does (bot.store.sightings, bot.service.locate).

Before, discovery asked every host for every VM and recorded nothing, so
right after `inventory discover` the next `inventory show` said "not seen
yet" for VMs the hosts had just listed.

What is proven here:
- over real WinRM against the emulated demo hosts, `inventory discover
  --merge` records each VM on the host that listed it: `inventory show`
  says "last seen on HV01 at …" (and `--json` its `last_seen`); a host
  that could not be asked gets no sighting for its VMs (they stay "not
  seen yet"), and `inventory diff` (the dry run) records nothing;
- what is recorded is what the merge plan believes (`owners_seen`): not a
  Hyper-V Replica copy, not a VMId two hosts report as their own, not
  what a host that answered as another asked host's machine said.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.devtools.emulator import Faults
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV
from bot.hyperv.types import CheckpointType
from bot.inventory import demo_inventory_path, load_inventory
from bot.inventory.discovery import FoundVM, owners_seen
from tests.cli_support import emulated_estate, invoke, one_line_error

ENV = {EMULATOR_PASSWORD_ENV: "Passw0rd!", "CHECKPOINT_BOT_SOCKET": "off"}


def _last_seen(workdir: Path) -> dict[str, Any]:
    """`inventory show --json`: each VM's name -> its `last_seen`."""
    shown = invoke(workdir, "-c", "bot.yaml", "inventory", "show", "--json", env=ENV)
    assert shown.returncode == 0, shown.stderr
    return {vm["name"]: vm["last_seen"] for vm in json.loads(shown.stdout)["vms"]}


def test_discover_records_where_each_vm_was_seen(tmp_path: Path) -> None:
    demo = load_inventory(demo_inventory_path())
    on_hv03 = {vm.name for vm in demo.vms_on_host("HV03")}
    with emulated_estate(tmp_path, env=ENV) as fleet:
        fleet.server("HV03").faults = Faults(refuse=True)
        assert set(_last_seen(tmp_path).values()) == {None}

        # The dry run asks the hosts and records nothing.
        diff = invoke(tmp_path, "-c", "bot.yaml", "inventory", "diff", env=ENV)
        assert diff.returncode == 3, diff.stderr
        assert set(_last_seen(tmp_path).values()) == {None}

        before = datetime.now(UTC)
        discover = ("inventory", "discover", "--merge", "inventory.yaml")
        merged = invoke(tmp_path, "-c", "bot.yaml", *discover, env=ENV)
        after = datetime.now(UTC)
        assert merged.returncode == 3, merged.stderr
        assert "HV03 could not be asked" in one_line_error(merged)

        seen = _last_seen(tmp_path)
        for vm in demo.vms:
            if vm.name in on_hv03:
                assert seen[vm.name] is None, vm.name  # its host did not answer
                continue
            sighting = seen[vm.name]
            assert sighting is not None, f"{vm.name}: discovery saw it on {vm.host}"
            assert (sighting["host"], sighting["previous_host"]) == (vm.host, None)
            assert before <= datetime.fromisoformat(sighting["seen_at"]) <= after
        shown = invoke(tmp_path, "-c", "bot.yaml", "inventory", "show", env=ENV)
        lines = {line.split()[0]: line for line in shown.stdout.splitlines() if line[:2] == "  "}
        assert "  last seen on HV02 at " in lines["WEB02"]
        assert "(moved" not in lines["WEB02"]
        assert lines["STG-WEB01"].endswith("  not seen yet")


def _found(host: str, vm_id: str, **fields: Any) -> FoundVM:
    base = FoundVM(
        name=f"VM-{vm_id[:4]}",
        vm_id=vm_id,
        host=host,
        state="Running",
        checkpoint_type=CheckpointType.Production,
        owner_node=host,
    )
    return replace(base, **fields)


def test_only_a_vm_one_host_has_as_its_own_is_a_sighting() -> None:
    primary, copy_only, twice, alone, echoed = (
        f"{n}{n}{n}{n}0000-1111-4222-8333-444455556666" for n in "abcde"
    )
    replicated = {"replication": "Replicating"}
    found = [
        _found("HV01", primary, replication_mode="Primary", **replicated),
        _found("DR01", primary, replication_mode="Replica", **replicated),
        _found("DR01", copy_only, replication_mode="Replica", **replicated),
        _found("HV01", twice),
        _found("HV02", twice),
        _found("HV03", alone),
        # HV04's address reaches HV03's listener: it answers as HV03.
        _found("HV04", echoed, owner_node="HV03"),
    ]
    assert owners_seen(found) == {primary: "HV01", alone: "HV03"}
