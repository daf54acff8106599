"""The CLI's rough edges (issue #17 item 11): a VM name for `rollback` as
Slack accepts it, `--json` on every command a script reads, and no colour
codes where nobody reads colour. The installed console script in a fresh
working directory (demo mode), as in tests/test_cli.py."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_cli import one_line_error, run


def test_rollback_by_vm_name_rolls_back_its_one_active_change(tmp_path: Path) -> None:
    created = run(tmp_path, "checkpoint", "create", "STG-WEB01", "--reason", "lab patching")
    assert created.returncode == 0, created.stderr
    rolled = run(tmp_path, "checkpoint", "rollback", "STG-WEB01", "--json")
    assert rolled.returncode == 0, rolled.stderr
    change = json.loads(rolled.stdout)
    assert change["ref"] == "CHG-0001" and change["state"] == "rolled_back"


def test_rollback_by_vm_name_without_an_active_change_is_one_line(tmp_path: Path) -> None:
    result = run(tmp_path, "checkpoint", "rollback", "STG-WEB01")
    assert result.returncode == 1
    assert one_line_error(result) == (
        "checkpoint-bot: error: STG-WEB01 has no active change to roll back; nothing was done"
    )
    unknown = run(tmp_path, "checkpoint", "rollback", "WEB1")
    assert unknown.returncode == 2
    assert "no VM named 'WEB1'" in one_line_error(unknown)


def test_rollback_by_vm_name_with_several_active_changes_names_them(tmp_path: Path) -> None:
    for reason in ("first", "second"):
        made = run(tmp_path, "checkpoint", "create", "STG-WEB01", "--reason", reason)
        assert made.returncode == 0, made.stderr
    result = run(tmp_path, "checkpoint", "rollback", "STG-WEB01")
    assert result.returncode == 2
    assert one_line_error(result) == (
        "checkpoint-bot: error: STG-WEB01 has 2 active changes (CHG-0001, CHG-0002): "
        "name the one to roll back, e.g. CHG-0001; nothing was done"
    )
    shown = json.loads(run(tmp_path, "change", "show", "CHG-1", "--json").stdout)
    assert shown["state"] == "active"


def test_db_upgrade_and_policy_validate_print_json(tmp_path: Path) -> None:
    first = run(tmp_path, "db", "upgrade", "--json")
    assert first.returncode == 0, first.stderr
    done = json.loads(first.stdout)
    assert done["changed"] is True and done["before"] is None and done["after"]
    again = json.loads(run(tmp_path, "db", "upgrade", "--json").stdout)
    assert again["changed"] is False and again["before"] == again["after"] == done["after"]
    policy = Path(__file__).parents[1] / "deploy" / "examples" / "demo-policy.yaml"
    checked = run(tmp_path, "policy", "validate", str(policy), "--json")
    assert checked.returncode == 0, checked.stderr
    report = json.loads(checked.stdout)
    assert report["ok"] is True and "app-maintenance" in report["windows"]
    assert "domain_controller" in report["rules"]
