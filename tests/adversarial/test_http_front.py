"""Issue #13 item 4: the HTTP front before Bolt. Unsigned, garbled and
oversized requests are refused with 400 / 401 / 413, never 500; nothing is
parsed before the signature holds; a 100 MiB body costs next to no memory;
no body reaches the log (also at `-v`'s INFO level)."""

from __future__ import annotations

import io
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from slack_bolt import App

from bot.slack_http import SlackWsgi
from bot.slack_intake import MAX_BODY
from tests.adversarial.conftest import Tally
from tests.slack_support import BOT_TOKEN, SIGNING_SECRET, RunningBot, running_bot

MIB = 1 << 20
# A refused 100 MiB body may cost buffers, never the body: Bolt read whole
# (before this front) cost +300 to +600 MiB.
RSS_BOUND = 32 * MIB
FORM = "application/x-www-form-urlencoded"


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBot]:
    with running_bot(tmp_path_factory.mktemp("front")) as running:
        yield running


def _rss(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/self/status")


def raw_post(url: str, headers: dict[str, str], chunks: Iterator[bytes]) -> int | None:
    """POST `chunks` over a plain socket, stopping when the server stops
    listening; the answer's status, or None if the server closed first."""
    split = urlsplit(url)
    with socket.create_connection((split.hostname, split.port), timeout=30) as sock:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(f"POST /slack/events HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode())
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except OSError:
            pass  # the server answered and closed: read what it said
        try:
            answer = sock.recv(4096)
        except OSError:
            return None
    if not answer.startswith(b"HTTP/1.1 "):
        return None
    return int(answer.split()[1])


def _zeros(total: int, chunk: int = MIB) -> Iterator[bytes]:
    block = b"0" * chunk
    for _ in range(total // chunk):
        yield block


def _slash(text: str) -> str:
    return urlencode({"command": "/checkpoint", "text": text, "team_id": "T0TEST"})


@pytest.mark.parametrize("timestamp", ["abc", "", "1e10", "123.5", "-1", " 12", "9" * 40, "0x10"])
def test_garbled_timestamp_header_is_400_never_500(
    bot: RunningBot, hostile: Tally, timestamp: str
) -> None:
    reply = bot.slack.post(_slash("help"), FORM, headers={"X-Slack-Request-Timestamp": timestamp})
    assert reply.status in (400, 401), reply
    hostile.record("garbled timestamp header", reply.status < 300, timestamp)


def test_forged_stale_and_missing_signatures_are_401(bot: RunningBot, hostile: Tally) -> None:
    now = int(time.time())
    cases = {
        "forged": bot.slack.post(_slash("help"), FORM, secret="not-ours"),
        "stale": bot.slack.post(_slash("help"), FORM, timestamp=now - 301),
        # Past the five minutes by a few seconds: `now` is floored, and the
        # bot reads its clock later (at +301 a second's tick made it 300).
        "future": bot.slack.post(_slash("help"), FORM, timestamp=now + 305),
        "v1 scheme": bot.slack.post(
            _slash("help"), FORM, headers={"X-Slack-Signature": "v1=" + "0" * 64}
        ),
        "empty signature": bot.slack.post(_slash("help"), FORM, headers={"X-Slack-Signature": ""}),
    }
    for what, reply in cases.items():
        assert reply.status == 401, (what, reply)
        hostile.record("forged or stale signature", reply.status < 300, what)


def test_unsigned_garbage_is_401_and_signed_garbage_is_400(bot: RunningBot, hostile: Tally) -> None:
    unsigned = bot.slack.post("payload=%7B", FORM, secret="not-ours")
    assert unsigned.status == 401
    hostile.record("unparseable body", unsigned.status < 300, "unsigned payload=%7B")
    for body, content_type in (
        ("payload=%7B", FORM),
        ("payload=%5B1%5D", FORM),
        ("payload=1&payload=2", FORM),
        ("[1, 2]", "application/json"),
        ("{", "application/json"),
        ("payload=" + "%5B" * 5000, FORM),
    ):
        reply = bot.slack.post(body, content_type)
        assert reply.status == 400, (body[:40], reply)
        hostile.record("unparseable body", reply.status < 300, body[:40])


def test_a_body_over_the_limit_is_413_before_it_is_read(bot: RunningBot, hostile: Tally) -> None:
    """Content-Length says 100 MiB: refused from the header; peak RSS of
    this process (server included) grows by less than RSS_BOUND."""
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = _rss("VmRSS")
    status = raw_post(
        bot.server.url,
        {"Content-Type": FORM, "Content-Length": str(100 * MIB)},
        _zeros(100 * MIB),
    )
    grown = _rss("VmHWM") - before
    print(f"100 MiB with Content-Length: status {status}, peak RSS +{grown / MIB:.1f} MiB")
    assert status in (413, None)
    assert grown < RSS_BOUND
    hostile.record("oversized body", status is not None and status < 300, "100 MiB")


def test_a_chunked_body_over_the_limit_is_refused_as_it_streams(
    bot: RunningBot, hostile: Tally
) -> None:
    """No Content-Length at all (chunked): the limit holds while reading."""

    def chunked() -> Iterator[bytes]:
        for block in _zeros(100 * MIB):
            yield f"{len(block):x}\r\n".encode() + block + b"\r\n"
        yield b"0\r\n\r\n"

    Path("/proc/self/clear_refs").write_text("5")
    before = _rss("VmRSS")
    status = raw_post(
        bot.server.url, {"Content-Type": FORM, "Transfer-Encoding": "chunked"}, chunked()
    )
    grown = _rss("VmHWM") - before
    print(f"100 MiB chunked: status {status}, peak RSS +{grown / MIB:.1f} MiB")
    assert status in (413, None)
    assert grown < RSS_BOUND
    hostile.record("oversized body", status is not None and status < 300, "100 MiB chunked")


class _Endless(io.RawIOBase):
    """A request stream of `total` bytes that counts what was read from it."""

    def __init__(self, total: int) -> None:
        self.left, self.read_bytes = total, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.left)
        buffer[:n] = b"0" * n
        self.left -= n
        self.read_bytes += n
        return n


def _front() -> SlackWsgi:
    app = App(token=BOT_TOKEN, signing_secret=SIGNING_SECRET, token_verification_enabled=False)
    return SlackWsgi(
        app, database_ok=lambda: True, consumer_ok=lambda: True, signing_secret=SIGNING_SECRET
    )


def _call(front: SlackWsgi, environ: dict[str, object]) -> str:
    statuses: list[str] = []
    front(environ, lambda status, headers, exc_info=None: statuses.append(status))  # type: ignore[arg-type,misc]
    return statuses[0]


@pytest.mark.parametrize("length", [None, "10", "abc", str(100 * MIB)])
def test_the_front_itself_reads_at_most_the_limit(hostile: Tally, length: str | None) -> None:
    """Behind a server without waitress's limit (or when the length lies),
    `SlackWsgi` reads at most MAX_BODY + 1 bytes of a 100 MiB stream."""
    stream = _Endless(100 * MIB)
    environ: dict[str, object] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/slack/events",
        "CONTENT_TYPE": FORM,
        "wsgi.input": io.BufferedReader(stream),
    }
    if length is not None:
        environ["CONTENT_LENGTH"] = length
    status = _call(_front(), environ)
    assert status.split()[0] in ("400", "401", "413"), status
    assert stream.read_bytes <= MAX_BODY + 64 * 1024 + 8192
    hostile.record("oversized body", status.startswith("2"), f"Content-Length {length}")


def test_no_body_reaches_the_log(
    bot: RunningBot, hostile: Tally, caplog: pytest.LogCaptureFixture
) -> None:
    """At INFO (what `-v` sets) and below: refused requests log their reason,
    never their body."""
    caplog.set_level(logging.DEBUG)
    marker = "BODY-MARKER-" + "x" * 5000
    now = int(time.time())
    body = _slash(marker)
    replies = [
        bot.slack.post(body, FORM, secret="not-ours"),
        bot.slack.post(body, FORM, timestamp=now - 3600),
        bot.slack.post(body, FORM, headers={"X-Slack-Request-Timestamp": "abc"}),
        bot.slack.post("payload=" + marker + "%7B", FORM),
    ]
    assert [r.status for r in replies] == [401, 401, 400, 400]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "refused a request" in logged
    assert "BODY-MARKER" not in logged
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    for reply in replies:
        hostile.record("body in the log", "BODY-MARKER" in logged, reply.body)


def test_a_signed_request_still_works(bot: RunningBot) -> None:
    """The front passes what it checked on to Bolt intact."""
    reply, key = bot.slack.command("help")
    assert reply.status == 200
    calls = bot.api.wait_for(lambda cs: any(c.method == key for c in cs))
    assert "/checkpoint create" in str(next(c.body for c in calls if c.method == key))
