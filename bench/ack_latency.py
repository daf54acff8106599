"""Ack latency of `/checkpoint` in HTTP mode, against a bare Bolt app.

50 signed slash commands at once, to the real bot (waitress + Bolt + the
demo context, with a local fake Web API) and to a Bolt app that only acks,
behind the same server, in the same run. Prints p50 and p99 of the time to
the HTTP 200 and the p99 ratio (target: at most 1.5x the bare app).
Loopback only; bounded by a per-request timeout.

    .venv/bin/python bench/ack_latency.py [--requests 50] [--rounds 3] [--text list]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from slack_bolt import Ack, App

from bot.slack_client import make_client
from bot.slack_http import HttpServer, SlackWsgi
from tests.slack_support import (
    BOT_TOKEN,
    SIGNING_SECRET,
    FakeSlackApi,
    SlackSender,
    running_bot,
)


def bare_app(api_url: str) -> App:
    app = App(
        client=make_client(BOT_TOKEN, api_url),
        signing_secret=SIGNING_SECRET,
    )

    @app.command("/checkpoint")
    def only_ack(ack: Ack) -> None:
        ack()

    return app


def burst(sender: SlackSender, n: int, text: str) -> list[float]:
    with ThreadPoolExecutor(n) as pool:
        replies = list(pool.map(lambda _: sender.command(text)[0], range(n)))
    bad = [r.status for r in replies if r.status != 200]
    if bad:
        raise SystemExit(f"non-200 answers: {bad[:5]}")
    return [r.seconds for r in replies]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(name: str, seconds: list[float]) -> tuple[float, float]:
    p50, p99 = statistics.median(seconds), pct(seconds, 0.99)
    print(f"{name:<14} n={len(seconds):<4} p50 {p50 * 1000:7.1f} ms   p99 {p99 * 1000:7.1f} ms")
    return p50, p99


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--text", default="list", help="what follows /checkpoint")
    args = parser.parse_args()
    # waitress warns on every queued request of a burst; the figures say it better.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    bot_times: list[float] = []
    bare_times: list[float] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_bot(Path(tmp)) as bot,
        FakeSlackApi() as api,
    ):
        bare = HttpServer(
            SlackWsgi(bare_app(api.api_url), database_ok=lambda: True, consumer_ok=lambda: True),
            "127.0.0.1",
            0,
        ).start()
        try:
            bare_sender = SlackSender(bare.url, api)
            burst(bare_sender, 5, args.text)  # warm both up: imports, auth.test
            burst(bot.slack, 5, args.text)
            # Interleaved rounds, so both see the same machine weather.
            for _ in range(args.rounds):
                bare_times += burst(bare_sender, args.requests, args.text)
                bot_times += burst(bot.slack, args.requests, args.text)
        finally:
            bare.stop()
        # The answers come after the acks (response_url): let them all arrive.
        sent = time.monotonic()
        expected = 5 + args.rounds * args.requests
        bot.api.wait_for(
            lambda calls: sum(c.method.startswith("response_url:") for c in calls) >= expected,
            timeout=120,
        )
        drained = time.monotonic() - sent
    print(f"/checkpoint {args.text}: {args.rounds} rounds of {args.requests} concurrent")
    _, bare_p99 = report("bare Bolt app", bare_times)
    _, bot_p99 = report("checkpoint-bot", bot_times)
    ratio = bot_p99 / bare_p99 if bare_p99 else float("inf")
    verdict = "OK" if ratio <= 1.5 else "ABOVE TARGET"
    print(f"answers        all {expected} ephemeral answers in {drained:.2f} s after the last ack")
    print(f"p99 ratio      {ratio:.2f}x (target <= 1.5x): {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
