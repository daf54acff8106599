"""What the HTTP front checks before Bolt sees a request: its size, its
signature, and that its body parses into the shape Slack documents.
Anybody on the network can post to `/slack/events`, so nothing here reads
more than `MAX_BODY` bytes, parses anything before the signature holds, or
logs a body.

Slack signs `v0:{X-Slack-Request-Timestamp}:{raw body}` with the app's
signing secret (HMAC-SHA256) and asks apps to refuse timestamps more than
five minutes away:
https://api.slack.com/authentication/verifying-requests-from-slack
Slack's own payloads are small (a view is at most 100 blocks; a message 50),
far below a mebibyte, so a larger body is never Slack's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import parse_qs

from slack_sdk.signature import Clock, SignatureVerifier

from bot import slack_shapes

MAX_BODY = 1 << 20  # 1 MiB
_READ_CHUNK = 64 * 1024
# A Unix time in whole seconds, as Slack sends it; at most 12 digits so a
# huge number cannot reach int() (Python limits int() of long strings).
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")


@dataclass(frozen=True)
class Refusal:
    """An HTTP answer to a request that goes no further."""

    status: str
    reason: str


TOO_LARGE = Refusal("413 Content Too Large", f"request body over {MAX_BODY} bytes")


def content_length(environ: Mapping[str, object]) -> int | Refusal | None:
    """The declared length; None when absent; a refusal when garbled or over the limit."""
    raw = str(environ.get("CONTENT_LENGTH") or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 18:
        return Refusal("400 Bad Request", "Content-Length is not a number")
    length = int(raw)
    return TOO_LARGE if length > MAX_BODY else length


def read_body(stream: IO[bytes], declared: int | None, limit: int = MAX_BODY) -> bytes | Refusal:
    """At most `limit` bytes, whatever the length header says (it may be
    absent or lie); a refusal as soon as more than `limit` arrive."""
    want = limit + 1 if declared is None else min(declared, limit + 1)
    chunks: list[bytes] = []
    got = 0
    while got < want:
        chunk = stream.read(min(_READ_CHUNK, want - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    if got > limit:
        return TOO_LARGE
    return b"".join(chunks)


def check_signature(
    headers: Callable[[str], str | None], body: bytes, secret: str, clock: Clock | None = None
) -> Refusal | None:
    """None when Slack signed `body` within the last five minutes."""
    timestamp = headers("X-Slack-Request-Timestamp")
    signature = headers("X-Slack-Signature")
    if timestamp is None or signature is None:
        return Refusal("401 Unauthorized", "not signed by Slack (signature headers missing)")
    if not _TIMESTAMP.match(timestamp):
        return Refusal("400 Bad Request", "X-Slack-Request-Timestamp is not a Unix time in seconds")
    verifier = SignatureVerifier(secret) if clock is None else SignatureVerifier(secret, clock)
    if not verifier.is_valid(body, timestamp, signature):
        return Refusal("401 Unauthorized", "not signed by Slack (bad or stale signature)")
    return None


def check_payload(content_type: str, body: bytes) -> Refusal | None:
    """None when the body is what Bolt can parse (a JSON object, a form, or
    a form whose `payload` is a JSON object) and has the shape Slack
    documents (`bot.slack_shapes`)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return Refusal("400 Bad Request", "body is not UTF-8")
    if content_type.split(";")[0].strip().lower() == "application/json":
        parsed = _object(text, "body")
    else:
        form = parse_qs(text, keep_blank_values=True)
        payload = form.get("payload")
        if payload is None:
            return None  # a slash command: the form's fields, all strings
        if len(payload) != 1:
            return Refusal("400 Bad Request", "more than one payload field")
        parsed = _object(payload[0], "payload")
    if isinstance(parsed, Refusal):
        return parsed
    wrong = slack_shapes.problem(parsed)
    return None if wrong is None else Refusal("400 Bad Request", f"malformed payload: {wrong}")


def _object(text: str, what: str) -> dict[str, Any] | Refusal:
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return Refusal("400 Bad Request", f"{what} is not JSON")
    if not isinstance(parsed, dict):
        return Refusal("400 Bad Request", f"{what} is not a JSON object")
    return parsed
