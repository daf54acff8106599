"""The policy file: shipped default, deep merge, and FILE:LINE: key: message errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.yamlio import YamlValidationError
from policies import (
    RULES,
    Effect,
    PolicyError,
    default_policy_path,
    load_policy,
    validate_policy_file,
)
from policies.rules.checkpoints import CheckpointCountParams
from policies.rules.lifetime import TTLParams


def write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        validate_policy_file(path)
    assert isinstance(caught.value, YamlValidationError)
    return [str(p) for p in caught.value.problems]


def test_the_shipped_default_loads_and_configures_every_rule() -> None:
    policy = load_policy()
    assert set(policy.rules) == set(RULES)
    assert default_policy_path().name == "default.yaml"
    text = default_policy_path().read_text(encoding="utf-8")
    assert all(f"  {rule_id}:" in text for rule_id in RULES), "document every rule"
    count = policy.rules["checkpoint_count"].params
    assert isinstance(count, CheckpointCountParams) and count.max == 3
    ttl = policy.rules["ttl"].params
    assert isinstance(ttl, TTLParams) and ttl.max == timedelta(days=7)


def test_a_deployment_file_says_only_what_differs(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  checkpoint_count:\n    params: {max: 5}\n")
    policy = load_policy(path)
    params = policy.rules["checkpoint_count"].params
    assert isinstance(params, CheckpointCountParams) and params.max == 5
    assert params.on_unknown == "deny"  # kept from the default
    assert policy.rules["checkpoint_count"].effect is Effect.DENY
    assert policy.sources == ("default.yaml (shipped)", str(path))


def test_later_files_win(tmp_path: Path) -> None:
    first = write(tmp_path, "rules: {checkpoint_count: {params: {max: 5}}}", "a.yaml")
    second = write(tmp_path, "rules: {checkpoint_count: {params: {max: 7}}}", "b.yaml")
    params = load_policy(first, second).rules["checkpoint_count"].params
    assert isinstance(params, CheckpointCountParams) and params.max == 7


def test_a_permission_is_replaced_whole_so_restricting_it_closes_it(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, "permissions:\n  rollback: {groups: [S0OPS]}\n"))
    assert policy.permissions.rollback.users == []
    assert policy.permissions.rollback.groups == ["S0OPS"]
    assert policy.permissions.request.users == ["*"]


def test_bad_effect_names_file_line_and_key(tmp_path: Path) -> None:
    found = problems(tmp_path, "rules:\n  ttl:\n    effect: explode\n")
    assert found == [
        f"{tmp_path / 'policy.yaml'}:3: rules.ttl.effect: expected one of: "
        "deny, needs_approval, schedule, warn, got 'explode'"
    ]


def test_schedule_is_only_for_change_windows(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, "rules:\n  ttl:\n    effect: schedule\n")
    assert line.startswith(f"{tmp_path / 'policy.yaml'}:3: rules.ttl.effect: effect 'schedule'")


def test_unknown_rule(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, "rules:\n  no_such_rule:\n    enabled: false\n")
    assert line.startswith(
        f"{tmp_path / 'policy.yaml'}:2: rules.no_such_rule: unknown rule 'no_such_rule'"
    )
    assert "checkpoint_count" in line


def test_bad_cron(tmp_path: Path) -> None:
    (line,) = problems(
        tmp_path,
        "windows:\n  - name: w\n    cron: '0 25 * * 6'\n    duration: 6h\n",
    )
    assert line.startswith(f"{tmp_path / 'policy.yaml'}:3: windows[0].cron: '0 25 * * 6' is not")


def test_bad_timezone(tmp_path: Path) -> None:
    (line,) = problems(
        tmp_path,
        "windows:\n  - name: w\n    cron: '0 22 * * 6'\n    duration: 6h\n"
        "    timezone: Europe/Atlantis\n",
    )
    assert line == (
        f"{tmp_path / 'policy.yaml'}:5: windows[0].timezone: unknown timezone "
        "'Europe/Atlantis': use an IANA name like Europe/Berlin or UTC"
    )


def test_unknown_field(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, "rules:\n  ttl:\n    enabeld: false\n")
    assert line.startswith(
        f"{tmp_path / 'policy.yaml'}:3: rules.ttl.enabeld: unknown field 'enabeld'"
    )


def test_unknown_param_is_located(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, "rules:\n  checkpoint_count:\n    params:\n      maximum: 4\n")
    assert line.startswith(
        f"{tmp_path / 'policy.yaml'}:4: rules.checkpoint_count.params.maximum: unknown field"
    )


def test_bad_param_in_an_override_is_located(tmp_path: Path) -> None:
    (line,) = problems(
        tmp_path,
        "rules:\n  ttl:\n    overrides:\n      - scope: {tags: {env: lab}}\n"
        "        params:\n          max: 1d\n",
    )
    # At the key the override set, saying where the default it clashes with is.
    assert line == (
        f"{tmp_path / 'policy.yaml'}:6: rules.ttl.overrides[0].params.max: 1d is shorter "
        "than the default (3d, from the shipped policy); set default too"
    )


def test_unknown_role_in_a_scope(tmp_path: Path) -> None:
    (line,) = problems(
        tmp_path,
        "rules:\n  ttl:\n    overrides:\n      - scope:\n          roles: [dc]\n",
    )
    assert f"{tmp_path / 'policy.yaml'}:5: rules.ttl.overrides[0].scope.roles[0]" in line
    assert "unknown role 'dc'" in line


def test_exemption_needs_an_expiry_and_a_real_rule(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "exemptions:\n"
        "  - {rule: checkpoint_count, vm: APP01, reason: r, approved_by: U1}\n"
        "  - {rule: no_such, vm: APP01, reason: r, approved_by: U1, expires: 2026-12-01}\n",
    )
    assert found == [f"{tmp_path / 'policy.yaml'}:2: exemptions[0].expires: field required"]
    (line,) = problems(
        tmp_path,
        "exemptions:\n"
        "  - {rule: no_such, vm: APP01, reason: r, approved_by: U1, expires: 2026-12-01}\n",
    )
    assert line.startswith(f"{tmp_path / 'policy.yaml'}:2: exemptions[0].rule: exemption for")


def test_problems_in_the_second_file_name_the_second_file(tmp_path: Path) -> None:
    good = write(tmp_path, "rules: {checkpoint_count: {params: {max: 5}}}", "a.yaml")
    bad = write(tmp_path, "admins:\n  users: [U1]\nrules:\n  ttl: {effect: maybe}\n", "b.yaml")
    with pytest.raises(PolicyError) as caught:
        load_policy(good, bad)
    assert str(caught.value).startswith(f"{bad}:4: rules.ttl.effect:")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "rules:\n  nope: {}\n  ttl: {params: {max: 0s}}\n",
    )
    assert len(found) == 2


def test_unreadable_and_malformed_files_are_policy_errors(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="the policy file cannot be read"):
        validate_policy_file(tmp_path / "missing.yaml")
    assert problems(tmp_path, "rules: [")[0].startswith(f"{tmp_path / 'policy.yaml'}:")
    assert "must be a mapping" in problems(tmp_path, "- a\n- b\n")[0]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("permissions:\n  approve: {users: ['*'], channels: ['#ops']}\n", ":2: permissions."),
        (
            "windows:\n  - name: sat\n    cron: '0 22 * * 6'\n    duration: 4h\n"
            "    channel: ops-changes\n",
            ":5: windows[0].channel",
        ),
    ],
)
def test_a_channel_is_named_by_its_id(tmp_path: Path, text: str, where: str) -> None:
    """A request names its channel by id: a name in `channels:` would match
    no request and refuse them all; a window's notices need an id too."""
    found = problems(tmp_path, text)
    assert len(found) == 1 and where in found[0]
    assert "is not a Slack channel id: give the id (C0123ABCD" in found[0]


def test_channel_ids_and_anywhere_pass(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        "permissions:\n  approve: {users: ['*'], channels: [C0CHANGES, G0PRIVATE, '*']}\n",
        encoding="utf-8",
    )
    validate_policy_file(path)
