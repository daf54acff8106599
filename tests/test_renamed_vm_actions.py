"""A VM renamed on its host keeps its open changes.

Hyper-V's Rename-VM keeps the VM's Id
(https://learn.microsoft.com/powershell/module/hyper-v/rename-vm), and
`inventory discover --merge` renames its entry (docs/discovery.md, "A VM
renamed on its host"). Seen: after that merge, every action on the VM's
open change (rollback, merge, extend, approve; by the VM's new name, by
CHG-n or by the checkpoint's Id) failed with "no VM named 'WEBB1' in the
inventory" (exit 2), the change's old name looked up in the inventory: the
rollback the checkpoint was taken for could not be run. A change's VM is
its VMId.

The hosts are the WinRM emulator over real HTTP on loopback; the rename is
the host model's own operation, behind the bot's back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV
from tests.cli_support import emulated_estate, invoke

ENV = {EMULATOR_PASSWORD_ENV: "Passw0rd!", "CHECKPOINT_BOT_SOCKET": "off"}
ALICE = {**ENV, "CHECKPOINT_BOT_USER": "alice"}
BOB = {**ENV, "CHECKPOINT_BOT_USER": "bob"}
WEB01_ID = "8b3f6e1a-d9c2-4b07-a6e5-1f4d7c9b2e83"


def _cli(cwd: Path, *args: str, env: dict[str, str] = ALICE) -> Any:
    return invoke(cwd, "-c", "bot.yaml", *args, env=env)


def _state(cwd: Path, ref: str) -> str:
    shown = _cli(cwd, "change", "show", ref, "--json")
    assert shown.returncode == 0, shown.stderr
    state: str = json.loads(shown.stdout)["state"]
    return state


def _create_then_rename(cwd: Path, fleet: Any) -> None:
    made = _cli(cwd, "checkpoint", "create", "WEB01", "-r", "KB5044284")
    assert made.returncode == 0, (made.stdout, made.stderr)
    if _state(cwd, "CHG-1") != "active":
        approved = _cli(cwd, "change", "approve", "CHG-1", env=BOB)
        assert approved.returncode == 0, approved.stderr
    assert _state(cwd, "CHG-1") == "active"
    fleet.host("HV01").rename_vm(WEB01_ID, "WEB01-NEW")
    merged = _cli(cwd, "inventory", "discover", "--merge", "inventory.yaml")
    assert merged.returncode == 0, merged.stderr
    assert "renamed WEB01 → WEB01-NEW" in merged.stdout + merged.stderr


def test_a_rollback_by_the_new_name_is_approved_and_restores_the_renamed_vm(
    tmp_path: Path,
) -> None:
    with emulated_estate(tmp_path, env=ENV) as fleet:
        _create_then_rename(tmp_path, fleet)
        extended = _cli(tmp_path, "checkpoint", "extend", "CHG-1", "24h")
        assert extended.returncode == 0, (extended.stdout, extended.stderr)

        asked = _cli(tmp_path, "checkpoint", "rollback", "WEB01-NEW")
        assert asked.returncode == 0, (asked.stdout, asked.stderr)
        # A production VM's rollback waits for a second person (the shipped
        # policy's approvals rule); the approver's decision asks again.
        assert "WAITING FOR APPROVAL" in asked.stdout, asked.stdout
        approved = _cli(tmp_path, "change", "approve", "CHG-1", env=BOB)
        assert approved.returncode == 0, (approved.stdout, approved.stderr)
        assert _state(tmp_path, "CHG-1") == "rolled_back"
        restores = [e for e in fleet.log.for_host("HV01") if e.cmdlet == "Restore-VMSnapshot"]
        assert len(restores) == 1

        merged = _cli(tmp_path, "checkpoint", "merge", "CHG-1")
        assert merged.returncode == 0, (merged.stdout, merged.stderr)
        assert _state(tmp_path, "CHG-1") in {"merging", "merged"}
        assert not fleet.host("HV01").get_snapshots() or all(
            s.vm_id != WEB01_ID for s in fleet.host("HV01").get_snapshots()
        )


def test_a_change_whose_vm_left_the_inventory_still_says_so(tmp_path: Path) -> None:
    """The VMId gone from the inventory is still told as such, not as a typo."""
    with emulated_estate(tmp_path, env=ENV) as fleet:
        _create_then_rename(tmp_path, fleet)
        inventory = tmp_path / "inventory.yaml"
        text = inventory.read_text(encoding="utf-8")
        assert f"vm_id: {WEB01_ID}" in text
        inventory.write_text(
            text.replace(f"vm_id: {WEB01_ID}", "vm_id: 0b0da45b-0876-42e3-960c-031474b19598"),
            encoding="utf-8",
        )
        refused = _cli(tmp_path, "checkpoint", "rollback", "CHG-1")
        assert refused.returncode == 2
        assert "no longer in the inventory" in refused.stderr, refused.stderr
        assert "no VM named" not in refused.stderr
