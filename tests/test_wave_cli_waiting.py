"""What `checkpoint create` says while it waits for a wave's jobs, and what
`batch show` and `batch list` say of it afterwards (an on-call admin's
45-VM wave over 3 emulated hosts with one host briefly down, 2026-12):

- VMs the create could not record stay on the wave: `batch show` lists them
  after its members, `--json` has `not_recorded`, `batch list` counts them.
- A member whose job was put back for a retry (its re-check could not reach
  its host) is waited for, never said to wait for "its change window".
- A progress line appears each time any member ends, not only when the job
  created first does.

The hosts are the WinRM emulator over real HTTP on loopback; the CLI runs in
this process (`invoke`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import bot.service
from bot.devtools.emulator import EmulatedFleet, Faults
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV
from tests.cli_support import CliResult, emulated_estate, invoke

ENV = {EMULATOR_PASSWORD_ENV: "Passw0rd!", "CHECKPOINT_BOT_SOCKET": "off"}


@pytest.fixture
def estate(tmp_path: Path) -> Iterator[tuple[Path, EmulatedFleet]]:
    with emulated_estate(tmp_path, env=ENV) as fleet:
        yield tmp_path, fleet


def cli(cwd: Path, *args: str) -> CliResult:
    return invoke(cwd, "-c", "bot.yaml", *args, env=ENV)


def test_vms_that_could_not_be_recorded_stay_on_the_wave(
    estate: tuple[Path, EmulatedFleet],
) -> None:
    cwd, fleet = estate
    fleet.servers["HV03"].faults = Faults(refuse=True)
    try:
        made = cli(cwd, "checkpoint", "create", "WEB01", "STG-WEB01", "STG-APP01", "-r", "w", "-y")
    finally:
        fleet.servers["HV03"].faults = Faults()
    assert made.returncode == 1, made.stderr
    assert "! STG-WEB01 could not be recorded: " in made.stdout

    shown = cli(cwd, "batch", "show", "BAT-1")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    said = [line for line in lines if "was not recorded" in line]
    assert [line.split()[1] for line in said] == ["STG-WEB01", "STG-APP01"], shown.stdout
    assert all(line.startswith("  ! ") for line in said)
    assert "HV03 could not be reached" in said[0] and said[0].endswith("; nothing was taken of it")
    # After the members, before the history.
    member = next(i for i, line in enumerate(lines) if " WEB01 " in line)
    assert member < lines.index(said[0]) < lines.index("History:")

    data = json.loads(cli(cwd, "batch", "show", "BAT-1", "--json").stdout)
    assert [u["vm"] for u in data["not_recorded"]] == ["STG-WEB01", "STG-APP01"]
    assert all("HV03 could not be reached" in u["why"] for u in data["not_recorded"])

    listed = cli(cwd, "batch", "list").stdout
    assert "1 of 1 done (2 not recorded)" in listed, listed
    batches = json.loads(cli(cwd, "batch", "list", "--json").stdout)["batches"]
    assert [u["vm"] for u in batches[0]["not_recorded"]] == ["STG-WEB01", "STG-APP01"]


def test_a_member_put_back_for_a_retry_is_waited_for(
    estate: tuple[Path, EmulatedFleet], monkeypatch: pytest.MonkeyPatch
) -> None:
    """STG-WEB01's job runs once while HV03 refuses: its re-check cannot
    reach the host and the job is put back for a retry, seconds later. The
    create waits for it (it has no change window) and it is taken."""
    cwd, fleet = estate
    real = bot.service.create_batch

    def create_then_retry(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        out = real(ctx, *args, **kwargs)
        ctx.runner.retry_backoff = 3.0
        fleet.servers["HV03"].faults = Faults(refuse=True)
        try:
            web = next(o for o in out.outcomes if o.change.vm_name == "STG-WEB01")
            ctx.runner.run(web.job_id)
            assert ctx.ledger.get(web.job_id).state == "queued"
        finally:
            fleet.servers["HV03"].faults = Faults()
        return out

    monkeypatch.setattr(bot.service, "create_batch", create_then_retry)
    made = cli(cwd, "checkpoint", "create", "STG-WEB01", "STG-APP01", "-r", "w", "-y", "--json")
    assert "its change window" not in made.stderr, made.stderr
    assert "not waiting for" not in made.stderr, made.stderr
    assert made.returncode == 0, made.stderr
    data = json.loads(made.stdout)
    assert [(m["vm"], m["state"]) for m in data["members"]] == [
        ("STG-WEB01", "active"),
        ("STG-APP01", "active"),
    ]


def test_the_words_when_the_command_stops_waiting_for_a_retry() -> None:
    from bot.cli.batch_cmds import retry_words

    member = SimpleNamespace(vm_name="PW08", host="HV02")
    deadline = datetime(2026, 12, 6, 4, 59, tzinfo=UTC)
    # As the runner writes it on the job row (describe_error: the type first);
    # seen: "put back for a retry (RetryLater: could not check …)".
    job = SimpleNamespace(
        error="RetryLater: could not check PW08: HV02 could not be reached (connection refused)",
        deadline_at=deadline,
    )
    assert retry_words(member, job) == (  # type: ignore[arg-type]
        "PW08: its re-check could not reach HV02; trying again until 2026-12-06 04:59 UTC"
    )
    other = SimpleNamespace(error="the VM is busy", deadline_at=deadline - timedelta(hours=1))
    assert retry_words(member, other) == (  # type: ignore[arg-type]
        "PW08: put back for a retry (the VM is busy); trying again until 2026-12-06 03:59 UTC"
    )


def test_a_line_each_time_any_member_ends(estate: tuple[Path, EmulatedFleet]) -> None:
    """STG-WEB01's job is created first and its checkpoint takes seconds;
    the others end meanwhile, and their lines come as they end."""
    cwd, fleet = estate
    fleet.servers["HV03"].faults = Faults(slow={"Checkpoint-VM": 5000})
    made = cli(cwd, "checkpoint", "create", "STG-WEB01", "WEB01", "WEB02", "-r", "w", "-y")
    assert made.returncode == 0, made.stderr
    lines = [line for line in made.stderr.splitlines() if line.startswith("BAT-0001")]
    assert lines[0] == "BAT-0001: 3 checkpoints are being taken…", made.stderr
    ended = [line for line in lines if " of 3 done" in line]
    assert ended[-1].endswith("3 of 3 done"), ended
    assert len(ended) >= 2 and "3 of 3 done" not in ended[0], ended
