"""`policy validate` warns about what is valid but probably not meant: a
safety guardrail weakened, a scope that matches no VM of the inventory, a
base param the shipped overrides shadow; `policy explain` says where a
guardrail was weakened and which override changed a rule (policies/lint.py).

Run as an operator does: a config naming the demo inventory and a policy
file, through the CLI (tests/cli_support.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_support import invoke

INVENTORY = Path(__file__).parents[1] / "deploy/examples/demo-inventory.yaml"
DEMO_POLICY = Path(__file__).parents[1] / "deploy/examples/demo-policy.yaml"


REPO = Path(__file__).resolve().parents[1]


def _deployment(tmp_path: Path, policy: str) -> tuple[str, Path]:
    path = tmp_path / "policy.yaml"
    path.write_text(policy, encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"inventory: {INVENTORY}\npolicy: policy.yaml\nhyperv: {{backend: simulator}}\n",
        encoding="utf-8",
    )
    return str(config), path


def _validate(tmp_path: Path, policy: str, *extra: str) -> tuple[Path, list[str], str]:
    config, path = _deployment(tmp_path, policy)
    done = invoke(tmp_path, "-c", config, "policy", "validate", str(path), *extra)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stdout.splitlines() if line.startswith("WARNING")]
    return path, warnings, done.stdout


DC_WARN = """\
rules:
  domain_controller:
    overrides:
      - scope: {tags: {env: prod}}
        effect: warn
"""


def test_a_guardrail_weakened_by_an_override_is_a_warning_with_its_line_and_vms(
    tmp_path: Path,
) -> None:
    path, warnings, out = _validate(tmp_path, DC_WARN)
    assert out.splitlines()[0].startswith(f"{path}: OK")
    assert "1 warning" in out.splitlines()[0]
    assert len(warnings) == 1, out
    line = warnings[0]
    assert line.startswith(f"WARNING {path}:5: rules.domain_controller.overrides[0]: ")
    assert "guardrail domain_controller weakened" in line
    assert "effect warn (shipped: deny)" in line
    assert "VMs tagged env=prod" in line
    # The VMs it changes the answer for: the prod DCs, not the lab's.
    assert "CORP-DC01" in line and "CORP-DC02" in line and "LAB-DC01" not in line


@pytest.mark.parametrize(
    ("policy", "where", "words"),
    [
        (
            "rules:\n  domain_controller:\n    overrides:\n"
            "      - scope: {tags: {env: prod}}\n        enabled: false\n",
            ":5: rules.domain_controller.overrides[0]: ",
            "disabled (shipped: deny)",
        ),
        (
            "exemptions:\n  - rule: domain_controller\n    vm: '*'\n    reason: patching\n"
            "    approved_by: U0ADMIN\n    expires: 2099-01-01\n",
            ":2: exemptions[0]: ",
            "exempt until 2099-01-01 (shipped: deny)",
        ),
        (
            "rules:\n  guest_cluster: {enabled: false}\n",
            ":2: rules.guest_cluster.enabled: ",
            "disabled (shipped: deny)",
        ),
        (
            "rules:\n  replicating_application: {effect: warn}\n",
            ":2: rules.replicating_application.effect: ",
            "effect warn (shipped: deny)",
        ),
    ],
)
def test_every_way_of_weakening_a_guardrail_is_a_warning(
    tmp_path: Path, policy: str, where: str, words: str
) -> None:
    path, warnings, out = _validate(tmp_path, policy)
    assert len(warnings) == 1, out
    assert warnings[0].startswith(f"WARNING {path}{where}"), warnings[0]
    assert words in warnings[0]


def test_the_warnings_are_in_the_json_too(tmp_path: Path) -> None:
    config, path = _deployment(tmp_path, DC_WARN)
    done = invoke(tmp_path, "-c", config, "policy", "validate", str(path), "--json")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["ok"] is True
    [found] = body["warnings"]
    assert found["kind"] == "guardrail_weakened" and found["rule"] == "domain_controller"
    assert found["source"] == str(path) and found["line"] == 5
    assert found["path"] == "rules.domain_controller.overrides[0]"
    assert found["shipped"] == "deny" and found["now"] == "warn"
    assert found["vms"] == ["CORP-DC01", "CORP-DC02"]


def test_what_weakens_nothing_and_the_demo_policy_warn_nothing(tmp_path: Path) -> None:
    _path, warnings, out = _validate(
        tmp_path, "rules:\n  checkpoint_count:\n    params: {max: 5}\n"
    )
    assert warnings == [] and "warning" not in out
    _path, warnings, out = _validate(tmp_path, DEMO_POLICY.read_text(encoding="utf-8"))
    assert warnings == [], out
    # Stricter than shipped is no weakening.
    _path, warnings, out = _validate(tmp_path, "rules:\n  hyperv_replica: {effect: deny}\n")
    assert warnings == [], out


def test_explain_says_which_file_weakened_the_guardrail(tmp_path: Path) -> None:
    config, path = _deployment(tmp_path, DC_WARN)
    assert invoke(tmp_path, "-c", config, "db", "upgrade").returncode == 0
    shown = invoke(tmp_path, "-c", config, "policy", "explain", "CORP-DC01")
    assert shown.returncode == 0, shown.stderr
    assert "ALLOW" in shown.stdout
    assert f"guardrail weakened by {path}:5 (shipped: deny)" in shown.stdout
    as_json = invoke(tmp_path, "-c", config, "policy", "explain", "CORP-DC01", "--json")
    rule = next(r for r in json.loads(as_json.stdout)["rules"] if r["id"] == "domain_controller")
    assert rule["weakened"] == {"source": str(path), "line": 5, "shipped": "deny", "now": "warn"}
    # A VM the override does not reach is not said to be weakened, nor one
    # whose answer it did not change (a prod VM that is no DC passes either way).
    for other in ("LAB-DC01", "WEB01"):
        shown = invoke(tmp_path, "-c", config, "policy", "explain", other)
        assert shown.returncode == 0 and "guardrail weakened" not in shown.stdout, shown.stdout


SCOPES_THAT_MATCH_NOTHING = """\
rules:
  ttl:
    overrides:
      - scope: {host_groups: [prod-clustr]}
        params: {max: 14d}
windows:
  - name: patch-night
    cron: "0 22 * * 6"
    duration: 6h
    scope: {tags: {env: production}}
exemptions:
  - rule: checkpoint_count
    vm: APP99
    reason: vendor upgrade
    approved_by: U0ADMIN
    expires: 2099-01-01
"""


def test_a_scope_that_matches_no_vm_of_the_inventory_is_a_warning(tmp_path: Path) -> None:
    path, warnings, out = _validate(tmp_path, SCOPES_THAT_MATCH_NOTHING)
    assert len(warnings) == 3, out
    exemption, override, window = sorted(warnings, key=lambda w: w.split(": ")[1][:4])
    assert window == (
        f"WARNING {path}:7: windows[0] 'patch-night' scope {{tags: {{env: production}}}} "
        "matches no VM of the inventory (tags env: lab, prod, staging)"
    )
    assert override == (
        f"WARNING {path}:4: rules.ttl.overrides[0] scope {{host_groups: [prod-clustr]}} "
        "matches no VM of the inventory (host groups: prod-cluster, standalone)"
    )
    assert exemption == (
        f"WARNING {path}:12: exemptions[0] (checkpoint_count) vm APP99 matches no VM "
        "of the inventory"
    )


def test_a_base_param_the_shipped_override_shadows_is_a_warning(tmp_path: Path) -> None:
    policy = "rules:\n  approvals:\n    params: {count: 2, actions: [create, rollback]}\n"
    path, warnings, out = _validate(tmp_path, policy)
    assert len(warnings) == 1, out
    # Where the shipped file says it (its line moves as its comments do).
    shipped = (REPO / "policies" / "default.yaml").read_text(encoding="utf-8").splitlines()
    line = next(n for n, text in enumerate(shipped, 1) if text.strip() == "params: {count: 1}")
    assert warnings[0] == (
        f"WARNING {path}:3: rules.approvals.params.count: 2 is overridden to 1 for VMs tagged "
        f"env=prod by the shipped override (policies/default.yaml:{line}); set overrides too to "
        "change it"
    )
    # Replacing the overrides (a list, replaced whole) says it was meant.
    meant = (
        policy + "    overrides:\n      - scope: {tags: {env: prod}}\n        params: {count: 3}\n"
    )
    _path, warnings, out = _validate(tmp_path, meant)
    assert warnings == [], out


def test_explain_names_the_override_that_changed_a_rule(tmp_path: Path) -> None:
    config, _path = _deployment(tmp_path, "rules:\n  checkpoint_count:\n    params: {max: 5}\n")
    assert invoke(tmp_path, "-c", config, "db", "upgrade").returncode == 0
    shown = invoke(tmp_path, "-c", config, "policy", "explain", "SQL01")
    assert shown.returncode == 0, shown.stderr
    row = next(line for line in shown.stdout.splitlines() if "storage_headroom" in line)
    assert "(override 0: role sql_server/exchange_server/file_server)" in row
    as_json = invoke(tmp_path, "-c", config, "policy", "explain", "SQL01", "--json")
    rules = {r["id"]: r for r in json.loads(as_json.stdout)["rules"]}
    assert rules["storage_headroom"]["overrides"] == [
        {"index": 0, "scope": "role sql_server/exchange_server/file_server"}
    ]
    assert rules["checkpoint_count"]["overrides"] == []


def test_slack_policy_explain_says_a_guardrail_was_weakened(tmp_path: Path) -> None:
    """`/checkpoint policy CORP-DC01` with the guardrail made a warning for
    production: the rule's line says where, as the CLI's does."""
    from tests.test_slack_flow import checked_bot, command, shown

    weakened = (
        "rules:\n  domain_controller:\n    overrides:\n"
        "      - scope: {tags: {env: prod}}\n        effect: warn\n"
    )
    with checked_bot(tmp_path, weakened) as bot:
        said = shown(command(bot, "policy CORP-DC01"))
    assert ":warning: guardrail weakened by " in said and "policy.yaml:5" in said, said
    assert "(shipped: deny)" in said


def test_an_approver_the_approve_permission_refuses_is_a_warning(tmp_path: Path) -> None:
    """Seen: `permissions.approve: {groups: [S0APPROVERS]}` and a prod
    override naming `cli:bob` as the approver: the change said "needs 1
    approval from @cli:bob", and bob's approval was refused ("may not
    approve"), so it could never be approved. A CLI operator is in no Slack
    group: that is known before anything runs."""
    policy = (
        "permissions:\n  approve: {users: [U0CAROL], groups: [S0APPROVERS]}\n"
        "rules:\n  approvals:\n    overrides:\n      - scope: {tags: {env: prod}}\n"
        '        params: {count: 1, users: ["cli:bob", U0DAVE]}\n'
    )
    path, warnings, out = _validate(tmp_path, policy)
    assert warnings == [
        f"WARNING {path}:7: rules.approvals.overrides[0].params.users: cli:bob is named to "
        "approve, but permissions.approve does not let them approve: their approval would be "
        "refused; add them to permissions.approve"
    ], out
    # U0DAVE may be in S0APPROVERS (Slack says): not warned. Listed, bob is fine.
    fixed = policy.replace("users: [U0CAROL]", 'users: [U0CAROL, "cli:bob"]')
    (tmp_path / "fixed").mkdir()
    assert _validate(tmp_path / "fixed", fixed)[1] == []


def test_a_user_or_group_that_names_no_one_is_a_warning(tmp_path: Path) -> None:
    """Seen: `users: [bob]` and `groups: ["@hyperv-approvers"]` validated
    "OK"; no principal is ever `bob` (the CLI's is `cli:bob`) and a group is
    asked by its id, so nobody got what they were meant to allow."""
    policy = "permissions:\n  approve: {users: [bob, U0CAROL], groups: ['@hyperv-approvers']}\n"
    path, warnings, out = _validate(tmp_path, policy)
    assert warnings == [
        f"WARNING {path}:2: permissions.approve.users: bob matches no one: write a Slack "
        "user id (U0123ABCD) or cli:NAME",
        f"WARNING {path}:2: permissions.approve.groups: @hyperv-approvers matches no one: "
        "write a Slack user-group id (S0123ABCD)",
    ], out
