"""What Slack tells a person to run is a `/checkpoint` command, never only
the CLI's `checkpoint-bot …`, and never a path in the repository: the
count limit's "what to do instead" (a text the CLI shares, so it names
each surface's command), and `/checkpoint help batch`."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from bot.changes.views import UpcomingWindow
from bot.service.sweep_views import ChannelDigest, Finding, SweepReport
from handlers.grammar.help import help_text
from templates import Renderer
from templates.blocks import SlackRenderer
from tests.helpers import T0
from tests.test_policy_rules import ask, facts_for
from tests.test_slack_blocks import change, texts
from tests.test_slack_flow import checked_bot, command, shown
from tests.test_sweep_digest_wording import mismatch_digest


def test_the_count_limits_remedy_names_the_slack_and_the_cli_command() -> None:
    decision = ask("WEB01", facts=facts_for("WEB01", checkpoints=3))
    [outcome] = [o for o in decision.fired if o.rule == "checkpoint_count"]
    assert outcome.remediation == (
        "keep (merge) or roll back an older one first (`/checkpoint list WEB01` in Slack, "
        "`checkpoint-bot checkpoint list WEB01` on the CLI)"
    )


def test_slack_points_at_slack_commands(tmp_path: Path) -> None:
    with checked_bot(tmp_path, "") as bot:
        vm = bot.ctx.inventory.vm("STG-WEB01")
        host = bot.ctx.host_for(vm.host)
        for n in range(3):
            host.create_checkpoint(vm.vm_id, f"by hand {n}")

        refused = shown(command(bot, "create STG-WEB01 --reason KB5044284 patch"))
        assert "exceed the limit of 3 per VM" in refused
        assert "*What to do instead:* keep (merge) or roll back an older one first" in refused
        assert "(`/checkpoint list STG-WEB01` in Slack," in refused

        helped = shown(command(bot, "help batch"))
        assert "Waves are made with `/checkpoint create WEB01 WEB02 …`" in helped
        assert "`/checkpoint create --group NAME`" in helped
        assert "checkpoint-bot" not in helped and ".md" not in helped


def test_no_help_text_names_the_cli_alone_or_a_repository_path() -> None:
    for line in help_text().splitlines():
        topic = line.split("`")[1].split()[1] if line.startswith("• `") else None
        if topic is None:
            continue
        text = help_text(topic)
        assert "docs/" not in text and ".md" not in text, topic
        for said in text.split("checkpoint-bot ")[1:]:
            # The CLI may be named beside the Slack command, as such.
            assert "on the CLI" in said.split(".")[0], (topic, said)


# `checkpoint-bot …` only as the CLI's, beside what Slack offers.
_CLI_ALONE = re.compile(r"`checkpoint-bot [^`]*`(?! on the CLI)")


def test_the_app_homes_more_lines_name_slack_commands() -> None:
    many = [
        change(id=i, ref=f"CHG-{i:04d}", expires_at=T0 - timedelta(days=1)) for i in range(1, 40)
    ]
    home = SlackRenderer(Renderer()).view(
        "app_home",
        user="U0ALICE",
        mine=[],
        to_approve=[],
        overdue=many,
        windows=[UpcomingWindow(f"w{i}", T0, T0 + timedelta(hours=2)) for i in range(200)],
    )
    body = "\n".join(texts(home["blocks"]))
    assert "…and 27 more: `/checkpoint list` shows every checkpoint." in body
    assert re.search(r"…and \d+ more: `/checkpoint windows`\.", body)
    assert "checkpoint-bot" not in body


def test_the_digests_more_line_names_the_cli_as_such() -> None:
    digest, report = mismatch_digest()
    [row] = digest.items
    rows = tuple(
        replace(row, checkpoint_id=f"{n:08x}-0000-4000-8000-000000000000", finding=Finding.FOREIGN)
        for n in range(300)
    )
    many = ChannelDigest("C0A", rows, ())
    payload = SlackRenderer(Renderer()).payload(
        "sweep_digest", digest=many, report=SweepReport(report.at, "s", 3, 300, rows, (), (many,))
    )
    text = shown(payload)
    assert ":scissors: …and " in text
    assert "`/checkpoint list VM` shows a VM's" in text
    assert not _CLI_ALONE.search(text), _CLI_ALONE.search(text)
