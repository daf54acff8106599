"""What the Slack outbox costs: posting the threads of N fresh changes
through the outbox drainer (lease, sync, mark done) against calling the
thread sync directly (the path before the outbox), in the same run, on the
same SQLite database and local fake Web API (pacing off, as for tests).
Prints both times and the ratio (target: at most 1.5x the direct sync).

    .venv/bin/python bench/slack_outbox.py [--changes 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.clock import ScaledClock
from bot.context import AppContext, build_context
from bot.notify import ChannelPacer, ThreadNotifier
from bot.service import request_checkpoint
from tests.helpers import T0, settings_for
from tests.slack_support import BOT_TOKEN, FakeSlackApi

TARGET = 1.5


def record(ctx: AppContext, n: int, tag: str) -> list[int]:
    """N changes waiting for approval (nothing runs on a host), each in its
    own channel; their threads not yet posted."""
    ids = []
    for i in range(n):
        out = request_checkpoint(
            ctx,
            "WEB01",
            reason=f"bench {tag} {i}",
            requester="U0ALICE",
            channel=f"C{tag}{i:04d}",
            source="slack",
            checkpoint_type="production",
        )
        ids.append(out.change.id)
    return ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    direct_times, drained_times = [], []
    with tempfile.TemporaryDirectory() as tmp, FakeSlackApi() as api:
        env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": api.api_url}
        ctx = build_context(
            settings_for(Path(tmp)), env=env, clock=ScaledClock(1, start=T0), huey_kind="memory"
        )
        notifier = ctx.notifier
        assert isinstance(notifier, ThreadNotifier)
        notifier.pacer = ChannelPacer(rate=1e6, burst=1_000_000)
        # Record without posting: the changes are synced below, timed.
        ctx.notifier = type("Silent", (), {"changed": lambda self, _id: None})()  # type: ignore[assignment]
        try:
            for r in range(args.rounds):
                baseline = record(ctx, args.changes, f"D{r}")
                started = time.perf_counter()
                for change_id in baseline:
                    notifier.sync(change_id)
                direct_times.append(time.perf_counter() - started)
                # The direct syncs left their outbox entries pending: clear
                # them, so the drainer below sees only its own changes.
                notifier.outbox.drain()
                drained = record(ctx, args.changes, f"O{r}")
                started = time.perf_counter()
                synced = notifier.outbox.drain()
                drained_times.append(time.perf_counter() - started)
                assert synced == len(drained), (synced, len(drained))
        finally:
            ctx.notifier = notifier
            ctx.close()
    direct, drained = statistics.median(direct_times), statistics.median(drained_times)
    ratio = drained / direct
    print(f"{args.changes} changes, median of {args.rounds} rounds")
    print(f"  direct sync:   {direct:.3f} s  ({direct / args.changes * 1000:.1f} ms/change)")
    print(f"  outbox drain:  {drained:.3f} s  ({drained / args.changes * 1000:.1f} ms/change)")
    print(f"  ratio: {ratio:.2f}x (target <= {TARGET}x) {'OK' if ratio <= TARGET else 'OVER'}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
