"""A burst of signed `/checkpoint create` commands against a real `serve
--http` process, SIGTERM in the middle of it, and the same deployment
started again: every change recorded gets its thread root, with the
Approve / Reject card of its pending request, and every event its reply,
each exactly once (counted by change ref in the recording Web API).

The changes run on PostgreSQL with the queue on Redis; the commands come
from many channels so Slack's per-channel pace (bot.notify.pacing) does
not make the test wait minutes.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlmodel import col, select

from bot.notify.thread import QUIET
from bot.store.db import make_engine, session_scope
from bot.store.models import Change, ChangeEvent, SlackOutbox
from tests.multiproc_support import (
    DEMO_INVENTORY,
    Cluster,
    process_env,
    wait_until,
    write_config,
)
from tests.slack_support import BOT_TOKEN, SIGNING_SECRET, Call, FakeSlackApi, SlackSender
from tests.test_multiprocess import fresh_pg_url  # noqa: F401 (the fixture)
from tests.test_scale_out import redis_url  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.multiprocess]

BURST = 150
SIGTERM_AFTER = 60  # commands sent before the SIGTERM
CREATE_NEEDS_APPROVAL = """
rules:
  approvals:
    overrides:
      - scope: {tags: {env: prod}}
        params: {count: 1, actions: [create, rollback]}
"""
VMS = ("WEB01", "WEB02", "APP01")
ROOT_TEXT = re.compile(r"^(CHG-\d+):")


def root_posts(api: FakeSlackApi) -> list[Call]:
    return [
        c
        for c in api.of("chat.postMessage")
        if "thread_ts" not in c.body and ROOT_TEXT.match(str(c.body.get("text", "")))
    ]


def ref_of(call: Call) -> str:
    found = ROOT_TEXT.match(str(call.body.get("text", "")))
    assert found is not None
    return found.group(1)


def buttons(call: Call) -> set[str]:
    return {
        str(e.get("action_id"))
        for b in call.body.get("blocks", [])
        if b.get("type") == "actions"
        for e in b.get("elements", [])
    }


def test_a_sigterm_mid_burst_loses_no_thread_and_posts_none_twice(
    tmp_path: Path,
    fresh_pg_url: str,  # noqa: F811 (the fixture)
    redis_url: str,  # noqa: F811 (the fixture)
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(CREATE_NEEDS_APPROVAL, encoding="utf-8")
    engine = make_engine(fresh_pg_url)
    with FakeSlackApi() as api, Cluster(tmp_path / "run") as cluster:
        config = write_config(
            tmp_path / "checkpoint-bot.yaml",
            inventory=DEMO_INVENTORY,
            backend="simulator",
            database_url=fresh_pg_url,
            redis_url=redis_url,
            queue_name=f"cb-outbox-{tmp_path.name[-12:]}",
            slack_api_url=api.api_url,
            channel="C0CHANGES",
            policy=policy,
            jobs={"tick_seconds": 1},
        )
        env = process_env(
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=api.api_url,
        )
        first = cluster.serve(config, env, name="serve1")
        slack = SlackSender(first.url, api)
        sent, refused = Counter[str](), Counter[str]()
        stopped = threading.Event()

        def send(n: int) -> None:
            if n == SIGTERM_AFTER:
                # What a container runtime or systemd sends on a deploy.
                first.proc.popen.send_signal(signal.SIGTERM)
                stopped.set()
            try:
                reply, _ = slack.command(
                    f"create {VMS[n % len(VMS)]} --reason burst {n}", channel=f"C0B{n:03d}"
                )
                (sent if reply.status == 200 else refused)["reply"] += 1
            except OSError:
                refused["unreachable"] += 1

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(send, range(BURST)))
        assert stopped.is_set()
        first.proc.popen.wait(60)  # it stops on its own: no SIGKILL needed
        assert first.proc.popen.returncode is not None, first.proc.tail()

        with session_scope(engine) as s:
            recorded = list(s.exec(select(Change).order_by(col(Change.id))))
            left = s.exec(select(SlackOutbox).where(col(SlackOutbox.done_at).is_(None))).all()
        assert SIGTERM_AFTER // 2 <= len(recorded) <= BURST, first.proc.tail()
        # A command answered before the stop is one the process finished:
        # SIGTERM drains the requests already taken (bot/cli/serve_cmd.py).
        assert sent["reply"] <= len(recorded), first.proc.tail()
        roots_before = len(root_posts(api))
        # A refusal is told to the requester alone: no thread (bot.notify.thread).
        threaded = [c for c in recorded if c.state != "denied"]
        assert threaded, [c.state for c in recorded]
        print(
            f"burst: {sent['reply']} acked, {sum(refused.values())} refused or unreachable; "
            f"{len(recorded)} changes recorded ({len(threaded)} with a thread), "
            f"{roots_before} roots posted before the "
            f"restart, {len({o.change_id for o in left})} changes left in the outbox"
        )

        second = cluster.serve(config, env, name="serve2")

        def settled() -> bool:
            with session_scope(engine) as s:
                open_rows = s.exec(
                    select(SlackOutbox).where(col(SlackOutbox.done_at).is_(None))
                ).all()
            return not open_rows and len({ref_of(c) for c in root_posts(api)}) >= len(threaded)

        def explain() -> str:
            with session_scope(engine) as s:
                rows = s.exec(select(SlackOutbox).where(col(SlackOutbox.done_at).is_(None))).all()
                claims = [
                    c.thread_ts
                    for c in s.exec(select(Change))
                    if c.thread_ts is None or c.thread_ts.startswith("posting:")
                ]
            why = Counter((r.error, r.attempts, r.claimed_by) for r in rows)
            return f"{why}\nroots unposted: {claims}\n{second.proc.tail()}\n{first.proc.tail()}"

        wait_until(settled, 120, "every change's thread after the restart", explain=explain)
        time.sleep(2.5)  # two more drains: any duplicate would show now

        roots = Counter(ref_of(c) for c in root_posts(api))
        refs = {f"CHG-{c.id:04d}" for c in threaded}
        assert set(roots) == refs
        assert [ref for ref, n in roots.items() if n != 1] == []

        # Each change's latest root (post or update) offers its pending request.
        latest: dict[str, Call] = {}
        for call in api.of("chat.postMessage") + api.of("chat.update"):
            text = str(call.body.get("text", ""))
            if "thread_ts" not in call.body and (found := ROOT_TEXT.match(text)):
                latest[found.group(1)] = call
        missing = [
            r for r in refs if {"checkpoint:approve", "checkpoint:reject"} - buttons(latest[r])
        ]
        assert missing == []

        # Every event worth a reply (bot/notify/replies.py) has exactly one in
        # its change's thread; the others are settled as quiet, none posted.
        with session_scope(engine) as s:
            changes = {c.id: c for c in s.exec(select(Change)) if c.state != "denied"}
            events = [
                e
                for e in s.exec(select(ChangeEvent).order_by(col(ChangeEvent.id)))
                if e.change_id in changes
            ]
        replies = Counter(
            (c.body["channel"], c.body["thread_ts"])
            for c in api.of("chat.postMessage")
            if "thread_ts" in c.body
        )
        wanted = Counter(
            (changes[e.change_id].channel, changes[e.change_id].thread_ts)
            for e in events
            if e.slack_ts != QUIET
        )
        assert replies == wanted
        assert all(e.slack_ts and not e.slack_ts.startswith("posting:") for e in events)
        assert any(e.slack_ts == QUIET for e in events) and any(e.slack_ts != QUIET for e in events)
        for change_id, change in changes.items():
            thread = [
                json.dumps(c.body.get("blocks"))
                for c in api.of("chat.postMessage")
                if c.body.get("thread_ts") == change.thread_ts
            ]
            kinds = [e.kind for e in events if e.change_id == change_id and e.slack_ts != QUIET]
            assert len(thread) == len(kinds)
    engine.dispose()
