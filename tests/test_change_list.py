"""`checkpoint-bot change list`: which changes are open, as an operator asks
on the CLI (demo mode, a fresh working directory, the shipped policy: a
rollback of a prod VM waits for one approval)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.store.db import make_engine, session_scope
from bot.store.tables.changes import Change
from tests.cli_support import invoke, one_line_error
from tests.test_ttl_chase import STAGING_AUTO_MERGE


def _create(cwd: Path, vm: str, reason: str) -> str:
    done = invoke(cwd, "checkpoint", "create", vm, "--reason", reason, "--json")
    assert done.returncode == 0, done.stderr
    ref: str = json.loads(done.stdout)["ref"]
    return ref


def _refs(cwd: Path, *args: str) -> list[str]:
    done = invoke(cwd, "change", "list", *args, "--json")
    assert done.returncode == 0, done.stderr
    return [c["ref"] for c in json.loads(done.stdout)["changes"]]


def test_an_empty_record_says_so_and_how_to_see_settled_changes(tmp_path: Path) -> None:
    listed = invoke(tmp_path, "change", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == (
        "No open changes. ('checkpoint-bot change list --all' lists settled ones too.)\n"
    )


def test_open_changes_newest_first_and_what_each_waits_for(tmp_path: Path) -> None:
    merged = _create(tmp_path, "STG-WEB01", "lab patching")
    assert invoke(tmp_path, "checkpoint", "merge", merged).returncode == 0
    active = _create(tmp_path, "APP01", "KB5044284 patch")
    waiting = _create(tmp_path, "WEB01", "IIS upgrade")
    asked = invoke(tmp_path, "checkpoint", "rollback", waiting, input="y\n")
    assert asked.returncode == 0, asked.stderr

    assert _refs(tmp_path) == [waiting, active]  # the merged one is settled
    assert _refs(tmp_path, "--all") == [waiting, active, merged]
    assert _refs(tmp_path, "--state", "merged") == [merged]
    assert _refs(tmp_path, "--state", "merged", "--state", "active") == [waiting, active, merged]
    assert _refs(tmp_path, "--vm", "app01") == [active]
    assert _refs(tmp_path, "--mine") == [waiting, active]
    assert _refs(tmp_path, "--requester", "cli:tester", "--all") == [waiting, active, merged]
    assert _refs(tmp_path, "--requester", "<@U0NOBODY>") == []

    listed = invoke(tmp_path, "change", "list")
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["CHANGE", "STATE", "VM", "HOST", "REQUESTER", "AGE", "REASON"]
    assert lines[1].startswith(f"{waiting} active ") and lines[1].endswith("IIS upgrade")
    assert lines[2].strip() == (
        f"waiting for approval of its rollback: 'checkpoint-bot change approve {waiting}'"
    )
    assert lines[3].startswith(f"{active} active ") and "cli:tester" in lines[3]
    assert len(lines) == 4

    one = invoke(tmp_path, "change", "list", "--limit", "1", "--json")
    report = json.loads(one.stdout)
    assert [c["ref"] for c in report["changes"]] == [waiting] and report["more"] is True
    assert report["changes"][0]["waiting"] == ["rollback"]
    assert "events" not in report["changes"][0]  # `change show --json` has those
    shown = invoke(tmp_path, "change", "list", "--limit", "1").stdout
    assert shown.splitlines()[-1].startswith("Only the newest 1 are shown and more match")


def test_overdue_lists_the_checkpoints_past_their_lifetime_nobody_decided(
    tmp_path: Path,
) -> None:
    """Seen: a manager asked "what expired undecided?" and found no way but
    `--json` and a script; `--state expired` is a job that could not start
    in time, not a lifetime that ran out, and listed nothing."""
    overdue = _create(tmp_path, "STG-WEB01", "lab patching")
    current = _create(tmp_path, "APP01", "KB5044284 patch")
    merged = _create(tmp_path, "STG-APP01", "done with")
    assert invoke(tmp_path, "checkpoint", "merge", merged).returncode == 0
    # Their lifetimes, as time would have run them out: STG-WEB01's and the
    # merged one's ended an hour ago, APP01's has days to go.
    engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'checkpoint-bot.db'}")
    with session_scope(engine) as s:
        for change_id in (1, 3):
            change = s.get(Change, change_id)
            assert change is not None
            change.expires_at = datetime.now(UTC) - timedelta(hours=1)
            s.add(change)
    engine.dispose()
    assert _refs(tmp_path, "--overdue") == [overdue]
    listed_json = json.loads(invoke(tmp_path, "change", "list", "--json").stdout)["changes"]
    assert {c["ref"]: c["overdue"] for c in listed_json} == {overdue: True, current: False}
    assert _refs(tmp_path, "--state", "expired") == []
    listed = invoke(tmp_path, "change", "list").stdout.splitlines()
    at = next(i for i, line in enumerate(listed) if line.startswith(overdue))
    assert listed[at + 1].strip().startswith(
        "overdue: its checkpoint's lifetime ended 1h"
    ) and listed[at + 1].endswith(
        f"nobody decided ('checkpoint-bot checkpoint merge {overdue}', 'rollback' or 'extend')"
    )
    # APP01's lifetime has days to go; the merged one is settled.
    assert sum("overdue:" in line for line in listed) == 1
    assert any(line.startswith(current) for line in listed)


def test_an_overdue_change_whose_rollback_waits_for_an_approver_says_so(
    tmp_path: Path,
) -> None:
    """Seen: "overdue: … nobody decided ('checkpoint-bot checkpoint merge
    CHG-0001', …)" above "waiting for approval of its rollback", and the
    merge it suggested was refused: the rollback asked for waits first."""
    ref = _create(tmp_path, "APP01", "KB5044284 patch")  # prod: its rollback needs approval
    asked = invoke(tmp_path, "checkpoint", "rollback", ref)
    assert asked.returncode == 0, asked.stderr
    engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'checkpoint-bot.db'}")
    with session_scope(engine) as s:
        change = s.get(Change, 1)
        assert change is not None
        change.expires_at = datetime.now(UTC) - timedelta(hours=1)
        s.add(change)
    engine.dispose()
    listed = invoke(tmp_path, "change", "list", "--overdue").stdout.splitlines()
    assert [line.strip() for line in listed[2:]] == [
        "overdue: its checkpoint's lifetime ended 1h ago; what was asked waits for an "
        "approver (below)",
        f"waiting for approval of its rollback: 'checkpoint-bot change approve {ref}'",
    ], listed


def test_an_overdue_change_the_policy_merges_on_its_own_soon_says_so(tmp_path: Path) -> None:
    """Seen: `change list --overdue` told a manager to merge a change whose
    automatic keep & merge (the ttl rule's auto_merge, staging here) was due
    within the minute, and said nothing of it. A change whose automatic
    merge is not coming (prod: none; staging past its grace: the chase has
    asked already) still says nobody decided."""
    (tmp_path / "policy.yaml").write_text(STAGING_AUTO_MERGE, encoding="utf-8")
    inventory = Path(__file__).parents[1] / "deploy/examples/demo-inventory.yaml"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"inventory: {inventory}\npolicy: policy.yaml\nhyperv: {{backend: simulator}}\n"
        f"database_url: 'sqlite:///{tmp_path / 'bot.db'}'\n",
        encoding="utf-8",
    )

    def cli(*args: str) -> str:
        done = invoke(tmp_path, "--config", str(config), *args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    cli("db", "upgrade")
    for vm in ("STG-WEB01", "APP01", "STG-APP01"):
        cli("checkpoint", "create", vm, "-r", "patch")
    now = datetime.now(UTC)
    ended = {1: timedelta(minutes=29), 2: timedelta(hours=1), 3: timedelta(hours=2)}
    engine = make_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    with session_scope(engine) as s:
        for change_id, ago in ended.items():
            change = s.get(Change, change_id)
            assert change is not None
            change.expires_at = now - ago
            s.add(change)
    engine.dispose()
    listed = cli("change", "list", "--overdue").splitlines()
    said = {line.split()[0]: listed[i + 1].strip() for i, line in enumerate(listed[1:], 1)
            if line.startswith("CHG-")}  # fmt: skip
    assert said["CHG-0001"].startswith("overdue: its checkpoint's lifetime ended 29m ago; it is ")
    assert said["CHG-0001"].endswith(
        "unless someone decides first ('checkpoint-bot checkpoint merge CHG-0001' now, "
        "'rollback' or 'extend')"
    )
    assert "kept & merged automatically in " in said["CHG-0001"]
    for ref in ("CHG-0002", "CHG-0003"):
        assert said[ref].endswith(
            f"nobody decided ('checkpoint-bot checkpoint merge {ref}', 'rollback' or 'extend')"
        ), said[ref]
    rows = {
        c["ref"]: c for c in json.loads(cli("change", "list", "--overdue", "--json"))["changes"]
    }
    due = datetime.fromisoformat(rows["CHG-0001"]["auto_merge_at"])
    assert now < due <= now + timedelta(minutes=1, seconds=5)
    assert rows["CHG-0002"]["auto_merge_at"] is None and rows["CHG-0003"]["auto_merge_at"] is None


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--state", "bogus"), "Invalid value for '--state': 'bogus' is not one of"),
        (("--mine", "--requester", "U0ALICE"), "--mine and --requester both name a requester"),
        (("--all", "--state", "active"), "--all and --state both say which states"),
        (("--limit", "0"), "--limit must be at least 1"),
        (("--vm", " "), "--vm is empty"),
        (("--requester", "two words"), "--requester 'two words' is not a requester"),
    ],
)
def test_bad_filters_are_one_line(tmp_path: Path, args: tuple[str, ...], said: str) -> None:
    result = invoke(tmp_path, "change", "list", *args)
    assert result.returncode == 2
    assert said in one_line_error(result)
