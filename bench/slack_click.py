"""The Slack path of bench/op_latency.py: a real `checkpoint-bot serve
--http` process, driven like Slack drives it, timed until its thread says
the change moved.

- The bot: `checkpoint-bot --config serve.yaml serve --http --port 0`, a
  long-running process with its in-process job consumer, on the same
  emulated host and inventory as the CLI (`hyperv.backend: winrm`), with a
  database, a job queue and a working directory of its own (so its
  consumer never takes the CLI's jobs), the sweep off (it would scan the
  host in the middle of a round), and its Slack Web API pointed at the
  recorder the tests use (tests.slack_support.FakeSlackApi).
- The requests: signed exactly as Slack signs them (tests.slack_support.
  SlackSender: `v0:{timestamp}:{body}`, HMAC-SHA256 with the signing
  secret, https://api.slack.com/authentication/verifying-requests-from-slack).
  A slash command creates; the Roll back and Keep & merge clicks are
  block_actions payloads built from the thread root the bot last posted or
  updated: that message, its ts, and the button's own action_id and value.
  Both buttons carry a `confirm` dialog, which Slack shows in the client
  and only then sends the payload
  (https://api.slack.com/reference/block-kit/composition-objects#confirm):
  no request of its own.
- The clock: from just before the request is sent to the moment the
  recorder receives the thread reply that says created / rolled back /
  merged (the recorder runs in this process: one monotonic clock).
- "One Slack post": one `chat.postMessage` to the same recorder with a
  slack_sdk WebClient, what a script that also told the channel would add;
  bench/op_latency.py's bare script does it after its pypsrp work when given
  the recorder's URL (`bare+post`).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.multiproc_support import Cluster, process_env  # noqa: E402
from tests.slack_support import (  # noqa: E402
    BOT_TOKEN,
    SIGNING_SECRET,
    TEAM_ID,
    Call,
    FakeSlackApi,
    SlackSender,
)

CHANNEL = "C0OPS"
USER = "U0ALICE"
TIMEOUT = 120.0
# The thread reply of a change's outcome: "CHG-7: …created…".
_REF = re.compile(r"^(CHG-\d+):")
OUTCOME_WORDS = {"active": "created", "rolled_back": "rolled back", "merged": "merged"}


class SlackPath:
    """One `serve --http` process and its recorder, for one emulated host."""

    def __init__(
        self,
        workdir: Path,
        inventory: Path,
        emulator_env: dict[str, str],
        cluster: Cluster,
        tree: Path = ROOT,
    ) -> None:
        """`tree`: the source tree the bot runs from (another revision's,
        extracted, to compare in the same run)."""
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.api = FakeSlackApi().__enter__()
        config = workdir / "serve.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "inventory": str(inventory),
                    "database_url": f"sqlite:///{workdir / 'serve.db'}",
                    "workdir": str(workdir),
                    "hyperv": {"backend": "winrm", "call_timeout": "60s"},
                    # The workspace SlackSender's requests come from.
                    "slack": {"api_url": self.api.api_url, "team_ids": [TEAM_ID]},
                    "sweep": {"enabled": False},
                },
                sort_keys=False,
            ),
            encoding="utf-8",
        )
        env = process_env(
            **emulator_env,
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            PYTHONPATH=str(tree),
        )
        # `checkpoint-bot` from `tree`: its own code, this venv's packages.
        command = [sys.executable, "-c", "from bot.cli.main import run; run()"]
        command += ["--config", str(config)]
        done = subprocess.run(
            [*command, "db", "upgrade"],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"db upgrade for serve failed: {done.stderr[-600:]}")
        self.proc = cluster.start(
            f"serve-{workdir.parent.name}-{workdir.name}",
            [*command, "serve", "--http", "--port", "0"],
            env,
        )
        # The CLI hands its commands to this bot when run with the same
        # config, working directory and $DATABASE_URL (bot.cli.local_socket).
        self.config, self.cwd = config, cluster.workdir
        found = self.proc.wait_for_output(r"over HTTP on (http://[\d.]+:\d+)/slack/events", 60)
        self.slack = SlackSender(found.group(1), self.api)

    def close(self) -> None:
        self.api.__exit__(None, None, None)

    # --- what the recorder saw ---------------------------------------------------------

    @staticmethod
    def _outcome(calls: list[Call], since: float, ref: str | None, state: str) -> Call | None:
        words = OUTCOME_WORDS[state]
        for call in calls:
            text = str(call.body.get("text", ""))
            found = _REF.match(text)
            if (
                call.method == "chat.postMessage"
                and call.at >= since
                and "thread_ts" in call.body
                and found
                and (ref is None or found.group(1) == ref)
                and words in text.split(": ", 1)[1][:80]
            ):
                return call
        return None

    def _wait_outcome(self, since: float, ref: str | None, state: str) -> Call:
        found: list[Call] = []

        def seen(calls: list[Call]) -> bool:
            # Called with the recorder's lock held: only `calls`, never api.of().
            call = self._outcome(calls, since, ref, state)
            if call is not None:
                found.append(call)
            return call is not None

        try:
            self.api.wait_for(seen, timeout=TIMEOUT)
        except AssertionError:
            raise SystemExit(
                f"the thread of {ref or 'the new change'} never said {OUTCOME_WORDS[state]}:\n"
                + self.proc.tail()
            ) from None
        return found[0]

    def _root(self, ref: str, thread_ts: str) -> dict[str, Any]:
        """The thread's root as it stands: the last update of that ts, or
        else the post that started the thread."""
        for call in reversed(list(self.api.calls)):  # a copy: the recorder appends
            if call.method == "chat.update" and call.body.get("ts") == thread_ts:
                return call.body
            if (
                call.method == "chat.postMessage"
                and "thread_ts" not in call.body
                and str(call.body.get("text", "")).startswith(f"{ref}:")
            ):
                return call.body
        raise SystemExit(f"no root message of {ref} was posted")

    # --- the three operations ----------------------------------------------------------

    def warm(self) -> None:
        """Untimed: what a bot that has been running a while has done
        already (imports, auth.test, the host's runspace pool opened)."""
        reply, key = self.slack.command("list STG-APP01", user=USER, channel=CHANNEL)
        if reply.status != 200:
            raise SystemExit(f"warm-up refused: {reply.status} {reply.body}")
        self.api.wait_for(lambda cs: any(c.method == key for c in cs), timeout=TIMEOUT)

    def ops(self, vm: str, n: int) -> tuple[float, float, float]:
        """Seconds from the request to the thread's reply: create (a signed
        `/checkpoint create`), Roll back, Keep & merge (signed clicks)."""
        started = time.monotonic()
        reply, _ = self.slack.command(
            f"create {vm} --reason bench slack {n}", user=USER, channel=CHANNEL
        )
        if reply.status != 200:
            raise SystemExit(f"/checkpoint create refused: {reply.status} {reply.body}")
        created = self._wait_outcome(started, None, "active")
        create = created.at - started
        ref = _REF.match(str(created.body["text"]))
        assert ref is not None
        thread_ts = str(created.body["thread_ts"])
        rollback = self._click(ref.group(1), thread_ts, "checkpoint:rollback", "rolled_back")
        merge = self._click(ref.group(1), thread_ts, "checkpoint:merge", "merged")
        return create, rollback, merge

    def _click(self, ref: str, thread_ts: str, action_id: str, state: str) -> float:
        # The card is updated after the reply is posted: wait for a root
        # that offers the button.
        deadline = time.monotonic() + TIMEOUT
        while True:
            message = self._root(ref, thread_ts)
            button = _button(message, action_id)
            if button is not None:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"the root of {ref} never offered {action_id}")
            time.sleep(0.01)
        started = time.monotonic()
        reply = self._send_click(message, thread_ts, button)
        if reply != 200:
            raise SystemExit(f"{action_id} on {ref} answered {reply}")
        done = self._wait_outcome(started, ref, state)
        return done.at - started

    def _send_click(self, message: dict[str, Any], thread_ts: str, button: dict[str, Any]) -> int:
        """A block_actions payload as Slack sends it for a click on
        `button` of the channel message `message`
        (https://api.slack.com/reference/interaction-payloads/block-actions)."""
        key, response_url = self.slack.response_url()
        payload = {
            "type": "block_actions",
            "team": {"id": TEAM_ID, "domain": "test"},
            "user": {"id": USER, "username": USER.lower(), "team_id": TEAM_ID},
            "api_app_id": "A0TEST",
            "token": "legacy",
            "container": {"type": "message", "channel_id": CHANNEL, "message_ts": thread_ts},
            "trigger_id": f"trigger.{key}",
            "channel": {"id": CHANNEL, "name": "ops"},
            "message": {
                "type": "message",
                "ts": thread_ts,
                "text": message.get("text", ""),
                "blocks": message.get("blocks", []),
            },
            "response_url": response_url,
            "actions": [
                {
                    "type": "button",
                    "action_id": button["action_id"],
                    "block_id": button["block_id"],
                    "value": button["value"],
                    "text": button.get("text", {}),
                    "action_ts": f"{time.time():.6f}",
                }
            ],
            "is_enterprise_install": False,
        }
        body = urlencode({"payload": json.dumps(payload)})
        return self.slack.post(body, "application/x-www-form-urlencoded").status


def _button(message: dict[str, Any], action_id: str) -> dict[str, Any] | None:
    """The button `action_id` of a message's blocks, with its block_id."""
    for block in message.get("blocks") or []:
        if block.get("type") != "actions":
            continue
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return {**element, "block_id": block.get("block_id", "")}
    return None
