"""What a Hyper-V host says reaches Slack escaped: a mention in it pings nobody.

Hyper-V's error messages quote the VM by the name its host has for it
(for a checkpoint: "Checkpoint operation for 'NAME' failed."), and anyone
who may manage the VM on its host chooses that name with `Rename-VM`
(https://learn.microsoft.com/powershell/module/hyper-v/rename-vm). The
inventory still finds the VM by its Id. Before, the thread's reply for a
failed create carried such a name's `<@U…>`, `<!subteam^…>` and `<#C…>`
as live mentions, in the bot's voice (`<!channel>` was escaped). Now what
a host or an error said is kept apart in the event (HOST_SAID) and shown
escaped; the bot's own mentions in the same thread still ping.

The host is the WinRM emulator's model (real pypsrp over loopback): the
VM renamed on it, and its volume filled by files that are not the VMs'
so that `Checkpoint-VM` fails with Windows' ERROR_DISK_FULL, after the
policy allowed it (the storage rule is off for this test).
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from templates.blocks import mrkdwn_escape, people_but
from tests.slack_support import RunningBot, running_bot
from tests.test_slack_http import wait_state

VM = "STG-WEB01"
VM_ID = "6a1e4c8d-2b9f-4d73-b0a6-9c5e7f3d1b28"
HOSTILE = f"{VM} <@U0CAROL> <!subteam^S0APPROVERS> <#C0SECRET> <!channel>"
LIVE = ("<@U0CAROL>", "<!subteam^S0APPROVERS>", "<#C0SECRET>", "<!channel>")
NO_STORAGE_RULE = "rules:\n  storage_headroom: {enabled: false}\n"


def _fill_the_volume(bot: RunningBot) -> None:
    assert bot.fleet is not None
    host = bot.fleet.host("HV03")
    host.rename_vm(VM_ID, HOSTILE)
    (volume,) = [v for v in host.volumes() if v.path == "D:\\"]
    host.write_other_files(volume.path, volume.free_bytes - 1024)


def _said(bot: RunningBot) -> list[str]:
    """The text of every message the bot posted or updated, as sent."""
    return [
        json.dumps({"text": c.body.get("text"), "blocks": c.body.get("blocks")}, ensure_ascii=False)
        for c in bot.api.calls
        if c.method in ("chat.postMessage", "chat.update", "chat.postEphemeral")
        or c.method.startswith("response_url:")
    ]


def test_a_host_error_quoting_a_hostile_vm_name_pings_nobody(tmp_path: Path) -> None:
    with running_bot(tmp_path, emulated=True, policy_text=NO_STORAGE_RULE) as bot:
        _fill_the_volume(bot)
        reply, _key = bot.slack.command(f"create {VM} --reason patch", user="U0ALICE")
        assert reply.status == 200
        calls = bot.api.wait_for(
            lambda cs: any(
                "not enough space on the disk" in json.dumps(c.body)
                for c in cs
                if c.method == "chat.postMessage" and c.body.get("thread_ts")
            ),
            30,
        )
        assert calls
        wait_state(bot, VM, "failed")
        said = _said(bot)
        # The host's words are there, escaped: shown, never acted on.
        failure = next(s for s in said if "not enough space on the disk" in s)
        assert "&lt;@U0CAROL&gt;" in failure and "&lt;!subteam^S0APPROVERS&gt;" in failure
        for token in LIVE:
            assert not any(token in s for s in said), token
        # The bot's own mention of who asked still pings.
        assert any("<@U0ALICE>" in s for s in said)


# --- the filter, as a property ------------------------------------------------------------

_ids = st.from_regex(r"[UWSC]0[A-Z0-9]{2,8}", fullmatch=True)
_tokens = _ids.map(
    lambda i: f"<@{i}>" if i[0] in "UW" else (f"<!subteam^{i}>" if i[0] == "S" else f"<#{i}>")
)
_plain = st.text(alphabet=st.characters(blacklist_characters="<>&"), max_size=20)


@given(ours=_tokens, theirs=st.lists(_tokens, min_size=1, max_size=3), glue=_plain)
def test_a_mention_in_what_a_host_said_never_survives_and_the_bots_own_do(
    ours: str, theirs: list[str], glue: str
) -> None:
    host_text = f"'{VM} {' '.join(theirs)}'{glue}"
    message = f"asked by {ours}: checkpoint failed: {host_text}"
    shown = people_but(message, (host_text,))
    assert shown.startswith(f"asked by {ours}: ")
    rest = shown[len(f"asked by {ours}: ") :]
    for token in theirs:
        assert token not in rest
    assert rest == "checkpoint failed: " + mrkdwn_escape(host_text)
