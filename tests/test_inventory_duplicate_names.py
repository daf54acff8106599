"""A VM renamed by hand to a name another VM has (WEB02 -> WEB01 in the
demo inventory): the inventory was refused, but the first line said
`groups.web-tier[1]: unknown VM 'WEB02'; did you mean WEB01, WEB01?`, a
knock-on of the rename with one suggestion twice, and only the line after
it said what was wrong: `vms[12].name: duplicate VM name (first defined on
line 221)`.

What holds now: what the file defines wrong (a duplicate name) is said
first, then what the `groups:` that name those VMs make of it; a
suggestion is offered once however many entries carry the name."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.inventory import InventoryError, demo_inventory_path, parse_inventory
from bot.inventory.names import suggest
from tests.cli_support import invoke


def _renamed(tmp_path: Path) -> Path:
    target = tmp_path / "inventory.yaml"
    shutil.copy(demo_inventory_path(), target)
    text = target.read_text(encoding="utf-8")
    assert text.count("  - name: WEB02\n") == 1
    target.write_text(text.replace("  - name: WEB02\n", "  - name: WEB01\n"), encoding="utf-8")
    (tmp_path / "bot.yaml").write_text(
        "inventory: inventory.yaml\nhyperv: {backend: simulator}\n"
        f"database_url: 'sqlite:///{tmp_path / 'bot.db'}'\n",
        encoding="utf-8",
    )
    return target


def test_the_duplicate_name_is_said_before_what_it_breaks(tmp_path: Path) -> None:
    target = _renamed(tmp_path)
    lines = target.read_text(encoding="utf-8").splitlines()
    first = lines.index("  - name: WEB01") + 1
    second = lines.index("  - name: WEB01", first) + 1

    result = invoke(tmp_path, "-c", "bot.yaml", "inventory", "show")

    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    said = [ln for ln in result.stderr.splitlines() if "inventory.yaml:" in ln]
    assert said == [
        f"checkpoint-bot: error: {target}:{second}: vms[12].name: duplicate VM name "
        f"(first defined on line {first})",
        f"  {target}:85: groups.web-tier[1]: unknown VM 'WEB02'; did you mean WEB01?",
    ], result.stderr


def test_problems_of_the_vms_themselves_come_before_the_groups_ones(tmp_path: Path) -> None:
    target = _renamed(tmp_path)
    with pytest.raises(InventoryError) as caught:
        parse_inventory(target.read_text(encoding="utf-8"), "inventory.yaml")
    fields = [p.field for p in caught.value.problems]
    assert fields == ["vms[12].name", "groups.web-tier[1]"]


def test_a_name_carried_twice_is_suggested_once() -> None:
    assert suggest("WEB02", ["WEB01", "APP01", "web01", "WEB01"]) == ["WEB01"]
