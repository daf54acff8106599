"""A policy error names the file and key the user wrote, not a file they
never opened: a TTL default/max conflict points at the key the later file
set and says where the other value came from; a change window's name used
twice is refused at the second use, naming both lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies import PolicyError, load_policy
from tests.cli_support import invoke, one_line_error


def validate(tmp_path: Path, text: str, name: str = "p2.yaml") -> str:
    """The one error line of `checkpoint-bot policy validate NAME` (exit 2)."""
    (tmp_path / name).write_text(text, encoding="utf-8")
    done = invoke(tmp_path, "policy", "validate", name)
    assert done.returncode == 2, (done.stdout, done.stderr)
    return one_line_error(done).removeprefix("checkpoint-bot: error: ")


def test_a_max_below_the_shipped_default_is_reported_at_the_users_max(tmp_path: Path) -> None:
    said = validate(tmp_path, "rules:\n  ttl:\n    params: {max: 2d}\n")
    assert said == (
        "p2.yaml:3: rules.ttl.params.max: 2d is shorter than the default "
        "(3d, from the shipped policy); set default too"
    )


def test_a_default_above_the_shipped_max_is_reported_at_the_users_default(
    tmp_path: Path,
) -> None:
    said = validate(tmp_path, "rules:\n  ttl:\n    params:\n      default: 8d\n")
    assert said == (
        "p2.yaml:4: rules.ttl.params.default: 8d is longer than the max "
        "(7d, from the shipped policy); set max too"
    )


def test_both_set_in_the_users_file_is_reported_there(tmp_path: Path) -> None:
    said = validate(tmp_path, "rules:\n  ttl:\n    params:\n      default: 8d\n      max: 2d\n")
    assert said == (
        "p2.yaml:4: rules.ttl.params.default: 8d is longer than max (2d): "
        "make default at most 2d, or raise max"
    )


def test_an_override_max_below_the_base_default_names_where_the_default_is(
    tmp_path: Path,
) -> None:
    text = (
        "rules:\n  ttl:\n    params: {default: 2d}\n    overrides:\n"
        "      - scope: {tags: {env: lab}}\n        params: {max: 1d}\n"
    )
    said = validate(tmp_path, text)
    assert said == (
        "p2.yaml:6: rules.ttl.overrides[0].params.max: 1d is shorter than the default "
        "(2d, from rules.ttl.params); set default too"
    )


def test_the_later_of_two_files_is_blamed_and_the_earlier_named(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text("rules:\n  ttl:\n    params: {default: 5d}\n", encoding="utf-8")
    site = tmp_path / "site.yaml"
    site.write_text("rules:\n  ttl:\n    params: {max: 4d}\n", encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(base, site)
    assert [str(p) for p in caught.value.problems] == [
        f"{site}:3: rules.ttl.params.max: 4d is shorter than the default "
        f"(5d, from {base}); set default too"
    ]


def test_a_fitting_pair_still_loads(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text("rules:\n  ttl:\n    params: {max: 3d}\n", encoding="utf-8")
    done = invoke(tmp_path, "policy", "validate", "ok.yaml")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok.yaml: OK")


WINDOW = "  - name: {name}\n    cron: '0 23 * * *'\n    duration: 3h\n    timezone: Europe/Berlin\n"


def test_a_window_name_used_twice_is_refused(tmp_path: Path) -> None:
    text = "windows:\n" + WINDOW.format(name="weekend") + WINDOW.format(name="weekend")
    said = validate(tmp_path, text)
    assert said == (
        "p2.yaml:6: windows[1].name: window name 'weekend' is used twice (lines 2 and 6): "
        "names must be unique"
    )


def test_distinct_window_names_load(tmp_path: Path) -> None:
    text = "windows:\n" + WINDOW.format(name="nightly") + WINDOW.format(name="nightly-web")
    (tmp_path / "w.yaml").write_text(text, encoding="utf-8")
    done = invoke(tmp_path, "policy", "validate", "w.yaml")
    assert done.returncode == 0, done.stderr
    assert "2 change windows" in done.stdout
