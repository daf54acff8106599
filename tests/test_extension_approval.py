"""An extension past the policy's maximum lifetime waits for an approver,
who decides on how long, not only whether: the "Approval needed" reply, the
thread root and the approver's App Home say to when, and the reply says
why it needs approving (seen: the ping named only the approvers, and only
`/checkpoint status` said "extension to …")."""

from __future__ import annotations

from pathlib import Path

from bot.notify import ThreadNotifier
from tests.test_slack_flow import (
    REF,
    checked_bot,
    command,
    home_of,
    replies,
    roots,
    shown,
    thread_ts_of,
)
from tests.test_slack_http import wait_state


def test_an_extension_waiting_for_approval_says_to_when_and_why(tmp_path: Path) -> None:
    with checked_bot(tmp_path, "") as bot:
        asked = command(bot, "create WEB01 --reason KB5044284 patch --ttl 3d")
        found = REF.search(asked["text"])
        assert found is not None
        ref = found.group(0)
        active = wait_state(bot, "WEB01", "active")
        assert active.expires_at is not None

        longer = shown(command(bot, f"extend {ref} 30d", user="U0BOB"))
        assert "waits for approval" in longer
        assert isinstance(bot.ctx.notifier, ThreadNotifier)
        bot.ctx.notifier.drain()
        bot.ctx.notifier.flush()
        thread_ts = thread_ts_of(bot, ref)
        assert thread_ts is not None
        pings = [
            shown(c.body)
            for c in replies(bot.api.calls, thread_ts)
            if "Approval needed" in shown(c.body)
        ]
        assert len(pings) == 1
        new_expiry = active.expires_at.timestamp() + 30 * 24 * 3600
        assert f"to extend WEB01 to <!date^{int(new_expiry)}^" in pings[0]
        assert "why: " in pings[0] and "7d" in pings[0]

        root = shown(roots(bot.api.calls, ref)[-1].body)
        assert f"*Waiting for approval* to extend to <!date^{int(new_expiry)}^" in root
        assert "asked by <@U0BOB>" in root

        home = home_of(bot, "U0CAROL")
        assert f"extend to <!date^{int(new_expiry)}^" in home
        assert "requested by <@U0BOB>" in home  # who asked for it, not the change's requester

        # Carol approves it: the thread says whose extension it was.
        calls = len(bot.api.calls)
        approved = shown(command(bot, f"approve {ref}", user="U0CAROL"))
        assert "approved" in approved
        bot.ctx.notifier.drain()
        bot.ctx.notifier.flush()
        extended = [
            shown(c.body)
            for c in replies(bot.api.calls[calls:], thread_ts)
            if "extended" in shown(c.body)
        ]
        assert len(extended) == 1 and "*extended* as <@U0BOB> asked" in extended[0]


def test_the_extend_refusal_names_the_states_it_allows(tmp_path: Path) -> None:
    # A rolled-back change still holds its checkpoint: it extends, as its card
    # offers; once merged, the refusal names both states that can be extended
    # (seen: "only an active checkpoint can be extended").
    with checked_bot(tmp_path, "") as bot:
        command(bot, "create STG-APP01 --reason KB5044284")
        ref = wait_state(bot, "STG-APP01", "active").ref
        command(bot, f"rollback {ref}")
        rolled = wait_state(bot, "STG-APP01", "rolled_back", timeout=30)
        assert "extended" in shown(command(bot, f"extend {ref} 24h"))
        assert wait_state(bot, "STG-APP01", "rolled_back").expires_at != rolled.expires_at

        command(bot, f"merge {ref}")
        wait_state(bot, "STG-APP01", "merged", timeout=30)
        refused = shown(command(bot, f"extend {ref} 24h"))
        assert (
            f"{ref} is merged; only a change that still holds its checkpoint "
            "(active or rolled back) can be extended"
        ) in refused, refused
