"""App Homes another process left behind: what a serving process claims
on its tick and publishes (bot/notify/homes.py says who records them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.notify.homes import HomeClaim, StaleHomes

if TYPE_CHECKING:
    from bot.service.deps import ServiceDeps


def claim_stale_homes(ctx: ServiceDeps, owner: str) -> HomeClaim:
    """Lease the changes whose Homes are behind them and nobody is publishing."""
    return StaleHomes(ctx.engine).claim(owner)


def stale_homes_published(ctx: ServiceDeps, claim: HomeClaim) -> None:
    """The Homes of `claim` are published: forget its rows."""
    StaleHomes(ctx.engine).done(claim)
