"""Slack user groups, from Slack: the `Directory` of a process with a bot token.

One `usergroups.list` call with `include_users=true` answers for every user
(https://api.slack.com/methods/usergroups.list); the answer is kept for
`ttl` seconds, so a burst of clicks costs one call, and a change of
membership counts within a minute. Disabled groups (`date_delete` set)
grant nothing. The cache is bounded (`max_users`): a user beyond it is in
no group, which can only take permissions away.

The lock guards the cache, never the call: a lookup the fresh cache answers
never waits for Slack. When the cache has expired, one lookup asks Slack and
every other that arrives meanwhile waits for that same answer (its success
or its failure) instead of queueing up to ask again, one slow call after
another. An expired answer is never served in place of the new one.

When Slack cannot be asked (unreachable, an error such as `missing_scope`),
the lookup raises `GroupLookupFailed` (the service layer's
`GroupsUnavailable`): the caller decides nothing, rather than deciding as
if the user were in no group and recording a refusal.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # The Slack SDK comes with the client a SlackDirectory is given; the
    # service imports this module on every path, Slack or not.
    from slack_sdk import WebClient

log = logging.getLogger(__name__)


class GroupLookupFailed(Exception):
    """Slack could not say which groups `user` is in (`why`, in words)."""

    def __init__(self, user: str, why: str) -> None:
        super().__init__(f"could not resolve the Slack user groups of {user} ({why})")
        self.user = user
        self.why = why


class _Refresh:
    """One `usergroups.list` call in flight, and what came of it: every
    lookup that needs it waits for `done`."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.members: dict[str, frozenset[str]] | None = None
        self.why = "Slack's answer could not be read"


class SlackDirectory:
    def __init__(
        self,
        client: WebClient,
        ttl: float = 60.0,
        *,
        max_users: int = 100_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client, self.ttl, self.max_users = client, ttl, max_users
        self._monotonic = monotonic
        self._members: dict[str, frozenset[str]] = {}
        self._fetched_at: float | None = None
        self._refresh: _Refresh | None = None
        self._lock = threading.Lock()

    def groups_of(self, user: str, team: str | None) -> frozenset[str]:
        if team is None:
            return frozenset()  # not a Slack user (`cli:NAME`)
        with self._lock:
            now = self._monotonic()
            if self._fetched_at is not None and now - self._fetched_at < self.ttl:
                return self._members.get(user, frozenset())
            refresh, asks = self._refresh, self._refresh is None
            if refresh is None:
                refresh = self._refresh = _Refresh()
        if asks:
            self._ask(refresh, user, now)
        else:
            refresh.done.wait()
        if refresh.members is None:
            # Unknown is not "in no group": nothing that needs groups is decided.
            raise GroupLookupFailed(user, refresh.why)
        return refresh.members.get(user, frozenset())

    def _ask(self, refresh: _Refresh, user: str, started: float) -> None:
        """Ask Slack for `refresh`, outside the lock; whatever happens, the
        lookups waiting for it are released with its outcome."""
        try:
            refresh.members = self._fetch(user)
        except GroupLookupFailed as exc:
            refresh.why = exc.why
        finally:
            with self._lock:
                if refresh.members is not None:
                    self._members, self._fetched_at = refresh.members, started
                self._refresh = None
            refresh.done.set()

    def _fetch(self, user: str) -> dict[str, frozenset[str]]:
        from slack_sdk.errors import SlackApiError, SlackClientError

        try:
            answer = self.client.usergroups_list(include_users=True)
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "error")
            log.warning("usergroups.list failed (%s); deciding nothing that needs groups", error)
            raise GroupLookupFailed(user, f"Slack answered {error}") from None
        except (SlackClientError, OSError) as exc:  # OSError: unreachable after retries
            name = type(exc).__name__
            log.warning("usergroups.list failed (%s); deciding nothing that needs groups", name)
            raise GroupLookupFailed(user, "Slack could not be reached") from None
        found: dict[str, set[str]] = {}
        for group in answer.get("usergroups") or []:
            if group.get("date_delete"):
                continue  # a disabled group grants nothing
            for member in group.get("users") or []:
                if len(found) >= self.max_users and str(member) not in found:
                    continue
                found.setdefault(str(member), set()).add(str(group["id"]))
        return {member: frozenset(ids) for member, ids in found.items()}
