"""Keep App Homes current: when a change's thread is synced, the Home of
everyone the change concerns is published again (views.publish,
https://api.slack.com/methods/views.publish), so nobody sees "Your open
changes (0)" after a create, or an approval that someone else already gave.

Who: the users `bot.service.lookups.concerned` names (requester, approvers
the policy lists, admins, everyone who acted), and whoever opened their Home
recently (a member of an approver group, whom the policy does not list).

Paced: changes that arrive together are folded into one round, each user
is published at most once per round, and at most `per_second` publishes
go out per second (views.publish is a Tier 4 method; a Home is one call).

From other processes: a change whose job ran in a `checkpoint-bot worker`
(behind `serve --no-worker`) is synced there, where no Slack app renders
Homes; the worker records it (bot/notify/homes.py), and `tick`, run on
every tick of each serving process, claims those records and publishes
their Homes the same way (docs/operations.md, "App Homes across processes").
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import datetime

from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

from bot.service import (
    Forbidden,
    Unavailable,
    claim_stale_homes,
    lookups,
    stale_homes_published,
)
from handlers.deps import SlackDeps

log = logging.getLogger(__name__)

# Users whose Home was opened lately, remembered per process (bounded).
_VIEWERS_REMEMBERED = 500


class HomeRefresher:
    name = "app-homes"

    def __init__(
        self,
        deps: SlackDeps,
        client: WebClient,
        publish: Callable[[str, WebClient], None],
        *,
        per_second: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.deps, self.client, self.publish = deps, client, publish
        self.per_second, self._sleep = per_second, sleep
        self._viewers: OrderedDict[str, None] = OrderedDict()
        self._due: set[int] = set()
        self._scheduled = False
        self._lock = threading.Lock()
        # Who holds a claim on records other processes left (bot/notify/homes.py).
        self.owner = f"homes-{uuid.uuid4().hex[:12]}"

    def opened(self, user: str) -> None:
        """`user` looked at their Home: keep it current from now on."""
        with self._lock:
            self._viewers[user] = None
            self._viewers.move_to_end(user)
            while len(self._viewers) > _VIEWERS_REMEMBERED:
                self._viewers.popitem(last=False)

    def changed(self, change_id: int) -> None:
        """A change's record moved (the notifier synced it): refresh soon,
        off the notifier's worker so thread posts never wait for Homes."""
        with self._lock:
            self._due.add(change_id)
            if self._scheduled:
                return
            self._scheduled = True
        self.deps.later("refreshing App Homes", self._round)

    def tick(self, now: datetime) -> None:
        """Publish the Homes of changes that moved in a process with no
        Slack app (a worker): claimed, so each is published by one serving
        process; the claim is released only once the round is over."""
        claim = claim_stale_homes(self.deps.ctx, self.owner)
        if not claim:
            return
        self._publish_for(claim.change_ids)
        stale_homes_published(self.deps.ctx, claim)

    def _round(self) -> None:
        with self._lock:
            due, self._due = self._due, set()
            self._scheduled = False
        self._publish_for(sorted(due))

    def _publish_for(self, change_ids: Iterable[int]) -> None:
        with self._lock:
            viewers = list(self._viewers)
        users: dict[str, None] = {}
        for change_id in change_ids:
            users.update(dict.fromkeys(lookups.concerned(self.deps.ctx, change_id)))
        users.update(dict.fromkeys(viewers))
        for user in users:
            self._publish_one(user)
            self._sleep(1.0 / self.per_second)

    def _publish_one(self, user: str) -> None:
        try:
            self.publish(user, self.client)
        except (Forbidden, Unavailable) as exc:
            log.info("App Home of %s not refreshed: %s", user, exc)
        except SlackClientError:
            log.warning("could not refresh the App Home of %s", user, exc_info=True)
        except OSError as exc:
            # slack_sdk lets a connection failure through as urllib's URLError:
            # Slack did not answer; the next change re-publishes this Home.
            log.warning(
                "could not refresh the App Home of %s: Slack did not answer (%s)", user, exc
            )
