"""`policy explain` when the VM's host cannot be asked (2026-12-05, a
tester): it read DENY, exited 0, and repeated the host's error on every
rule line, while `checkpoint create` said "could not check …: nothing was
decided" and exited 3. A fault of the connection is never a refusal.

What holds now, on the CLI, in `--json` and in Slack: the headline says
CANNOT DECIDE and names the host; the host's error is said once (the CLI's
error line, in `checkpoint create`'s words; Slack's warning); the rules
that needed what the host says are marked `?` with the facts they needed;
the rules the inventory and the request settle still show their answer;
exit 3. With the host answering, a refusal reads DENY, as before.

The hosts are the WinRM emulator over real HTTP on loopback; the CLI runs
in this process (`invoke`), the Slack bot over signed requests
(tests/slack_support.py), every message it sent checked as Slack would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.devtools.emulator import EmulatedFleet, Faults
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV
from bot.service import Explanation
from bot.service.deciding import Preview
from bot.service.locate import HostUnavailable
from policies import Decision, Effect, Fact, Facts, OutcomeKind, RuleOutcome, Verdict
from templates import Renderer
from templates.blocks import SlackRenderer
from tests.cli_support import CliResult, emulated_estate, invoke, one_line_error
from tests.slack_support import RunningBot, running_bot
from tests.test_slack_flow import (
    block_kit_problems,
    checked_calls,
    command,
    shown,
    slack_problems,
)

ENV = {EMULATOR_PASSWORD_ENV: "Passw0rd!", "CHECKPOINT_BOT_SOCKET": "off"}
MARKS = ("✓", "✗", "!", "?", "\u2013")

# (faults on the host, what the headline says of it, `reason` in --json)
DOWN = [
    pytest.param(Faults(refuse=True), "could not be reached", "unreachable", id="refuse"),
    pytest.param(Faults(drop=True), "could not be reached", "unreachable", id="drop"),
    pytest.param(Faults(unauthorized=True), "could not be logged in to", "login_failed", id="401"),
]


@pytest.fixture
def estate(tmp_path: Path) -> Iterator[tuple[Path, EmulatedFleet]]:
    """The demo inventory aimed at an emulated fleet; the schema in place."""
    with emulated_estate(tmp_path, env=ENV) as fleet:
        yield tmp_path, fleet


def cli(cwd: Path, *args: str) -> CliResult:
    return invoke(cwd, "-c", "bot.yaml", *args, env=ENV)


def rule_lines(stdout: str) -> dict[str, tuple[str, str]]:
    """rule id -> (mark, its line) of the text table."""
    found = {}
    for line in stdout.splitlines():
        words = line.split(maxsplit=2)
        if line.startswith("  ") and len(words) == 3 and words[0] in MARKS:
            found[words[1]] = (words[0], words[2])
    return found


def host_error(error_line: str) -> str:
    """The host's own words in `could not check VM: … (ERROR); nothing …`."""
    inside = error_line.split(" (", 1)[1]
    return inside.rsplit("); nothing was decided", 1)[0]


# --- the CLI ------------------------------------------------------------------------


@pytest.mark.parametrize(("faults", "what", "_reason"), DOWN)
def test_a_host_that_did_not_answer_leaves_the_explanation_undecided(
    estate: tuple[Path, EmulatedFleet], faults: Faults, what: str, _reason: str
) -> None:
    cwd, fleet = estate
    fleet.server("HV03").faults = faults
    explained = cli(cwd, "policy", "explain", "STG-APP01")
    created = cli(cwd, "checkpoint", "create", "STG-APP01", "-r", "KB5044284")
    assert (explained.returncode, created.returncode) == (3, 3), explained.stderr

    lines = explained.stdout.splitlines()
    assert lines[0] == f"create STG-APP01 as cli:tester: CANNOT DECIDE: HV03 {what}"
    assert "DENY" not in explained.stdout and "NEEDS APPROVAL" not in explained.stdout
    # The error line says what `checkpoint create` says, in its words: only
    # the host call it names differs (create asks in one pipeline).
    said, made = one_line_error(explained), one_line_error(created)
    assert said.split(" (", 1)[0] == made.split(" (", 1)[0]
    assert said.rsplit(")", 1)[1] == made.rsplit(")", 1)[1]
    assert "nothing was decided or recorded" in said
    # The host's error once in all that was printed, not once per rule.
    error = host_error(said)
    assert (explained.stdout + explained.stderr).count(error) == 1

    rows = rule_lines(explained.stdout)
    assert rows["permissions"] == ("✓", "@cli:tester may request")
    assert rows["domain_controller"] == ("?", "needs kvp_product_type from HV03")
    assert rows["unsupported_disks"] == (
        "?",
        "needs disk_passthrough, disk_fibre_channel from HV03",
    )
    # Nothing known refuses STG-APP01: no line reads as a refusal.
    assert [r for r, (mark, _) in rows.items() if mark == "✗"] == []

    # Once the host answers, the same question is decided.
    fleet.server("HV03").faults = Faults()
    again = cli(cwd, "policy", "explain", "STG-APP01")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[0] == "create STG-APP01 as cli:tester: ALLOW"


@pytest.mark.parametrize(("faults", "what", "reason"), DOWN)
def test_json_says_cannot_decide_with_the_host_and_why(
    estate: tuple[Path, EmulatedFleet], faults: Faults, what: str, reason: str
) -> None:
    cwd, fleet = estate
    fleet.server("HV03").faults = faults
    explained = cli(cwd, "policy", "explain", "STG-APP01", "rollback", "--json")
    assert explained.returncode == 3, explained.stderr
    body = json.loads(explained.stdout)
    assert (body["action"], body["vm"], body["verdict"]) == (
        "rollback",
        "STG-APP01",
        "cannot_decide",
    )
    undecided = body["cannot_decide"]
    said = one_line_error(explained).removeprefix("checkpoint-bot: error: ")
    assert undecided["host"] == "HV03" and undecided["reason"] == reason
    assert undecided["message"] == said and undecided["error"] == host_error(said)
    assert {"kvp_product_type", "checkpoint_count", "contradictions"} <= set(undecided["facts"])
    assert "roles" not in undecided["facts"]  # the inventory's, known
    # No decision, so nothing a decision carries: no approval, no schedule.
    assert body["approval"] is None and body["schedule_at"] is None
    # Every rule's own answer is still there, facts and all.
    assert {"permissions", "domain_controller"} <= {r["id"] for r in body["rules"]}


def test_a_refusal_is_deny_with_the_host_answering_and_still_shown_without(
    estate: tuple[Path, EmulatedFleet],
) -> None:
    cwd, fleet = estate
    explained = cli(cwd, "policy", "explain", "CORP-DC01")
    assert explained.returncode == 0, explained.stderr
    assert explained.stdout.splitlines()[0] == "create CORP-DC01 as cli:tester: DENY"
    body = json.loads(cli(cwd, "policy", "explain", "CORP-DC01", "--json").stdout)
    assert body["verdict"] == "deny" and body["cannot_decide"] is None

    # Its node down: the refusal the inventory settles stands whatever the
    # host would say (a host fact only ever adds a refusal), so it is still
    # DENY; the rules that needed the host are marked, the host said once.
    fleet.server("HV01").faults = Faults(refuse=True)
    down = cli(cwd, "policy", "explain", "CORP-DC01")
    assert down.returncode == 0, down.stderr
    assert down.stdout.splitlines()[:2] == [
        "create CORP-DC01 as cli:tester: DENY",
        "  HV01 could not be reached: the rules marked ? need what it says, and none of "
        "them could undo this refusal",
    ]
    marks = rule_lines(down.stdout)
    assert marks["domain_controller"][0] == "✗" and "USN rollback" in marks["domain_controller"][1]
    assert any(mark == "?" for mark, _line in marks.values())
    body = json.loads(cli(cwd, "policy", "explain", "CORP-DC01", "--json").stdout)
    assert body["verdict"] == "deny" and body["cannot_decide"] is None


# --- Slack --------------------------------------------------------------------------


@contextmanager
def emulated_bot(workdir: Path) -> Iterator[RunningBot]:
    """The running bot on emulated hosts; every message it sent is checked
    as Slack would once it stops (tests/test_slack_flow.py)."""
    with running_bot(workdir, emulated=True) as bot:
        yield bot
    problems = [p for call in checked_calls(bot.api.calls) for p in slack_problems(call)]
    assert problems == []


def header(body: dict[str, Any]) -> str:
    first = body["blocks"][0]
    assert first["type"] == "header"
    return str(first["text"]["text"])


@pytest.mark.parametrize(
    ("faults", "what", "then", "cause"),
    [
        pytest.param(
            Faults(refuse=True),
            "could not be reached",
            "Ask again once it answers.",
            "no WinRM listener on that port",
            id="refuse",
        ),
        pytest.param(
            Faults(unauthorized=True),
            "could not be logged in to",
            "Ask again once its credential is fixed.",
            "the host rejected the credentials",
            id="401",
        ),
    ],
)
def test_slack_says_it_could_not_decide_and_to_ask_again(
    tmp_path: Path, faults: Faults, what: str, then: str, cause: str
) -> None:
    with emulated_bot(tmp_path) as bot:
        assert bot.fleet is not None
        bot.fleet.server("HV03").faults = faults
        answer = command(bot, "policy STG-APP01")
        said = shown(answer)
        assert header(answer) == "create STG-APP01: CANNOT DECIDE"
        assert answer["text"] == f"create STG-APP01: CANNOT DECIDE: HV03 {what}"
        assert "DENY" not in said and "NEEDS APPROVAL" not in said
        assert f"The bot could not decide: *HV03 {what}*" in said and then in said
        # Why, once: not on every rule's line.
        assert said.count(cause) == 1
        assert "? `domain_controller` needs kvp_product_type from HV03" in said

        bot.fleet.server("HV03").faults = Faults()
        assert header(command(bot, "policy STG-APP01")) == "create STG-APP01: ALLOW"
        refused = command(bot, "policy CORP-DC01")
        assert header(refused) == "create CORP-DC01: DENY" and "USN rollback" in shown(refused)
        # Its node down, the refusal the inventory settles still decides it.
        bot.fleet.server("HV01").faults = Faults(refuse=True)
        still = command(bot, "policy CORP-DC01")
        assert header(still) == "create CORP-DC01: DENY" and "USN rollback" in shown(still)
        assert (
            ":warning: *HV01 could not be reached*: the rules marked ? need what it says, and "
            "none of them could undo this refusal."
        ) in shown(still)
        assert "? needs what HV01 says" in shown(still)


def test_the_undecided_answer_keeps_to_block_kit_with_a_long_hostile_error() -> None:
    """The host's words reach Slack once, escaped and cut to fit."""
    error = "Get-VM on HV01: <!channel> *now* & " + "x" * 5000
    stopped = HostUnavailable("WEB01", "HV01", error)
    why = stopped.message  # what every fact the host would have given says
    lacking = Fact.unknown("cluster prod-cluster", why)
    counted = RuleOutcome(
        "checkpoint_count",
        OutcomeKind.FIRED,
        Effect.DENY,
        f"WEB01: cannot tell how many checkpoints it has: checkpoint_count is unknown ({why}; "
        "from cluster prod-cluster); refused until it is known",
        facts={"checkpoint_count": lacking},
        for_want_of_facts=True,
    )
    drift = RuleOutcome(
        "inventory_drift", OutcomeKind.NOT_APPLICABLE, None, f"nothing to compare: {why}"
    )
    facts = Facts({"checkpoint_count": lacking, "contradictions": Fact.unknown("provider", why)})
    explained = Explanation.of(Preview(Decision(Verdict.DENY, (counted, drift)), facts, stopped))
    assert explained.unasked == ("checkpoint_count", "contradictions")
    assert explained.rows == [
        ("checkpoint_count", "?", "needs checkpoint_count from HV01"),
        ("inventory_drift", "\u2013", "nothing to compare: HV01 could not be reached"),
    ]
    payload = SlackRenderer(Renderer()).payload(
        "policy_explain",
        action="create",
        vm="WEB01",
        who="U0ALICE",
        decision=explained.decision,
        rows=explained.rows,
        undecided=explained.undecided,
        unanswered=explained.unanswered,
    )
    assert block_kit_problems("policy_explain", payload["blocks"], 50) == []
    assert payload["text"] == "create WEB01: CANNOT DECIDE: HV01 could not be reached"
    said = shown(payload)
    assert "DENY" not in said and "<!channel>" not in said
    assert said.count("&lt;!channel&gt; *now* &amp; xxx") == 1
