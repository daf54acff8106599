"""A patch wave in the playground (`checkpoint-bot demo`), from request to
merge, as the README walks it: alice asks for WEB01 and the demo's
`staging` group in #ops, sees the preview, takes it; the wave waits for ONE
approval (WEB01 is prod); bob approves all from the wave's card; the three
checkpoints are taken over WinRM on the emulated hosts; alice keeps & merges
all. Every step is a signed request into the running bot, and each card is
written to var/test-artifacts/playground/wave.txt as the README shows it."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.devtools.playground import DemoOptions, start_demo
from bot.devtools.playground.demo import Demo

ARTIFACT = Path("var/test-artifacts/playground/wave.txt")
WAVE = '/checkpoint create WEB01 --group staging --reason "KB5044284 wave"'


def _fetch(url: str, data: dict[str, Any]) -> Any:
    request = urllib.request.Request(  # noqa: S310 (loopback)
        url, data=json.dumps(data).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 (loopback)
        return json.loads(answer.read())


def as_text(blocks: list[dict[str, Any]]) -> str:
    """A message as a reader sees it, one line per block (buttons in [ ])."""
    out = []
    for b in blocks:
        if b["type"] == "header":
            out.append(b["text"]["text"])
        elif b["type"] == "section":
            out += [b["text"]["text"]] if "text" in b else []
            out += [f["text"].replace("\n", ": ") for f in b.get("fields", [])]
        elif b["type"] == "context":
            out.append(" ".join(e.get("text", "") for e in b["elements"]))
        elif b["type"] == "actions":
            out.append("[" + "] [".join(e["text"]["text"] for e in b["elements"]) + "]")
    return "\n".join(line for line in out if "Demo mode" not in line)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    running = start_demo(DemoOptions(workdir=tmp_path, port=0, speed=60))
    try:
        yield running
    finally:
        running.stop()


def test_a_wave_in_the_playground_from_request_to_merge(demo: Demo) -> None:
    transcript: list[str] = []

    def ops(user: str) -> list[dict[str, Any]]:
        return list(demo.workspace.snapshot(user)["messages"]["C0OPS"])

    def wait_for(user: str, test: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = [m for m in ops(user) if test(m)]
            if found:
                return found[-1]
            time.sleep(0.2)
        raise AssertionError(f"nothing like that in #ops for {user}: {ops(user)}")

    def click(user: str, message: dict[str, Any], action_id: str) -> None:
        element = next(
            e
            for b in message["blocks"]
            if b["type"] == "actions"
            for e in b["elements"]
            if e["action_id"] == action_id
        )
        sent = {"user": user, "channel": "C0OPS", "ts": message["ts"], "action": element}
        assert _fetch(demo.url + "ui/action", sent)["ok"]

    def root(state: str, progress: str) -> Callable[[dict[str, Any]], bool]:
        # The card is updated as each member moves: wait for all of them.
        return lambda m: not m["ephemeral"] and m["text"] == f"BAT-0001: {state} — {progress}"

    def keep(title: str, message: dict[str, Any]) -> str:
        text = as_text(message["blocks"])
        transcript.append(f"--- {title}\n{text}\n")
        return text

    assert _fetch(demo.url + "ui/command", {"user": "U0ALICE", "channel": "C0OPS", "text": WAVE})
    preview = wait_for("U0ALICE", lambda m: m["ephemeral"] and "Patch wave" in str(m["blocks"]))
    shown = keep(f"alice types {WAVE}: the preview, for her alone", preview)
    assert shown.startswith("Patch wave: 3 VMs\n3 VMs: 3 can be checkpointed after 1 approval")
    assert "for the whole wave" in shown and "[Take 3 checkpoints] [Cancel]" in shown
    assert not [m for m in ops("U0BOB") if "BAT-0001" in m["text"]]  # nothing recorded yet

    click("U0ALICE", preview, "checkpoint:wave_take")
    waiting = wait_for("U0BOB", root("awaiting approval", "0 of 3 done"))
    shown = keep("alice clicks Take 3 checkpoints: the wave's card in #ops", waiting)
    assert "[Withdraw (3)] [Approve all (3)]" in shown

    click("U0BOB", waiting, "checkpoint:wave_approve")
    active = wait_for("U0ALICE", root("active", "3 of 3 done"))
    shown = keep("bob clicks Approve all: the card when the checkpoints are taken", active)
    assert shown.count(" taken · ") == 3, shown
    assert "[Roll back all (3)] [Keep & merge all (3)]" in shown

    click("U0ALICE", active, "checkpoint:wave_merge")
    done = wait_for("U0ALICE", root("done", "3 of 3 merged"))
    shown = keep("alice clicks Keep & merge all: the card at the end", done)
    assert "3 of 3 merged" in shown and shown.count("merged") >= 3
    assert demo.fleet is not None
    cmdlets = [e.cmdlet for e in demo.fleet.log.entries]
    assert cmdlets.count("Checkpoint-VM") == 3 and cmdlets.count("Remove-VMSnapshot") == 3
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text("\n".join(transcript), encoding="utf-8")
