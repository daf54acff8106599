"""Two inventory hosts at one WinRM endpoint (2026-12-06, found with the
emulator): HV03's `port` set to HV01's, or a host merged from another with
`<<: *prod-host` and its `address` not overridden (docs/connect-hosts.md).
`inventory diff` and `discover --merge` exited 0, listed each of HV01's VMs
twice, called HV01's VMs "a Hyper-V Replica copy is on HV03", and marked
HV03's real VMs missing ("not found on HV01, HV02, HV03"), writing
missing_since for them.

What holds now: such an inventory is refused where it is loaded, one line
per host that repeats an endpoint, naming the host it repeats and where:
every command exits 2 and nothing is asked or written. One endpoint is one
address (compared without case, a final dot or IP spelling) and one port
(the one the transport implies when none is given); a TCP port has one
listener, so the transport does not make it another endpoint.

Two addresses of one machine (127.0.0.1 and localhost) pass that check:
discovery tells them by the machine's own name on its VMs (Get-VM's
ComputerName). The host that answered as another host's machine is taken
as not heard from (exit 3): its VMs are left as they were, none is marked
missing, and none of the other host's VMs is called a Replica copy on it.

The CLI runs in this process against the WinRM emulator over loopback
(tests/cli_support.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bot.devtools.emulator import EmulatedFleet
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV
from bot.hyperv.types import CheckpointType
from bot.inventory import InventoryError, parse_inventory
from bot.inventory.discovery import FoundVM, answered_as_another
from tests.cli_support import emulated_estate, invoke, one_line_error

ENV = {EMULATOR_PASSWORD_ENV: "Passw0rd!", "CHECKPOINT_BOT_SOCKET": "off"}


@pytest.fixture
def estate(tmp_path: Path) -> Iterator[tuple[Path, EmulatedFleet]]:
    with emulated_estate(tmp_path, env=ENV) as fleet:
        yield tmp_path, fleet


def _aim(cwd: Path, host: str, **fields: object) -> str:
    """Change `host`'s entry in the estate's inventory.yaml; the new text."""
    path = cwd / "inventory.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    entry = next(h for h in data["hosts"] if h["name"] == host)
    entry.update(fields)
    text = yaml.safe_dump(data, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return text


@pytest.mark.parametrize(
    "command",
    [("inventory", "diff"), ("inventory", "discover", "--merge", "inventory.yaml")],
)
def test_a_host_at_another_hosts_endpoint_is_refused_before_any_host_is_asked(
    estate: tuple[Path, EmulatedFleet], command: tuple[str, ...]
) -> None:
    cwd, fleet = estate
    text = _aim(cwd, "HV03", port=fleet.server("HV01").port)
    asked_before = len(fleet.log.for_host("HV01"))

    result = invoke(cwd, "-c", "bot.yaml", *command, env=ENV)

    assert result.returncode == 2, result.stdout + result.stderr
    said = one_line_error(result)
    line = text.splitlines().index("- name: HV01") + 1
    port = fleet.server("HV01").port
    assert (
        f"hosts[2]: HV03: the same endpoint as HV01 (127.0.0.1:{port}, defined on line {line}): "
        "each host is its own WinRM endpoint; give HV03 its own address: or port:"
    ) in said
    assert "Hyper-V Replica" not in result.stdout + result.stderr
    assert (cwd / "inventory.yaml").read_text(encoding="utf-8") == text
    assert len(fleet.log.for_host("HV01")) == asked_before


def test_each_host_at_its_own_endpoint_is_discovered_as_before(
    estate: tuple[Path, EmulatedFleet],
) -> None:
    # The emulator's hosts share one address and differ by port: not one endpoint.
    cwd, _fleet = estate
    result = invoke(cwd, "-c", "bot.yaml", "inventory", "diff", env=ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Nothing to change." in result.stdout


# The anchor pattern of docs/connect-hosts.md, with and without HV02's own address.
ANCHORED = """\
hosts:
  - &prod-host
    name: HV01
    address: hv01.corp.example
    host_group: prod-cluster
    auth: kerberos
    credential: {keytab_file: /etc/checkpoint-bot/bot.keytab}
  - <<: *prod-host
    name: HV02
    address: hv02.corp.example
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(InventoryError) as caught:
        parse_inventory(text, "inventory.yaml")
    return [str(p) for p in caught.value.problems]


def test_the_documented_anchor_pattern_loads() -> None:
    inventory = parse_inventory(ANCHORED, "inventory.yaml")
    assert [h.address for h in inventory.hosts] == ["hv01.corp.example", "hv02.corp.example"]


def test_a_merged_host_that_keeps_the_anchors_address_is_refused() -> None:
    text = ANCHORED.replace("    address: hv02.corp.example\n", "")
    assert _problems(text) == [
        "inventory.yaml:8: hosts[1]: HV02: the same endpoint as HV01 (hv01.corp.example:5986, "
        "defined on line 2): each host is its own WinRM endpoint; give HV02 its own address: "
        "or port:"
    ]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # Case and a final dot do not make another name.
        ("address: hv01.corp.example", "address: HV01.Corp.Example."),
        # https is 5986 when no port is given.
        ("address: hv01.corp.example", "{address: hv01.corp.example, port: 5986}"),
        # http is 5985 when no port is given.
        (
            "{address: hv01.corp.example, transport: http}",
            "{address: hv01.corp.example, port: 5985}",
        ),
        # One port has one listener, whatever scheme each entry says.
        (
            "{address: hv01.corp.example, port: 5985, transport: http}",
            "{address: hv01.corp.example, port: 5985}",
        ),
        # One IPv6 address, spelled two ways.
        ("address: '[fd00::1]'", "address: 'fd00:0:0::1'"),
    ],
)
def test_one_endpoint_spelled_two_ways_is_refused(first: str, second: str) -> None:
    def entry(name: str, where: str) -> str:
        if where.startswith("{"):
            return f"  - {{name: {name}, {where[1:]}\n"
        return f"  - name: {name}\n    {where}\n"

    text = "hosts:\n" + entry("HV01", first) + entry("HV02", second)
    found = _problems(text)
    assert len(found) == 1 and "hosts[1]: HV02: the same endpoint as HV01 (" in found[0], found


@pytest.mark.parametrize(
    "second",
    [
        "address: hv02.corp.example",
        # Another port of one address: the emulator's hosts, or two listeners.
        "{address: hv01.corp.example, port: 15986}",
        # http's default port is not https's.
        "{address: hv01.corp.example, transport: http}",
    ],
)
def test_distinct_endpoints_load(second: str) -> None:
    text = "hosts:\n  - name: HV01\n    address: hv01.corp.example\n"
    if second.startswith("{"):
        text += f"  - {{name: HV02, {second[1:]}\n"
    else:
        text += f"  - name: HV02\n    {second}\n"
    assert len(parse_inventory(text, "inventory.yaml").hosts) == 2


def test_every_repeat_is_said_against_the_first_host_at_that_endpoint() -> None:
    text = (
        "hosts:\n"
        "  - {name: HV01, address: hv01.corp.example}\n"
        "  - {name: HV02, address: hv01.corp.example}\n"
        "  - {name: HV03, address: hv01.corp.example}\n"
    )
    found = _problems(text)
    assert [p.split(": the same endpoint as ")[1].split(" (")[0] for p in found] == [
        "HV01",
        "HV01",
    ]
    assert found[1].startswith("inventory.yaml:4: hosts[2]: HV03:")


# --- one machine under two addresses: only the hosts can tell ----------------


@pytest.mark.parametrize("command", [("inventory", "diff"), ("inventory", "discover", "--merge")])
def test_a_host_that_answers_as_another_is_not_taken_for_itself(
    estate: tuple[Path, EmulatedFleet], command: tuple[str, ...]
) -> None:
    # `localhost` and 127.0.0.1 are one listener, which no load-time check
    # can know without resolving names: the host's own name for itself
    # (Get-VM's ComputerName) says it.
    cwd, fleet = estate
    _aim(cwd, "HV03", address="localhost", port=fleet.server("HV01").port)
    target = cwd / "inventory.yaml"
    before = target.read_text(encoding="utf-8")

    args = (*command, "inventory.yaml") if command[-1] == "--merge" else command
    result = invoke(cwd, "-c", "bot.yaml", *args, "--json", env=ENV)

    assert result.returncode == 3, result.stdout + result.stderr
    said = one_line_error(result)
    left = "would be left as they are" if command[-1] == "diff" else "were left as they were"
    assert said.endswith(
        "HV03 answered as HV01, as another asked host did: its address: and port: reach that "
        f"host's WinRM listener; their VMs {left}"
    ), said
    report = json.loads(result.stdout)
    assert report["answered"] == ["HV01", "HV02"]
    assert report["counts"]["missing"] == 0
    notes = [n for e in report["entries"] for n in e["notes"]]
    assert not [n for n in notes if "Replica copy is on HV03" in n], notes
    on_hv03 = {e["name"]: e["kind"] for e in report["entries"] if e["host"] == "HV03"}
    assert on_hv03 and set(on_hv03.values()) == {"not_asked"}, on_hv03
    # Nothing of HV03's was marked missing in the file.
    assert "missing_since" not in target.read_text(encoding="utf-8")
    if command[-1] == "diff":
        assert target.read_text(encoding="utf-8") == before


def _seen(host: str, machine: str, vm_id: str) -> FoundVM:
    return FoundVM(
        name=f"VM-{vm_id}",
        vm_id=vm_id,
        host=host,
        state="Running",
        checkpoint_type=CheckpointType.Production,
        owner_node=machine,
    )


@pytest.mark.parametrize(
    ("found", "doubled"),
    [
        # Each node of a cluster answers as itself.
        ([_seen("HV01", "HV01", "a"), _seen("HV02", "HV02", "b")], {}),
        # Inventory names that are not the machines' names, each its own.
        ([_seen("prod-1", "HV01", "a"), _seen("prod-2", "HV02", "b")], {}),
        # The host named as the machine is kept, in any case.
        ([_seen("hv01", "HV01", "a"), _seen("HV03", "HV01", "a")], {"HV03": "HV01"}),
        # A domain-qualified machine name.
        ([_seen("HV03", "hv01.corp.example", "a"), _seen("HV01", "hv01.corp.example", "a")],
         {"HV03": "hv01.corp.example"}),
        # Neither is named as the machine: which entry is wrong is not known.
        ([_seen("prod-1", "HV01", "a"), _seen("prod-3", "HV01", "a")],
         {"prod-1": "HV01", "prod-3": "HV01"}),
        # No name reported: nothing to compare.
        ([_seen("HV01", "", "a"), _seen("HV03", "", "a")], {}),
    ],
)  # fmt: skip
def test_which_hosts_answered_as_another(found: list[FoundVM], doubled: dict[str, str]) -> None:
    assert answered_as_another(found) == doubled
