"""A policy author's findings (2026-12-06): five ways a policy file loaded
"OK" and then meant something else, or crashed every decision.

1. `permissions: {rollback: }` (its only line commented out) kept the
   shipped "anyone may roll back": the merge skipped a null.
2. `ttl: {params: {default: 24}}` and `duration: 6` read as seconds.
3. A cron or RRULE that never fires (Feb 30) passed validation; every
   decision for a VM in its scope then ended in an internal error.
4. `expires: 2026-02-30` was an internal error (PyYAML's ValueError), in
   every YAML file the bot reads.
5. `count: 3` with two approvers named needed an approval that never comes.

What holds now: each is refused when the file is loaded, in one line that
names FILE:LINE: key and says what to write instead; the CLI exits 2. The
CLI runs in this process (tests/cli_support.py) over the demo inventory and
simulated hosts, with `policy: my-policy.yaml` in its config."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.yamlio import YamlError, load_yaml
from policies import PolicyError, parse_policy
from policies.schema import Scope
from policies.windows import Window, WindowNeverOpens
from tests.cli_support import REPO, CliResult, invoke, one_line_error

EXAMPLES = REPO / "deploy" / "examples"
POLICY = "my-policy.yaml"


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo inventory on simulated hosts, `policy: my-policy.yaml`, the
    schema in place. Each test writes the policy file it needs."""
    root = tmp_path_factory.mktemp("estate")
    shutil.copy(EXAMPLES / "demo-inventory.yaml", root / "inventory.yaml")
    shutil.copy(EXAMPLES / "demo-hosts.yaml", root / "hosts.yaml")
    (root / "bot.yaml").write_text(
        f"inventory: inventory.yaml\npolicy: {POLICY}\n"
        "hyperv: {backend: simulator, simulator_hosts: hosts.yaml}\n",
        encoding="utf-8",
    )
    (root / POLICY).write_text("", encoding="utf-8")
    upgraded = invoke(root, "-c", "bot.yaml", "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    return root


def cli(cwd: Path, *args: str) -> CliResult:
    return invoke(cwd, "-c", "bot.yaml", *args)


def validate(estate: Path, text: str) -> CliResult:
    (estate / POLICY).write_text(text, encoding="utf-8")
    return cli(estate, "policy", "validate", POLICY)


def refused(estate: Path, text: str) -> str:
    """The one error line of `policy validate` (exit 2); `policy explain`
    refuses the same file the same way, with no internal error."""
    done = validate(estate, text)
    assert done.returncode == 2, (done.stdout, done.stderr)
    line = one_line_error(done)
    said = line.removeprefix("checkpoint-bot: error: ")
    explained = cli(estate, "policy", "explain", "WEB02", "rollback", "--user", "U0MALLORY")
    assert explained.returncode == 2, (explained.stdout, explained.stderr)
    # The config names the file by its path: the same line, the file in full.
    assert one_line_error(explained).endswith(f"{os.sep}{said}")
    return said


def policy_problems(*texts: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(*texts)
    return [str(p) for p in caught.value.problems]


# 1. An empty entry never keeps the shipped (open) value -----------------------


def test_an_empty_permission_is_refused_not_left_open_to_anyone(estate: Path) -> None:
    line = refused(
        estate,
        "admins: {users: [U0CAROL]}\npermissions:\n  rollback:\n#    users: [U0BOB]\n",
    )
    assert line == (
        f"{POLICY}:3: permissions.rollback: is empty: write `rollback: {{}}` for admins only, "
        "or list who may (users, groups, channels)"
    )
    # Written as the comment in default.yaml says, it is admins only.
    done = validate(estate, "admins: {users: [U0CAROL]}\npermissions:\n  rollback: {}\n")
    assert done.returncode == 0, done.stderr
    explained = cli(estate, "policy", "explain", "WEB02", "rollback", "--user", "U0MALLORY")
    assert "@U0MALLORY may not roll back" in explained.stdout


@pytest.mark.parametrize(
    ("text", "where", "says"),
    [
        ("permissions:\n# rollback: {}\n", ":1: permissions:", "name the permissions"),
        ("rules:\n  ttl:\n    effect:\n", ":3: rules.ttl.effect:", "give a value"),
        (
            "rules:\n  approvals:\n    params: {users: }\n",
            ":3: rules.approvals.params.users:",
            "write [] for none",
        ),
        ("windows:\n#  - name: weekend\n", ":1: windows:", "write [] for none"),
        ("admins:\n", ":1: admins:", "write the keys to change"),
    ],
)
def test_an_empty_key_anywhere_in_the_merge_is_an_error(text: str, where: str, says: str) -> None:
    """The rule for null everywhere the files merge: a key written with no
    value is refused, never read as "keep what the shipped file says"."""
    (line,) = policy_problems(text)
    assert line.startswith(f"<policy>{where} is empty: "), line
    assert says in line and "remove the line to keep" in line


def test_an_empty_file_or_section_of_rule_settings_still_changes_nothing() -> None:
    """What it keeps is the shipped guardrail, never a wider door."""
    assert parse_policy("# nothing yet\n").permissions.rollback.users == ["*"]
    for text in ("rules:\n", "rules:\n  ttl:\n", "rules:\n  ttl:\n    params:\n"):
        assert parse_policy(text).rules["ttl"].params.max == timedelta(days=7)  # type: ignore[attr-defined]


# 2. A duration has a unit -------------------------------------------------------


def test_a_bare_number_is_not_a_duration(estate: Path) -> None:
    line = refused(estate, "rules:\n  ttl: {params: {default: 24, max: 168}}\n")
    # Both are wrong; the first says so in one line (the CLI's "  " lines add the rest).
    assert line == f"{POLICY}:2: rules.ttl.params.default: 24 has no unit: write 24h, 24m or 24d"
    window = "windows:\n  - name: w\n    cron: '0 22 * * 6'\n    duration: 6\n"
    assert refused(estate, window) == (
        f"{POLICY}:4: windows[0].duration: 6 has no unit: write 6h, 6m or 6d"
    )


DURATION_PLACES = [
    ("rules: {{ttl: {{params: {{default: {}, max: 366d}}}}}}", "rules.ttl.params.default"),
    ("rules: {{ttl: {{params: {{max: {}}}}}}}", "rules.ttl.params.max"),
    ("rules: {{ttl: {{params: {{remind_before: [{}]}}}}}}", "rules.ttl.params.remind_before[0]"),
    ("rules: {{ttl: {{params: {{auto_merge_grace: {}}}}}}}", "rules.ttl.params.auto_merge_grace"),
    (
        "rules: {{ttl: {{overrides: [{{scope: {{}}, params: {{max: {}}}}}]}}}}",
        "rules.ttl.overrides[0].params.max",
    ),
    ("windows: [{{name: w, cron: '0 22 * * 6', duration: {}}}]", "windows[0].duration"),
    (
        "windows: [{{name: w, cron: '0 22 * * 6', duration: 6h, notices: {{opening: {}}}}}]",
        "windows[0].notices.opening",
    ),
]


@settings(max_examples=60, deadline=None)
@given(
    place=st.sampled_from(DURATION_PLACES),
    number=st.integers(min_value=-(10**9), max_value=10**9)
    # (YAML 1.1 reads `1e-05`, without a dot, as text: that is no number.)
    | st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9).filter(
        lambda f: "e" not in repr(f)
    ),
)
@example(place=DURATION_PLACES[0], number=0)
@example(place=DURATION_PLACES[5], number=1.5)
def test_no_duration_in_the_policy_is_a_bare_number(place: tuple[str, str], number: float) -> None:
    template, key = place
    (line,) = policy_problems(template.format(number))
    assert line.startswith(f"<policy>:1: {key}: "), line
    written = load_yaml(str(number), "n").data  # as YAML reads it back
    assert f": {written} has no unit: write " in line


@settings(max_examples=40, deadline=None)
@given(hours=st.integers(min_value=1, max_value=24 * 7), unit=st.sampled_from(["h", "m"]))
def test_a_duration_with_a_unit_is_read_as_written(hours: int, unit: str) -> None:
    policy = parse_policy(f"rules: {{ttl: {{params: {{default: {hours}{unit}, max: 7d}}}}}}")
    want = timedelta(hours=hours) if unit == "h" else timedelta(minutes=hours)
    assert policy.rules["ttl"].params.default == want  # type: ignore[attr-defined]


# 3. A window that never opens ------------------------------------------------------


def test_a_cron_that_never_fires_is_refused(estate: Path) -> None:
    window = (
        "windows:\n  - name: never\n    cron: '0 22 30 2 *'\n    duration: 6h\n"
        "    scope: {names: [WEB02]}\n"
    )
    assert refused(estate, window) == (
        f"{POLICY}:3: windows[0].cron: window 'never' never opens: cron '0 22 30 2 *' has no "
        "date in the next 5 years"
    )


def test_an_rrule_that_never_fires_is_refused() -> None:
    (line,) = policy_problems(
        "windows:\n  - name: never\n    rrule: FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30\n"
        "    duration: 6h\n"
    )
    assert line == (
        "<policy>:3: windows[0].rrule: window 'never' never opens: RRULE "
        "'FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30' has no date in the next 5 years"
    )


def test_a_rare_window_that_does_open_is_kept() -> None:
    policy = parse_policy(
        "windows:\n  - {name: leap, cron: '0 0 29 2 *', duration: 1h}\n"
        "  - {name: leap-r, rrule: 'FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29', duration: 1h}\n"
    )
    assert [w.name for w in policy.windows] == ["leap", "leap-r"]


def test_a_window_that_never_opens_is_closed_at_decision_time() -> None:
    """Built without the loader (which refuses it): still no crash asking
    whether it is open; asked for its next opening, a clear error."""
    window = Window("never", "0 22 30 2 *", timedelta(hours=6), ZoneInfo("UTC"), Scope())
    now = datetime(2026, 12, 6, tzinfo=UTC)
    assert window.open_until(now) is None
    assert window.first_opening(now) is None
    with pytest.raises(WindowNeverOpens, match="window 'never' never opens after 2026-12-06"):
        window.next_start(now)


BERLIN = ZoneInfo("Europe/Berlin")
# The hour the clocks go back: 02:00-03:00 local happens twice.
FOLD = datetime(2026, 10, 25, 0, 0, tzinfo=UTC)


@settings(max_examples=60, deadline=None)
@given(
    cron=st.sampled_from(["* * * * *", "*/2 * * * *", "*/5 2 * * *", "0 22 * * 6", "30 2 * * *"]),
    offset=st.integers(min_value=0, max_value=3 * 3600),
)
@example(cron="* * * * *", offset=5400)  # 02:30 local, the second time
def test_openings_around_the_autumn_fold_never_fail(cron: str, offset: int) -> None:
    """A cron matching often (every minute) in the repeated hour: its wall
    times there map to instants already past, and the next opening is after
    the fold; the search used to give up after 8 ("no opening found")."""
    window = Window("w", cron, timedelta(minutes=30), BERLIN, Scope())
    now = FOLD + timedelta(seconds=offset)
    start = window.next_start(now)
    assert start > now
    last = window.last_start(now)
    assert last is None or last <= now


# 4. An impossible date -------------------------------------------------------------


def test_an_impossible_date_names_file_line_and_key(estate: Path) -> None:
    exemption = (
        "exemptions:\n  - rule: ttl\n    vm: WEB02\n    reason: r\n    approved_by: U0A\n"
        "    expires: {}\n"
    )
    for text, why in (("2026-02-30", "day is out of range for month"),
                      ("2026-13-01", "month must be in 1..12")):  # fmt: skip
        assert refused(estate, exemption.format(text)) == (
            f"{POLICY}:6: exemptions[0].expires: {text} is not a date ({why})"
        )


def test_an_impossible_date_in_the_config_or_inventory_is_located(estate: Path) -> None:
    inventory = (estate / "inventory.yaml").read_text(encoding="utf-8")
    (estate / POLICY).write_text("", encoding="utf-8")
    bad = estate / "bad-inventory.yaml"
    bad.write_text(inventory.replace("tags: {env: prod, tier: identity}",
                                     "tags: {env: prod, tier: identity, since: 2026-02-30}", 1),
                   encoding="utf-8")  # fmt: skip
    line = next(i for i, t in enumerate(bad.read_text().splitlines(), 1) if "since:" in t)
    (estate / "bad.yaml").write_text(
        "inventory: bad-inventory.yaml\n"
        "hyperv: {backend: simulator, simulator_hosts: hosts.yaml}\n",
        encoding="utf-8",
    )
    done = invoke(estate, "-c", "bad.yaml", "inventory", "show", "WEB02")
    assert done.returncode == 2, done.stderr
    assert one_line_error(done).endswith(
        f"bad-inventory.yaml:{line}: vms[0].tags.since: 2026-02-30 is not a date "
        "(day is out of range for month)"
    )
    (estate / "bad.yaml").write_text(
        "inventory: inventory.yaml\nhyperv: {backend: simulator, simulator_hosts: hosts.yaml}\n"
        "slack:\n  since: 2026-04-31\n",
        encoding="utf-8",
    )
    done = invoke(estate, "-c", "bad.yaml", "inventory", "show", "WEB02")
    assert done.returncode == 2, done.stderr
    assert "bad.yaml:4: slack.since: 2026-04-31 is not a date" in one_line_error(done)


@settings(max_examples=150, deadline=None)
@given(
    year=st.integers(min_value=1, max_value=9999),
    month=st.integers(min_value=1, max_value=19),
    day=st.integers(min_value=1, max_value=39),
    time=st.sampled_from(["", " 10:00:00", "T23:59:59Z"]),
    depth=st.integers(min_value=0, max_value=3),
)
@example(year=2026, month=2, day=30, time="", depth=1)
@example(year=2028, month=2, day=29, time="", depth=1)
def test_a_yaml_date_is_a_date_or_one_located_problem(
    year: int, month: int, day: int, time: str, depth: int
) -> None:
    text = f"{year:04d}-{month:02d}-{day:02d}{time}"
    keys = [f"k{i}" for i in range(depth + 1)]
    yaml_text = "first: 1\n" + "".join(f"{'  ' * i}{k}:\n" for i, k in enumerate(keys[:-1]))
    yaml_text += f"{'  ' * depth}{keys[-1]}: {text}\n"
    try:
        real = date(year, month, day)
    except ValueError:
        real = None
    if real is not None:
        value = load_yaml(yaml_text, "f.yaml").data
        for k in keys:
            value = value[k]
        assert (value if isinstance(value, date) and not time else value.date()) == real
        return
    with pytest.raises(YamlError) as caught:
        load_yaml(yaml_text, "f.yaml")
    (problem,) = caught.value.problems
    kind = "date and time" if time else "date"
    assert str(problem).startswith(
        f"f.yaml:{depth + 2}: {'.'.join(keys)}: {text.strip()} is not a {kind} ("
    ), str(problem)


# 5. More approvals than approvers --------------------------------------------------


def test_more_approvals_than_named_approvers_is_refused(estate: Path) -> None:
    line = refused(estate, "rules:\n  approvals:\n    params: {count: 3, users: [U0BOB, U0DAVE]}\n")
    assert line == (
        f"{POLICY}:3: rules.approvals.params.count: count 3 but only 2 approvers are named "
        "and no group: name more users (admins count too), add a group, or lower count to 2"
    )


@pytest.mark.parametrize(
    ("text", "where"),
    [
        # An override, merged over the base's users.
        (
            "rules:\n  approvals:\n    params: {users: [U0BOB, U0DAVE]}\n    overrides:\n"
            "      - scope: {tags: {env: prod}}\n        params: {count: 3}\n",
            "<policy>:6: rules.approvals.overrides[0].params.count: count 3 but only 2",
        ),
        # No approvers listed: the approve permission's people, and admins.
        (
            "admins: {users: [U0CAROL]}\npermissions:\n  approve: {users: [U0BOB]}\n"
            "rules:\n  approvals:\n    params: {count: 3}\n",
            "<policy>:6: rules.approvals.params.count: count 3 but only 2",
        ),
    ],
)
def test_approvals_that_can_never_come_are_refused(text: str, where: str) -> None:
    (line,) = policy_problems(text)
    assert line.startswith(where), line


def test_a_partial_approve_permission_is_refused_at_its_own_line(estate: Path) -> None:
    """Seen (newcomer): `permissions: {approve: {cli: false}}`, to keep the
    shipped approvers and refuse only the CLI, replaced the shipped `approve`
    whole (it named no one then), and the error pointed at the shipped
    default.yaml's prod override, a file the operator never wrote."""
    line = refused(estate, "permissions:\n  approve:\n    cli: false\n")
    assert line == (
        f"{POLICY}:2: permissions.approve: names too few approvers for the approvals rule "
        "at default.yaml (shipped):142 (count 1 but no approver is named and no group): a "
        "permission is replaced whole, so this one grants only what it lists; list who may "
        'approve (users: ["*"] keeps everyone), or add a group'
    )
    assert validate(estate, 'permissions:\n  approve: {users: ["*"], cli: false}\n').returncode == 0


@pytest.mark.parametrize(
    "text",
    [
        "rules: {approvals: {params: {count: 3, users: [U0BOB, U0DAVE], groups: [S0OPS]}}}",
        "rules: {approvals: {params: {count: 3, users: ['*']}}}",
        "admins: {users: [U0CAROL]}\nrules: {approvals: {params: {count: 3, users: [U0B, U0D]}}}",
        "admins: {groups: [S0ADMINS]}\nrules: {approvals: {params: {count: 3, users: [U0B]}}}",
        "rules: {approvals: {params: {count: 3}}}",  # anyone holds `approve` (shipped)
        "rules: {approvals: {params: {count: 2, users: [U0B, U0D]}}}",
    ],
)
def test_approvals_that_can_come_are_kept(text: str) -> None:
    assert parse_policy(text).rules["approvals"].params.count in (2, 3)  # type: ignore[attr-defined]


def test_a_window_that_needs_an_approval_says_an_approver_may_let_it_run(estate: Path) -> None:
    """`change_window: {effect: needs_approval}` outside the window: the
    remediation said "ask again after … or ask an admin for an exemption",
    though an approver's word is what it needs."""
    done = validate(
        estate,
        "rules:\n  change_window: {effect: needs_approval}\nwindows:\n"
        "  - name: app-maintenance\n    cron: '0 22 * * 6'\n    duration: 4h\n"
        "    timezone: UTC\n    scope: {names: [APP01]}\n",
    )
    assert done.returncode == 0, done.stderr
    explained = cli(estate, "policy", "explain", "APP01", "--at", "2026-12-07T10:00", "--json")
    rule = next(r for r in json.loads(explained.stdout)["rules"] if r["id"] == "change_window")
    assert rule["remediation"].startswith("an approver may let it run now, or ask again after")
