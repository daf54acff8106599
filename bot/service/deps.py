"""What the service needs from the process that runs it.

`AppContext` (bot.context, the composition root) satisfies `ServiceDeps`;
the service names only this protocol, so it never imports the module that
builds it, and a test can hand it any object with these parts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.clock import Clock
from bot.config import Settings
from bot.hyperv import HyperVHost
from bot.inventory import Inventory
from bot.jobs import JobKind, JobLedger, JobQueue
from bot.jobs.delivery import JobDelivery
from bot.jobs.ticks import TickClaims
from bot.notify.base import ChangeNotifier
from bot.notify.channel import ChannelNotices
from bot.store.tables.changes import Change
from policies import Policy

if TYPE_CHECKING:
    from bot.service.deciding import Decider


class ServiceDeps(Protocol):
    """Read-only: the service uses these parts, it never replaces them."""

    @property
    def settings(self) -> Settings: ...
    @property
    def engine(self) -> Engine: ...
    @property
    def inventory(self) -> Inventory: ...
    @property
    def host_for(self) -> Callable[[str], HyperVHost]: ...
    @property
    def policy(self) -> Policy: ...
    @property
    def decider(self) -> Decider: ...
    @property
    def ledger(self) -> JobLedger: ...
    @property
    def queue(self) -> JobQueue: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def worker_id(self) -> str: ...
    @property
    def ticks(self) -> TickClaims: ...
    @property
    def notifier(self) -> ChangeNotifier: ...
    @property
    def channels(self) -> ChannelNotices: ...

    def submit(
        self,
        kind: JobKind,
        change_id: int,
        *,
        key: str,
        not_before: datetime | None = None,
        payload: dict[str, Any] | None = None,
    ) -> int:
        """Put host work for a change on the ledger and the queue; its job id."""
        ...

    def record_job(
        self,
        s: Session,
        kind: JobKind,
        change: Change,
        *,
        key: str,
        not_before: datetime | None = None,
        payload: dict[str, Any] | None = None,
    ) -> int:
        """Write a job row in the caller's transaction (the job outbox)."""
        ...

    def deliver(self, job_id: int) -> bool:
        """Hand a committed job to the queue; False if the queue did not answer."""
        ...

    def job_delivery(self) -> JobDelivery: ...
