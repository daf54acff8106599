"""Socket Mode: the first ack after a `refresh_requested` reconnect, and a
clean stop, for the bot's client against slack_sdk's, in the same run.

Slack asks every Socket Mode app to reconnect every few hours (a
`{"type": "disconnect", "reason": "refresh_requested"}` message,
https://docs.slack.dev/apis/events-api/using-socket-mode/); envelopes must
still be acked within 3 s. Each adapter serves a Bolt app that only acks
`/checkpoint`, over the tests' local Socket Mode server
(tests/socket_mode_support.py) and fake Web API. Per round: the server asks
for a refresh, and as soon as the new connection is up sends a slash
command; timed from the refresh request to the ack. Then `close()` is timed.
Target (issue #18): the bot's first ack after a refresh <= 1 s, its stop
<= 1 s. Loopback only; every wait is bounded.

Adapters: `bot` (bot/slack_socket.py, what `serve` uses), `builtin`
(slack_bolt.adapter.socket_mode, slack_sdk's built-in client: the old one),
`sdk-wsc` (slack_bolt.adapter.socket_mode.websocket_client as shipped).

    .venv/bin/python bench/socket_reconnect.py [--rounds 5] [--adapters bot,builtin,sdk-wsc]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from slack_bolt import Ack, App

from bot.slack_client import make_client
from tests.slack_support import BOT_TOKEN, FakeSlackApi
from tests.socket_mode_support import FakeSocketModeServer

APP_TOKEN = "xapp-test"  # noqa: S105 (a fake token for the loopback server)
# A refresh that is not done by then is counted as this long (and said so).
WAIT = 15.0


def handler_for(kind: str, app: App) -> Any:
    if kind == "bot":
        from bot.slack_socket import SocketModeHandler

        return SocketModeHandler(app, app_token=APP_TOKEN)
    if kind == "builtin":
        from slack_bolt.adapter.socket_mode import SocketModeHandler as Builtin

        return Builtin(app, app_token=APP_TOKEN)
    from slack_bolt.adapter.socket_mode.websocket_client import SocketModeHandler as Wsc

    return Wsc(app, app_token=APP_TOKEN)


def measure(kind: str, rounds: int) -> dict[str, Any]:
    with FakeSlackApi() as api, FakeSocketModeServer() as server:
        api.socket_url = server.url
        app = App(client=make_client(BOT_TOKEN, api.api_url), signing_secret="")

        @app.command("/checkpoint")
        def only_ack(ack: Ack) -> None:
            ack()

        cpu0 = time.process_time()
        handler = handler_for(kind, app)
        started = time.monotonic()
        handler.connect()
        server.wait_connections(1, timeout=WAIT)
        first = server.wait_ack(server.slash_command("help", f"{api.url}/r/0"), timeout=WAIT)
        connect_s = time.monotonic() - started
        refresh_to_ack: list[float] = []
        ack_s: list[float] = []
        missed = 0
        for n in range(1, rounds + 1):
            seen = len(server.connections)
            asked = time.monotonic()
            server.ask_to_reconnect()
            try:
                server.wait_connections(seen + 1, timeout=WAIT)
                acked = server.wait_ack(
                    server.slash_command("help", f"{api.url}/r/{n}"), timeout=WAIT
                )
            except AssertionError:
                missed += 1
                refresh_to_ack.append(WAIT)
                continue
            refresh_to_ack.append(time.monotonic() - asked)
            ack_s.append(acked.seconds)
            time.sleep(0.2)  # let the old connection finish closing
        stopping = time.monotonic()
        handler.close()
        stop_s = time.monotonic() - stopping
        cpu = time.process_time() - cpu0
        opens = len(api.of("apps.connections.open"))
    return {
        "kind": kind,
        "connect": connect_s,
        "first_ack": first.seconds,
        "refresh_to_ack": refresh_to_ack,
        "ack": ack_s,
        "missed": missed,
        "stop": stop_s,
        "cpu": cpu,
        "opens": opens,
        "rounds": rounds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--adapters", default="bot,builtin,sdk-wsc")
    args = parser.parse_args()
    # slack_sdk's Socket Mode clients take a proxy from these; loopback needs none.
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        os.environ.pop(name, None)
    # The clients log every reconnect at INFO and closed sockets at ERROR.
    logging.basicConfig(level=logging.CRITICAL)
    kinds = args.adapters.split(",")
    results = {kind: measure(kind, args.rounds) for kind in kinds}
    print(f"Socket Mode refresh, {args.rounds} rounds per adapter, loopback")
    print(
        f"{'adapter':<8} {'refresh->ack p50':>17} {'max':>8} {'stop':>8} "
        f"{'opens':>6} {'missed':>7} {'CPU s':>7}"
    )
    for kind, r in results.items():
        print(
            f"{kind:<8} {statistics.median(r['refresh_to_ack']) * 1000:14.0f} ms "
            f"{max(r['refresh_to_ack']) * 1000:5.0f} ms {r['stop'] * 1000:5.0f} ms "
            f"{r['opens']:>6} {r['missed']:>7} {r['cpu']:7.2f}"
        )
    if "bot" in results and "builtin" in results:
        bot, old = results["bot"], results["builtin"]
        p50 = statistics.median(bot["refresh_to_ack"]) / statistics.median(old["refresh_to_ack"])
        worst = max(bot["refresh_to_ack"]) / max(old["refresh_to_ack"])
        stop = bot["stop"] / old["stop"]
        print(f"bot vs builtin: refresh->ack p50 {p50:.3f}x, max {worst:.3f}x, stop {stop:.3f}x")
        ok = max(bot["refresh_to_ack"]) <= 1.0 and bot["stop"] <= 1.0 and bot["missed"] == 0
        print(f"target (first ack after refresh <= 1 s, stop <= 1 s): {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
