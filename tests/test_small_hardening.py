"""Issue #13 item 11, the Slack half: a requester's own Reject is refused in
the words of a reject; App Home does not offer an Approve that the policy
would refuse there (approving limited to channels), it says where instead."""

from __future__ import annotations

from pathlib import Path

from tests.slack_support import RunningBot
from tests.test_slack_flow import (
    CREATE_NEEDS_APPROVAL,
    REF,
    checked_bot,
    click,
    command,
    home_of,
    root_button,
    shown,
)

APPROVE_ONLY_IN_CHANGES = (
    CREATE_NEEDS_APPROVAL
    + """
permissions:
  approve: {users: ["*"], groups: [], channels: [C0CHANGES]}
"""
)


def _asked(bot: RunningBot, text: str) -> str:
    asked = command(bot, text)
    found = REF.search(asked["text"])
    assert found is not None, asked
    return found.group(0)


def test_rejecting_your_own_request_says_reject(tmp_path: Path) -> None:
    with checked_bot(tmp_path, CREATE_NEEDS_APPROVAL) as bot:
        ref = _asked(bot, "create WEB01 --reason KB5044284 patch")
        reject = root_button(bot, ref, "checkpoint:reject")
        refused = shown(click(bot, "checkpoint:reject", reject, user="U0ALICE"))
        assert "cannot reject" in refused
        assert "cannot approve" not in refused
        assert f"to take your own request back, withdraw it (withdraw {ref})" in refused


def test_app_home_says_where_a_channel_limited_approval_can_be_given(tmp_path: Path) -> None:
    with checked_bot(tmp_path, APPROVE_ONLY_IN_CHANGES) as bot:
        ref = _asked(bot, "create WEB01 --reason KB5044284 patch")
        root_button(bot, ref, "checkpoint:approve")
        home = home_of(bot, "U0BOB")
        assert ref in home
        assert "approving only in <#C0CHANGES>" in home
        # No Approve / Reject there: a click from App Home would be refused.
        assert "checkpoint:approve" not in home and "checkpoint:reject" not in home


def test_app_home_keeps_its_buttons_when_approving_is_not_limited(tmp_path: Path) -> None:
    with checked_bot(tmp_path, CREATE_NEEDS_APPROVAL) as bot:
        ref = _asked(bot, "create WEB01 --reason KB5044284 patch")
        root_button(bot, ref, "checkpoint:approve")
        home = home_of(bot, "U0BOB")
        assert ref in home and "approving only in" not in home
        assert "checkpoint:approve" in home


def test_a_grammar_error_echoes_input_escaped_once(tmp_path: Path) -> None:
    """Slack sends `<` as `&lt;`; the answer shows it as `&lt;` (one escape,
    which Slack displays as `<`), never `&amp;lt;`."""
    with checked_bot(tmp_path, CREATE_NEEDS_APPROVAL) as bot:
        for text in ("create WEB&lt;01 --reason r", "&lt;!here&gt; x", "create WEB01 --a&amp;b r"):
            answer = shown(command(bot, text))
            assert "&amp;lt;" not in answer and "&amp;amp;" not in answer, answer
            assert "&lt;" in answer or "&amp;" in answer, answer
