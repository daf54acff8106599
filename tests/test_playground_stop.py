"""Ctrl-C on `make demo` (issue #17 item 10): `checkpoint-bot demo` in a
subprocess, with browsers holding long polls open, stops on SIGINT within
about a second, exit 0, and without waitress's "thread(s) still running"
warning (an open `/ui/state` poll used to hold its thread for the poll's
whole timeout)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

READY = re.compile(r"open (http://127\.0\.0\.1:\d+/)")
# About a second (0.9-1.1 s measured with three polls open, against 6 s and a
# waitress warning before the polls were answered on stop); the margin is for
# a CI box whose cores are shared. Before the fix it was 5 s and more.
STOP_LIMIT = 2.5


def _get(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 (loopback)
        body: bytes = answer.read()
    return body


@pytest.mark.slow
def test_sigint_stops_the_demo_at_once_with_polls_open(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli.main", "demo", "--port", "0", "--workdir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    url = None
    for line in proc.stdout:
        found = READY.search(line)
        if found:
            url = found.group(1)
            break
    assert url, "no ready line"
    version = json.loads(_get(url + "ui/state?user=U0ALICE", 10))["version"]
    answered: list[bool] = []

    def browser_tab() -> None:
        # A tab's long poll: nothing changes, so it waits until the demo stops.
        try:
            _get(f"{url}ui/state?user=U0ALICE&since={version}", 60)
            answered.append(True)
        except OSError:
            answered.append(False)

    tabs = [threading.Thread(target=browser_tab, daemon=True) for _ in range(3)]
    for tab in tabs:
        tab.start()
    time.sleep(1.0)  # the polls are parked in the server
    assert answered == []
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    took = time.monotonic() - started
    assert proc.returncode == 0, err
    assert took < STOP_LIMIT, f"stopped {took:.2f}s after SIGINT; stderr: {err}"
    assert "stopping the playground" in err
    assert "still running" not in err and "Traceback" not in err, err
    for tab in tabs:
        tab.join(5)
    assert len(answered) == 3
