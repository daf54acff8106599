"""Who is in which Slack user group: the one lookup every check uses.

A policy may grant a permission, or the right to approve, to the members of
a Slack user group (`S0APPROVERS`). Membership changes, so it is resolved
when a request is made and resolved again, the same way, at every later
check: when an approval completes and right before a job runs. A person
captured without their groups would lose every permission they hold only
through a group at the second check, and be told "may not".

When Slack cannot be asked, nothing is decided: `GroupsUnavailable` is an
`Unavailable` (a transient fault, try again), never a policy refusal. When
the policy names no group at all, nobody's groups can matter and Slack is
not asked (`PolicyGroups`).

    Directory (protocol)  groups_of(user, team) -> frozenset of group ids
    ├── NoDirectory        no Slack here: CLI operators are in no group; a
    │                      Slack user's groups cannot be known → unavailable
    ├── PolicyGroups       asks the directory it wraps only if the policy
    │                      names a group; translates its failures
    └── bot.notify.groups.SlackDirectory   `usergroups.list`, cached, bounded
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bot.domain import user_mention
from bot.notify.groups import GroupLookupFailed, SlackDirectory
from bot.service.errors import Unavailable

if TYPE_CHECKING:
    from slack_sdk import WebClient

    # A process without Slack builds a `NoDirectory` and never loads the
    # policy package for it (bot.context `_Parts`).
    from policies import Policy


class GroupsUnavailable(Unavailable):
    """A user's Slack user groups could not be resolved: nothing was decided."""

    names_people = True  # whose groups

    def __init__(self, user: str, why: str, *, transient: bool = True) -> None:
        then = ", try again in a minute" if transient else ""
        super().__init__(
            f"could not resolve the Slack user groups of {user_mention(user)} ({why}); nothing was "
            f"decided or changed{then}"
        )
        self.user = user
        self.why = why


class Directory(Protocol):
    def groups_of(self, user: str, team: str | None) -> frozenset[str]:
        """The group ids `user` of workspace `team` is in now (`team` None:
        not a Slack user, e.g. `cli:NAME`). Raises `GroupsUnavailable`."""
        ...


class NoDirectory:
    """No Slack in this process (a CLI without a bot token)."""

    def groups_of(self, user: str, team: str | None) -> frozenset[str]:
        if team is None:
            return frozenset()
        raise GroupsUnavailable(
            user,
            "no Slack bot token is configured in this process to ask Slack; "
            "set it (slack.bot_token) or act from Slack",
            transient=False,
        )


def names_groups(policy: Policy) -> bool:
    """Does any part of `policy` grant something to a Slack user group?"""
    from policies import Permission

    if policy.admins.groups:
        return True
    if any(policy.permission(p).groups for p in Permission):
        return True
    for rule in policy.rules.values():
        if getattr(rule.params, "groups", None):
            return True
        if any(o.params.get("groups") for o in rule.overrides):
            return True
    return False


@dataclass
class PolicyGroups:
    """`inner`'s answer where groups can matter; no groups (and no call to
    Slack) where the policy names none."""

    inner: Directory
    policy: Policy

    def __post_init__(self) -> None:
        self._matter = names_groups(self.policy)

    def groups_of(self, user: str, team: str | None) -> frozenset[str]:
        if not self._matter or team is None:
            return frozenset()
        try:
            return self.inner.groups_of(user, team)
        except GroupLookupFailed as exc:
            raise GroupsUnavailable(exc.user, exc.why) from None


def with_slack(current: Directory, client: WebClient) -> Directory:
    """`current`, or, when it has no bot token to ask Slack with, the same
    over `client` (the Slack app's): the first check (in the Slack
    handlers) and the re-checks (on approval, in jobs) must ask the same way."""
    if isinstance(current, PolicyGroups) and isinstance(current.inner, NoDirectory):
        return PolicyGroups(SlackDirectory(client), current.policy)
    return current
