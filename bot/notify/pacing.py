"""Per-channel pacing: Slack allows about one message per second per
channel (with short bursts); posting faster earns 429s for everyone."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class ChannelPacer:
    """A token bucket per channel: `burst` posts at once, then `rate` per second."""

    def __init__(
        self,
        rate: float = 1.0,
        burst: int = 4,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate, self.burst = rate, burst
        self._monotonic, self._sleep = monotonic, sleep
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait(self, channel: str) -> float:
        """Block until a post to `channel` is allowed; returns the seconds waited."""
        with self._lock:
            now = self._monotonic()
            tokens, last = self._buckets.get(channel, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            delay = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
            self._buckets[channel] = (tokens + delay * self.rate - 1, now + delay)
        if delay:
            self._sleep(delay)
        return delay
