"""Slack Web API calls, counted: the `CallCounter` the one Slack client
constructor (bot.slack_client.make_client) reports to, backed by the
metrics of this process."""

from __future__ import annotations

from slack_sdk import WebClient

from bot.observe.metrics import Metrics
from bot.slack_client import make_client


class SlackCallMetrics:
    """A `bot.slack_client.CallCounter` over `Metrics`."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def call(self, method: str, outcome: str) -> None:
        self.metrics.slack_api_calls.labels(method, outcome).inc()

    def ratelimited(self, method: str) -> None:
        self.metrics.slack_api_ratelimited.labels(method).inc()

    def retried(self, reason: str) -> None:
        self.metrics.slack_api_retries.labels(reason).inc()


def make_web_client(token: str, api_url: str | None, metrics: Metrics | None) -> WebClient:
    """The bot's Web API client, counted in `metrics` when given."""
    return make_client(token, api_url, SlackCallMetrics(metrics) if metrics else None)
