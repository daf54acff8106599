"""`inventory discover --merge` and YAML aliases (2026-12-06): with two VMs
gone from their hosts, the merge wrote `missing_since: &id001 2026-12-06`
on the first and `missing_since: *id001` on the second (one date object,
so the YAML writer shared it). Deleting the first VM's entry, as a person
does once it is retired for good, broke the whole inventory: "found
undefined alias 'id001'".

What holds now: every value the merge writes is written out in full, as
docs/discovery.md shows (`missing_since: 2026-12-06  # not found by
discovery on 2026-12-06`), so any entry can be deleted on its own. Anchors
and aliases a person wrote are kept as written.

The hosts are the WinRM emulator over loopback; the CLI runs in this
process (tests/cli_support.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.devtools.emulator import EmulatedFleet
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV
from bot.inventory import load_inventory
from tests.cli_support import emulated_estate, invoke

ENV = {EMULATOR_PASSWORD_ENV: "Passw0rd!", "CHECKPOINT_BOT_SOCKET": "off"}
LOGIN = "  credential:\n    username: hvadmin\n    password_env: CHECKPOINT_BOT_EMULATOR_PASSWORD\n"
# Two VMs no emulated host has, with a person's own anchor between them.
RETIRED = (
    "- name: OLD-APP09\n"
    "  vm_id: 0f0f0f0f-1111-4222-8333-444455556666\n"
    "  host: HV02\n"
    "  tags: &retired {env: retired}\n"
    "- name: OLD-APP10\n"
    "  vm_id: 0f0f0f0f-1111-4222-8333-444455556677\n"
    "  host: HV03\n"
    "  tags: *retired\n"
)


@pytest.fixture
def estate(tmp_path: Path) -> Iterator[tuple[Path, EmulatedFleet]]:
    with emulated_estate(tmp_path, env=ENV) as fleet:
        yield tmp_path, fleet


def _with_anchors_and_retired_vms(path: Path) -> None:
    """The estate's inventory with the hosts' credential written once (an
    anchor, as a person would) and two VMs no host has."""
    text = path.read_text(encoding="utf-8")
    assert text.count(LOGIN) == 3
    head, rest = text.split(LOGIN, 1)
    text = head + "  credential: &login\n" + LOGIN.split("\n", 1)[1]
    text += rest.replace(LOGIN, "  credential: *login\n")
    assert "\ngroups:\n" in text
    text = text.replace("\ngroups:\n", "\n" + RETIRED + "groups:\n")
    path.write_text(text, encoding="utf-8")
    load_inventory(path)  # valid as written


def test_merge_writes_each_missing_since_in_full(estate: tuple[Path, EmulatedFleet]) -> None:
    cwd, _fleet = estate
    target = cwd / "inventory.yaml"
    _with_anchors_and_retired_vms(target)

    merged = invoke(
        cwd, "-c", "bot.yaml", "inventory", "discover", "--merge", "inventory.yaml", env=ENV
    )
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert "Marked missing (2):" in merged.stdout

    after = target.read_text(encoding="utf-8")
    # No alias the bot made up (ruamel's &id001 / *id001).
    assert not re.search(r"[&*]id\d+", after), after
    written = re.findall(
        r"^  missing_since: (\d{4}-\d\d-\d\d)  # not found by discovery on \1$", after, re.M
    )
    assert len(written) == 2, after
    # What a person wrote with an anchor stays an anchor and its aliases.
    assert after.count("credential: &login\n") == 1
    assert after.count("credential: *login\n") == 2
    assert "tags: &retired {env: retired}\n" in after and "tags: *retired\n" in after

    # The first retired VM deleted by hand: the rest still loads.
    start = after.index("- name: OLD-APP09\n")
    end = after.index("- name: OLD-APP10\n")
    first = after[start:end]
    # Its anchor goes with it: the alias is written out in the entry that is left.
    kept = after[:start] + after[end:].replace("tags: *retired", "tags: {env: retired}")
    assert "missing_since" in first
    target.write_text(kept, encoding="utf-8")
    inventory = load_inventory(target)
    assert str(inventory.vm("OLD-APP10").missing_since) == written[1]
    assert "OLD-APP09" not in {vm.name for vm in inventory.vms}
