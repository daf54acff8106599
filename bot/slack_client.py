"""The one way the bot builds its Slack Web API client."""

from __future__ import annotations

from typing import Any, Protocol

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


class CallCounter(Protocol):
    """Where the client reports its calls (bot.observe's metrics)."""

    def call(self, method: str, outcome: str) -> None:
        """One Web API call, after retries: `ok`, `error` or `ratelimited`."""

    def ratelimited(self, method: str) -> None:
        """One HTTP 429 answer, retried or not."""

    def retried(self, reason: str) -> None:
        """One request sent again: `ratelimited` or `connection`."""


def make_client(
    bot_token: str, api_url: str | None, counter: CallCounter | None = None
) -> WebClient:
    """A Web API client that waits out 429s (Retry-After) and retries
    connection errors, with slack_sdk's built-in retry handlers
    (https://tools.slack.dev/python-slack-sdk/web#retryhandler). `api_url`
    points it at another Web API (the playground's, or a test's); `counter`
    hears of every call, 429 and retry
    (https://api.slack.com/apis/rate-limits)."""
    base_url = (api_url.rstrip("/") + "/") if api_url else WebClient.BASE_URL
    if counter is None:
        return WebClient(
            token=bot_token,
            base_url=base_url,
            retry_handlers=[
                ConnectionErrorRetryHandler(max_retry_count=2),
                RateLimitErrorRetryHandler(max_retry_count=3),
            ],
        )
    handlers: list[RetryHandler] = [
        _CountedConnectionRetries(counter, max_retry_count=2),
        _CountedRateLimitRetries(counter, max_retry_count=3),
    ]
    return _CountedWebClient(
        token=bot_token, base_url=base_url, retry_handlers=handlers, counter=counter
    )


def _method(url: str) -> str:
    # https://slack.com/api/chat.postMessage -> chat.postMessage
    return url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or "unknown"


class _CountedRateLimitRetries(RateLimitErrorRetryHandler):
    def __init__(self, counter: CallCounter, max_retry_count: int) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.counter = counter

    def can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is not None and response.status_code == 429:
            self.counter.ratelimited(_method(request.url))
        retry = super().can_retry(state=state, request=request, response=response, error=error)
        if retry:
            self.counter.retried("ratelimited")
        return retry


class _CountedConnectionRetries(ConnectionErrorRetryHandler):
    def __init__(self, counter: CallCounter, max_retry_count: int) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.counter = counter

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
            self.counter.retried("connection")
        return retry


class _CountedWebClient(WebClient):
    """Reports every Web API call once, after slack_sdk's own retries."""

    def __init__(self, *args: Any, counter: CallCounter, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counter = counter

    def api_call(self, api_method: str, **kwargs: Any) -> SlackResponse:
        try:
            response = super().api_call(api_method, **kwargs)
        except SlackApiError as exc:
            limited = exc.response is not None and exc.response.status_code == 429
            self.counter.call(api_method, "ratelimited" if limited else "error")
            raise
        except Exception:
            self.counter.call(api_method, "error")
            raise
        self.counter.call(api_method, "ok")
        return response
