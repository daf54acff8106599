"""Memory cost of one unsigned POST to /slack/events, with and without the
front's checks (bot.slack_intake), in the same run.

Baseline: Bolt's WSGI adapter behind waitress with waitress's default body
limit (1 GiB), as `serve --http` was before the front: the body is read,
decoded and parsed before Bolt checks the signature. Measured: `SlackWsgi`
behind `HttpServer`. Each gets the same unsigned body of --mib MiB with a
Content-Length; the peak RSS growth of this process (Linux: VmHWM after
resetting it through /proc/self/clear_refs) is printed, with the ratio.

    .venv/bin/python bench/unsigned_body_memory.py [--mib 100]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.slack_http import HttpServer, SlackWsgi
from tests.adversarial.test_http_front import raw_post
from tests.slack_support import BOT_TOKEN, SIGNING_SECRET

MIB = 1 << 20


def _kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise SystemExit(f"no {field} in /proc/self/status (Linux only)")


def peak_growth(wsgi: Callable[..., Any], mib: int, *, limited: bool) -> tuple[int | None, float]:
    server = HttpServer(wsgi, "127.0.0.1", 0, threads=2)
    if not limited:
        server._server.adj.max_request_body_size = 1 << 30  # waitress's default
    server.start()
    try:
        Path("/proc/self/clear_refs").write_text("5")
        before = _kib("VmRSS")
        status = raw_post(
            server.url,
            {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": str(mib * MIB)},
            (b"a" * MIB for _ in range(mib)),
        )
        return status, (_kib("VmHWM") - before) / 1024
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=100)
    args = parser.parse_args()
    app = App(token=BOT_TOKEN, signing_secret=SIGNING_SECRET, token_verification_enabled=False)
    bare = SlackRequestHandler(app, path="/slack/events")
    front = SlackWsgi(
        app, database_ok=lambda: True, consumer_ok=lambda: True, signing_secret=SIGNING_SECRET
    )
    base_status, base = peak_growth(bare, args.mib, limited=False)
    status, grown = peak_growth(front, args.mib, limited=True)
    print(f"unsigned {args.mib} MiB POST, peak RSS growth of the serving process:")
    print(f"  Bolt alone (baseline): {base:8.1f} MiB  (HTTP {base_status})")
    print(f"  SlackWsgi front:       {grown:8.1f} MiB  (HTTP {status})")
    print(f"  ratio front / baseline: {grown / base if base else float('nan'):.4f}")


if __name__ == "__main__":
    main()
