"""The operator CLI's behaviour, run in this process as the console script
runs it (tests/cli_support.py), in a fresh working directory (demo mode,
state in ./var). The installed entry point itself is proven by one
subprocess smoke test per command group (tests/test_cli_smoke.py) and by
the worker test below, which needs a process of its own for SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bot.store.migrate import head_revision
from tests.cli_support import BOT, invoke, one_line_error


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = invoke(tmp_path, "--help")
    assert result.returncode == 0
    for command in ("checkpoint", "change", "inventory", "audit", "db", "policy", "worker"):
        assert f"  {command}" in result.stdout
    sub = invoke(tmp_path, "checkpoint", "--help")
    for command in ("create", "list", "rollback", "merge"):
        assert f"  {command}" in sub.stdout


def test_create_then_list_in_demo_mode(tmp_path: Path) -> None:
    created = invoke(tmp_path, "checkpoint", "create", "WEB01", "--reason", "test")
    assert created.returncode == 0, created.stderr
    assert "DEMO MODE" in created.stderr and "SIMULATED HOSTS" not in created.stderr
    assert "CHG-0001: active" in created.stdout
    listed = invoke(tmp_path, "checkpoint", "list", "--vm", "WEB01", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)["checkpoints"]
    assert len(rows) == 1
    assert rows[0]["vm_name"] == "WEB01" and rows[0]["change_ref"] == "CHG-0001"
    shown = json.loads(invoke(tmp_path, "change", "show", "CHG-1", "--json").stdout)
    assert shown["checkpoint_id"] == rows[0]["id"] and shown["state"] == "active"
    # The checkpoint's Id names the change however it is written (bot.domain).
    braced = "{" + rows[0]["id"].upper() + "}"
    by_id = json.loads(invoke(tmp_path, "change", "show", braced, "--json").stdout)
    assert by_id["ref"] == "CHG-0001"
    assert (tmp_path / "var" / "checkpoint-bot.db").exists()


def test_a_cluster_or_a_group_narrows_the_listing_and_the_inventory(tmp_path: Path) -> None:
    """`checkpoint list NAME` and `inventory show NAME` read a failover
    cluster's or a group's name too (host, then VM, then cluster, then group)."""
    for vm in ("WEB01", "APP01", "STG-WEB01"):
        made = invoke(tmp_path, "checkpoint", "create", vm, "-r", "wave")
        assert made.returncode == 0, made.stderr

    def listed(*args: str) -> set[str]:
        done = invoke(tmp_path, "checkpoint", "list", *args, "--json")
        assert done.returncode == 0, done.stderr
        return {row["vm_name"] for row in json.loads(done.stdout)["checkpoints"]}

    assert listed() == {"WEB01", "APP01", "STG-WEB01"}
    assert listed("web-tier") == {"WEB01", "APP01"}  # its third member has none
    assert listed("Prod-Cluster") == {"WEB01", "APP01"}  # HV01 and HV02, not HV03
    assert listed("staging") == {"STG-WEB01"}
    shown = json.loads(invoke(tmp_path, "inventory", "show", "staging", "--json").stdout)
    assert [vm["name"] for vm in shown["vms"]] == ["STG-WEB01", "STG-APP01"]
    assert [h["name"] for h in shown["hosts"]] == ["HV03"] and shown["clusters"] == []
    on_cluster = json.loads(invoke(tmp_path, "inventory", "show", "prod-cluster", "--json").stdout)
    assert [h["name"] for h in on_cluster["hosts"]] == ["HV01", "HV02"]
    assert {vm["host"] for vm in on_cluster["vms"]} == {"HV01", "HV02"}
    unknown = invoke(tmp_path, "checkpoint", "list", "web-teir")
    assert unknown.returncode == 2
    assert one_line_error(unknown) == (
        "checkpoint-bot: error: no VM, host, cluster or group named 'web-teir' in the "
        "inventory; did you mean web-tier?"
    )
    # An empty or unsafe name is named as what it may be, not as a host.
    for command in (("inventory", "show"), ("checkpoint", "list")):
        empty = invoke(tmp_path, *command, "")
        assert empty.returncode == 2
        assert one_line_error(empty) == (
            "checkpoint-bot: error: VM, host, cluster or group name is empty"
        )
    wild = invoke(tmp_path, "inventory", "show", "WEB*")
    assert "VM, host, cluster or group name 'WEB*' contains '*'" in one_line_error(wild)


def test_the_type_is_written_as_the_readme_and_slack_write_it(tmp_path: Path) -> None:
    """`production-only`, not the enum's member name `production_only` that
    Click offered for an enum Choice from 8.2 on (until 2026-12-05)."""
    helped = invoke(tmp_path, "checkpoint", "create", "--help")
    assert "[production|production-only|standard]" in helped.stdout
    created = invoke(
        tmp_path, "checkpoint", "create", "WEB02", "-r", "x", "--type", "Production-Only", "--json"
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["checkpoint_type"] == "production-only"
    explained = invoke(tmp_path, "policy", "explain", "SQL01", "--type", "production-only")
    assert explained.returncode == 0, explained.stderr
    settings = invoke(tmp_path, "checkpoint", "settings", "--help")
    assert "[disabled|production|production-only|standard]" in settings.stdout
    wrong = invoke(
        tmp_path, "checkpoint", "create", "WEB02", "-r", "x", "--type", "production_only"
    )
    assert wrong.returncode == 2
    assert "'production_only' is not one of 'production', 'production-only', 'standard'" in (
        one_line_error(wrong)
    )


def test_domain_controller_is_refused_naming_usn_rollback(tmp_path: Path) -> None:
    result = invoke(tmp_path, "checkpoint", "create", "CORP-DC01", "--reason", "test")
    assert result.returncode == 1
    assert "REFUSED" in result.stdout and "USN rollback" in result.stdout
    audit = invoke(tmp_path, "audit", "export", "--format", "jsonl")
    events = [json.loads(line) for line in audit.stdout.splitlines()]
    assert [e["event"] for e in events] == ["requested", "deny"]


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (
            ["checkpoint", "create", "WEB1", "--reason", "x"],
            2,
            "no VM named 'WEB1' in the inventory; did you mean WEB01, WEB02?",
        ),
        # A host's, a cluster's or a group's name where a VM belongs says
        # which it is ("no VM named 'HV01'" until 2026-12-05); a create also
        # says how to take them all as a wave.
        (
            ["checkpoint", "create", "hv01", "--reason", "x"],
            2,
            "HV01 is a host, not a VM: name one of its VMs (CORP-DC01, SQL01, EXCH01, …), "
            "or checkpoint them all as one wave with --host HV01",
        ),
        (
            ["checkpoint", "create", "prod-cluster", "--reason", "x"],
            2,
            "prod-cluster is a cluster, not a VM: name one of its VMs (CORP-DC01, CORP-DC02, "
            "SQL01, …), or checkpoint them all as one wave with --cluster prod-cluster",
        ),
        (
            ["checkpoint", "settings", "web-tier"],
            2,
            "web-tier is a group, not a VM: name one of its VMs (WEB01, WEB02, APP01)",
        ),
        (
            ["checkpoint", "create", "WEB01"],
            2,
            'a reason is required: say why, e.g. --reason "KB5044284 patch"',
        ),
        (
            ["checkpoint", "create", "WEB01", "--reason", "x", "--frobnicate"],
            2,
            "No such option '--frobnicate'. (see 'checkpoint-bot checkpoint create --help')",
        ),
        (
            ["checkpoint", "create", "WEB01", "--reason", "x", "--ttl", "1 fortnight"],
            2,
            "--ttl: '1 fortnight' is not a duration: use a number and a unit "
            "(s, m, h, d, w), like 90m, 24h, 7d or 1d12h",
        ),
        (["change", "show", "CHG-77"], 1, "no change CHG-0077: no change has been recorded yet"),
        # A ref no change could have (past a 32-bit id) is still a ref, not
        # a VM's name ("no VM named 'CHG-…'" until 2026-12-05).
        (
            ["checkpoint", "rollback", "CHG-99999999999999999999"],
            1,
            "no change CHG-99999999999999999999: change ids have at most 9 digits",
        ),
        (
            ["change", "show", "chg-12345678901"],
            1,
            "no change CHG-12345678901: change ids have at most 9 digits",
        ),
        # An empty filter is a mistake, not "every VM" (it listed them all).
        (["checkpoint", "list", "--vm", ""], 2, "VM name is empty"),
        (["checkpoint", "list", "--host", ""], 2, "host name is empty"),
        # A wave's ref where one change belongs: the wave's own command for
        # it when the wave exists, "no batch" when it does not
        # (tests/test_show_unknown_batch.py, which needs a wave recorded).
        (
            ["checkpoint", "rollback", "BAT-1"],
            1,
            "no batch BAT-0001, and a change id looks like CHG-0042",
        ),
        # A duration below zero is a value Click would take for an option
        # ("No such option '-1'" until 2026-12-05).
        (
            ["checkpoint", "extend", "CHG-1", "-1h", "--json"],
            2,
            "extend by: '-1h' is not more than zero: a duration is positive, like 90m, 24h or 7d",
        ),
        (
            ["checkpoint", "create", "WEB01", "--reason", "x", "--ttl", "0m"],
            2,
            "--ttl: '0m' is not more than zero: a duration is positive, like 90m, 24h or 7d",
        ),
    ],
)
def test_bad_input_is_one_clear_line_and_writes_nothing(
    tmp_path: Path, args: list[str], code: int, expected: str
) -> None:
    result = invoke(tmp_path, *args)
    assert result.returncode == code
    assert one_line_error(result) == f"checkpoint-bot: error: {expected}"
    audit = invoke(tmp_path, "audit", "export")
    assert audit.stdout == ""


def test_malformed_config_names_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "bot.yaml"
    config.write_text("inventory: inv.yaml\njobs:\n  workers: [\n", encoding="utf-8")
    result = invoke(tmp_path, "--config", str(config), "checkpoint", "list")
    assert result.returncode == 2
    line = one_line_error(result)
    assert f"{config}:" in line and "YAML" in line


def test_config_with_wrong_value_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bot.yaml"
    config.write_text(
        "inventory: inv.yaml\njobs:\n  workers: many\nhyperv: {backend: winrm}\n", encoding="utf-8"
    )
    result = invoke(tmp_path, "--config", str(config), "checkpoint", "list")
    assert result.returncode == 2
    line = one_line_error(result)
    assert f"{config}:3: jobs.workers" in line


BACKEND_UNSET = (
    "hyperv.backend is not set: `winrm` for real Hyper-V hosts, or `simulator` to try "
    "the bot on simulated ones"
)


def test_a_config_that_does_not_name_its_backend_is_refused(tmp_path: Path) -> None:
    """It ran on simulated hosts, and said a checkpoint was taken on HV01
    (hv01.corp.example, which does not exist): now it is a config error."""
    from bot.inventory import demo_inventory_path

    config = tmp_path / "bot.yaml"
    config.write_text(
        f"inventory: {demo_inventory_path()}\ndatabase_url: sqlite:///{tmp_path / 'state.db'}\n",
        encoding="utf-8",
    )
    for args, env in (
        (("--config", str(config), "db", "upgrade"), {}),
        (
            ("checkpoint", "create", "WEB01", "-r", "KB5044284"),
            {"CHECKPOINT_BOT_CONFIG": "bot.yaml"},
        ),
    ):
        result = invoke(tmp_path, *args, env=env)
        assert result.returncode == 2, result.stderr
        assert one_line_error(result) == f"checkpoint-bot: error: {config}: {BACKEND_UNSET}"
        assert result.stdout == "" and "SIMULATED" not in result.stderr
    assert not (tmp_path / "state.db").exists()


def test_a_config_that_chooses_the_simulator_says_so_on_every_command(tmp_path: Path) -> None:
    from bot.inventory import demo_inventory_path

    config = tmp_path / "bot.yaml"
    config.write_text(
        f"inventory: {demo_inventory_path()}\nhyperv: {{backend: simulator}}\n", encoding="utf-8"
    )
    banner = (
        "checkpoint-bot: SIMULATED HOSTS — bot.yaml sets hyperv.backend: simulator; "
        "nothing here touches a real Hyper-V host."
    )
    # It still works: the file chose it.
    for args, said in (
        (("db", "upgrade"), "schema empty"),
        (("checkpoint", "create", "WEB01", "-r", "KB5044284"), "CHG-0001: active"),
        (("change", "list", "--json"), '"CHG-0001"'),
    ):
        result = invoke(tmp_path, "--config", str(config), *args)
        assert result.returncode == 0, result.stderr
        assert result.stderr.splitlines().count(banner) == 1 and "DEMO MODE" not in result.stderr
        # stderr only: --json and pipes read stdout.
        assert said in result.stdout and "SIMULATED" not in result.stdout


def test_audit_export_csv(tmp_path: Path) -> None:
    assert invoke(tmp_path, "checkpoint", "create", "APP01", "-r", "deploy 4.2").returncode == 0
    out = tmp_path / "audit.csv"
    result = invoke(tmp_path, "audit", "export", "--format", "csv", "--output", str(out))
    assert result.returncode == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    # A Slack actor is (team, user); the CLI's operator has no team.
    assert lines[0].startswith('"change","seq","at","actor","actor_team","event"')
    assert '"requester","requester_team","message"' in lines[0]
    assert lines[1].startswith('"CHG-0001",1,') and '"cli:tester",' in lines[1]


def test_configured_deployment_needs_db_upgrade_first(tmp_path: Path) -> None:
    from bot.inventory import demo_inventory_path

    config = tmp_path / "bot.yaml"
    config.write_text(
        f"inventory: {demo_inventory_path()}\nhyperv: {{backend: simulator}}\n", encoding="utf-8"
    )
    before = invoke(tmp_path, "--config", str(config), "checkpoint", "list")
    assert before.returncode == 2
    assert "run 'checkpoint-bot db upgrade'" in one_line_error(before)
    # "has no schema yet", not "is at schema none".
    assert f"has no schema yet, this release needs {head_revision()}" in before.stderr
    assert "DEMO MODE" not in before.stderr and "SIMULATED HOSTS" in before.stderr
    upgraded = invoke(tmp_path, "--config", str(config), "db", "upgrade")
    head = head_revision()
    assert upgraded.returncode == 0 and f"schema empty → {head}" in upgraded.stdout
    again = invoke(tmp_path, "--config", str(config), "db", "upgrade")
    assert f"already at schema {head}" in again.stdout
    listed = invoke(tmp_path, "--config", str(config), "checkpoint", "list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout)["checkpoints"] == []


def test_no_wait_returns_at_once_and_a_worker_runs_it(tmp_path: Path) -> None:
    """The `worker` group's smoke test too: the installed script in a process
    of its own, stopped by SIGTERM (a signal an in-process run cannot take)."""
    queued = invoke(
        tmp_path, "checkpoint", "create", "APP01", "-r", "deploy", "--no-wait", "--json"
    )
    assert queued.returncode == 0, queued.stderr
    body = json.loads(queued.stdout)
    assert body["state"] == "approved" and body["job_id"] == 1
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKPOINT_BOT")}
    worker = subprocess.Popen(
        [str(BOT), "worker"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        state = "approved"
        while time.monotonic() < deadline and state != "active":
            time.sleep(0.5)
            state = json.loads(invoke(tmp_path, "change", "show", "CHG-1", "--json").stdout)[
                "state"
            ]
        assert state == "active"
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0 and "worker: stopping" in err


def test_rollback_of_prod_needs_a_second_person(tmp_path: Path) -> None:
    alice, bob = {"CHECKPOINT_BOT_USER": "alice"}, {"CHECKPOINT_BOT_USER": "bob"}
    assert (
        invoke(tmp_path, "checkpoint", "create", "WEB01", "-r", "patch", env=alice).returncode == 0
    )
    asked = invoke(tmp_path, "checkpoint", "rollback", "CHG-1", env=alice)
    assert asked.returncode == 0 and "WAITING FOR APPROVAL" in asked.stdout
    assert "checkpoint-bot change approve CHG-0001" in asked.stdout
    self_approved = invoke(tmp_path, "change", "approve", "CHG-1", env=alice)
    assert self_approved.returncode == 1
    assert "cannot approve it" in one_line_error(self_approved)
    approved = invoke(tmp_path, "change", "approve", "CHG-1", "--json", env=bob)
    assert approved.returncode == 0, approved.stderr
    body = json.loads(approved.stdout)
    assert body["state"] == "rolled_back" and body["approval"]["state"] == "approved"


def test_change_approve_names_what_it_decided_and_asks_which_when_several_wait(
    tmp_path: Path,
) -> None:
    alice, bob = {"CHECKPOINT_BOT_USER": "alice"}, {"CHECKPOINT_BOT_USER": "bob"}
    assert (
        invoke(tmp_path, "checkpoint", "create", "WEB01", "-r", "patch", env=alice).returncode == 0
    )
    assert invoke(tmp_path, "checkpoint", "rollback", "CHG-1", env=alice).returncode == 0
    # Past the policy's maximum lifetime an extension waits for an approver too.
    longer = invoke(tmp_path, "checkpoint", "extend", "CHG-1", "10d", env=alice)
    assert longer.returncode == 0, longer.stderr
    # `change show` says what waits, and how to approve each.
    shown = invoke(tmp_path, "change", "show", "CHG-1").stdout.splitlines()
    rollback, extend = [line for line in shown if line.startswith("  waiting:")]
    assert rollback == (
        "  waiting:    rollback by @cli:alice needs 1 approval from anyone (not the requester): "
        "rollback of WEB01 needs 1 approval (env=prod); an approver runs "
        "'checkpoint-bot change approve CHG-0001 --request rollback'"
    )
    assert extend.startswith("  waiting:    extension to ")
    assert extend.endswith(
        "needs 1 approval from anyone (not the requester); an approver runs "
        "'checkpoint-bot change approve CHG-0001 --request extend'"
    )
    listed = json.loads(invoke(tmp_path, "change", "show", "CHG-1", "--json").stdout)
    assert listed["waiting"] == ["rollback", "extend"]
    which = invoke(tmp_path, "change", "approve", "CHG-1", env=bob)
    assert which.returncode == 1
    error = one_line_error(which)
    assert "more than one thing (rollback, extend)" in error and "nothing was done" in error
    assert "checkpoint-bot change approve CHG-1 --request rollback or --request extend" in error
    rejected = invoke(
        tmp_path, "change", "reject", "CHG-1", "--request", "extend", "-r", "too long", env=bob
    )
    assert rejected.returncode == 0 and "CHG-0001: extend rejected." in rejected.stdout
    # The answer says what still waits, as `change show` would.
    assert "  waiting:    rollback by @cli:alice needs 1 approval" in rejected.stdout
    assert "extension to" not in rejected.stdout.split("waiting:", 1)[1]
    approved = invoke(tmp_path, "change", "approve", "CHG-1", "--json", env=bob)
    assert approved.returncode == 0, approved.stderr
    body = json.loads(approved.stdout)
    assert body["approval"]["action"] == "rollback" and body["approval"]["state"] == "approved"
    assert body["approval"]["request_id"] is not None
    # Nothing waits any more: nothing is said to.
    after = invoke(tmp_path, "change", "show", "CHG-1")
    assert "waiting:" not in after.stdout
    assert json.loads(invoke(tmp_path, "change", "show", "CHG-1", "--json").stdout)["waiting"] == []


def test_policy_explain_and_validate(tmp_path: Path) -> None:
    explained = invoke(tmp_path, "policy", "explain", "CORP-DC01", "--json")
    assert explained.returncode == 0
    body = json.loads(explained.stdout)
    assert body["verdict"] == "deny"
    rule = next(r for r in body["rules"] if r["id"] == "domain_controller")
    assert rule["outcome"] == "fired" and rule["effect"] == "deny"
    assert "USN rollback" in rule["message"]
    table = invoke(
        tmp_path, "policy", "explain", "LAB-DC01", "--user", "U0ALICE", "--at", "2026-11-28T23:00"
    )
    assert (
        "ALLOW" in table.stdout
        and "adjusted: checkpoint type set to production-only" in table.stdout
    )

    good = tmp_path / "policy.yaml"
    good.write_text("rules:\n  checkpoint_count:\n    params: {max: 5}\n", encoding="utf-8")
    ok = invoke(tmp_path, "policy", "validate", str(good))
    assert ok.returncode == 0 and "OK" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  checkpoint_count:\n    effect: maybe\n", encoding="utf-8")
    refused = invoke(tmp_path, "policy", "validate", str(bad))
    assert refused.returncode == 2
    assert f"{bad}:3: rules.checkpoint_count.effect" in one_line_error(refused)


def test_the_test_process_environment_does_not_reach_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`invoke` hands the command its own environment (tests/cli_support.py):
    what this process has set — a config, a database, an operator — is not seen."""
    monkeypatch.setenv("CHECKPOINT_BOT_CONFIG", str(tmp_path / "no-such.yaml"))
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("CHECKPOINT_BOT_USER", "leaked")
    created = invoke(tmp_path, "checkpoint", "create", "WEB01", "-r", "env check")
    assert created.returncode == 0, created.stderr
    assert "DEMO MODE" in created.stderr and "CHG-0001: active" in created.stdout
    audit = invoke(tmp_path, "audit", "export", "--format", "jsonl")
    actors = {json.loads(line)["actor"] for line in audit.stdout.splitlines()}
    assert "cli:tester" in actors and not any("leaked" in a for a in actors), actors


def test_a_config_without_a_database_run_from_elsewhere_says_where_its_record_is(
    tmp_path: Path,
) -> None:
    # Seen: run from another directory, a config that names no database
    # found an empty record there and said only "run db upgrade", which
    # would have split the deployment's record in two.
    from bot.inventory import demo_inventory_path

    deployment, elsewhere = tmp_path / "dep", tmp_path / "sub"
    deployment.mkdir()
    elsewhere.mkdir()
    config = deployment / "bot.yaml"
    config.write_text(
        f"inventory: {demo_inventory_path()}\nhyperv: {{backend: simulator}}\n", encoding="utf-8"
    )
    assert invoke(deployment, "--config", str(config), "db", "upgrade").returncode == 0
    there = invoke(elsewhere, "--config", str(config), "change", "list")
    assert there.returncode == 2
    said = one_line_error(there)
    assert "has no schema yet" in said and "run 'checkpoint-bot db upgrade'" in said
    assert f"set database_url (or workdir) in {config}" in said
    assert f"under the directory the command runs in ({elsewhere})" in said
    # A config that names its database is told only to upgrade it.
    named = deployment / "named.yaml"
    named.write_text(
        f"inventory: {demo_inventory_path()}\nhyperv: {{backend: simulator}}\n"
        f"database_url: sqlite:///{tmp_path / 'fresh.db'}\n",
        encoding="utf-8",
    )
    fresh = one_line_error(invoke(elsewhere, "--config", str(named), "change", "list"))
    assert fresh.endswith("run 'checkpoint-bot db upgrade'")
