"""Issue #6, shown with real OS processes on the real servers: bot replicas
(`checkpoint-bot serve --http`), `checkpoint-bot worker`s and the WinRM
emulator, sharing PostgreSQL and a Huey queue on Redis, talking to a
recording Slack Web API in this process.

- 50 concurrent "Roll back" clicks on one change, through two bot
  processes: one restore reaches the host, the thread shows one rollback.
- Two processes claiming the same periodic slots: each slot once; two
  workers ticking the same change windows: each notice once.
- `kill -9` of a worker in the middle of a create: after a restart the
  change reaches a true final state, with no duplicate checkpoint.
- Issue #21: the create's old Approve (new and old value format), clicked on
  both replicas while a rollback waits, restores nothing; correctly signed
  requests from another workspace (the same user ids as ours) and from an
  external member of a shared channel reach neither the record nor the host.

Everything a child prints lands in the test's tmp dir (`NN-name.out/.err`);
a failed assertion shows the tail of each.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import col, select

from bot.hyperv import Checkpoint
from bot.jobs import make_huey
from bot.store.db import make_engine, session_scope
from bot.store.migrate import upgrade
from bot.store.models import (
    ApprovalRequest,
    Change,
    ChangeEvent,
    Job,
    SlackOutbox,
    Tick,
    VMSettingChange,
    change_ref,
)
from tests.multiproc_support import (
    DEMO_INVENTORY,
    Cluster,
    commands_named,
    process_env,
    wait_until,
    write_config,
)
from tests.slack_support import BOT_TOKEN, SIGNING_SECRET, Call, FakeSlackApi, SlackSender
from tests.test_scale_out import redis_url  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.multiprocess]

CHANNEL = "C0CHANGES"
ACK_LIMIT = 3.0  # seconds: what Slack allows
# No approval for rolling back (the shipped policy wants one on prod): the
# clicks themselves must start the restore, so "exactly one" is about them.
NO_ROLLBACK_APPROVAL = """\
rules:
  approvals:
    overrides: []
"""


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def fresh_pg_url(pg_admin_url: str) -> Iterator[str]:
    """A database of its own, migrated to head: child processes never see
    another test's rows, and may leave theirs behind safely."""
    name = f"cbmp_{uuid.uuid4().hex[:10]}"
    admin = make_engine(pg_admin_url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class Deployment:
    """What a test starts processes from: one config, one environment."""

    workdir: Path
    cluster: Cluster
    api: FakeSlackApi
    engine: Engine
    config: Path
    env: dict[str, str]
    command_log: Path

    def explain(self) -> str:
        return self.cluster.diagnostics()


@pytest.fixture
def deployment_factory(
    tmp_path: Path,
    fresh_pg_url: str,
    redis_url: str,  # noqa: F811 (the fixture)
) -> Iterator[Callable[..., Deployment]]:
    """Builds the test's Deployment: the emulator (first: the inventory the
    bot uses names its port), a recording Slack, a config. Teardown kills
    every process started from it, then empties its queue in Redis."""
    with contextlib.ExitStack() as stack:

        def make(
            *,
            emulator_options: tuple[str, ...] = (),
            slow: dict[str, float] | None = None,
            policy_text: str | None = None,
            **jobs: Any,
        ) -> Deployment:
            workdir = tmp_path / "run"
            queue_name = f"cb-mp-{uuid.uuid4().hex[:8]}"
            stack.callback(lambda: make_huey("redis", name=queue_name, redis_url=redis_url).flush())
            api = stack.enter_context(FakeSlackApi())
            engine = make_engine(fresh_pg_url)
            stack.callback(engine.dispose)
            cluster = stack.enter_context(Cluster(workdir))  # stopped before the rest
            command_log, inventory = workdir / "emulator-commands.jsonl", workdir / "inventory.yaml"
            cluster.emulator(
                command_log,
                inventory,
                "--host",
                "HV01",
                *emulator_options,
                env=process_env(),
                slow=slow,
            )
            policy = None
            if policy_text is not None:
                policy = workdir / "policy.yaml"
                policy.write_text(policy_text, encoding="utf-8")
            config = write_config(
                workdir / "checkpoint-bot.yaml",
                inventory=inventory,
                database_url=fresh_pg_url,
                redis_url=redis_url,
                queue_name=queue_name,
                slack_api_url=api.api_url,
                channel=CHANNEL,
                policy=policy,
                jobs=jobs,
            )
            env = process_env(
                SLACK_BOT_TOKEN=BOT_TOKEN,
                SLACK_SIGNING_SECRET=SIGNING_SECRET,
                SLACK_API_URL=api.api_url,
            )
            return Deployment(workdir, cluster, api, engine, config, env, command_log)

        yield make


# --- reading the record ----------------------------------------------------------------------


def latest_change(engine: Engine, vm: str) -> Change | None:
    with session_scope(engine) as s:
        return s.exec(
            select(Change).where(Change.vm_name == vm).order_by(col(Change.id).desc())
        ).first()


def change_by_id(engine: Engine, change_id: int) -> Change:
    with session_scope(engine) as s:
        change = s.get(Change, change_id)
        assert change is not None
        return change


def jobs_of(engine: Engine, change_id: int, kind: str | None = None) -> list[Job]:
    with session_scope(engine) as s:
        query = select(Job).where(Job.change_id == change_id)
        if kind is not None:
            query = query.where(Job.kind == kind)
        return list(s.exec(query.order_by(col(Job.id))).all())


def events_of(engine: Engine, change_id: int) -> list[ChangeEvent]:
    with session_scope(engine) as s:
        return list(
            s.exec(
                select(ChangeEvent)
                .where(ChangeEvent.change_id == change_id)
                .order_by(col(ChangeEvent.seq))
            ).all()
        )


def thread_settled(engine: Engine, change_id: int) -> bool:
    """Every event of the change has its thread reply posted, and no
    drainer still holds the change's outbox rows: a process killed after
    posting but before marking them done would keep the change from every
    other drainer for the lease's two minutes (bot/notify/outbox.py)."""
    change = change_by_id(engine, change_id)
    if change.thread_ts is None or change.thread_ts.startswith("posting:"):
        return False
    with session_scope(engine) as s:
        pending = s.exec(
            select(SlackOutbox.id).where(
                SlackOutbox.change_id == change_id, col(SlackOutbox.done_at).is_(None)
            )
        ).first()
    if pending is not None:
        return False
    return all(
        e.slack_ts is not None and not e.slack_ts.startswith("posting:")
        for e in events_of(engine, change_id)
    )


def thread_replies(api: FakeSlackApi, root_ts: str) -> list[Call]:
    return [c for c in api.of("chat.postMessage") if c.body.get("thread_ts") == root_ts]


def reply_text(call: Call) -> str:
    return str(call.body.get("text", "")) + json.dumps(call.body.get("blocks", []))


def ephemeral_answers(api: FakeSlackApi, keys: list[str]) -> dict[str, dict[str, Any]]:
    wanted = set(keys)
    return {c.method: c.body for c in api.calls if c.method in wanted}


# --- 1. fifty Roll back clicks, two bots, two workers -------------------------------------


def test_fifty_rollback_clicks_across_two_bots_make_one_restore(
    deployment_factory: Callable[..., Deployment],
) -> None:
    dep = deployment_factory(
        policy_text=NO_ROLLBACK_APPROVAL, heartbeat_seconds=1, lock_stale_after="10s"
    )
    cluster, api, engine = dep.cluster, dep.api, dep.engine
    # Two replicas that only answer Slack and enqueue; the two workers run everything.
    bots = [cluster.serve(dep.config, dep.env, name=f"serve{n}", worker=False) for n in (1, 2)]
    for n in (1, 2):
        cluster.worker(dep.config, dep.env, name=f"worker{n}")
    # One response_url numbering for both senders, so every click has its own.
    numbering = itertools.count(1)
    senders = [SlackSender(bot.url, api, _n=numbering) for bot in bots]

    reply, _ = senders[0].command("create WEB01 --reason patching KB5044284", user="U0ALICE")
    assert reply.status == 200, reply
    change = wait_until(
        lambda: (c := latest_change(engine, "WEB01")) is not None and c.state == "active" and c,
        60,
        "WEB01's change to be active",
        explain=dep.explain,
    )
    assert change.id is not None and change.checkpoint_id
    ref = change_ref(change.id)
    value = f"{ref}:v{change.version}"
    wait_until(lambda: thread_settled(engine, change.id), 30, "the create's thread replies")
    assert commands_named(dep.command_log, "Restore-VMSnapshot") == []

    users = ["U0ALICE", "U0BOB", "U0CAROL", "U0DAVE", "U0ERIN"]

    def click(n: int) -> tuple[Any, str]:
        return senders[n % 2].click("checkpoint:rollback", value, user=users[n % len(users)])

    with ThreadPoolExecutor(50) as pool:
        clicks = list(pool.map(click, range(50)))

    slow = [(n, r.status, round(r.seconds, 2)) for n, (r, _) in enumerate(clicks)]
    assert all(r.status == 200 and r.seconds < ACK_LIMIT for r, _ in clicks), slow

    keys = [key for _, key in clicks]
    # The click that started the rollback is told by the card (no private
    # echo); the other 49 each get an answer.
    answers = wait_until(
        lambda: len(found := ephemeral_answers(api, keys)) == len(keys) - 1 and found,
        30,
        "an ephemeral answer to every click but the one that acted",
        explain=lambda: (
            f"{len(ephemeral_answers(api, keys))} of 49 answered\n"
            + "\n".join(b.proc.dump_stacks() for b in bots)
        ),
    )
    time.sleep(1.0)  # a 50th answer, if any, has arrived by now
    answers = ephemeral_answers(api, keys)
    assert len(answers) == len(keys) - 1
    bodies = [json.dumps(answers[k]) for k in keys if k in answers]
    assert all(a.get("response_type") == "ephemeral" for a in answers.values())
    assert not any("rollback started" in b for b in bodies), bodies
    # The other 49 are told politely that the message was out of date (the
    # change moved on), not that something went wrong.
    others = bodies
    assert all("out of date" in b and ref in b for b in others), others[:3]
    assert not any("Something went wrong" in b for b in others), others[:3]

    done = wait_until(
        lambda: (c := change_by_id(engine, change.id)).state in ("rolled_back", "failed") and c,
        60,
        f"{ref} to finish its rollback",
        explain=lambda: f"{[e.kind for e in events_of(engine, change.id)]}\n{dep.explain()}",
    )
    assert done.state == "rolled_back", [e.kind for e in events_of(engine, change.id)]

    restores = jobs_of(engine, change.id, "rollback")
    assert len(restores) == 1 and restores[0].state == "succeeded", restores
    reached = commands_named(dep.command_log, "Restore-VMSnapshot")
    assert len(reached) == 1, reached

    kinds = [e.kind for e in events_of(engine, change.id)]
    assert kinds.count("start_rollback") == 1 and kinds.count("rolled_back") == 1, kinds

    wait_until(
        lambda: thread_settled(engine, change.id),
        30,
        f"{ref}'s thread to catch up",
        explain=dep.explain,
    )
    root_ts = change_by_id(engine, change.id).thread_ts
    assert root_ts is not None
    replies = [reply_text(c) for c in thread_replies(api, root_ts)]
    # The start of the rollback is the card's (no reply); its outcome is one reply.
    assert sum(f"{ref}: start rollback" in r for r in replies) == 0, replies
    assert sum(f"{ref}: rolled back" in r for r in replies) == 1, replies
    # One root for the change, one reply per step that matters: nothing twice.
    roots = [
        c
        for c in api.of("chat.postMessage")
        if "thread_ts" not in c.body and str(c.body.get("text", "")).startswith(ref)
    ]
    assert len(roots) == 1, [c.body.get("text") for c in roots]
    assert len(replies) == len(set(replies)) == 2, (replies, kinds)


# --- 3. kill -9 of a worker in the middle of a create ------------------------------------


def host_checkpoints_named(dep: Deployment, vm_id: str, ref: str) -> list[Checkpoint]:
    """Ask the emulated host itself (over WinRM, as the bot does) which of
    the VM's checkpoints carry the change's ref."""
    from bot.hyperv.winrm.host import WinRMFleet
    from bot.inventory import load_inventory

    fleet = WinRMFleet(
        load_inventory(dep.workdir / "inventory.yaml"),
        dep.env,
        fanout=1,
        call_timeout=30,
        idle_timeout=30,
    )
    try:
        found = fleet.host("HV01").list_checkpoints(vm_id)
    finally:
        fleet.close()
    return [c for c in found if c.name == ref or c.name.startswith(ref + " ")]


def _kill_mid_create(dep: Deployment) -> int:
    """A worker killed (SIGKILL) while WEB01's create waits on the host, its
    `Checkpoint-VM` sent: the change's id."""
    engine = dep.engine
    first = dep.cluster.worker(dep.config, dep.env, name="worker-killed")
    # The request comes from a one-shot CLI process: it enqueues and exits
    # (`serve` would run a consumer of its own).
    asked = dep.cluster.cli(
        dep.config, dep.env, "checkpoint", "create", "WEB01", "--reason", "KB5044284",
        "--no-wait", "--json",
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    change_id = int(json.loads(asked.stdout)["id"])
    wait_until(
        lambda: (
            change_by_id(engine, change_id).state == "creating"
            and commands_named(dep.command_log, "Checkpoint-VM")
            # ...and no thread reply half-posted: the kill tests the job, not
            # the 120 s retake of a Slack post claimed by a dead process.
            and thread_settled(engine, change_id)
        ),
        45,
        f"{change_ref(change_id)} to be creating with Checkpoint-VM sent to the host",
        explain=dep.explain,
    )
    first.kill()
    return change_id


@pytest.mark.parametrize(
    ("host_does", "expected"),
    [
        # The host takes 4 s to make the checkpoint (VSS in the guest): the
        # worker dies waiting, the checkpoint appears after it died, the
        # restarted side finds it and adopts it by its Id.
        pytest.param({"slow": {"Checkpoint-VM": 4.0}}, "active", id="checkpoint-made-after-death"),
    ],
)
def test_kill_9_of_a_worker_mid_create_is_reconciled_after_restart(
    deployment_factory: Callable[..., Deployment], host_does: dict[str, Any], expected: str
) -> None:
    faults = ("--faults", host_does["faults"]) if "faults" in host_does else ()
    dep = deployment_factory(
        emulator_options=("--latency-ms", "50", *faults),
        slow=host_does.get("slow"),
        heartbeat_seconds=1,
        lock_stale_after="6s",
        tick_seconds=1,
    )
    cluster, engine = dep.cluster, dep.engine
    change_id = _kill_mid_create(dep)
    ref = change_ref(change_id)
    assert change_by_id(engine, change_id).state == "creating", "killed too late to tell"
    [create_job] = jobs_of(engine, change_id, "create")
    assert create_job.state == "running"

    cluster.worker(dep.config, dep.env, name="worker-restarted")
    final = wait_until(
        lambda: (c := change_by_id(engine, change_id)).state in ("active", "failed") and c,
        60,
        f"{ref} to reach a final state after the restart",
        explain=lambda: f"{[e.kind for e in events_of(engine, change_id)]}\n{dep.explain()}",
    )

    # The truth on the host decides: the one checkpoint, adopted by its Id,
    # or none and a failed change. Never a second one.
    assert len(commands_named(dep.command_log, "Checkpoint-VM")) == 1
    named = host_checkpoints_named(dep, final.vm_id, ref)
    assert len(named) <= 1, named
    if named:
        assert final.state == "active" and final.checkpoint_id == named[0].id
    else:
        assert final.state == "failed"
    assert final.state == expected

    jobs = jobs_of(engine, change_id, "create")
    assert [(j.id, j.state) for j in jobs] == [(create_job.id, "interrupted")], jobs
    kinds = [e.kind for e in events_of(engine, change_id)]
    assert "interrupt" in kinds, kinds

    wait_until(
        lambda: thread_settled(engine, change_id),
        30,
        f"{ref}'s thread to catch up",
        explain=dep.explain,
    )
    root_ts = change_by_id(engine, change_id).thread_ts
    assert root_ts is not None
    replies = [reply_text(c) for c in thread_replies(dep.api, root_ts)]
    told = [r for r in replies if "reconciled against the host" in r]
    assert len(told) == 1, replies
    assert ("the change is active" if named else "the change failed") in told[0]


def test_kill_9_while_the_host_still_creates_concludes_nothing(
    deployment_factory: Callable[..., Deployment],
) -> None:
    """Checkpoint-VM never finishes: the call the killed worker sent goes on
    on the host, whose VM reports its checkpoint being created. Seen before:
    "none was taken: the change failed (request it again)", and the
    checkpoint appeared, unowned, seconds later. Now the restarted side
    concludes nothing, says so once however many ticks pass, and the
    change stays interrupted."""
    dep = deployment_factory(
        emulator_options=("--latency-ms", "50", "--faults", "hang=Checkpoint-VM"),
        heartbeat_seconds=1,
        lock_stale_after="6s",
        tick_seconds=1,
    )
    cluster, engine = dep.cluster, dep.engine
    change_id = _kill_mid_create(dep)
    ref = change_ref(change_id)
    cluster.worker(dep.config, dep.env, name="worker-restarted")

    def still_creating() -> list[str]:
        return [
            e.message
            for e in events_of(engine, change_id)
            if e.kind == "reconcile_waiting" and "still creating a checkpoint" in e.message
        ]

    wait_until(
        still_creating,
        60,
        f"{ref}'s reconciler to find the host still creating",
        explain=lambda: f"{[e.kind for e in events_of(engine, change_id)]}\n{dep.explain()}",
    )
    time.sleep(4)  # several more ticks of the restarted worker's reconciler
    assert len(still_creating()) == 1, still_creating()
    assert change_by_id(engine, change_id).state == "interrupted"
    kinds = [e.kind for e in events_of(engine, change_id)]
    assert "needs_human" not in kinds, kinds
    assert len(commands_named(dep.command_log, "Checkpoint-VM")) == 1


# --- 2. two schedulers ticking the same slots ---------------------------------------------


def test_two_processes_racing_for_200_slots_claim_each_once(
    tmp_path: Path, fresh_pg_url: str
) -> None:
    """`TickClaims` from two OS processes, each with its own connection pool,
    claiming the same 200 slots in the same order from the same instant."""
    start_at = time.time() + 4.0  # both have imported and connected by then
    with Cluster(tmp_path / "ticks") as cluster:
        racers = [cluster.ticker(fresh_pg_url, name, "race", 200, start_at) for name in ("a", "b")]
        for racer in racers:
            racer.popen.wait(60)
            assert racer.popen.returncode == 0, racer.tail()
        won = {
            row["worker"]: set(row["won"])
            for row in (json.loads(r.stdout.read_text().strip()) for r in racers)
        }
    assert won["a"].isdisjoint(won["b"]), sorted(won["a"] & won["b"])
    assert won["a"] | won["b"] == set(range(200))
    engine = make_engine(fresh_pg_url)
    try:
        with session_scope(engine) as s:
            rows = s.exec(select(Tick).where(Tick.kind == "race")).all()
    finally:
        engine.dispose()
    assert len(rows) == 200
    by_slot = {r.slot: r.worker for r in rows}
    assert all(by_slot[f"slot-{n:04d}"] == w for w, slots in won.items() for n in slots)


def _daily_cron(at: dt.datetime) -> str:
    """A cron line (UTC) matching `at`'s hour and minute every day."""
    return f"{at.minute} {at.hour} * * *"


WINDOW_POLICY = """\
windows:
  - name: mp-open
    cron: "{open_cron}"
    duration: 2h
    timezone: UTC
    scope: {{names: [WEB01]}}
    # Nothing is scheduled: every notice is asked for, so there is one to dedupe.
    notices: {{always: true}}
  - name: mp-soon
    cron: "{soon_cron}"
    duration: 2h
    timezone: UTC
    scope: {{names: [WEB02]}}
    notices: {{always: true}}
"""


def test_two_schedulers_ticking_the_same_windows_post_each_notice_once(
    tmp_path: Path,
    fresh_pg_url: str,
    redis_url: str,  # noqa: F811 (the fixture)
) -> None:
    """Two `worker` processes, each ticking every second from the moment it
    starts: one window opened two minutes ago ("is open" is due), another
    opens in ten ("opens soon" is due, 30 min being the notice's lead).
    Each notice reaches the channel once."""
    now = dt.datetime.now(dt.UTC)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        WINDOW_POLICY.format(
            open_cron=_daily_cron(now - dt.timedelta(minutes=2)),
            soon_cron=_daily_cron(now + dt.timedelta(minutes=10)),
        ),
        encoding="utf-8",
    )
    with FakeSlackApi() as api, Cluster(tmp_path / "run") as cluster:
        queue_name = f"cb-mp-{uuid.uuid4().hex[:8]}"
        config = write_config(
            tmp_path / "checkpoint-bot.yaml",
            inventory=DEMO_INVENTORY,
            backend="simulator",
            database_url=fresh_pg_url,
            redis_url=redis_url,
            queue_name=queue_name,
            slack_api_url=api.api_url,
            channel=CHANNEL,
            policy=policy,
            jobs={"tick_seconds": 1},
        )
        env = process_env(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=api.api_url)
        try:
            tasks = _periodic_task_names(config, env)
            assert any("window" in name for name in tasks), f"no window task in {tasks}"
            for n in (1, 2):
                cluster.worker(config, env, name=f"worker{n}")

            def notices() -> list[str]:
                return [
                    str(c.body.get("text", ""))
                    for c in api.of("chat.postMessage")
                    if "thread_ts" not in c.body and "Change window mp-" in str(c.body.get("text"))
                ]

            wait_until(
                lambda: len(notices()) >= 2,
                30,
                "the notices of both windows in the channel",
                explain=lambda: f"{notices()}\n{cluster.diagnostics()}",
            )
            # Both processes tick every second: give each a few more rounds
            # in which it would post a duplicate, if it did.
            time.sleep(3.5)
            posted = notices()
            assert all(
                c.body["channel"] == CHANNEL
                for c in api.of("chat.postMessage")
                if "thread_ts" not in c.body
            )
            assert sum("Change window mp-open is open" in t for t in posted) == 1, posted
            assert sum("Change window mp-soon opens soon" in t for t in posted) == 1, posted
            assert len(posted) == 2, posted
            engine = make_engine(fresh_pg_url)
            try:
                with session_scope(engine) as s:
                    claimed = s.exec(select(Tick).where(col(Tick.kind).startswith("window"))).all()
            finally:
                engine.dispose()
            assert sorted(t.slot.split(":")[0] for t in claimed) == ["mp-open", "mp-soon"]
        finally:
            make_huey("redis", name=queue_name, redis_url=redis_url).flush()


def _periodic_task_names(config: Path, env: dict[str, str]) -> list[str]:
    """What every process ticks, from a context built on `config` here."""
    from bot.config import load_settings
    from bot.context import build_context

    ctx = build_context(load_settings(config, env, config.parent), env=env)
    try:
        return [task.name for task in ctx.periodic_tasks()]
    finally:
        ctx.close()


# --- 4. issue #21 on two replicas: bound buttons, one workspace ------------------------------

# On prod a create, a rollback and an extension each wait for one approver;
# U0CAROL is an admin (she may change VM settings).
BOUND_POLICY = """\
admins: {users: [U0CAROL]}
rules:
  approvals:
    overrides:
      - scope: {tags: {env: prod}}
        params: {count: 1, actions: [create, rollback, extend]}
"""
MUTATING = ("Checkpoint-VM", "Restore-VMSnapshot", "Remove-VMSnapshot", "Set-VM", "Start-VM")


def pending_requests(engine: Engine, change_id: int) -> list[tuple[int, str, int]]:
    with session_scope(engine) as s:
        rows = s.exec(
            select(ApprovalRequest)
            .where(ApprovalRequest.change_id == change_id, ApprovalRequest.state == "pending")
            .order_by(col(ApprovalRequest.id))
        ).all()
        return [(r.id or 0, r.action, len(r.approvals)) for r in rows]


def host_work(dep: Deployment) -> dict[str, int]:
    return {name: len(commands_named(dep.command_log, name)) for name in MUTATING}


def record_of(engine: Engine) -> list[Any]:
    """Every row a request could have written."""
    with session_scope(engine) as s:
        return [
            sorted((c.id or 0, c.state, c.version) for c in s.exec(select(Change)).all()),
            sorted((e.id or 0, e.kind) for e in s.exec(select(ChangeEvent)).all()),
            sorted(
                (r.id or 0, r.state, len(r.approvals))
                for r in s.exec(select(ApprovalRequest)).all()
            ),
            sorted((j.id or 0, j.kind) for j in s.exec(select(Job)).all()),
            sorted(v.id or 0 for v in s.exec(select(VMSettingChange)).all()),
        ]


def _active(dep: Deployment, vm: str) -> Change:
    return wait_until(
        lambda: (c := latest_change(dep.engine, vm)) is not None and c.state == "active" and c,
        60,
        f"{vm}'s change to be active",
        explain=dep.explain,
    )


def _waiting(dep: Deployment, change_id: int, action: str) -> tuple[int, str, int]:
    return wait_until(
        lambda: next((p for p in pending_requests(dep.engine, change_id) if p[1] == action), None),
        30,
        f"a {action} request on {change_ref(change_id)}",
        explain=dep.explain,
    )


def test_an_old_create_approve_on_two_replicas_never_approves_a_rollback(
    deployment_factory: Callable[..., Deployment],
) -> None:
    dep = deployment_factory(policy_text=BOUND_POLICY)
    cluster, api, engine = dep.cluster, dep.api, dep.engine
    bots = [cluster.serve(dep.config, dep.env, name=f"serve{n}", worker=False) for n in (1, 2)]
    cluster.worker(dep.config, dep.env)
    numbering = itertools.count(1)
    senders = [SlackSender(bot.url, api, _n=numbering) for bot in bots]

    reply, _ = senders[0].command("create WEB01 --reason KB5044284", user="U0ALICE")
    assert reply.status == 200
    asked = wait_until(
        lambda: latest_change(engine, "WEB01"), 30, "the request", explain=dep.explain
    )
    assert asked.id is not None
    change_id, ref = asked.id, change_ref(asked.id)
    create_id, _, _ = _waiting(dep, change_id, "create")
    card = change_by_id(engine, change_id).version
    create_approve, legacy = f"{ref}:create#{create_id}:v{card}", f"{ref}:v{card}"

    # The create is approved and the rollback asked for with the values of
    # messages posted before buttons said what they were for (CHG-n:vN): at
    # exactly their version, with one thing waiting, they still act.
    senders[1].click("checkpoint:approve", legacy, user="U0BOB")
    active = _active(dep, "WEB01")
    senders[0].click("checkpoint:rollback", f"{ref}:v{active.version}", user="U0ALICE")
    rollback_id, _, _ = _waiting(dep, change_id, "rollback")
    before, host_before = record_of(engine), host_work(dep)
    assert host_before["Checkpoint-VM"] == 1 and host_before["Restore-VMSnapshot"] == 0

    # The create-time buttons, new and old format, clicked on both replicas at once.
    clicks = [
        (senders[n % 2], value, user)
        for n, (value, user) in enumerate(
            [(v, u) for v in (create_approve, legacy) for u in ("U0CAROL", "U0DAVE", "U0ERIN")]
        )
    ]
    with ThreadPoolExecutor(len(clicks)) as pool:
        sent = list(pool.map(lambda c: c[0].click("checkpoint:approve", c[1], user=c[2]), clicks))
    assert all(r.status == 200 and r.seconds < ACK_LIMIT for r, _ in sent)
    keys = [k for _, k in sent]
    answers = wait_until(
        lambda: len(found := ephemeral_answers(api, keys)) == len(keys) and found,
        30,
        "an answer to every click",
        explain=dep.explain,
    )
    time.sleep(3.0)  # a restore wrongly queued would have reached the host by now
    assert host_work(dep) == host_before
    assert record_of(engine) == before
    assert pending_requests(engine, change_id) == [(rollback_id, "rollback", 0)]
    for k in keys:
        told = json.dumps(answers[k])
        assert "out of date" in told and "nothing was done" in told, told
        assert "the rollback" in told, told

    # The rollback's own button approves it: one restore reaches the host.
    rollback_approve = f"{ref}:rollback#{rollback_id}:v{change_by_id(engine, change_id).version}"
    senders[1].click("checkpoint:approve", rollback_approve, user="U0CAROL")
    wait_until(
        lambda: change_by_id(engine, change_id).state == "rolled_back",
        60,
        f"{ref} to be rolled back",
        explain=dep.explain,
    )
    assert len(commands_named(dep.command_log, "Restore-VMSnapshot")) == 1


def test_requests_from_another_workspace_on_two_replicas_reach_nothing(
    deployment_factory: Callable[..., Deployment],
) -> None:
    dep = deployment_factory(policy_text=BOUND_POLICY)
    cluster, api, engine = dep.cluster, dep.api, dep.engine
    bots = [cluster.serve(dep.config, dep.env, name=f"serve{n}", worker=False) for n in (1, 2)]
    cluster.worker(dep.config, dep.env)
    numbering = itertools.count(1)
    ours = [SlackSender(bot.url, api, _n=numbering) for bot in bots]

    # Ours: a create waiting (WEB01), and an active APP01 with an extension waiting.
    ours[0].command("create WEB01 --reason KB5044284", user="U0ALICE")
    ours[1].command("create APP01 --reason deploy", user="U0ALICE")
    web = wait_until(lambda: latest_change(engine, "WEB01"), 30, "WEB01's change")
    app = wait_until(lambda: latest_change(engine, "APP01"), 30, "APP01's change")
    assert web.id is not None and app.id is not None
    web_ref, app_ref = change_ref(web.id), change_ref(app.id)
    create_id, _, _ = _waiting(dep, web.id, "create")
    app_create, _, _ = _waiting(dep, app.id, "create")
    # Approved with an old message's value (CHG-n:vN): one thing waits at that version.
    app_card = change_by_id(engine, app.id).version
    ours[0].click("checkpoint:approve", f"{app_ref}:v{app_card}", user="U0BOB")
    active = _active(dep, "APP01")
    ours[1].command(f"extend {app_ref} 48h", user="U0ALICE")
    extend_id, _, _ = _waiting(dep, app.id, "extend")
    wait_until(lambda: thread_settled(engine, app.id), 30, "the threads to settle")
    version = change_by_id(engine, app.id).version
    web_version = change_by_id(engine, web.id).version

    # Correctly signed, from T0FOREIGN, with the same user ids as ours; and
    # an external member of a shared channel in our own workspace.
    foreign = [s.as_team("T0FOREIGN") for s in ours]
    external = ours[1].as_team("T0TEST", user_team="T0EXT")
    before, host_before = record_of(engine), host_work(dep)
    slash = [
        (foreign[0], f"approve {web_ref}", "U0BOB"),
        (foreign[1], f"reject {web_ref} --reason no", "U0BOB"),
        (foreign[0], f"approve {app_ref} extend", "U0BOB"),
        (foreign[1], "settings FS01 --automatic off", "U0CAROL"),
        (foreign[0], f"merge {app_ref}", "U0ALICE"),
        (foreign[1], "create APP01 --reason theirs", "U0ALICE"),
    ]
    acks = [sender.command(text, user=user) for sender, text, user in slash]
    clicks = [
        foreign[1].click("checkpoint:approve", f"{web_ref}:create#{create_id}:v{web_version}"),
        foreign[0].click("checkpoint:reject", f"{web_ref}:create#{create_id}:v{web_version}"),
        foreign[1].click("checkpoint:approve", f"{app_ref}:extend#{extend_id}:v{version}"),
        foreign[0].click("checkpoint:rollback", f"{app_ref}:rollback:v{version}", user="U0ALICE"),
        external.click("checkpoint:approve", f"{web_ref}:create#{create_id}:v{web_version}"),
    ]
    keys = [k for _, k in clicks]
    answers = wait_until(
        lambda: len(found := ephemeral_answers(api, keys)) == len(keys) and found,
        30,
        "an answer to every click",
        explain=dep.explain,
    )
    time.sleep(3.0)  # anything wrongly started would have reached the host by now
    assert host_work(dep) == host_before
    assert record_of(engine) == before
    # Each was told, on the request's own way back (a slash command's ack).
    for reply, _ in acks:
        assert reply.status == 200 and "works only for the Slack workspace" in reply.body
    assert all("nothing was done" in json.dumps(answers[k]) for k in keys)
    assert host_before["Checkpoint-VM"] == 1 and host_before["Set-VM"] == 0
    logged = "".join(b.proc.output() for b in bots)
    assert logged.count("refused a") >= len(slash) + len(clicks), logged[-2000:]
    assert active.state == "active" and app_create != create_id


# --- issue #17 item 3: App Homes follow a change a worker process moved -------------------


def home_publishes(api: FakeSlackApi, user: str) -> list[str]:
    """The App Home texts published for `user`, oldest first."""
    return [
        json.dumps(c.body.get("view"), ensure_ascii=False)
        for c in api.of("views.publish")
        if c.body.get("user_id") == user
    ]


def test_a_create_a_worker_finishes_republishes_the_requesters_home(
    deployment_factory: Callable[..., Deployment],
) -> None:
    # Two replicas that only answer Slack; the worker, which has no Slack app
    # and so no Home to render, runs the create (docs/operations.md,
    # "App Homes across processes").
    # The host takes its time, so the replica's own refresh after the request
    # is over before the checkpoint is taken.
    dep = deployment_factory(tick_seconds=1, slow={"Checkpoint-VM": 4.0})
    cluster, api, engine = dep.cluster, dep.api, dep.engine
    bots = [cluster.serve(dep.config, dep.env, name=f"serve{n}", worker=False) for n in (1, 2)]
    cluster.worker(dep.config, dep.env)
    sender = SlackSender(bots[0].url, api)

    reply, _ = sender.command("create WEB01 --reason patching KB5044284", user="U0ALICE")
    assert reply.status == 200, reply
    asked = wait_until(lambda: latest_change(engine, "WEB01"), 30, "the request")
    assert asked.id is not None
    wait_until(
        lambda: any(f"*{change_ref(asked.id)}*" in h for h in home_publishes(api, "U0ALICE")),
        30,
        "the replica's own refresh of U0ALICE's Home",
    )
    assert change_by_id(engine, asked.id).state != "active"
    change = wait_until(
        lambda: (c := latest_change(engine, "WEB01")) is not None and c.state == "active" and c,
        60,
        "WEB01's change to be active",
        explain=dep.explain,
    )
    assert change.id is not None
    # The Home line of an active change (templates/slack/app_home.json.j2).
    active_line = f"*{change_ref(change.id)}* · WEB01 on HV01 · active"
    # Nobody opens a Home: the publish comes from a serving process's tick.
    homes = wait_until(
        lambda: [h for h in home_publishes(api, "U0ALICE") if active_line in h],
        30,
        "U0ALICE's Home to show the active change",
        explain=lambda: f"{home_publishes(api, 'U0ALICE')}\n{dep.explain()}",
    )
    assert "Your open changes (1)" in homes[0], homes[0]
    assert api.of("app_home_opened") == []
    # Every record the worker left was claimed and published, none is left.
    wait_until(
        lambda: _stale_homes(engine) == 0, 10, "the stale Homes to be drained", explain=dep.explain
    )


def _stale_homes(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM stale_home")).scalar_one())
