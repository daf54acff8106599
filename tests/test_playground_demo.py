"""`checkpoint-bot demo` as a newcomer runs it: the real command in a
subprocess reaches a ready playground quickly, serves it, and stops
cleanly on SIGTERM; a taken port is one clear line. In process, the same
builder runs a slash command through the whole product without a browser."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bot.config import ConfigError
from bot.devtools.playground import DemoOptions, start_demo

READY = re.compile(r"open (http://127\.0\.0\.1:\d+/)")
STARTUP_LIMIT = 60.0  # the promise for `make demo`


def fetch(url: str, data: dict[str, Any] | None = None) -> Any:
    body = json.dumps(data).encode() if data is not None else None
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=body, headers=headers)  # noqa: S310 (loopback)
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (loopback)
        raw = answer.read()
    return json.loads(raw) if raw.startswith(b"{") else raw.decode()


@pytest.mark.slow
def test_demo_command_starts_serves_and_stops(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli.main", "demo", "--port", "0", "--workdir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        url = None
        for line in proc.stdout:
            found = READY.search(line)
            if found:
                url = found.group(1)
                break
        elapsed = time.monotonic() - started
        assert url, f"no ready line; stderr: {proc.stderr.read() if proc.stderr else ''}"
        assert elapsed < STARTUP_LIMIT, f"ready after {elapsed:.1f}s"
        assert fetch(url + "healthz") == "ok\n"
        assert "DEMO MODE" in fetch(url)
        state = fetch(url + "ui/state?user=U0ALICE")
        assert [c["name"] for c in state["channels"]][:2] == ["ops", "general"]
        # Bolt checked the per-run token against the playground with auth.test.
        assert any(c["method"] == "auth.test" and c["ok"] for c in state["log"])
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "stopping the playground" in err
    # The per-run secrets never reach the terminal.
    assert "xoxb-" not in out + err


def test_a_taken_port_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"127\.0\.0\.1:{port}: .*pass --port N"):
            start_demo(DemoOptions(workdir=tmp_path, port=port))


@pytest.mark.slow
def test_a_slash_command_runs_through_the_whole_product(tmp_path: Path) -> None:
    demo = start_demo(DemoOptions(workdir=tmp_path, port=0, speed=60))
    try:
        # Staging needs no approval: the checkpoint is taken over WinRM at once.
        text = '/checkpoint create STG-WEB01 --reason "try the demo"'
        assert fetch(demo.url + "ui/command", {"user": "U0ALICE", "channel": "C0OPS", "text": text})
        deadline = time.monotonic() + 30
        root = None
        while time.monotonic() < deadline:
            seen = demo.workspace.snapshot("U0BOB")["messages"]["C0OPS"]
            root = next((m for m in seen if "STG-WEB01" in m["text"] and not m["thread_ts"]), None)
            if root and "active" in root["text"]:
                break
            time.sleep(0.2)
        assert root is not None and "active" in root["text"], root
        assert demo.fleet is not None
        assert "Checkpoint-VM" in {e.cmdlet for e in demo.fleet.log.entries}
    finally:
        demo.stop()


def test_the_playground_live_migrates_a_vm_and_the_bot_follows_it(tmp_path: Path) -> None:
    """`/hyperv migrate` moves WEB02 across the demo's prod-cluster behind the
    bot's back; the bot finds it on its new node, says the inventory drifted,
    and records the request on the node that has the VM."""
    demo = start_demo(DemoOptions(workdir=tmp_path, port=0, speed=60))
    try:

        def say(user: str, text: str) -> None:
            assert fetch(demo.url + "ui/command", {"user": user, "channel": "C0OPS", "text": text})

        def seen(user: str) -> list[str]:
            return [m["text"] for m in demo.workspace.snapshot(user)["messages"]["C0OPS"]]

        say("U0CAROL", "/hyperv where WEB02")
        say("U0CAROL", "/hyperv migrate WEB02 HV01")
        assert "WEB02 runs on HV02." in seen("U0CAROL")
        assert any("WEB02 live-migrated from HV02 to HV01" in t for t in seen("U0CAROL"))
        say("U0ALICE", '/checkpoint create WEB02 --reason "patch Tuesday"')
        deadline = time.monotonic() + 30
        drift = None
        while time.monotonic() < deadline and drift is None:
            drift = next((t for t in seen("U0BOB") if "runs on HV01, the inventory" in t), None)
            time.sleep(0.2)
        assert drift is not None and "WEB02 runs on HV01, the inventory says HV02" in drift
        assert demo.ctx is not None
        shown = [c for c in seen("U0BOB") if "WEB02" in c and "CHG-" in c]
        assert shown, seen("U0BOB")
        assert demo.fleet is not None
        asked = {e.host for e in demo.fleet.log.entries if e.cmdlet == "Get-VM"}
        assert {"HV01", "HV02"} <= asked
    finally:
        demo.stop()


@pytest.mark.slow
def test_a_second_demo_on_a_busy_port_fails_and_leaves_the_first_alone(tmp_path: Path) -> None:
    first = start_demo(DemoOptions(workdir=tmp_path, port=0, speed=60))
    try:
        port = int(first.url.rstrip("/").rsplit(":", 1)[1])
        assert first.rundir == tmp_path / f"port-{port}"
        database = first.rundir / "checkpoint-bot.db"
        inode = database.stat().st_ino
        with pytest.raises(ConfigError) as caught:
            start_demo(DemoOptions(workdir=tmp_path, port=port))
        message = str(caught.value)
        assert len(message.splitlines()) == 1 and f"127.0.0.1:{port}" in message
        # Nothing of the running demo was touched: same database file, and it
        # still takes a checkpoint end to end.
        assert database.stat().st_ino == inode
        assert sorted(p.name for p in tmp_path.iterdir()) == [f"port-{port}"]
        text = '/checkpoint create STG-WEB01 --reason "still here"'
        fetch(first.url + "ui/command", {"user": "U0ALICE", "channel": "C0OPS", "text": text})
        deadline = time.monotonic() + 30
        root = None
        while time.monotonic() < deadline:
            seen = first.workspace.snapshot("U0BOB")["messages"]["C0OPS"]
            root = next((m for m in seen if "STG-WEB01" in m["text"] and not m["thread_ts"]), None)
            if root and "active" in root["text"]:
                break
            time.sleep(0.2)
        assert root is not None and "active" in root["text"], root
    finally:
        first.stop()
