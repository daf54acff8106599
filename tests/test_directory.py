"""The Slack user-group directory over real HTTP to the local Web API
recorder: one `usergroups.list` per minute, disabled groups grant nothing,
a bounded cache, and a lookup Slack cannot answer raises instead of
answering "no groups" (which would be recorded as a refusal)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient

from bot.notify.groups import SlackDirectory
from bot.service.directory import GroupsUnavailable, NoDirectory, PolicyGroups, names_groups
from bot.service.errors import Unavailable
from policies import Policy, load_policy
from tests.slack_support import FakeSlackApi

GROUPS: list[dict[str, Any]] = [
    {"id": "S0APPROVERS", "users": ["U0BOB", "U0ERIN"]},
    {"id": "S0GONE", "users": ["U0BOB"], "date_delete": 1700000000},
]
TEAM = "T0TEST"


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _client(api: FakeSlackApi) -> WebClient:
    return WebClient(token="xoxb-test", base_url=api.api_url)


def test_groups_are_cached_for_a_minute_and_disabled_ones_grant_nothing() -> None:
    ticks = Ticks()
    with FakeSlackApi(usergroups=GROUPS) as api:
        directory = SlackDirectory(_client(api), monotonic=ticks)
        assert directory.groups_of("U0BOB", TEAM) == frozenset({"S0APPROVERS"})
        assert directory.groups_of("U0ALICE", TEAM) == frozenset()
        assert len(api.of("usergroups.list")) == 1
        ticks.now = 61
        assert directory.groups_of("U0ERIN", TEAM) == frozenset({"S0APPROVERS"})
        assert len(api.of("usergroups.list")) == 2
        assert api.of("usergroups.list")[0].body["include_users"] in ("true", "1", True)
        # A CLI operator is in no Slack group, and Slack is not asked.
        assert directory.groups_of("cli:alice", None) == frozenset()
        assert len(api.of("usergroups.list")) == 2


def test_the_cache_is_bounded() -> None:
    many = [{"id": "S0BIG", "users": [f"U{n:05d}" for n in range(50)]}]
    with FakeSlackApi(usergroups=many) as api:
        directory = SlackDirectory(_client(api), max_users=10)
        assert directory.groups_of("U00009", TEAM) == frozenset({"S0BIG"})
        assert directory.groups_of("U00010", TEAM) == frozenset()  # beyond the bound: none


def _grouped(tmp_path: Path) -> Policy:
    policy = tmp_path / "policy.yaml"
    policy.write_text("permissions:\n  approve: {users: [], groups: [S0APPROVERS]}\n", "utf-8")
    return load_policy(policy)


@pytest.mark.parametrize("error", ["missing_scope", "ratelimited"])
def test_an_error_from_slack_is_unavailable_not_no_groups(error: str, tmp_path: Path) -> None:
    with FakeSlackApi(usergroups=GROUPS) as api:
        api.failing["usergroups.list"] = error
        directory = PolicyGroups(SlackDirectory(_client(api)), _grouped(tmp_path))
        with pytest.raises(GroupsUnavailable, match=f"could not resolve .* of <@U0BOB> .*{error}"):
            directory.groups_of("U0BOB", TEAM)


def test_slack_out_of_reach_is_unavailable(tmp_path: Path) -> None:
    client = WebClient(token="xoxb-test", base_url="http://127.0.0.1:9/api/", timeout=1)
    directory = PolicyGroups(SlackDirectory(client), _grouped(tmp_path))
    with pytest.raises(GroupsUnavailable, match="try again in a minute") as caught:
        directory.groups_of("U0BOB", TEAM)
    assert isinstance(caught.value, Unavailable)  # a transient fault, never a refusal


def test_no_directory_knows_cli_operators_only() -> None:
    assert NoDirectory().groups_of("cli:alice", None) == frozenset()
    with pytest.raises(GroupsUnavailable, match="no Slack bot token"):
        NoDirectory().groups_of("U0BOB", TEAM)


def test_slack_is_asked_only_when_the_policy_names_a_group(tmp_path: Path) -> None:
    shipped = load_policy()
    assert not names_groups(shipped)
    with FakeSlackApi(usergroups=GROUPS) as api:
        api.failing["usergroups.list"] = "ratelimited"
        quiet = PolicyGroups(SlackDirectory(_client(api)), shipped)
        assert quiet.groups_of("U0BOB", TEAM) == frozenset()
        assert api.of("usergroups.list") == []

    grouped = tmp_path / "policy.yaml"
    grouped.write_text(
        "rules:\n  approvals:\n    params: {groups: [S0APPROVERS]}\n", encoding="utf-8"
    )
    assert names_groups(load_policy(grouped))
    override = tmp_path / "override.yaml"
    override.write_text(
        "rules:\n  approvals:\n    overrides:\n"
        "      - scope: {tags: {env: prod}}\n        params: {groups: [S0DBA]}\n",
        encoding="utf-8",
    )
    assert names_groups(load_policy(override))
    admins = tmp_path / "admins.yaml"
    admins.write_text("admins: {groups: [S0ADMINS]}\n", encoding="utf-8")
    assert names_groups(load_policy(admins))
