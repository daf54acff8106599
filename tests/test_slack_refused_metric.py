"""Requests the Slack endpoint refuses before Bolt sees them are counted.

Seen: three POSTs to /slack/events with a bad signature (401 each) left
`/metrics` with only the commands Bolt had answered. A signing secret
rotated on one side only refuses every request, and nothing on the
dashboard said so; docs/operations.md promised they were counted.
"""

from __future__ import annotations

import io
from typing import Any
from wsgiref.util import setup_testing_defaults

from slack_bolt import App

from bot.observe import Metrics
from bot.slack_http import EVENTS_PATH, SlackWsgi


def _post(wsgi: SlackWsgi, body: bytes, headers: dict[str, str]) -> str:
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    environ.update(
        REQUEST_METHOD="POST",
        PATH_INFO=EVENTS_PATH,
        CONTENT_TYPE="application/x-www-form-urlencoded",
        CONTENT_LENGTH=str(len(body)),
        **{"wsgi.input": io.BytesIO(body)},
        **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()},
    )
    said: list[str] = []

    def start_response(status: str, _headers: list[tuple[str, str]], *_: Any) -> Any:
        said.append(status)
        return lambda _data: None

    wsgi(environ, start_response)
    return said[0]


def test_refused_requests_are_counted_by_why() -> None:
    metrics = Metrics()
    app = App(token="xoxb-test", signing_secret="s3cret", token_verification_enabled=False)
    wsgi = SlackWsgi(
        app,
        database_ok=lambda: True,
        consumer_ok=lambda: True,
        signing_secret="s3cret",
        metrics=metrics,
    )
    bad = {"X-Slack-Signature": "v0=deadbeef", "X-Slack-Request-Timestamp": "1700000000"}
    for _ in range(3):
        assert _post(wsgi, b"command=%2Fcheckpoint&text=help", bad).startswith("401")
    assert _post(wsgi, b"command=%2Fcheckpoint", {}).startswith("401")  # unsigned
    counted = {
        sample.labels["why"]: sample.value
        for family in metrics.registry.collect()
        if family.name == "checkpoint_bot_slack_requests_refused"
        for sample in family.samples
        if sample.name.endswith("_total")
    }
    assert counted == {"signature": 4.0}
