"""Delivery discipline and the serve command, without a running bot:
retries remembered for a while, and `checkpoint-bot serve` saying which
secret is missing. (User groups: tests/test_directory.py.)"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from slack_bolt.request import BoltRequest

from bot.cli.main import main
from handlers.delivery import DropRetries, SeenDeliveries, delivery_key


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_seen_deliveries_forget_after_their_ttl() -> None:
    ticks = Ticks()
    seen = SeenDeliveries(ttl=10, size=2, monotonic=ticks)
    assert seen.add("a") and not seen.add("a")
    ticks.now = 11
    assert seen.add("a")
    assert seen.add("b") and seen.add("c")  # size 2: "a" falls out
    assert seen.add("a")


def test_a_retry_is_dropped_only_if_its_first_delivery_was_seen() -> None:
    drop = DropRetries()
    calls: list[str] = []

    def request(retry: bool) -> BoltRequest:
        headers: dict[str, str | Sequence[str]] = {"x-slack-retry-num": ["1"]} if retry else {}
        return BoltRequest(body='{"event_id": "Ev1", "type": "event_callback"}', headers=headers)

    def through(req: BoltRequest) -> int:
        def nxt() -> object:
            calls.append("next")
            return None

        resp = drop.process(req=req, resp=None, next=nxt)  # type: ignore[arg-type]
        return resp.status if resp is not None else 0

    assert delivery_key(request(False)) == "Ev1"
    through(request(retry=True))  # a retry whose first attempt never came: handled
    assert calls == ["next"]
    assert through(request(retry=True)) == 200  # the same again: acked, dropped
    assert calls == ["next"]


@pytest.mark.parametrize(
    ("argv", "env", "missing"),
    [
        (["serve", "--http"], {}, "$SLACK_BOT_TOKEN"),
        (["serve", "--http"], {"SLACK_BOT_TOKEN": "xoxb-test"}, "$SLACK_SIGNING_SECRET"),
        (["serve"], {"SLACK_BOT_TOKEN": "xoxb-test"}, "$SLACK_APP_TOKEN"),
    ],
)
def test_serve_names_the_missing_secret(
    argv: list[str],
    env: dict[str, str],
    missing: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in (
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_APP_TOKEN",
        "CHECKPOINT_BOT_CONFIG",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, secret in env.items():
        monkeypatch.setenv(name, secret)
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert missing in err
    assert "xoxb-test" not in err
