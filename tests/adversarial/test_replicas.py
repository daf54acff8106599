"""The hostile inputs that need real processes: two `serve --http`
replicas on PostgreSQL and Redis, a worker and the WinRM emulator.

- One signed slash command replayed to both replicas, many times: one change.
- Approve clicked at once by many people on both replicas: the checkpoint is
  made once on the host.
- A 100 MiB unsigned POST to a replica: refused, and the replica's peak RSS
  grows by little (measured on the process itself).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlmodel import func, select

from bot.store.db import session_scope
from bot.store.models import Change, change_ref
from tests.adversarial.conftest import Tally
from tests.adversarial.test_http_front import MIB, RSS_BOUND, raw_post
from tests.multiproc_support import commands_named, wait_until
from tests.slack_support import TEAM_ID, SlackSender
from tests.test_multiprocess import (  # noqa: F401 (fixtures)
    CHANNEL,
    Deployment,
    deployment_factory,
    fresh_pg_url,
    latest_change,
    redis_url,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.multiprocess]

CREATE_NEEDS_APPROVAL = """\
rules:
  approvals:
    overrides:
      - scope: {tags: {env: prod}}
        params: {count: 1, actions: [create]}
"""
FORM = "application/x-www-form-urlencoded"


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def _changes_of(dep: Deployment, vm: str) -> int:
    with session_scope(dep.engine) as s:
        return int(s.exec(select(func.count()).where(Change.vm_name == vm)).one())


def test_replays_races_and_a_huge_body_on_two_replicas(
    deployment_factory: Callable[..., Deployment],  # noqa: F811
    hostile: Tally,
) -> None:
    dep = deployment_factory(policy_text=CREATE_NEEDS_APPROVAL, heartbeat_seconds=1)
    cluster, api = dep.cluster, dep.api
    bots = [cluster.serve(dep.config, dep.env, name=f"serve{n}", worker=False) for n in (1, 2)]
    cluster.worker(dep.config, dep.env)
    numbering = itertools.count(1)
    senders = [SlackSender(bot.url, api, _n=numbering) for bot in bots]

    # 1. One signed command, replayed 10 times to each replica at once.
    form = urlencode(
        {
            "token": "legacy",
            "team_id": TEAM_ID,
            "team_domain": "test",
            "channel_id": CHANNEL,
            "channel_name": "changes",
            "user_id": "U0ALICE",
            "user_name": "alice",
            "command": "/checkpoint",
            "text": "create WEB01 --reason KB5044284",
            "api_app_id": "A0TEST",
            "is_enterprise_install": "false",
            "response_url": f"{api.url}/response/replayed",
            "trigger_id": "trigger.replayed",
        }
    )
    stamp = int(time.time())

    def replay(n: int) -> int:
        return senders[n % 2].post(form, FORM, timestamp=stamp).status

    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(replay, range(20)))
    assert all(s == 200 for s in statuses), statuses
    change = wait_until(
        lambda: (c := latest_change(dep.engine, "WEB01")) is not None and c,
        30,
        "the replayed create's change",
        explain=dep.explain,
    )
    time.sleep(2.0)  # a second change, if one were made, would be there by now
    made = _changes_of(dep, "WEB01")
    for n in range(19):
        hostile.record("replayed slash command", made > 1 and n < made - 1, f"{made} changes")
    assert made == 1

    # 2. Twenty people click Approve at once, half on each replica.
    assert change.id is not None
    ref = change_ref(change.id)
    wait_until(
        lambda: (
            (c := latest_change(dep.engine, "WEB01")) is not None
            and c.state == "awaiting_approval"
            and c.thread_ts is not None
            and not c.thread_ts.startswith("posting:")
        ),
        30,
        f"{ref} waiting for approval with its thread",
        explain=dep.explain,
    )
    waiting = latest_change(dep.engine, "WEB01")
    assert waiting is not None
    approve = f"{ref}:v{waiting.version}"
    users = [f"U0APPROVER{n:02d}" for n in range(20)]

    def click(n: int) -> Any:
        return senders[n % 2].click("checkpoint:approve", approve, user=users[n])[0]

    with ThreadPoolExecutor(20) as pool:
        replies = list(pool.map(click, range(20)))
    assert all(r.status == 200 for r in replies), [r.status for r in replies]
    done = wait_until(
        lambda: (
            (c := latest_change(dep.engine, "WEB01")) is not None
            and c.state in ("active", "failed")
            and c
        ),
        60,
        f"{ref} to be created",
        explain=dep.explain,
    )
    assert done.state == "active", done.state
    time.sleep(1.0)
    made_on_host = len(commands_named(dep.command_log, "Checkpoint-VM"))
    for n in range(19):
        hostile.record("racing Approve click", made_on_host > 1 and n < made_on_host - 1, ref)
    assert made_on_host == 1

    # 3. 100 MiB unsigned, measured on the replica that receives it.
    pid = bots[0].proc.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # peak RSS := current RSS
    before = _status_kib(pid, "VmRSS")
    status = raw_post(
        bots[0].url,
        {"Content-Type": FORM, "Content-Length": str(100 * MIB)},
        (b"0" * MIB for _ in range(100)),
    )
    grown = (_status_kib(pid, "VmHWM") - before) * 1024
    print(f"replica: 100 MiB unsigned POST -> {status}, peak RSS +{grown / MIB:.1f} MiB")
    assert status in (413, None) and grown < RSS_BOUND
    hostile.record("oversized body", status is not None and status < 300, "100 MiB to a replica")
