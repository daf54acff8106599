"""A policy whose approvals rule names an approver that `permissions.approve`
does not let approve (2026-12-06: only a lint warning). At approval time
that approver is refused ("you cannot approve CHG-n: … may not approve"),
so a request only they could approve waited for ever, its requester told
only "needs 1 approval from @cli:bob". Now the answer to the request says
it, naming the approver as the rest of the bot does (Slack's mention token
in Slack), and that it can never be approved as the policy stands; the
request still waits, and is approvable once an admin fixes the policy.

The CLI runs over the WinRM emulator (tests/cli_support.py), Slack as
signed requests into the running bot (tests/slack_support.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.devtools.emulator import EmulatedFleet
from bot.service import show_change
from policies.access import refused_approvers
from policies.config import parse_policy
from policies.model import ApprovalRequirement
from tests.cli_support import CliResult, emulated_estate, invoke
from tests.test_approval_dm_settled import _ask
from tests.test_approve_exit_codes import ALICE, BOB, ENV
from tests.test_slack_flow import checked_bot, command, shown

CAROL = {**ENV, "CHECKPOINT_BOT_USER": "carol"}
# A prod create needs Bob (the CLI's bob), whom the approve permission
# leaves out.
CLI_POLICY = """
permissions:
  approve: {users: ["cli:carol"], groups: [], channels: [], cli: true}
rules:
  approvals:
    overrides:
      - scope: {tags: {env: prod}}
        params: {count: 1, users: ["cli:bob"], actions: [create]}
"""
SLACK_POLICY = """
permissions:
  approve: {users: [U0CAROL], groups: [], channels: [], cli: true}
rules:
  approvals:
    overrides:
      - scope: {tags: {env: prod}}
        params: {count: 1, users: [U0BOB], actions: [create]}
"""
NEVER = "this can never be approved as the policy stands"


@pytest.fixture
def estate(tmp_path: Path) -> Iterator[tuple[Path, EmulatedFleet]]:
    (tmp_path / "policy.yaml").write_text(CLI_POLICY, encoding="utf-8")
    with emulated_estate(tmp_path, extra="policy: policy.yaml\n", env=ENV) as fleet:
        yield tmp_path, fleet


def _cli(cwd: Path, env: dict[str, str], *args: str) -> CliResult:
    return invoke(cwd, "-c", "bot.yaml", *args, env=env)


def test_the_cli_requester_is_told_their_request_can_never_be_approved(
    estate: tuple[Path, EmulatedFleet],
) -> None:
    cwd, _fleet = estate
    asked = _cli(cwd, ALICE, "checkpoint", "create", "WEB01", "-r", "patch")
    assert "WAITING FOR APPROVAL" in asked.stdout, asked.stdout + asked.stderr
    assert (
        f"! approvals: {NEVER}: @cli:bob is named to approve, but permissions.approve does not "
        "let them approve: their approval would be refused, and no one else may give the 1 "
        "approval it needs"
    ) in asked.stdout, asked.stdout

    # What it warned of: Bob's approval is refused, nothing changes.
    refused = _cli(cwd, BOB, "change", "approve", "CHG-1")
    assert refused.returncode != 0
    assert "you cannot approve CHG-0001" in refused.stderr, refused.stderr
    assert "WAITING FOR APPROVAL" not in _cli(cwd, ALICE, "change", "show", "CHG-1").stdout


def test_the_slack_requester_is_told_with_the_approvers_mention(tmp_path: Path) -> None:
    with checked_bot(tmp_path, SLACK_POLICY) as bot:
        answer = shown(command(bot, "create WEB01 --reason KB5044284"))
        assert NEVER in answer, answer
        assert "<@U0BOB> is named to approve, but permissions.approve" in answer, answer
        ref = _ask(bot, "create STG-WEB01 --reason other")  # not prod: no approval
        assert show_change(bot.ctx, ref).state != "awaiting_approval"
        told = shown(command(bot, "approve CHG-1", user="U0BOB"))
        assert "cannot approve" in told, told


@pytest.mark.parametrize(
    ("permission", "users", "groups", "expected"),
    [
        # Bob alone is named and may not: never.
        ('{users: ["cli:carol"]}', ["cli:bob"], [], (("cli:bob",), True)),
        # Carol may: Bob is refused, the request is still approvable.
        ('{users: ["cli:carol"]}', ["cli:bob", "cli:carol"], [], (("cli:bob",), False)),
        # A Slack user may be in an allowed group: not known, never said.
        ("{users: [], groups: [S0OPS]}", ["U0BOB"], [], ((), False)),
        # A CLI operator is in no Slack group: known.
        ("{users: [], groups: [S0OPS]}", ["cli:bob"], [], (("cli:bob",), True)),
        # A named group's members are Slack's to say: refused, never not said.
        ('{users: ["cli:carol"]}', ["cli:bob"], ["S0OPS"], (("cli:bob",), False)),
        # The CLI refused: a cli: approver never may, even listed.
        ('{users: ["cli:bob"], cli: false}', ["cli:bob"], [], (("cli:bob",), True)),
        # Anyone may approve.
        ('{users: ["*"]}', ["cli:bob"], [], ((), False)),
    ],
)
def test_which_named_approvers_can_never_approve(
    permission: str, users: list[str], groups: list[str], expected: tuple[tuple[str, ...], bool]
) -> None:
    policy = parse_policy(f"permissions:\n  approve: {permission}\n")
    requirement = ApprovalRequirement(1, tuple(users), tuple(groups), excluded=("cli:alice",))
    assert refused_approvers(policy, requirement) == expected
