"""An approval DM says how its request ended (bot/notify/approval_dms.py).

Where the approvals rule says `dm: true`, a named approver gets a direct
message asking them to decide. Before, it kept saying "asks for your
approval" after the request was approved, rejected or withdrawn. Each test
drives the running bot over signed requests and reads what the local Web
API recorded: the DM's one `chat.update`, in the `D…` conversation Slack
answered for the post, and what it says. Migration 0018 adds and drops the
table that remembers where each DM landed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from bot.domain import ApprovalState
from bot.notify.approval_dms import Settled, settled
from bot.store.migrate import downgrade, upgrade
from bot.store.tables.approvals import ApprovalRequest
from templates import Renderer
from templates.blocks import SlackRenderer
from tests.migration_support import BACKENDS, engine_at
from tests.slack_support import Call, RunningBot
from tests.test_slack_blocks import change, texts
from tests.test_slack_flow import REF, checked_bot, command, root_button, shown
from tests.test_slack_http import ACK_LIMIT, wait_state
from tests.test_slack_story import APPROVERS, USERGROUPS

BOB_DM = "D0BOB"


def _ask(bot: RunningBot, text: str = "create WEB01 --reason KB5044284") -> str:
    found = REF.search(command(bot, text)["text"])
    assert found is not None
    return found.group(0)


def _dms(calls: list[Call], method: str) -> list[Call]:
    return [c for c in calls if c.method == method and c.body.get("channel") in ("U0BOB", BOB_DM)]


def _asked(bot: RunningBot, ref: str, count: int = 1) -> list[Call]:
    """Bob's DMs once `count` of them asked him about `ref`."""
    calls = bot.api.wait_for(
        lambda cs: len([c for c in _dms(cs, "chat.postMessage") if ref in c.body["text"]]) >= count
    )
    return [c for c in _dms(calls, "chat.postMessage") if ref in c.body["text"]]


def _settled(bot: RunningBot, ref: str, count: int = 1) -> list[str]:
    """What Bob's DM about `ref` says once it was updated `count` times."""
    calls = bot.api.wait_for(
        lambda cs: len([c for c in _dms(cs, "chat.update") if ref in c.body["text"]]) >= count,
        20,
    )
    return [shown(c.body) for c in _dms(calls, "chat.update") if ref in c.body["text"]]


def _roots(calls: list[Call], ref: str) -> list[Call]:
    """Posts and updates of `ref`'s card (a placeholder before the first)."""
    return [
        c
        for c in calls
        if c.method in ("chat.postMessage", "chat.update")
        and c.body.get("channel") == "C0OPS"
        and ref in c.body.get("text", "")
        and "thread_ts" not in c.body
    ] or [Call("none", {"text": ""}, 0.0)]


def _click(bot: RunningBot, action_id: str, value: str, user: str) -> None:
    reply, _key = bot.slack.click(action_id, value, user=user)
    assert reply.status == 200 and reply.seconds < ACK_LIMIT, action_id


def test_the_dm_says_who_approved_once_approved_and_is_updated_once(tmp_path: Path) -> None:
    with checked_bot(tmp_path, APPROVERS, USERGROUPS) as bot:
        ref = _ask(bot)
        asked = _asked(bot, ref)
        assert "asks for your approval" in shown(asked[0].body)

        # While the request waits, the DM is left asking.
        bot.api.wait_for(lambda cs: "<@U0BOB>" in shown(_roots(cs, ref)[-1].body))
        assert _dms(bot.api.calls, "chat.update") == []

        # Carol (in the approvers' group) approves from the card.
        _click(bot, "checkpoint:approve", root_button(bot, ref, "checkpoint:approve"), "U0CAROL")
        wait_state(bot, "WEB01", "active", timeout=20)
        said = _settled(bot, ref)[0]
        assert "asks for your approval" not in said
        assert "<@U0ALICE> asked for your approval to create" in said
        assert "approved by <@U0CAROL>" in said
        assert "Nothing is asked of you now" in said and "<#C0OPS>" in said
        update = _dms(bot.api.calls, "chat.update")[0]
        assert update.body["channel"] == BOB_DM and update.body["ts"] == asked[0].answer["ts"]  # type: ignore[index]

        # Bob is asked again for the rollback, and approves it himself.
        _click(bot, "checkpoint:rollback", root_button(bot, ref, "checkpoint:rollback"), "U0ALICE")
        _asked(bot, ref, count=2)
        _click(bot, "checkpoint:approve", root_button(bot, ref, "checkpoint:approve"), "U0BOB")
        wait_state(bot, "WEB01", "rolled_back", timeout=20)
        said = _settled(bot, ref, count=2)[1]
        assert "asked for your approval to rollback" in said and "approved by you" in said

    # Each DM was updated once, however many syncs the change had since.
    assert len(_dms(bot.api.calls, "chat.update")) == 2


def test_the_dm_says_the_request_was_withdrawn(tmp_path: Path) -> None:
    with checked_bot(tmp_path, APPROVERS, USERGROUPS) as bot:
        ref = _ask(bot)
        _asked(bot, ref)
        _click(bot, "checkpoint:withdraw", root_button(bot, ref, "checkpoint:withdraw"), "U0ALICE")
        said = _settled(bot, ref)[0]
        assert "withdrawn by its requester" in said and "asks for your approval" not in said


def test_the_dm_says_who_rejected_it(tmp_path: Path) -> None:
    with checked_bot(tmp_path, APPROVERS, USERGROUPS) as bot:
        ref = _ask(bot)
        _asked(bot, ref)
        command(bot, f'reject {ref} --reason "not during month end"', user="U0CAROL")
        said = _settled(bot, ref)[0]
        assert "rejected by <@U0CAROL>" in said and "asks for your approval" not in said


def test_a_pending_request_says_nothing_new_and_a_settled_one_says_who() -> None:
    asked = ApprovalRequest(
        change_id=1,
        action="rollback",
        requested_by="U0ALICE",
        requested_at=datetime(2026, 12, 6, tzinfo=UTC),
        requirement={},
        params={},
    )
    assert settled(asked) is None
    asked.approvals = [{"by": "U0BOB"}, {"by": "U0CAROL"}]
    asked.state, asked.resolved_by = ApprovalState.APPROVED, "U0CAROL"
    assert settled(asked) == Settled("rollback", "approved", "U0CAROL", ("U0BOB", "U0CAROL"))


# --- migration 0018 -------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def engine_before_0018(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database at schema 0017 (before the table), on each backend."""
    with engine_at(request, tmp_path, "0017") as engine:
        yield engine


def test_0018_adds_the_approval_dm_table_as_the_model_has_it_and_goes_back(
    engine_before_0018: Engine,
) -> None:
    from alembic.autogenerate import compare_metadata

    import bot.store.models  # noqa: F401  (maps every table)

    engine = engine_before_0018
    assert "approval_dm" not in inspect(engine).get_table_names()
    upgrade(engine, "0018")
    assert "approval_dm" in inspect(engine).get_table_names()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert [d for d in diff if "approval_dm" in repr(d)] == []
    downgrade(engine, "0017")
    assert "approval_dm" not in inspect(engine).get_table_names()
    upgrade(engine, "0018")
    assert "approval_dm" in inspect(engine).get_table_names()


# --- the words, for every way a request ends -----------------------------------------


@pytest.mark.parametrize(
    ("state", "by", "approvers", "says"),
    [
        ("approved", "U0CAROL", ("U0CAROL",), "approved by <@U0CAROL>."),
        ("approved", "U0CAROL", ("U0BOB", "U0CAROL"), "approved by you and <@U0CAROL>."),
        ("rejected", "U0BOB", (), "rejected by you."),
        ("withdrawn", "U0ALICE", (), "withdrawn by its requester."),
        ("refused", "U0CAROL", (), "refused by the policy when it was checked again"),
        ("superseded", "the change became merged", (), "no longer needed: the change became"),
    ],
)
def test_each_ending_is_said_in_valid_block_kit_whatever_the_names(
    state: str, by: str, approvers: tuple[str, ...], says: str
) -> None:
    c = change("active", vm_name="<!channel> *WEB*_01", reason="r" * 3000 + " <!here>")
    # SlackRenderer checks what it renders with slack_sdk.models and Slack's limits.
    payload = SlackRenderer(Renderer()).payload(
        "approval_dm_settled",
        c=c,
        r=Settled("rollback", state, by, approvers),
        you="U0BOB",
        channel="C0OPS",
        demo=False,
    )
    said = "\n".join(texts(payload["blocks"]))
    assert says in said and "asks for your approval" not in said
    assert "<!channel>" not in said and "<!here>" not in said
    assert "Nothing is asked of you now. Its thread in <#C0OPS>" in said
    assert len(payload["text"]) <= 300 and "CHG-0042" in payload["text"]
