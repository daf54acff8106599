"""Delivery discipline: drop Slack's retries, and replays, of what was
already handled. (Which Slack user groups a user is in: `bot.notify.groups`.)

Slack retries an Events API delivery it thinks failed (immediately, after a
minute, after five) with `X-Slack-Retry-Num`; Socket Mode carries the same
as the envelope's `retry_attempt`, which Bolt mirrors into that header. A
retry of a delivery this process already handled is acknowledged and
dropped, so an App Home publish or any event-driven effect happens once.

A signed request stays valid for five minutes, so anyone who captures one
can send it again, byte for byte, to any replica: a slash command would
then make a second change. With `durable` keys (in the database, shared by
the replicas: `bot.store.deliveries`) any repeated delivery is dropped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from slack_bolt.middleware import Middleware
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse
from sqlalchemy.exc import SQLAlchemyError

from handlers import messages

log = logging.getLogger(__name__)

RETRY_HEADER = "x-slack-retry-num"


class SeenDeliveries:
    """Delivery keys seen in the last `ttl` seconds, at most `size` of them.
    Slack's last retry comes about five minutes after the first delivery."""

    def __init__(
        self,
        ttl: float = 900.0,
        size: int = 10_000,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl, self.size = ttl, size
        self._monotonic = monotonic
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, key: str) -> bool:
        """Remember `key`; False if it was already there (and still fresh)."""
        now = self._monotonic()
        with self._lock:
            while self._seen and (
                len(self._seen) >= self.size or next(iter(self._seen.values())) < now - self.ttl
            ):
                self._seen.popitem(last=False)
            if key in self._seen:
                return False
            self._seen[key] = now
            return True


def delivery_key(req: BoltRequest) -> str:
    """The Events API's event_id; otherwise a digest of the payload (a retry
    carries the same body byte for byte)."""
    body = req.body or {}
    event_id = body.get("event_id")
    if isinstance(event_id, str) and event_id:
        return event_id
    raw = req.raw_body or json.dumps(body, sort_keys=True)
    return "sha256:" + hashlib.sha256(raw.encode()).hexdigest()[:32]


class DurableKeys(Protocol):
    def first(self, key: str) -> bool: ...


class DropRetries(Middleware):
    """Ack and drop a retried delivery whose first attempt was handled here;
    with `durable` keys, any delivery already taken by any replica."""

    def __init__(
        self, seen: SeenDeliveries | None = None, durable: DurableKeys | None = None
    ) -> None:
        self.seen = seen or SeenDeliveries()
        self.durable = durable

    def process(
        self,
        *,
        req: BoltRequest,
        resp: BoltResponse,
        next: Callable[[], BoltResponse],  # Bolt passes it by this name
    ) -> BoltResponse | None:
        key = delivery_key(req)
        first = self.seen.add(key)
        attempt = next_header(req, RETRY_HEADER)
        if attempt is not None and not first:
            log.info(messages.log_retry_dropped(key, attempt))
            return BoltResponse(status=200, body="")
        if self.durable is not None and not self._durably_first(key):
            log.warning(messages.log_replay_dropped(key))
            return BoltResponse(status=200, body="")
        return next()

    def _durably_first(self, key: str) -> bool:
        assert self.durable is not None
        try:
            return self.durable.first(key)
        except (SQLAlchemyError, TimeoutError) as exc:
            # The database is down: nothing can be recorded either, so the
            # request goes on and its listener says what is unavailable.
            log.warning(messages.log_replay_check_failed(type(exc).__name__))
            return True


def next_header(req: BoltRequest, name: str) -> str | None:
    values = req.headers.get(name) or []
    return values[0] if values else None
