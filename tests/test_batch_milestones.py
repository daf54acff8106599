"""A wave's milestones over the recording Web API (tests/slack_support.py),
on SQLite and PostgreSQL: the end of its create, Roll back all and Keep &
merge all is one reply in its thread ("2 of 2 taken"), each posted once
however many processes drain the outbox; while it runs, the thread stays
quiet but for failures and the card's progress line follows the members
(bot/changes/batch_milestones.py, docs/batches.md "In Slack")."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from slack_sdk import WebClient
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.changes.batch_milestones import finish_of, note_finished
from bot.changes.batch_record import batch_note, get_batch, open_batch
from bot.changes.record import get_change, note
from bot.jobs.states import is_final
from bot.notify import ChannelPacer, ThreadNotifier
from bot.service import (
    BatchAction,
    MemberResult,
    Selection,
    approve_batch,
    create_batch,
    merge_batch,
    rollback_batch,
    show_batch,
)
from bot.store.db import session_scope
from bot.store.models import Batch, BatchEvent, Change
from templates import Renderer
from templates.blocks import SlackRenderer
from tests.slack_support import BOT_TOKEN, Call, RunningBot, running_bot
from tests.test_slack_flow import checked_calls, roots, shown, slack_problems, wave_replies


@contextmanager
def checked_wave_bot(tmp_path: Path, db_url: str) -> Iterator[RunningBot]:
    """A running bot on `db_url` whose every message is checked against
    slack_sdk's Block Kit models once it stops."""
    with running_bot(tmp_path, policy_text="", database_url=db_url) as bot:
        yield bot
    sent = checked_calls(bot.api.calls)
    assert sent and [p for c in sent for p in slack_problems(c)] == []


@contextmanager
def second_process(bot: RunningBot) -> Iterator[ThreadNotifier]:
    """Another replica's notifier: the same database and Web API, its own
    outbox drainer and claims."""
    other = ThreadNotifier(
        bot.ctx.engine,
        WebClient(token=BOT_TOKEN, base_url=bot.api.api_url),
        SlackRenderer(Renderer()),
        default_channel="C0OPS",
        demo=False,
        start_after_restore=False,
        pacer=ChannelPacer(rate=1000.0, burst=1000),
        owner="replica-2",
    )
    try:
        yield other
    finally:
        other.close()


def _finished(calls: list[Call]) -> list[str]:
    return [m for m in wave_replies(calls) if "finished*" in m]


def _events(bot: RunningBot, kind: str) -> list[BatchEvent]:
    with session_scope(bot.ctx.engine) as s:
        return list(s.exec(select(BatchEvent).where(col(BatchEvent.kind) == kind)).all())


def _wait_jobs(bot: RunningBot, job_ids: Sequence[int | None]) -> None:
    for job_id in job_ids:
        if job_id is not None:
            job = bot.ctx.ledger.wait(job_id, timeout=30)
            # A job still running after 30 s is the failure, not what follows.
            assert is_final(job.state), f"job {job_id} is still {job.state}"


def _drain_twice_at_once(bot: RunningBot, other: ThreadNotifier, change_ids: list[int]) -> None:
    """Both processes sync every member at the same moment (as two
    replicas draining the same outbox entries would), then each drains."""
    barrier = threading.Barrier(2)
    problems: list[BaseException] = []

    def run(notifier: ThreadNotifier) -> None:
        try:
            barrier.wait(timeout=10)
            for change_id in change_ids:
                notifier.sync(change_id)
        except BaseException as exc:  # reported below, not lost in the thread
            problems.append(exc)

    assert isinstance(bot.ctx.notifier, ThreadNotifier)
    threads = [threading.Thread(target=run, args=(n,)) for n in (bot.ctx.notifier, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert problems == []
    bot.ctx.notifier.drain()
    other.drain()
    bot.ctx.notifier.flush()
    other.flush()


def test_each_end_of_a_wave_is_one_reply_posted_once_by_two_processes(
    tmp_path: Path, db_url: str
) -> None:
    with checked_wave_bot(tmp_path, db_url) as bot, second_process(bot) as other:
        out = create_batch(
            bot.ctx,
            Selection.of(["CORP-DC01", "STG-WEB01", "WEB01"]),
            reason="KB5044284 wave",
            requester="U0ALICE",
            channel="C0OPS",
        )
        members = [o.change.id for o in out.outcomes]
        _wait_jobs(bot, [o.job_id for o in out.outcomes])
        _drain_twice_at_once(bot, other, members)
        assert len(_events(bot, "create_finished")) == 1
        said = bot.api.wait_for(lambda cs: len(_finished(cs)) >= 1, 30)
        (taken,) = _finished(said)
        assert ":checkered_flag: *Checkpoints of the wave finished*" in taken
        assert "2 of 2 taken, 1 refused (asked by <@U0ALICE>)" in taken
        # The time as a date token, so each reader sees their own zone.
        assert "<!date^" in taken
        # Told once: another round of both processes adds nothing.
        with session_scope(bot.ctx.engine) as s:
            assert finish_of(s, out.batch.id) is None

        rolled = rollback_batch(bot.ctx, out.batch.ref, requester="U0ALICE")
        # A production VM's rollback waits for an approver: the whole wave does.
        assert rolled.decision.verdict.value == "needs_approval"
        approved = approve_batch(bot.ctx, out.batch.ref, approver="U0BOB")
        _wait_jobs(bot, approved.job_ids)
        _drain_twice_at_once(bot, other, members)
        said = bot.api.wait_for(lambda cs: len(_finished(cs)) >= 2, 30)
        assert ":checkered_flag: *Roll back all finished*" in _finished(said)[1]
        assert "2 of 2 rolled back (asked by <@U0ALICE>)" in _finished(said)[1]

        merged = merge_batch(bot.ctx, out.batch.ref, requester="U0BOB")
        # Each member started, or the reason it did not is the failure.
        started = [m for m in merged.members if m.result is not MemberResult.SKIPPED]
        assert [(m.vm, m.detail) for m in started if m.job_id is None] == []
        _wait_jobs(bot, merged.job_ids)
        _drain_twice_at_once(bot, other, members)
        said = bot.api.wait_for(lambda cs: len(_finished(cs)) >= 3, 30)
        assert "2 of 2 merged (asked by <@U0BOB>)" in _finished(said)[2]

        _drain_twice_at_once(bot, other, members)
        assert len(_finished(bot.api.calls)) == 3
        for kind in ("create_finished", "rollback_finished", "merge_finished"):
            (event,) = _events(bot, kind)
            assert event.slack_ts is not None and not event.slack_ts.startswith("posting:")
        # `batch show` tells the same story in the wave's history.
        kinds = [e.kind for e in show_batch(bot.ctx, out.batch.ref).events]
        assert kinds.index("create_finished") < kinds.index("rollback_awaits_approval")
        assert kinds.index("rollback_finished") < kinds.index("merge_started")


def test_while_a_wave_runs_only_failures_are_replies_and_the_card_keeps_count(
    tmp_path: Path, db_url: str
) -> None:
    with checked_wave_bot(tmp_path, db_url) as bot:
        # STG-APP01's VSS writers are broken (the demo's host model): its
        # production-only checkpoint fails; STG-WEB01's and WEB01's are taken.
        out = create_batch(
            bot.ctx,
            Selection.of(["STG-WEB01", "STG-APP01", "WEB01"]),
            reason="staging wave",
            requester="U0ALICE",
            checkpoint_type="production-only",
            channel="C0OPS",
        )
        _wait_jobs(bot, [o.job_id for o in out.outcomes])
        assert isinstance(bot.ctx.notifier, ThreadNotifier)
        bot.ctx.notifier.drain()
        bot.ctx.notifier.flush()
        said = bot.api.wait_for(lambda cs: len(_finished(cs)) >= 1, 30)
        replies = [shown(c.body) for c in said if c.body.get("thread_ts")]
        # The thread: the one failure, then the end naming it and why.
        assert len(replies) == 2, [r[:80] for r in replies]
        assert "STG-APP01" in replies[0] and "create failed" in replies[0]
        assert ":warning: *Checkpoints of the wave finished*" in replies[1]
        assert "2 of 3 taken, 1 failed: STG-APP01 — " in replies[1]

        # The card ends at the outcome: posted then updated as each member
        # moved, or, on a loaded machine, posted once the members had ended
        # (the root waits for every member to be recorded). The failed
        # member is not done ("3 of 3 done" until 2026-12-05).
        def last_card(calls: list[Call]) -> str:
            cards = roots(calls, "BAT-0001")
            return shown(cards[-1].body) if cards else ""

        calls = bot.api.wait_for(lambda cs: "2 of 3 done, 1 failed" in last_card(cs), 30)
        assert "2 of 3 done, 1 failed" in last_card(calls)


# --- how an action's end is counted (bot/changes/batch_milestones.py) ---------------------

T0 = datetime(2026, 12, 4, 21, 0, tzinfo=UTC)


def _wave(engine: Engine, states: dict[str, str]) -> tuple[int, dict[str, Change]]:
    with session_scope(engine) as s:
        batch = open_batch(
            s,
            Batch(requester="U0ALICE", reason="wave", checkpoint_type="production",
                  ttl_seconds=3600, channel="C0OPS"),
            now=T0,
            details={},
        )  # fmt: skip
        assert batch.id is not None
        members = {}
        for vm, state in states.items():
            change = Change(vm_id=f"vm-{vm}", vm_name=vm, host="HV01", reason="wave",
                            requester="U0ALICE", checkpoint_type="production", state=state,
                            ttl_seconds=3600, batch_id=batch.id, channel="C0OPS",
                            created_at=T0, updated_at=T0)  # fmt: skip
            s.add(change)
            s.flush()
            members[vm] = change
        return batch.id, members


def test_a_roll_back_all_ends_with_its_failure_and_what_never_ran(engine: Engine) -> None:
    batch_id, m = _wave(engine, {"WEB01": "rolled_back", "WEB02": "active", "APP01": "active"})
    with session_scope(engine) as s:
        batch_note(s, get_batch(s, batch_id), kind="rollback_started", actor="U0BOB", now=T0,
                   message="rollback of 3 members",
                   details={"targets": [c.id for c in m.values()]})  # fmt: skip
        # Before the action: an old failure of APP01 is not this rollback's.
        note(s, get_change(s, m["APP01"].id or 0), kind="create_failed", actor="bot",
             now=T0 - timedelta(hours=1), message="old")  # fmt: skip
        note(s, get_change(s, m["WEB02"].id or 0), kind="rollback_failed", actor="bot",
             now=T0 + timedelta(minutes=1), message="disks merging")  # fmt: skip
    with session_scope(engine) as s:
        finish = finish_of(s, batch_id)
    assert finish is not None
    assert finish.done == ("WEB01",) and [vm for vm, _ in finish.failed] == ["WEB02"]
    assert finish.not_run == 1
    assert finish.message().startswith("1 of 2 rolled back, 1 failed: WEB02 — ")
    assert finish.message().endswith(", 1 not run (asked by <@U0BOB>)")
    with session_scope(engine) as s:
        assert note_finished(s, batch_id)
    with session_scope(engine) as s:
        assert not note_finished(s, batch_id)  # told once
        (event,) = s.exec(
            select(BatchEvent).where(col(BatchEvent.kind) == "rollback_finished")
        ).all()
    # When the last member's step was recorded, not when it was noticed.
    assert event.at == T0 + timedelta(minutes=1)
    assert event.details["failed"] == {"WEB02": finish.failed[0][1]}


def test_nothing_is_told_while_a_member_is_on_its_way_or_for_an_old_wave(engine: Engine) -> None:
    batch_id, m = _wave(engine, {"WEB01": "active", "WEB02": "creating"})
    with session_scope(engine) as s:
        batch_note(s, get_batch(s, batch_id), kind="members_recorded", actor="bot", now=T0,
                   message="2", details={"targets": [c.id for c in m.values()]})  # fmt: skip
    with session_scope(engine) as s:
        assert finish_of(s, batch_id) is None  # WEB02 is still being taken
        change = s.get(Change, m["WEB02"].id)
        assert change is not None
        change.state = "active"
    with session_scope(engine) as s:
        finish = finish_of(s, batch_id)
        assert finish is not None and finish.message() == "2 of 2 taken (asked by <@U0ALICE>)"
    # A wave whose start names no members (recorded before `targets`).
    old_id, _ = _wave(engine, {"SQL01": "active"})
    with session_scope(engine) as s:
        batch_note(s, get_batch(s, old_id), kind="members_recorded", actor="bot", now=T0,
                   message="1", details={})  # fmt: skip
    with session_scope(engine) as s:
        assert finish_of(s, old_id) is None


def test_the_end_of_a_create_says_a_withdrawn_member_is_withdrawn(engine: Engine) -> None:
    """Its requester took APP01 back before its window opened: "1 refused"
    until 2026-12-05, though nobody refused it."""
    batch_id, m = _wave(engine, {"WEB01": "active", "APP01": "withdrawn", "SQL01": "denied"})
    with session_scope(engine) as s:
        batch_note(s, get_batch(s, batch_id), kind="members_recorded", actor="bot", now=T0,
                   message="3", details={"targets": [c.id for c in m.values()]})  # fmt: skip
    with session_scope(engine) as s:
        finish = finish_of(s, batch_id)
    assert finish is not None and (finish.refused, finish.withdrawn) == (1, 1)
    assert finish.message() == "1 of 1 taken, 1 refused, 1 withdrawn (asked by <@U0ALICE>)"


@pytest.mark.parametrize(
    ("act", "told"),
    [(rollback_batch, "2 of 2 rolled back"), (merge_batch, "2 of 2 merged")],
    ids=["rollback", "merge"],
)
def test_a_member_that_ends_before_the_others_begin_does_not_end_the_wave(
    tmp_path: Path,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    act: Callable[..., BatchAction],
    told: str,
) -> None:
    """A member's job may end in moments (a fast host, a refusal at its
    re-check): the wave's end must wait for the members the loop has not
    begun yet, not count them as not run ("1 of 1 merged, 1 not run", seen
    once in CI when each member's job was handed to the queue as soon as
    that member began)."""
    with checked_wave_bot(tmp_path, db_url) as bot:
        out = create_batch(
            bot.ctx,
            Selection.of(["STG-WEB01", "STG-APP01"]),
            reason="staging wave",
            requester="U0ALICE",
            channel="C0OPS",
        )
        members = [o.change.id for o in out.outcomes]
        _wait_jobs(bot, [o.job_id for o in out.outcomes])
        assert isinstance(bot.ctx.notifier, ThreadNotifier)
        notifier = bot.ctx.notifier
        notifier.drain()
        notifier.flush()
        delivered = bot.ctx.deliver

        def at_once(job_id: int) -> bool:
            # The job runs to its end and every member is synced (the wave's
            # end asked for) before the caller goes on.
            ok = delivered(job_id)
            bot.ctx.ledger.wait(job_id, timeout=30)
            for change_id in members:
                notifier.sync(change_id)
            return ok

        monkeypatch.setattr(bot.ctx, "deliver", at_once)
        acted = act(bot.ctx, out.batch.ref, requester="U0BOB")
        # Staging VMs: the shipped policy asks no approver for either action.
        assert [m.job_id is not None for m in acted.members] == [True, True]
        _wait_jobs(bot, acted.job_ids)
        for change_id in members:
            notifier.sync(change_id)
        notifier.drain()
        said = bot.api.wait_for(lambda cs: len(_finished(cs)) >= 2, 30)
        assert f"{told} (asked by <@U0BOB>)" in _finished(said)[1], _finished(said)
