"""The guest's product type, when the host cannot give it (docs/host-truth.md,
"Domain controllers from KVP").

The hosts are the WinRM emulator over real HTTP on loopback, read by the
bot's own pypsrp client; the CLI runs in this process (`invoke`).

- A guest that is off, or that exchanges no KVP data, publishes no
  ProductType, so it is unknown: the drift rule must not call that
  agreement with the inventory and says why it could not compare; the
  domain_controller rule, which owns the fact, fails closed on it.
- An endpoint whose JEA role does not expose Get-CimInstance answers
  CommandNotFoundException
  (https://learn.microsoft.com/powershell/scripting/security/remoting/jea/role-capabilities):
  the bot blames the role and names the role capability to fix, not the
  guest's integration services.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.devtools.emulator import EmulatedFleet, Faults
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV
from bot.devtools.hostmodel import (
    HostModel,
    demo_hosts_path,
    parse_host_model,
)
from tests.cli_support import emulated_estate, invoke

ENV = {EMULATOR_PASSWORD_ENV: "Passw0rd!", "CHECKPOINT_BOT_SOCKET": "off"}
ROLE = "deploy/jea/CheckpointBot.psrc"


def _demo_hosts_with(name: str, **changes: Any) -> HostModel:
    """The demo host model with one VM's settings (and its guest's) changed."""
    doc: dict[str, Any] = yaml.safe_load(demo_hosts_path().read_text(encoding="utf-8"))
    for host in doc["hosts"]:
        for vm in host["vms"]:
            if vm["name"] == name:
                guest = {**vm.get("guest", {}), **changes.pop("guest", {})}
                vm.update(changes, guest=guest)
    return parse_host_model(yaml.safe_dump(doc), "demo-hosts (test)")


@contextlib.contextmanager
def _estate(tmp_path: Path, model: HostModel) -> Iterator[tuple[Path, EmulatedFleet]]:
    """The demo inventory aimed at `model` served over WinRM; the schema in place."""
    with emulated_estate(tmp_path, model=model, env=ENV) as fleet:
        yield tmp_path, fleet


@pytest.fixture
def estate(tmp_path: Path) -> Iterator[tuple[Path, EmulatedFleet]]:
    """The demo estate as the demo host model has it: every guest running."""
    with _estate(tmp_path, _demo_hosts_with("WEB01")) as running:
        yield running


def _explain(cwd: Path, vm: str, *extra: str) -> str:
    out = invoke(cwd, "-c", "bot.yaml", "policy", "explain", vm, *extra, env=ENV)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _row(text: str, rule: str) -> str:
    (line,) = [ln for ln in text.splitlines() if ln.strip()[2:].startswith(f"{rule} ")]
    return line


def test_a_running_guest_that_agrees_is_said_to_agree(
    estate: tuple[Path, EmulatedFleet],
) -> None:
    cwd, _fleet = estate
    text = _explain(cwd, "WEB01")
    assert text.startswith("create WEB01 as cli:tester: ALLOW")
    assert "✓" in _row(text, "inventory_drift")
    assert "agrees with the inventory" in _row(text, "inventory_drift")


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"state": "Off"}, "the VM is Off: only a running guest publishes KVP items"),
        (
            {"guest": {"kvp": False}},
            "the running guest publishes no KVP items (its data exchange integration "
            "service is off or not answering)",
        ),
    ],
    ids=["off", "no-data-exchange"],
)
def test_a_silent_guest_is_not_said_to_agree_with_the_inventory(
    tmp_path: Path, changes: dict[str, Any], why: str
) -> None:
    with _estate(tmp_path, _demo_hosts_with("WEB01", **changes)) as (cwd, _fleet):
        text = _explain(cwd, "WEB01")
    drift = _row(text, "inventory_drift")
    assert "!" in drift and "agrees" not in drift
    assert "on whether it is a domain controller" in drift
    assert f"the guest's product type could not be read ({why}; from host HV01)" in drift
    assert drift.endswith("said only: the rules that decide on these facts take them as they stand")
    dc = _row(text, "domain_controller")
    assert "✗" in dc and why in dc
    assert text.startswith("create WEB01 as cli:tester: NEEDS APPROVAL")
    assert "unknown facts: kvp_product_type" in text


def test_a_role_without_get_ciminstance_is_blamed_not_the_guest(
    estate: tuple[Path, EmulatedFleet],
) -> None:
    cwd, fleet = estate
    fleet.server("HV01").faults = Faults(hidden=frozenset({"Get-CimInstance"}))
    text = _explain(cwd, "WEB01")
    for rule, mark in (("domain_controller", "✗"), ("inventory_drift", "!")):
        row = _row(text, rule)
        assert mark in row, row
        assert "does not let the bot run Get-CimInstance" in row, row
        assert "VisibleCmdlets" in row and ROLE in row, row
        assert "no KVP data" not in row and "integration" not in row, row
    assert "agrees" not in _row(text, "inventory_drift")
    assert text.startswith("create WEB01 as cli:tester: NEEDS APPROVAL")

    data = json.loads(_explain(cwd, "WEB01", "--json"))
    (drift,) = [r for r in data["rules"] if r["id"] == "inventory_drift"]
    assert drift["outcome"] == "fired" and drift["effect"] == "warn"
    kvp = drift["facts"]["kvp_product_type"]
    assert kvp["known"] is False and ROLE in kvp["value"]
    assert kvp["source"] == "host HV01"

    # The same guest, once the role lets the bot ask: nothing was wrong with it.
    fleet.server("HV01").faults = Faults()
    assert "agrees with the inventory" in _row(_explain(cwd, "WEB01"), "inventory_drift")
