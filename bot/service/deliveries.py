"""The Slack front's replay check, as a service: the delivery keys every
replica shares (`bot.store.deliveries`, migration 0008). The Slack
handlers drop a delivery whose key is already there."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.store.deliveries import DeliveryKeys

if TYPE_CHECKING:
    from bot.service.deps import ServiceDeps


def delivery_keys(ctx: ServiceDeps) -> DeliveryKeys:
    """Keys kept for Slack's signature window, in the context's database."""
    return DeliveryKeys(ctx.engine)
