"""The periodic work every bot and worker process ticks (see
`bot.jobs.periodic`): one list, built on the application context."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.jobs.periodic import PeriodicTask
from bot.service.dispatch import JobOutbox
from bot.service.reconcile import Reconciler
from bot.service.sweep import SweepTask
from bot.service.ttl_chase import TTLChaser
from bot.service.window_notices import WindowNotices

if TYPE_CHECKING:
    from bot.service.deps import ServiceDeps


def periodic_tasks(ctx: ServiceDeps) -> list[PeriodicTask]:
    tasks: list[PeriodicTask] = [JobOutbox(ctx), Reconciler(ctx), WindowNotices(ctx)]
    tasks.append(TTLChaser(ctx))
    tasks.append(SweepTask(ctx))
    return tasks
