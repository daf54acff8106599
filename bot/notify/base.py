"""What the service and the jobs call after a change moved."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class ChangeNotifier(Protocol):
    def changed(self, change_id: int) -> None:
        """Bring every view of the change up to date. Never raises: telling
        people must not undo or block the change itself."""
        ...

    def progress(self, job_id: int, message: str) -> None:
        """Show how long host work is going (one reply, updated in place).
        Never raises, never blocks the job."""
        ...

    def listen(self, listener: Callable[[int], None]) -> None:
        """Call `listener(change_id)` after the views of a change were
        brought up to date (the App Homes follow the thread)."""
        ...

    def start_draining(self, interval: float) -> None:
        """Post, every `interval` seconds, what the Slack outbox holds
        (left by this process or any other). Idempotent."""
        ...

    def close(self) -> None:
        """Finish what is queued (bounded); called when the process stops."""
        ...


class NullNotifier:
    """No Slack configured (the CLI on its own): nothing to tell."""

    def changed(self, change_id: int) -> None:
        return None

    def progress(self, job_id: int, message: str) -> None:
        return None

    def listen(self, listener: Callable[[int], None]) -> None:
        return None

    def start_draining(self, interval: float) -> None:
        return None

    def close(self) -> None:
        return None
