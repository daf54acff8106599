"""A wave's preview with one host down (the wave helper, 2026-12-06: 45
VMs, HV03 killed): it said "3 are refused (PW31: HV03 could not be
reached …)", and the Take a moment later, with HV03 back, checkpointed
them. Nobody refused them: their facts were unknown. A transient fault is
never told as a policy's refusal.

What holds now: a VM whose host cannot be asked is "could not be checked",
apart from the refused ones, in the summary, the preview's lines and
`--json` (`unchecked`, and `verdict: unknown` with its `problem`); the
preview says the wave asks its host again when taken. It is still never
counted as checkpointable.

The hosts are the WinRM emulator over real HTTP on loopback; the CLI runs
in this process (tests/cli_support.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.devtools.emulator import EmulatedFleet, Faults
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV
from tests.cli_support import CliResult, emulated_estate, invoke, one_line_error

ENV = {EMULATOR_PASSWORD_ENV: "Passw0rd!", "CHECKPOINT_BOT_SOCKET": "off"}
ALICE = {**ENV, "CHECKPOINT_BOT_USER": "alice"}
# WEB01 (HV01) and WEB02 (HV02), prod; STG-WEB01 and STG-APP01 on HV03.
WAVE = ("WEB01", "WEB02", "STG-WEB01", "STG-APP01")


@pytest.fixture
def estate(tmp_path: Path) -> Iterator[tuple[Path, EmulatedFleet]]:
    with emulated_estate(tmp_path, env=ENV) as fleet:
        yield tmp_path, fleet


def _create(cwd: Path, *vms: str, answer: str = "n\n", extra: tuple[str, ...] = ()) -> CliResult:
    return invoke(
        cwd, "-c", "bot.yaml", "checkpoint", "create", *vms, "-r", "KB5044284", *extra,
        env=ALICE, input=answer,
    )  # fmt: skip


def test_a_vm_whose_host_is_down_is_unchecked_not_refused(
    estate: tuple[Path, EmulatedFleet],
) -> None:
    cwd, fleet = estate
    fleet.server("HV03").faults = Faults(refuse=True)

    shown = _create(cwd, *WAVE)
    assert "Traceback" not in shown.stderr
    first = shown.stdout.splitlines()[0]
    assert first == "4 VMs: 2 can be checkpointed, 2 could not be checked (STG-WEB01, STG-APP01)"
    assert "Take 2 checkpoints?" in shown.stderr and "nothing was recorded" in shown.stderr
    lines = {line.split()[1]: line for line in shown.stdout.splitlines()[1:5]}
    for vm in ("STG-WEB01", "STG-APP01"):
        assert f"could not check {vm}: HV03 could not be reached" in lines[vm], lines[vm]
        assert lines[vm].endswith("; the wave asks again when it is taken")
        assert lines[vm].startswith(f"  ? {vm} ") and "HV03   refused" not in lines[vm]

    # Taken with HV03 still down: the two it could check, and the record's
    # words for the others are no refusal either.
    taken = _create(cwd, *WAVE, extra=("--yes", "--json"))
    body = json.loads(taken.stdout)
    preview = body["preview"]
    assert preview["takeable"] == 2 and preview["refused"] == 0 and preview["unchecked"] == 2
    assert "refused" not in preview["summary"]
    assert set(body["not_recorded"]) == {"STG-WEB01", "STG-APP01"}
    down = {c["vm"]: c for c in preview["candidates"] if c["verdict"] == "unknown"}
    assert set(down) == {"STG-WEB01", "STG-APP01"}
    assert all("HV03 could not be reached" in c["problem"] for c in down.values())


def test_refused_and_unchecked_are_told_apart(estate: tuple[Path, EmulatedFleet]) -> None:
    cwd, fleet = estate
    fleet.server("HV03").faults = Faults(refuse=True)
    shown = _create(cwd, "CORP-DC01", "WEB01", "STG-WEB01")
    first = shown.stdout.splitlines()[0]
    assert first == (
        "3 VMs: 1 can be checkpointed, 1 is refused (CORP-DC01), 1 could not be checked (STG-WEB01)"
    )


def test_with_every_host_down_nothing_is_recorded_and_it_is_an_outage(
    estate: tuple[Path, EmulatedFleet],
) -> None:
    """Exit 3 (the hosts did not answer: try again), not 1 (refused)."""
    cwd, fleet = estate
    fleet.server("HV03").faults = Faults(refuse=True)
    shown = _create(cwd, "STG-WEB01", "STG-APP01", "CORP-DC01")
    assert shown.returncode == 3, shown.stdout + shown.stderr
    assert one_line_error(shown) == (
        "checkpoint-bot: error: nothing was recorded: 1 refused, and the policy could not "
        "check 2 VMs (HV03 did not answer); try again once it answers"
    )
    assert "No batches yet" in invoke(cwd, "-c", "bot.yaml", "batch", "list", env=ALICE).stdout


def test_the_slack_preview_says_which_vms_could_not_be_checked(tmp_path: Path) -> None:
    """The same in Slack: `/checkpoint create` of a wave with HV03 down. Its
    Block Kit is checked against slack_sdk's models and Slack's limits."""
    from tests.slack_support import running_bot
    from tests.test_slack_flow import button, checked_calls, command, shown, slack_problems

    with running_bot(tmp_path, emulated=True) as bot:
        assert bot.fleet is not None
        bot.fleet.server("HV03").faults = Faults(refuse=True)
        preview = command(bot, 'create WEB01 STG-WEB01 STG-APP01 --reason "KB5044284"')
        text = shown(preview)
        assert text.startswith("3 VMs: 1 can be checkpointed, 2 could not be checked ("), text
        assert "2 could not be checked (STG-WEB01, STG-APP01)" in text
        assert ":grey_question: *STG-WEB01* on HV03 · could not check STG-WEB01" in text
        assert "the wave asks again when it is taken" in text
        assert " refused (" not in text and ":no_entry:" not in text
        assert button(preview, "checkpoint:wave_take") is not None

        nothing = command(bot, 'create STG-WEB01 STG-APP01 --reason "KB5044284"')
        said = shown(nothing)
        assert button(nothing, "checkpoint:wave_take") is None
        assert "Nothing can be taken now: the hosts of 2 VMs did not answer." in said
        assert "Every VM is refused" not in said
    problems = [p for call in checked_calls(bot.api.calls) for p in slack_problems(call)]
    assert problems == []


def test_a_take_after_the_hosts_stopped_answering_records_nothing(tmp_path: Path) -> None:
    """The preview could take both; before Take, HV03 stopped answering.
    Before: a wave of no member was recorded, with no thread and a card of
    nothing. Now nothing is recorded and the click says why (an outage:
    try again), never that the VMs were refused."""
    from bot.service import list_batches
    from tests.slack_support import running_bot
    from tests.test_slack_flow import button, command, shown

    with running_bot(tmp_path, emulated=True) as bot:
        assert bot.fleet is not None
        preview = command(bot, 'create STG-WEB01 STG-APP01 --reason "KB5044284"')
        assert "2 VMs: 2 can be checkpointed" in shown(preview)
        take = button(preview, "checkpoint:wave_take")
        assert take is not None
        bot.fleet.server("HV03").faults = Faults(refuse=True)

        reply, key = bot.slack.click("checkpoint:wave_take", take, user="U0ALICE")
        assert reply.status == 200
        calls = bot.api.wait_for(lambda cs: any(c.method == key for c in cs), 30)
        answer = shown(next(c.body for c in calls if c.method == key))
        assert "nothing was recorded" in answer and "HV03 did not answer" in answer, answer
        assert "refused" not in answer
        assert list_batches(bot.ctx) == []


def test_a_member_not_recorded_fails_the_create_with_no_wait_too(
    estate: tuple[Path, EmulatedFleet],
) -> None:
    """HV03 does not answer: the wave takes WEB01 and WEB02 and cannot
    record STG-WEB01. With --no-wait the create exited 0 though STG-WEB01
    has no checkpoint and never will from this wave; it exits 1, as it does
    when it waits."""
    cwd, fleet = estate
    fleet.server("HV03").faults = Faults(refuse=True)
    done = _create(cwd, "WEB01", "WEB02", "STG-WEB01", extra=("--yes", "--no-wait"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "  ! STG-WEB01 could not be recorded: " in done.stdout
