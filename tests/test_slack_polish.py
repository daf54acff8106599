"""What `/checkpoint` says, read as a new user reads it (issue #17 item 10):
the help's examples name the demo estate and do what they claim, `status`
shows the history the help promises, `windows` says a window is open while
it is, a VM name rolls back its one active change, and no user-facing text
says "ttl_seconds" or "to rollback". Signed requests into the running bot,
answers read from the Web API recorder (tests/slack_support.py)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from bot.changes.views import UpcomingWindow
from bot.inventory import load_inventory
from handlers.grammar import parse
from handlers.grammar.requests import CreateRequest, PolicyRequest, RollbackRequest
from handlers.grammar.table import COMMANDS
from templates import Renderer
from templates.blocks import SlackRenderer
from tests.slack_support import Call
from tests.test_slack_blocks import T0, VIEWS
from tests.test_slack_flow import REF, checked_bot, command, roots, shown
from tests.test_slack_http import wait_state

DEMO_INVENTORY = Path(__file__).parents[1] / "deploy" / "examples" / "demo-inventory.yaml"
ALWAYS_OPEN = """
windows:
  - name: all-day
    cron: "0 0 * * *"
    duration: 24h
    timezone: UTC
    scope: {tags: {env: staging}}
"""
TOKEN = re.compile(r"<!date\^\d+\^\{date_short_pretty\} \{time\}\|\d{4}-\d\d-\d\d \d\d:\d\d UTC>")


def test_every_help_example_names_a_vm_of_the_demo_estate() -> None:
    inventory = load_inventory(DEMO_INVENTORY)
    names = {vm.name for vm in inventory.vms} | {h.name for h in inventory.hosts}
    for command_row in COMMANDS:
        for example in command_row.examples:
            request = parse(example)
            vm = getattr(request, "vm", None)
            if isinstance(request, CreateRequest | PolicyRequest | RollbackRequest) and vm:
                assert vm in names, f"{example!r} names {vm}, not in the demo estate"


def test_the_help_examples_do_what_they_claim(tmp_path: Path) -> None:
    with checked_bot(tmp_path, ALWAYS_OPEN) as bot:
        refused = command(bot, "policy CORP-DC01")
        assert "domain_controller" in shown(refused) and "USN rollback" in shown(refused)
        created = command(
            bot, 'create STG-WEB01 --type production-only --ttl 48h --reason "IIS upgrade"'
        )
        ref = REF.search(created["text"])
        assert ref is not None
        active = wait_state(bot, "STG-WEB01", "active")
        assert active.checkpoint_type == "production-only"
        assert active.taken_type == "production"  # no fallback to standard


def test_status_shows_the_history_and_windows_says_open(tmp_path: Path) -> None:
    with checked_bot(tmp_path, ALWAYS_OPEN) as bot:
        command(bot, "create STG-WEB01 --reason patching")
        active = wait_state(bot, "STG-WEB01", "active")
        status = shown(command(bot, f"status {active.ref}"))
        assert "*History* (4 steps)" in status, status
        for step in ("*requested*", "*approved* (requested → approved)", "*created*"):
            assert step in status
        assert TOKEN.search(status) and "<@U0ALICE>: *requested*" in status

        windows = shown(command(bot, "windows"))
        assert "*all-day* · *open now* until <!date^" in windows
        assert "opens " not in windows and "cron 0 0 * * * in UTC" in windows

        # A VM name means its one active change, as on the CLI.
        rolled = shown(command(bot, "rollback STG-WEB01"))
        assert active.ref in rolled
        wait_state(bot, "STG-WEB01", "rolled_back")
        again = shown(command(bot, "rollback STG-WEB01"))
        assert "STG-WEB01 has no active change to roll back; nothing was done" in again
        # Extend fits only an active change; merge a rolled-back one too.
        longer = shown(command(bot, "extend STG-WEB01 2h"))
        assert "STG-WEB01 has no active change to extend; nothing was done" in longer
        kept = shown(command(bot, "merge STG-WEB01"))
        assert active.ref in kept
        wait_state(bot, "STG-WEB01", "merged")


def _user_texts(calls: list[Call]) -> str:
    return "\n".join(shown(c.body) for c in calls if c.method != "users.info")


def test_no_internal_words_reach_slack(tmp_path: Path) -> None:
    with checked_bot(tmp_path, ALWAYS_OPEN) as bot:
        command(bot, "policy WEB01")
        command(bot, "policy WEB01 rollback")
        command(bot, "create STG-WEB01 --reason patching")
        active = wait_state(bot, "STG-WEB01", "active")
        # The thread's posts, which carry the times, follow the record: wait
        # for the root to say active (reading before it raced the notifier).
        bot.api.wait_for(
            lambda cs: (
                bool(found := roots(cs, active.ref))
                and str(found[-1].body["text"]).endswith("active")
            ),
            10.0,
        )
        command(bot, "list")
        command(bot, "help")
        texts = _user_texts(bot.api.calls)
    for word in ("ttl_seconds", "to rollback", "may rollback", " 1 checkpoints"):
        assert word not in texts, word
    # Every time shown is a date token; UTC text survives only as its fallback.
    assert TOKEN.search(texts)
    outside_tokens = re.sub(r"<!date\^[^>]*>", "", texts)
    assert not re.search(r"\d\d:\d\d( UTC|:\d\d)", outside_tokens), outside_tokens


def test_the_app_home_says_a_window_is_open_until_it_closes() -> None:
    renderer = SlackRenderer(Renderer())
    open_now = UpcomingWindow("app-maintenance", T0, T0 + timedelta(hours=2), open_now=True)
    later = replace(open_now, name="weekend", opens_at=T0 + timedelta(days=1), open_now=False)
    home = renderer.view("app_home", **{**VIEWS["app_home"], "windows": [open_now, later]})
    text = json.dumps(home["blocks"], ensure_ascii=False)
    closes = int((T0 + timedelta(hours=2)).timestamp())
    assert f"*app-maintenance* · *open now* until <!date^{closes}^" in text
    assert "*weekend* · opens <!date^" in text
