"""Observability: Prometheus metrics, health and readiness endpoints, and
structured logs with the context of the work under way. See
docs/operations.md for every metric, endpoint and log field."""

from bot.observe.health import HealthServer, Readiness, database_check, flag_check, queue_check
from bot.observe.logs import LogFormat, bound
from bot.observe.metrics import PREFIX, Metrics

__all__ = [
    "PREFIX",
    "HealthServer",
    "LogFormat",
    "Metrics",
    "Readiness",
    "bound",
    "database_check",
    "flag_check",
    "queue_check",
]
