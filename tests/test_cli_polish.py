"""The CLI's rough edges (issue #17 item 11): a VM name for `rollback` as
Slack accepts it, `--json` on every command a script reads, and no colour
codes where nobody reads colour. In this process as in tests/test_cli.py
(demo mode, a fresh working directory); colour on a terminal needs the
installed console script with a pseudo-terminal, a process of its own."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path

import click
import pytest

from bot.cli.main import cli
from tests.cli_support import BOT, invoke, one_line_error

ESC = "\x1b["


def test_rollback_by_vm_name_rolls_back_its_one_active_change(tmp_path: Path) -> None:
    created = invoke(tmp_path, "checkpoint", "create", "STG-WEB01", "--reason", "lab patching")
    assert created.returncode == 0, created.stderr
    rolled = invoke(tmp_path, "checkpoint", "rollback", "STG-WEB01", "--json")
    assert rolled.returncode == 0, rolled.stderr
    change = json.loads(rolled.stdout)
    assert change["ref"] == "CHG-0001" and change["state"] == "rolled_back"


def test_rollback_by_vm_name_without_an_active_change_is_one_line(tmp_path: Path) -> None:
    result = invoke(tmp_path, "checkpoint", "rollback", "STG-WEB01")
    assert result.returncode == 1
    assert one_line_error(result) == (
        "checkpoint-bot: error: STG-WEB01 has no active change to roll back; nothing was done"
    )
    unknown = invoke(tmp_path, "checkpoint", "rollback", "WEB1")
    assert unknown.returncode == 2
    assert "no VM named 'WEB1'" in one_line_error(unknown)


def test_rollback_by_vm_name_with_several_active_changes_names_them(tmp_path: Path) -> None:
    for reason in ("first", "second"):
        made = invoke(tmp_path, "checkpoint", "create", "STG-WEB01", "--reason", reason)
        assert made.returncode == 0, made.stderr
    result = invoke(tmp_path, "checkpoint", "rollback", "STG-WEB01")
    assert result.returncode == 2
    assert one_line_error(result) == (
        "checkpoint-bot: error: STG-WEB01 has 2 active changes (CHG-0001, CHG-0002): "
        "name the one to roll back, e.g. CHG-0001; nothing was done"
    )
    shown = json.loads(invoke(tmp_path, "change", "show", "CHG-1", "--json").stdout)
    assert shown["state"] == "active"


def test_extend_and_merge_by_vm_name_act_on_its_one_change_they_fit(tmp_path: Path) -> None:
    """The day's flow by the VM's name alone: take it, give it longer, roll it
    back, keep it. A merge also fits a rolled-back change (it keeps what the
    rollback restored); an extension only an active one."""
    assert invoke(tmp_path, "checkpoint", "create", "STG-WEB01", "-r", "patch").returncode == 0
    extended = invoke(tmp_path, "checkpoint", "extend", "stg-web01", "1h", "--json")
    assert extended.returncode == 0, extended.stderr
    assert json.loads(extended.stdout)["ref"] == "CHG-0001"
    rolled = invoke(tmp_path, "checkpoint", "rollback", "STG-WEB01")
    assert rolled.returncode == 0, rolled.stderr
    # The bot started it again (it was running): said where the state is.
    assert "  VM:         STG-WEB01 is Running after the rollback\n" in rolled.stdout
    not_active = invoke(tmp_path, "checkpoint", "extend", "STG-WEB01", "1h")
    assert not_active.returncode == 1
    assert one_line_error(not_active) == (
        "checkpoint-bot: error: STG-WEB01 has no active change to extend; nothing was done"
    )
    merged = invoke(tmp_path, "checkpoint", "merge", "STG-WEB01", "--json")
    assert merged.returncode == 0, merged.stderr
    change = json.loads(merged.stdout)
    assert (change["ref"], change["state"]) == ("CHG-0001", "merged")
    nothing = invoke(tmp_path, "checkpoint", "merge", "STG-WEB01")
    assert nothing.returncode == 1
    assert one_line_error(nothing) == (
        "checkpoint-bot: error: STG-WEB01 has no active or rolled back change to merge; "
        "nothing was done"
    )
    for reason in ("first", "second"):
        assert invoke(tmp_path, "checkpoint", "create", "STG-WEB01", "-r", reason).returncode == 0
    several = invoke(tmp_path, "checkpoint", "merge", "STG-WEB01")
    assert several.returncode == 2
    assert one_line_error(several) == (
        "checkpoint-bot: error: STG-WEB01 has 2 active or rolled back changes (CHG-0002, "
        "CHG-0003): name the one to merge, e.g. CHG-0002; nothing was done"
    )


def test_db_upgrade_and_policy_validate_print_json(tmp_path: Path) -> None:
    first = invoke(tmp_path, "db", "upgrade", "--json")
    assert first.returncode == 0, first.stderr
    done = json.loads(first.stdout)
    assert done["changed"] is True and done["before"] is None and done["after"]
    again = json.loads(invoke(tmp_path, "db", "upgrade", "--json").stdout)
    assert again["changed"] is False and again["before"] == again["after"] == done["after"]
    policy = Path(__file__).parents[1] / "deploy" / "examples" / "demo-policy.yaml"
    checked = invoke(tmp_path, "policy", "validate", str(policy), "--json")
    assert checked.returncode == 0, checked.stderr
    report = json.loads(checked.stdout)
    assert report["ok"] is True and "app-maintenance" in report["windows"]
    assert "domain_controller" in report["rules"]


def _on_a_terminal(cwd: Path, *args: str, env: dict[str, str]) -> str:
    """What the CLI writes to a terminal (a pseudo-terminal as stdout and stderr)."""
    leader, follower = pty.openpty()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKPOINT_BOT")}
    full_env.pop("NO_COLOR", None)
    full_env |= {"CHECKPOINT_BOT_USER": "tester", "TERM": "xterm"} | env
    proc = subprocess.Popen(
        [str(BOT), *args], cwd=cwd, env=full_env, stdout=follower, stderr=follower
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the command ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=120)
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


def test_colour_on_a_terminal_only_and_never_with_no_color(tmp_path: Path) -> None:
    args = ("checkpoint", "create", "CORP-DC01", "--reason", "colour check")
    coloured = _on_a_terminal(tmp_path, *args, env={})
    assert ESC in coloured and "REFUSED" in coloured
    plain = _on_a_terminal(tmp_path, *args, env={"NO_COLOR": "1"})
    assert ESC not in plain and "REFUSED" in plain
    assert ESC not in _on_a_terminal(tmp_path, *args, env={"TERM": "dumb"})
    # An empty NO_COLOR does not count (https://no-color.org).
    assert ESC in _on_a_terminal(tmp_path, *args, env={"NO_COLOR": ""})
    error = _on_a_terminal(tmp_path, "change", "show", "CHG-77", env={"NO_COLOR": "1"})
    assert error.strip().endswith(
        "checkpoint-bot: error: no change CHG-0077: the newest is CHG-0004"
    )


def test_redirected_output_has_no_escape_codes(tmp_path: Path) -> None:
    for args in (
        ("checkpoint", "create", "CORP-DC01", "--reason", "into a file"),
        ("policy", "explain", "WEB01"),
        ("change", "show", "CHG-1"),
        ("change", "show", "CHG-77"),
    ):
        result = invoke(tmp_path, *args)
        assert ESC not in result.stdout + result.stderr, args


# Long-running services print logs, not results; `audit export` writes its
# own machine formats (`--format jsonl|csv`).
NO_JSON = {"serve", "worker", "demo", "emulator", "audit export"}


def test_every_command_that_prints_a_result_has_json() -> None:
    def leaves(group: click.Group, prefix: str) -> list[tuple[str, click.Command]]:
        found: list[tuple[str, click.Command]] = []
        ctx = click.Context(group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None
            path = f"{prefix} {name}".strip()
            if isinstance(command, click.Group):
                found += leaves(command, path)
            else:
                found.append((path, command))
        return found

    commands = leaves(cli, "")
    assert len(commands) > 20
    missing = [
        path
        for path, command in commands
        if path not in NO_JSON and not any("--json" in p.opts for p in command.params)
    ]
    assert missing == []


@pytest.mark.parametrize(
    "words",
    [("SQL01", "rollback"), ("rollback", "SQL01"), ("SQL01", "--action", "rollback")],
)
def test_policy_explain_takes_the_action_after_the_vm_as_slack_does(
    tmp_path: Path, words: tuple[str, ...]
) -> None:
    explained = invoke(tmp_path, "policy", "explain", *words, "--json")
    assert explained.returncode == 0, explained.stderr
    said = json.loads(explained.stdout)
    assert (said["action"], said["vm"]) == ("rollback", "SQL01")
    # The same decision as a rollback asked for by option: its own rules.
    create = json.loads(invoke(tmp_path, "policy", "explain", "SQL01", "--json").stdout)
    assert create["action"] == "create" and said["rules"] != create["rules"]


@pytest.mark.parametrize(
    ("words", "said"),
    [
        ((), "name the VM (and the action, if not create)"),
        (("SQL01", "WEB01"), "name one VM and at most one action"),
        (("rollback", "merge", "SQL01"), "name one VM and at most one action"),
        (("SQL01", "rollback", "--action", "merge"), "two actions: rollback and --action merge"),
    ],
)
def test_policy_explain_names_what_it_could_not_read(
    tmp_path: Path, words: tuple[str, ...], said: str
) -> None:
    result = invoke(tmp_path, "policy", "explain", *words)
    assert result.returncode == 2
    assert said in one_line_error(result)


def test_people_are_named_as_words_never_as_slack_tokens(tmp_path: Path) -> None:
    """The demo policy names its approvers by Slack ids (a user and a user
    group): Slack shows `<@U0CAROL>` as a name, a terminal would show the
    token. Results, waiting lines, explanations and errors read @U0CAROL."""
    policy = Path(__file__).parents[1] / "deploy" / "examples" / "demo-policy.yaml"
    inventory = Path(__file__).parents[1] / "deploy" / "examples" / "demo-inventory.yaml"
    config = tmp_path / "bot.yaml"
    config.write_text(
        f"inventory: {inventory}\npolicy: {policy}\ndatabase_url: sqlite:///{tmp_path / 'b.db'}\n"
        "hyperv: {backend: simulator}\n",
        encoding="utf-8",
    )
    assert invoke(tmp_path, "-c", str(config), "db", "upgrade").returncode == 0
    runs = [
        invoke(tmp_path, "-c", str(config), "checkpoint", "create", "WEB01", "-r", "KB5044284"),
        invoke(tmp_path, "-c", str(config), "policy", "explain", "WEB01", "--user", "U0ALICE"),
        invoke(tmp_path, "-c", str(config), "change", "show", "CHG-1"),
        invoke(tmp_path, "-c", str(config), "change", "approve", "CHG-1"),  # the requester
        invoke(
            tmp_path, "-c", str(config), "change", "approve", "CHG-1",
            env={"CHECKPOINT_BOT_USER": "dave"},
        ),
    ]  # fmt: skip
    said = "".join(r.stdout + r.stderr for r in runs)
    assert "needs 1 approval from @U0CAROL or a member of @S0APPROVERS" in said
    assert "@U0ALICE may request" in said
    assert runs[4].returncode == 1 and "@cli:dave may not approve this" in runs[4].stderr
    for token in ("<@", "<!subteam^", "<#"):
        assert token not in said
