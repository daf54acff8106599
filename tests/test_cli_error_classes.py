"""Errors the CLI used to file under the wrong exit code or the wrong words
(2026-12-05): a sweep that could not ask a host exited 0; a Ctrl-C during a
host call printed pypsrp's teardown error; a database URL option libpq
refuses, a WinRM password the host rejects and an empty password variable
all read as "could not be reached, try again"; a change ref longer than any
change id was "not a change" to `audit export`.

The hosts are the WinRM emulator over real HTTP on loopback; the CLI runs
in this process (`invoke`) except where a signal must reach it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.devtools.emulator import EmulatedFleet, Faults
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV
from bot.inventory import demo_inventory_path
from bot.store.db import bad_connection_option, make_engine
from tests.cli_support import (
    BOT,
    OPERATOR,
    CliResult,
    emulated_estate,
    invoke,
    one_line_error,
    run,
)
from tests.helpers import refused_port

PASSWORD = "Passw0rd!"
ENV = {EMULATOR_PASSWORD_ENV: PASSWORD, "CHECKPOINT_BOT_SOCKET": "off"}
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def estate(tmp_path: Path) -> Iterator[tuple[Path, EmulatedFleet]]:
    """The demo inventory aimed at an emulated fleet; the schema in place."""
    with emulated_estate(tmp_path, env=ENV) as fleet:
        yield tmp_path, fleet


# --- 1. a sweep that could not ask a host is not a clean sweep -------------------


@pytest.mark.parametrize(
    "faults",
    [Faults(refuse=True), Faults(drop=True), Faults(unauthorized=True)],
    ids=["refuse", "drop", "401"],
)
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_a_sweep_that_could_not_ask_a_host_exits_3_after_the_whole_report(
    estate: tuple[Path, EmulatedFleet], faults: Faults, as_json: bool
) -> None:
    cwd, fleet = estate
    fleet.server("HV02").faults = faults
    swept = invoke(cwd, "-c", "bot.yaml", "sweep", "run", *(["--json"] if as_json else []), env=ENV)
    assert swept.returncode == 3, swept.stderr
    assert one_line_error(swept) == (
        "checkpoint-bot: error: HV02 could not be asked: the sweep is incomplete"
    )
    if as_json:
        report = json.loads(swept.stdout)
        assert [p["host"] for p in report["unreachable"]] == ["HV02"]
        assert report["hosts"] == 3
    else:
        assert swept.stdout.startswith("Sweep of 3 hosts at ")
        assert "! HV02 could not be asked: " in swept.stdout
        assert swept.stdout.rstrip().endswith(
            "No digest: no channel is configured (sweep.channel or slack.changes_channel)."
        )


def test_a_sweep_of_hosts_that_all_answered_still_exits_0(
    estate: tuple[Path, EmulatedFleet],
) -> None:
    cwd, _fleet = estate
    swept = invoke(cwd, "-c", "bot.yaml", "sweep", "run", env=ENV)
    assert swept.returncode == 0, swept.stderr
    assert "could not be asked" not in swept.stdout + swept.stderr


# --- 2. Ctrl-C does not surface the teardown's library records -------------------


def test_ctrl_c_during_a_host_call_says_one_line_and_no_library_error(
    estate: tuple[Path, EmulatedFleet],
) -> None:
    """The pool closed under the hung call cannot be closed cleanly, and
    pypsrp logs that as an ERROR ("Failed to parse WSManFault message …"),
    which the one-line log handler printed after the ^C."""
    cwd, fleet = estate
    for server in fleet.servers.values():
        server.faults = Faults(hang=frozenset({"Get-VMSnapshot"}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKPOINT_BOT")}
    env.pop("DATABASE_URL", None)
    proc = subprocess.Popen(
        [str(BOT), "-c", "bot.yaml", "checkpoint", "create", "STG-APP01", "-r", "x"],
        cwd=cwd,
        env=env | OPERATOR | ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    give_up = time.monotonic() + 60
    while not any(e.cmdlet == "Get-VMSnapshot" for e in fleet.log.entries):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < give_up, "the host was never asked"
        time.sleep(0.05)
    time.sleep(0.5)  # the call is in flight, waiting for the hung host
    proc.send_signal(signal.SIGINT)
    try:
        _out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("Ctrl-C did not stop the command within 30 s")
    assert proc.returncode == 130, err
    assert "logged error" not in err and "pypsrp" not in err, err
    assert [line for line in err.splitlines() if line.strip()] == [
        "checkpoint-bot: error: interrupted before anything was recorded"
    ]


_LOG_SCRIPT = """
import logging
from bot.cli.runtime import _configure_logging, quiet_libraries
_configure_logging(verbose=False)
logging.getLogger("pypsrp.wsman").error("before the interrupt")
quiet_libraries()
logging.getLogger("pypsrp.wsman").error("after the interrupt")
logging.getLogger("bot.jobs.runner").warning("the bot's own, after the interrupt")
"""


def test_after_an_interrupt_only_library_records_are_held_back() -> None:
    """A library's error before any interrupt is still shown; after one,
    only the bot's own records are."""
    done = subprocess.run(
        [sys.executable, "-c", _LOG_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    )
    assert done.stderr.splitlines() == [
        "checkpoint-bot: logged error (pypsrp.wsman): before the interrupt",
        "checkpoint-bot: warning: the bot's own, after the interrupt",
    ]


# --- 3a. a database URL option libpq refuses is bad input, not an outage ---------


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("sslmode=bogus", 'invalid sslmode value: "bogus"'),
        ("bogusopt=1", 'invalid connection option "bogusopt"'),
        ("keepalives=zz", 'invalid integer value "zz" for connection option "keepalives"'),
        ("target_session_attrs=x", 'invalid target_session_attrs value: "x"'),
        ("connect_timeout=abc", "bad value for connect_timeout: 'abc'"),
    ],
)
def test_a_connection_option_the_driver_refuses_is_bad_input(
    tmp_path: Path, query: str, said: str
) -> None:
    url = f"postgresql://u:pw@127.0.0.1:{refused_port()}/db?{query}"
    listed = invoke(tmp_path, "change", "list", env={"DATABASE_URL": url})
    assert listed.returncode == 2, listed.stderr
    line = one_line_error(listed)
    assert said in line and "fix DATABASE_URL" in line
    assert "pw" not in line.replace("postgresql://u:***@", "")
    assert "try again" not in line


def test_a_refused_or_unresolved_database_is_still_unreachable(tmp_path: Path) -> None:
    for url in (
        f"postgresql://u:pw@127.0.0.1:{refused_port()}/db?sslmode=disable",
        "postgresql://u:pw@nowhere.invalid:5432/db",
    ):
        listed = invoke(tmp_path, "change", "list", env={"DATABASE_URL": url})
        assert listed.returncode == 3, listed.stderr
        assert "cannot open the database" in one_line_error(listed)
        engine = make_engine(url)
        try:
            with pytest.raises(Exception) as caught:
                engine.connect().close()
        finally:
            engine.dispose()
        assert bad_connection_option(caught.value) is None


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("sslmode=bogus", 'invalid sslmode value: "bogus"'),
        # psycopg raises an unknown option as a ProgrammingError, which
        # `db upgrade` and `db status` gave as an internal error.
        ("bogusopt=1", 'invalid connection option "bogusopt"'),
    ],
)
@pytest.mark.parametrize("command", ["upgrade", "status"])
def test_db_commands_say_the_same_of_a_bad_option(
    tmp_path: Path, query: str, said: str, command: str
) -> None:
    (tmp_path / "bot.yaml").write_text(
        "inventory: inventory.yaml\nhyperv: {backend: winrm}\n", encoding="utf-8"
    )
    (tmp_path / "inventory.yaml").write_text(
        demo_inventory_path().read_text(encoding="utf-8"), encoding="utf-8"
    )
    url = f"postgresql://u:pw@127.0.0.1:{refused_port()}/db?{query}"
    for args in (("db", command), ("-c", "bot.yaml", "db", command)):
        done = invoke(tmp_path, *args, env={"DATABASE_URL": url})
        assert done.returncode == 2, done.stderr
        line = one_line_error(done)
        assert said in line and "fix DATABASE_URL" in line and "internal error" not in line


# --- 3b, 3c. a login the host refuses, a password variable that is empty ---------


def _create_stg_app01(cwd: Path, env: dict[str, str]) -> CliResult:
    return invoke(cwd, "-c", "bot.yaml", "checkpoint", "create", "STG-APP01", "-r", "x", env=env)


def test_a_rejected_password_says_what_to_check_not_to_try_again(
    estate: tuple[Path, EmulatedFleet],
) -> None:
    cwd, _fleet = estate
    wrong = "not-the-Passw0rd"
    made = _create_stg_app01(cwd, {**ENV, EMULATOR_PASSWORD_ENV: wrong})
    # Exit 3 as documented for a host the bot could not get into.
    assert made.returncode == 3, made.stderr
    line = one_line_error(made)
    assert "the bot could not log in to HV03" in line
    assert "the host rejected the credentials" in line
    assert (
        f"check the inventory's credential for HV03: user hvadmin and the password in "
        f"${EMULATOR_PASSWORD_ENV} (password_env)"
    ) in line
    assert "could not be reached" not in line and "try again once it answers" not in line
    assert wrong not in made.stdout + made.stderr


@pytest.mark.parametrize(
    ("env", "said"),
    [({EMULATOR_PASSWORD_ENV: ""}, "is set but empty"), ({}, "is not set")],
    ids=["empty", "unset"],
)
def test_an_empty_password_variable_is_called_empty(
    estate: tuple[Path, EmulatedFleet], env: dict[str, str], said: str
) -> None:
    cwd, _fleet = estate
    made = _create_stg_app01(cwd, {"CHECKPOINT_BOT_SOCKET": "off", **env})
    assert made.returncode == 3, made.stderr
    assert f"no password: ${EMULATOR_PASSWORD_ENV} {said}" in one_line_error(made)


# --- 4. a change ref with more digits than any change id -------------------------


@pytest.mark.parametrize("ref", ["CHG-2147483647", "chg-1234567890"])
def test_a_change_ref_too_long_for_an_id_says_so_alike_everywhere(tmp_path: Path, ref: str) -> None:
    assert invoke(tmp_path, "db", "upgrade").returncode == 0
    exported = invoke(tmp_path, "audit", "export", "--change", ref)
    shown = invoke(tmp_path, "change", "show", ref)
    assert (exported.returncode, shown.returncode) == (1, 1), exported.stderr + shown.stderr
    assert one_line_error(exported) == (
        f"checkpoint-bot: error: no change {ref.upper()}: change ids have at most 9 digits; "
        "nothing was exported"
    )
    assert one_line_error(shown) == (
        f"checkpoint-bot: error: no change {ref.upper()}: change ids have at most 9 digits"
    )


def test_zeros_in_front_of_a_change_id_do_not_count(tmp_path: Path) -> None:
    assert invoke(tmp_path, "db", "upgrade").returncode == 0
    shown = invoke(tmp_path, "change", "show", "CHG-0000000042")
    assert shown.returncode == 1
    assert one_line_error(shown) == (
        "checkpoint-bot: error: no change CHG-0042: no change has been recorded yet"
    )
    # A number within nine digits that no change has is still just absent.
    absent = invoke(tmp_path, "audit", "export", "--change", "CHG-1000000")
    assert one_line_error(absent) == (
        "checkpoint-bot: error: no change CHG-1000000: nothing was exported"
    )


def test_a_list_of_one_host_that_did_not_answer_never_names_it_as_one_that_did(
    estate: tuple[Path, EmulatedFleet],
) -> None:
    # Seen: "No checkpoints on the hosts that answered (HV01); the hosts
    # below could not be reached" above "! HV01 could not be reached"; then
    # "No checkpoints found for HV01 on any host that answered", when none did.
    cwd, fleet = estate
    fleet.server("HV01").faults = Faults(refuse=True)
    listed = invoke(cwd, "-c", "bot.yaml", "checkpoint", "list", "--host", "HV01", env=ENV)
    # A host that could not be reached: exit 3 (README, "Exit codes").
    assert listed.returncode == 3
    first = listed.stdout.splitlines()[0]
    assert first == (
        "No host answered (HV01 could not be reached): the checkpoints of HV01 are unknown."
    )
    assert "answered;" not in listed.stdout and "No checkpoints" not in listed.stdout
    assert "! HV01 could not be reached" in listed.stdout
    # Nothing was listed, so nothing is called "incomplete".
    assert one_line_error(listed) == (
        "checkpoint-bot: error: HV01 could not be reached: no host answered, "
        "so no checkpoint could be listed"
    )
    fleet.server("HV01").faults = Faults(unauthorized=True)
    refused = invoke(cwd, "-c", "bot.yaml", "checkpoint", "list", "--host", "HV01", env=ENV)
    assert refused.returncode == 3
    # The host answered: it refused the login, which a retry will not mend.
    assert refused.stdout.splitlines()[0] == (
        "No host answered (HV01 could not be logged in to): the checkpoints of HV01 are unknown."
    )
    assert "! HV01 could not be logged in to: " in refused.stdout
    # The error line says it as the line above does, not "could not be reached".
    assert one_line_error(refused) == (
        "checkpoint-bot: error: HV01 could not be logged in to: no host answered, "
        "so no checkpoint could be listed"
    )


def test_a_list_that_some_host_answered_says_the_rest_are_unknown(
    estate: tuple[Path, EmulatedFleet],
) -> None:
    # prod-cluster's HV02 answers (its VMs have no checkpoint), HV01 does not.
    cwd, fleet = estate
    fleet.server("HV01").faults = Faults(refuse=True)
    listed = invoke(cwd, "-c", "bot.yaml", "checkpoint", "list", "prod-cluster", env=ENV)
    assert listed.returncode == 3
    assert listed.stdout.splitlines()[0] == (
        "No checkpoints found for prod-cluster on any host that answered; the hosts below "
        "did not, so theirs are unknown."
    )
    assert one_line_error(listed) == (
        "checkpoint-bot: error: HV01 could not be reached: the list is incomplete"
    )


# --- 4. a job that failed in a way its change records says it once -----------------


def test_a_create_whose_host_call_timed_out_says_it_once_and_what_happens_next(
    tmp_path: Path,
) -> None:
    """Seen: "checkpoint-bot: logged error: job 1 (create on <VM id>) failed"
    on stderr below the outcome, which the change already said, and no word
    of who would find out how the create ended."""
    with emulated_estate(tmp_path, "{backend: winrm, call_timeout: 3s}", env=ENV) as fleet:
        fleet.server("HV03").faults = Faults(hang=frozenset({"Checkpoint-VM"}))
        done = run(
            tmp_path, "-c", "bot.yaml", "checkpoint", "create", "STG-WEB01", "-r", "x", env=ENV
        )
    # Interrupted, its outcome unknown: 4 (README "Exit codes"), never 1,
    # on which a script may take a second checkpoint.
    assert done.returncode == 4, done.stderr
    assert done.stdout.startswith("CHG-0001: interrupted — STG-WEB01 on HV03")
    assert "no result within 3s (hyperv.call_timeout)" in done.stdout
    assert (
        "  next:       how it ended is asked of the host on the next reconciler pass (each "
        "tick of a running bot or worker, or 'checkpoint-bot reconcile' now)"
    ) in done.stdout
    assert done.stderr.splitlines() == ["CHG-0001: checkpoint of STG-WEB01 on HV03 is running…"]
