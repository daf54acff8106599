"""A change whose VM or host left the inventory: "out of sight", never off
the radar.

Seen twice: with CHG-0007 active on HV03, HV03 taken out of inventory.yaml
made `sweep run` say "Sweep of 2 hosts … 1 stale, 0 orphans" and nothing
else, `checkpoint list` showed nothing of HV03, no warning anywhere, while
`change list` still had CHG-0007 active on HV03; `checkpoint merge
CHG-0007` said "no VM named 'STG-APP01' in the inventory" (which reads like
a typo). The same with only the VM taken out.

A deployment of the demo inventory on simulated hosts, the inventory a copy
the test edits; the CLI as a user runs it, the digest through the real
renderer. Nothing is ever done to an out-of-sight change: the bot reaches a
host only through its inventory entry.
"""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.changes.views import HostProblem
from bot.config import load_settings
from bot.context import AppContext, build_context
from bot.service.sweep import SweepTask, run_sweep
from bot.service.sweep_views import ChannelDigest, Finding, SweepItem, SweepReport
from templates import Renderer
from templates.blocks import SlackRenderer
from tests.cli_support import CliResult, invoke, one_line_error
from tests.slack_support import BOT_TOKEN, FakeSlackApi
from tests.test_slack_flow import shown, slack_problems

DEMO_INVENTORY = Path(__file__).parents[1] / "deploy/examples/demo-inventory.yaml"
CHANNEL = "C0SWEEP"
GIB = 1024**3
# STG-APP01's checkpoint on the simulated HV03 holds its 8 GiB of memory
# (its guest's VSS is broken: Hyper-V falls back to a standard checkpoint).
EIGHT_GIB = "8.0 GiB"


def cli(workdir: Path, *args: str, env: dict[str, str] | None = None) -> CliResult:
    return invoke(workdir, "--config", str(workdir / "bot.yaml"), *args, env=env)


@pytest.fixture
def deployment(tmp_path: Path) -> Path:
    """The demo inventory copied beside a bot.yaml on simulated hosts,
    the schema in place; CHG-0001 (STG-APP01 on HV03) and CHG-0002 (WEB01
    on HV01) active, and one sweep run, so the record has their sizes."""
    shutil.copy(DEMO_INVENTORY, tmp_path / "inventory.yaml")
    (tmp_path / "bot.yaml").write_text(
        "inventory: inventory.yaml\n"
        "hyperv: {backend: simulator}\n"
        f"sweep: {{channel: {CHANNEL}}}\n",
        encoding="utf-8",
    )
    assert cli(tmp_path, "db", "upgrade").returncode == 0
    for vm in ("STG-APP01", "WEB01"):
        created = cli(tmp_path, "checkpoint", "create", vm, "-r", "monthly patching")
        assert created.returncode == 0, created.stderr
    swept = cli(tmp_path, "sweep", "run")
    assert swept.returncode == 0, swept.stderr
    return tmp_path


def forget(workdir: Path, *, vm: str | None = None, host: str | None = None) -> None:
    """Take a VM, or a host and every VM on it, out of the inventory copy
    (and out of the groups that name them), as an operator edits it."""
    path = workdir / "inventory.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    gone = {v["name"] for v in data["vms"] if v["name"] == vm or v["host"] == host}
    assert gone, (vm, host)
    data["hosts"] = [h for h in data["hosts"] if h["name"] != host]
    data["vms"] = [v for v in data["vms"] if v["name"] not in gone]
    groups = {g: [n for n in names if n not in gone] for g, names in data["groups"].items()}
    data["groups"] = {g: names for g, names in groups.items() if names}
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def _context(workdir: Path, env: dict[str, str] | None = None) -> AppContext:
    settings = load_settings(workdir / "bot.yaml", {}, workdir)
    return build_context(settings, env=env, huey_kind="memory")


def _shown(workdir: Path) -> dict[str, Any]:
    listed = cli(workdir, "change", "show", "CHG-0001", "--json")
    assert listed.returncode == 0, listed.stderr
    change: dict[str, Any] = json.loads(listed.stdout)
    return change


def _still_held(workdir: Path, before: dict[str, Any]) -> None:
    """Nothing was done: CHG-0001 is as it was `before`, active on HV03."""
    change = _shown(workdir)
    assert (change["state"], change["host"], change["vm_name"]) == ("active", "HV03", "STG-APP01")
    assert (change["version"], change["events"]) == (before["version"], before["events"])


@pytest.mark.parametrize(
    ("left", "why"),
    [
        ({"vm": "STG-APP01"}, "STG-APP01 is not in the inventory"),
        ({"host": "HV03"}, "HV03 is not in the inventory"),
    ],
    ids=["vm", "host"],
)
def test_sweep_run_lists_a_change_whose_vm_or_host_left_the_inventory(
    deployment: Path, left: dict[str, str], why: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = _shown(deployment)
    forget(deployment, **left)
    swept = cli(deployment, "sweep", "run")
    assert swept.returncode == 0, swept.stderr
    lines = swept.stdout.splitlines()
    hosts = 2 if "host" in left else 3
    assert lines[0].startswith(f"Sweep of {hosts} hosts at ")
    assert lines[0].endswith("0 at odds with the record, 1 out of sight.")
    out = swept.stdout[swept.stdout.index("Out of sight") :]
    row = next(line for line in out.splitlines() if "CHG-0001" in line)
    for said in ("STG-APP01", "HV03", "active", "of cli:tester", "expires ", EIGHT_GIB):
        assert said in row, (said, row)
    assert f"{why}: put " in out
    assert "back in the inventory to merge or roll it back" in out
    assert "CHG-0002" not in out  # WEB01 on HV01 is in sight
    # Logged as a warning too: what the bot's log shows of its periodic
    # sweep, and the CLI's stderr ("checkpoint-bot: warning: …") of its own.
    [warned] = [r for r in caplog.records if "out of sight" in r.getMessage()]
    assert warned.levelname == "WARNING"
    assert warned.getMessage().startswith("1 change holds a checkpoint out of sight")
    assert f"CHG-0001 (STG-APP01 on HV03: {why})" in warned.getMessage()
    _still_held(deployment, before)


@pytest.mark.parametrize("left", [{"vm": "STG-APP01"}, {"host": "HV03"}], ids=["vm", "host"])
def test_sweep_run_json_has_each_out_of_sight_change(
    deployment: Path, left: dict[str, str]
) -> None:
    before = _shown(deployment)
    forget(deployment, **left)
    swept = cli(deployment, "sweep", "run", "--json")
    assert swept.returncode == 0, swept.stderr
    report = json.loads(swept.stdout)
    [away] = report["out_of_sight"]
    gone = "host" if "host" in left else "vm"
    missing = "HV03" if gone == "host" else "STG-APP01"
    assert away["change_ref"] == "CHG-0001"
    assert (away["vm_name"], away["host"], away["requester"]) == ("STG-APP01", "HV03", "cli:tester")
    assert (away["change_state"], away["gone"]) == ("active", gone)
    assert away["expires_at"] is not None and away["checkpoint_id"]
    assert away["size_bytes"] == pytest.approx(8 * GIB, rel=0.01) and away["size_at"]
    assert away["why"] == f"{missing} is not in the inventory"
    assert away["todo"].startswith(f"put {missing} back in the inventory to merge or roll it back")
    assert away["channel"] == CHANNEL
    # Its checkpoint is reported once, as out of sight: never as a stale or
    # orphan row with buttons the bot could not carry out.
    assert all(i["change_ref"] != "CHG-0001" for i in report["items"])
    [digest] = report["digests"]
    assert digest["out_of_sight"] == ["CHG-0001"]
    _still_held(deployment, before)


# What `merge` says of CHG-0001 once its VM, or its host, left the inventory.
MERGE_SAID = {
    "vm": "CHG-0001's checkpoint is of STG-APP01 on HV03, and STG-APP01 is no longer in the "
    "inventory: put it back in the inventory to merge it; the bot acts only on VMs the "
    "inventory lists; nothing was done",
    "host": "CHG-0001's checkpoint of STG-APP01 is on HV03, which is no longer in the inventory: "
    "put HV03 and STG-APP01 back in the inventory to merge it; the bot cannot reach a host "
    "it has no entry for; nothing was done",
}
LEFT = {"vm": {"vm": "STG-APP01"}, "host": {"host": "HV03"}}


@pytest.mark.parametrize("gone", ["vm", "host"])
def test_merge_of_an_out_of_sight_change_says_what_left_the_inventory(
    deployment: Path, gone: str
) -> None:
    before = _shown(deployment)
    forget(deployment, **LEFT[gone])
    said = MERGE_SAID[gone]
    merged = cli(deployment, "checkpoint", "merge", "CHG-0001")
    assert merged.returncode == 2, merged.stderr
    assert one_line_error(merged) == f"checkpoint-bot: error: {said}"
    assert "no VM named" not in merged.stderr
    # Named by its checkpoint's Id: the same line.
    by_id = cli(deployment, "checkpoint", "merge", before["checkpoint_id"])
    assert by_id.returncode == 2 and one_line_error(by_id) == f"checkpoint-bot: error: {said}"
    # A rollback and an extension, likewise, each in its own words.
    rolled = cli(deployment, "checkpoint", "rollback", "CHG-0001")
    assert rolled.returncode == 2
    assert one_line_error(rolled) == "checkpoint-bot: error: " + said.replace(
        "to merge it", "to roll it back"
    )
    extended = cli(deployment, "checkpoint", "extend", "CHG-0001", "24h")
    assert extended.returncode == 2
    assert one_line_error(extended) == "checkpoint-bot: error: " + said.replace(
        "to merge it", "to extend it"
    )
    _still_held(deployment, before)


@pytest.mark.parametrize("gone", ["vm", "host"])
def test_merge_by_the_name_of_a_vm_that_left_the_inventory_names_its_change(
    deployment: Path, gone: str
) -> None:
    before = _shown(deployment)
    forget(deployment, **LEFT[gone])
    said = MERGE_SAID[gone]
    by_name = cli(deployment, "checkpoint", "merge", "STG-APP01")
    assert by_name.returncode == 2, by_name.stderr
    assert one_line_error(by_name) == f"checkpoint-bot: error: {said}"
    rolled = cli(deployment, "checkpoint", "rollback", "stg-app01")
    assert rolled.returncode == 2
    assert one_line_error(rolled) == "checkpoint-bot: error: " + said.replace(
        "to merge it", "to roll it back"
    )
    _still_held(deployment, before)
    # A name no change and no inventory has is still the inventory's word.
    typo = cli(deployment, "checkpoint", "merge", "STG-APP99")
    assert typo.returncode == 2
    assert "no VM named 'STG-APP99' in the inventory" in one_line_error(typo)


def test_a_vm_back_in_the_inventory_is_in_sight_again(deployment: Path) -> None:
    original = (deployment / "inventory.yaml").read_text(encoding="utf-8")
    forget(deployment, host="HV03")
    assert "1 out of sight" in cli(deployment, "sweep", "run").stdout
    (deployment / "inventory.yaml").write_text(original, encoding="utf-8")
    swept = cli(deployment, "sweep", "run", "--json")
    assert json.loads(swept.stdout)["out_of_sight"] == []
    again = cli(deployment, "sweep", "run").stdout.splitlines()[0]
    assert again.endswith("0 at odds with the record, 0 out of sight.")
    merged = cli(deployment, "checkpoint", "merge", "CHG-0001")
    assert merged.returncode == 0, merged.stderr


@pytest.mark.parametrize("left", [{"vm": "STG-APP01"}, {"host": "HV03"}], ids=["vm", "host"])
def test_the_digest_shows_out_of_sight_changes_without_buttons(
    deployment: Path, left: dict[str, str]
) -> None:
    forget(deployment, **left)
    ctx = _context(deployment)
    try:
        report = run_sweep(ctx)
    finally:
        ctx.close()
    [digest] = report.digests
    assert digest.channel == CHANNEL and [o.change_ref for o in digest.out_of_sight] == ["CHG-0001"]
    payload = SlackRenderer(Renderer()).payload("sweep_digest", digest=digest, report=report)
    assert len(payload["blocks"]) <= 50
    text = shown(payload)
    assert "1 out of sight" in payload["text"]
    assert "*1 out of sight*" in text
    missing = "HV03" if "host" in left else "STG-APP01"
    assert f"{missing} is not in the inventory" in text
    assert "back in the inventory to merge or roll it back" in text
    assert "CHG-0001" in text and "STG-APP01" in text and EIGHT_GIB in text
    assert "<@cli:tester>" not in text  # a CLI requester is no Slack mention
    # Nothing to click for it: the bot cannot act on it.
    values = [
        str(element.get("value", ""))
        for block in payload["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    ]
    assert not any("CHG-0001" in v for v in values)


def test_the_periodic_sweep_posts_out_of_sight_changes_once_a_day(deployment: Path) -> None:
    before = _shown(deployment)
    forget(deployment, host="HV03")
    with FakeSlackApi() as api:
        ctx = _context(deployment, {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": api.api_url})
        try:
            task = SweepTask(ctx)
            now = ctx.clock()
            task.tick(now)
            [post] = api.of("chat.postMessage")
            assert post.body["channel"] == CHANNEL
            assert slack_problems(post) == []
            assert "HV03 is not in the inventory" in shown(post.body)
            task.tick(now + timedelta(hours=6))  # the next slot: nothing new
            assert len(api.of("chat.postMessage")) == 1
            task.tick(now + timedelta(days=1, hours=1))  # a day on: still worth a line
            posts = api.of("chat.postMessage")
            assert len(posts) == 2 and "HV03 is not in the inventory" in shown(posts[1].body)
        finally:
            ctx.close()
    _still_held(deployment, before)


def _long_away(n: int, now: datetime) -> Any:
    # Imported here: written before OutOfSight was, the other tests showed
    # what was missing rather than fail to import.
    from bot.service.sweep_views import Gone, OutOfSight

    long = "X" * 300
    return OutOfSight(
        change_ref=f"CHG-{n:04d}",
        change_state="active",
        change_version=3,
        vm_name=f"VM{n:03d}-" + long,
        vm_id=str(uuid.uuid4()),
        host=f"HV-GONE-{n}-" + "<!channel>" + long,
        checkpoint_id=str(uuid.uuid4()),
        requester="U0ALICE" + "Z" * 200,
        expires_at=now - timedelta(days=2),
        gone=Gone.HOST if n % 2 else Gone.VM,
        channel="C0A",
        size_bytes=None if n % 3 == 0 else n * GIB,
        size_at=None if n % 3 == 0 else now - timedelta(days=1),
    )


def _long_item(n: int, now: datetime) -> SweepItem:
    long = "X" * 300
    return SweepItem(
        finding=[Finding.ORPHAN, Finding.STALE, Finding.MISMATCH][n % 3],
        host=f"HV{n:02d}-" + "H" * 200,
        vm_name=f"VM{n:03d}-" + long,
        vm_id=str(uuid.uuid4()),
        checkpoint_id=str(uuid.uuid4()),
        name="<!channel> & " + long,
        kind="production",
        created_at=now - timedelta(days=9),
        age_seconds=9 * 86400,
        size_bytes=(200 - n) * GIB,
        growth_bytes=5 * GIB,
        channel="C0A",
        change_ref=None if n % 3 == 0 else f"CHG-{n:04d}",
        change_state=None if n % 3 == 0 else "active",
        change_version=7,
        requester="U0ALICE" + "Z" * 200,
        expires_at=now - timedelta(days=2),
    )


@pytest.mark.parametrize("checkpoints", [0, 200], ids=["alone", "with-200-rows"])
def test_the_digest_fits_slack_with_many_out_of_sight(checkpoints: int) -> None:
    """150 out-of-sight changes with the longest names, beside 200 rows and
    twelve unreachable hosts: one valid message of at most 50 blocks, the
    out-of-sight lines before the rest, what did not fit counted."""
    now = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)
    away = tuple(_long_away(n, now) for n in range(150))
    items = tuple(_long_item(n, now) for n in range(checkpoints))
    problems = tuple(HostProblem(f"HV-DOWN-{n}-" + "X" * 300, "WinRM") for n in range(12))
    digest = ChannelDigest("C0A", items, problems, now - timedelta(hours=6), away)
    report = SweepReport(now, "s", 40, 500, items, problems, (digest,), out_of_sight=away)
    payload = SlackRenderer(Renderer()).payload(
        "sweep_digest", demo=True, digest=digest, report=report
    )
    assert len(payload["blocks"]) <= 50
    text = shown(payload)
    assert "*150 out of sight*" in text
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text
    assert "CHG-0000" in text  # the first out-of-sight line is shown
    assert ":scissors: …and " in text
    # The out-of-sight lines are packed before the rest's text lines: what
    # no other screen shows is the last to be cut.
    packed = [
        b["text"]["text"]
        for n, b in enumerate(payload["blocks"])
        if b["type"] == "section"
        and (n + 1 == len(payload["blocks"]) or payload["blocks"][n + 1]["type"] != "actions")
        and ("Out of sight" in b["text"]["text"] or ":ghost:" in b["text"]["text"])
    ]
    assert packed and "Out of sight" in packed[0]


@pytest.mark.parametrize("first", ["23:00", "09:00"])
def test_a_daily_line_is_told_again_a_day_after_it_was_not_at_midnight(
    deployment: Path, first: str
) -> None:
    """A host down or a change out of sight is worth a line once a day. Seen
    (this file's daily test, run after 18:00 UTC): told at 23:00, it was
    news again at 01:00, the calendar day having changed; a digest two hours
    later said nothing new. Now a day after it was last told."""
    from types import SimpleNamespace

    from bot.jobs.ticks import TickClaims
    from bot.service.sweep import NEWS_KIND, _told

    ctx = _context(deployment, {})
    try:
        hour, minute = (int(x) for x in first.split(":"))
        told_at = datetime(2026, 12, 6, hour, minute, tzinfo=UTC)
        at = [told_at]
        claims = TickClaims(ctx.engine, lambda: at[0], "test")
        deps: Any = SimpleNamespace(ticks=claims)
        key = f"{CHANNEL}:out_of_sight:CHG-0001:{told_at:%Y-%m-%d}"
        assert not _told(deps, key, told_at)
        assert claims.claim(NEWS_KIND, key)
        for later, told in ((2, True), (6, True), (23, True), (24, False), (25, False)):
            moment = told_at + timedelta(hours=later)
            assert _told(deps, key[:-10] + f"{moment:%Y-%m-%d}", moment) is told, later
    finally:
        ctx.close()
