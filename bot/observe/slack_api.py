"""Slack Web API calls, measured: a `WebClient` that counts its calls by
method and outcome, and slack_sdk's retry handlers counting 429s and
retries (https://api.slack.com/apis/rate-limits: a 429 carries
Retry-After, and the built-in handler waits it out)."""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.slack_response import SlackResponse

from bot.observe.metrics import Metrics


def _method(url: str) -> str:
    # https://slack.com/api/chat.postMessage -> chat.postMessage
    return url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or "unknown"


class CountedRateLimitRetries(RateLimitErrorRetryHandler):
    def __init__(self, metrics: Metrics, max_retry_count: int = 3) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.metrics = metrics

    def can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is not None and response.status_code == 429:
            self.metrics.slack_api_ratelimited.labels(_method(request.url)).inc()
        retry = super().can_retry(state=state, request=request, response=response, error=error)
        if retry:
            self.metrics.slack_api_retries.labels("ratelimited").inc()
        return retry


class CountedConnectionRetries(ConnectionErrorRetryHandler):
    def __init__(self, metrics: Metrics, max_retry_count: int = 2) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.metrics = metrics

    def can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        retry = super().can_retry(state=state, request=request, response=response, error=error)
        if retry:
            self.metrics.slack_api_retries.labels("connection").inc()
        return retry


class MeteredWebClient(WebClient):
    """Counts every Web API call once, after slack_sdk's own retries."""

    def __init__(self, *args: Any, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.metrics = metrics

    def api_call(self, api_method: str, **kwargs: Any) -> SlackResponse:
        try:
            response = super().api_call(api_method, **kwargs)
        except SlackApiError as exc:
            limited = exc.response is not None and exc.response.status_code == 429
            outcome = "ratelimited" if limited else "error"
            self.metrics.slack_api_calls.labels(api_method, outcome).inc()
            raise
        except Exception:
            self.metrics.slack_api_calls.labels(api_method, "error").inc()
            raise
        self.metrics.slack_api_calls.labels(api_method, "ok").inc()
        return response


def make_web_client(token: str, api_url: str | None, metrics: Metrics | None) -> WebClient:
    """The bot's Web API client: waits out 429s (Retry-After), retries
    connection errors, and (with `metrics`) counts all of it."""
    base_url = (api_url.rstrip("/") + "/") if api_url else WebClient.BASE_URL
    if metrics is None:
        handlers: list[RetryHandler] = [
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=3),
        ]
        return WebClient(token=token, base_url=base_url, retry_handlers=handlers)
    handlers = [CountedConnectionRetries(metrics), CountedRateLimitRetries(metrics)]
    return MeteredWebClient(
        token=token, base_url=base_url, retry_handlers=handlers, metrics=metrics
    )
