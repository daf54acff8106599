"""`policy explain --at` reads a time as `checkpoint create --at` does
(bot/service/at_time.py). Until 2026-12-06 it had a parser of its own: a
time without a zone was UTC although create read it in the configured
`defaults.timezone`, so with a Berlin window 01:30-03:30, explain said
DENY ("outside its change windows") for 02:45 while create scheduled the
checkpoint at 02:45 Berlin; and create's "2026-12-07 02:45" was refused by
explain with Click's list of strptime formats.

Far-future dates (2030): create refuses an `--at` in the past."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_support import invoke, one_line_error

# WEB02 may be changed only 01:30-03:30 Berlin; outside it, the shipped
# change_window rule refuses.
POLICY = """
windows:
  - name: web02-night
    cron: "30 1 * * *"
    duration: 2h
    timezone: Europe/Berlin
    scope: {names: [WEB02]}
"""


@pytest.fixture
def berlin(tmp_path: Path) -> Path:
    """A deployment whose `defaults.timezone` is Europe/Berlin."""
    (tmp_path / "policy.yaml").write_text(POLICY, encoding="utf-8")
    inventory = Path(__file__).parents[1] / "deploy/examples/demo-inventory.yaml"
    (tmp_path / "bot.yaml").write_text(
        f"inventory: {inventory}\npolicy: policy.yaml\nhyperv: {{backend: simulator}}\n"
        "defaults: {timezone: Europe/Berlin}\n",
        encoding="utf-8",
    )
    assert invoke(tmp_path, "-c", "bot.yaml", "db", "upgrade").returncode == 0
    return tmp_path


def _explain(cwd: Path, at: str, *more: str) -> tuple[int, str, str]:
    done = invoke(cwd, "-c", "bot.yaml", "policy", "explain", "WEB02", "create", "--at", at, *more)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("typed", ["2030-12-07T02:45", "2030-12-07 02:45"])
def test_a_time_without_a_zone_is_read_in_the_configured_zone(berlin: Path, typed: str) -> None:
    code, out, err = _explain(berlin, typed)
    assert code == 0, err
    assert out.startswith("create WEB02 as cli:tester: ALLOW\n"), out
    # Which zone it was read in, as create says it.
    assert (
        f"--at '{typed}' is 2030-12-07 02:45 Europe/Berlin (2030-12-07 01:45 UTC, "
        "no zone given: the configured defaults.timezone)"
    ) in err
    # The same words create says before scheduling it at that time.
    created = invoke(
        berlin, "-c", "bot.yaml", "checkpoint", "create", "WEB02", "-r", "x", "--at", typed,
        "--no-wait",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert f"--at '{typed}' is 2030-12-07 02:45 Europe/Berlin (2030-12-07 01:45 UTC" in (
        created.stderr
    )


def test_a_zone_typed_wins_and_json_gets_the_same_verdict(berlin: Path) -> None:
    # 02:45 UTC is 03:45 in Berlin: after the window closed.
    code, out, err = _explain(berlin, "2030-12-07 02:45 UTC")
    assert code == 0, err
    assert out.startswith("create WEB02 as cli:tester: DENY\n"), out
    assert "outside its change windows" in out
    code, out, err = _explain(berlin, "2030-12-07T02:45", "--json")
    assert code == 0, err
    assert json.loads(out)["verdict"] == "allow"
    code, out, err = _explain(berlin, "2030-12-07T02:45+01:00", "--json")
    assert code == 0, err
    assert json.loads(out)["verdict"] == "allow"


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        # The clocks skip 02:00-03:00 in Berlin on 2030-03-31.
        (
            "2030-03-31 02:30",
            "--at: 2030-03-31 02:30 does not exist in Europe/Berlin (the clocks go forward "
            "then): pick a time outside the skipped hour",
        ),
        (
            "2030-12-07 02:45 Mars/Olympus",
            "--at: unknown time zone 'Mars/Olympus': write an IANA zone like Europe/Berlin, or UTC",
        ),
        (
            "tomorrow",
            "--at: 'tomorrow' is not a date and time: write it like "
            '--at "2026-12-10 22:00" (year-month-day hour:minute, optionally a zone such '
            "as Europe/Berlin)",
        ),
    ],
)
def test_a_bad_time_is_create_s_one_line_and_exit_2(
    berlin: Path, typed: str, expected: str
) -> None:
    explained = invoke(berlin, "-c", "bot.yaml", "policy", "explain", "WEB02", "--at", typed)
    assert explained.returncode == 2
    assert one_line_error(explained) == f"checkpoint-bot: error: {expected}"
    created = invoke(
        berlin, "-c", "bot.yaml", "checkpoint", "create", "WEB02", "-r", "x", "--at", typed
    )
    assert created.returncode == 2
    assert one_line_error(created) == one_line_error(explained)
