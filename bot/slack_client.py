"""The one way the bot builds its Slack Web API client."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)


def make_client(bot_token: str, api_url: str | None) -> WebClient:
    """A Web API client that waits out 429s (Retry-After) and retries
    connection errors, with slack_sdk's built-in retry handlers
    (https://tools.slack.dev/python-slack-sdk/web#retryhandler). `api_url`
    points it at another Web API (the playground's, or a test's)."""
    return WebClient(
        token=bot_token,
        base_url=(api_url.rstrip("/") + "/") if api_url else WebClient.BASE_URL,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=3),
        ],
    )
