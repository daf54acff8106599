"""A wave asked for without --ttl gives each member the lifetime the policy
gives it, as a single create does.

Seen three times (scale-out explorer, 2026-12-06): with the policy's
`ttl.default: 4m`, single creates expired after 4 minutes and were merged,
while every member of `checkpoint create --group wave --yes` read "a TTL of
3d is within the 7d maximum" and would have sat three days: the wave gave
its members `defaults.ttl` (72h), which README says applies only where the
policy's ttl rule is disabled.

What holds now: without --ttl, a member's lifetime is its own scope's
policy default; the wave shows that lifetime, or the range when its
members' differ; with --ttl every member asks for that, as before.
Demo mode in a fresh directory; the CLI runs in this process."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli_support import REPO, invoke

POLICY = """\
rules:
  ttl:
    params: {default: 4h}
    overrides:
      - scope: {names: [APP01]}
        params: {default: 2h}
"""


def _wave(cwd: Path, *extra: str) -> dict[str, object]:
    (cwd / "bot.yaml").write_text(
        f"inventory: {REPO / 'deploy/examples/demo-inventory.yaml'}\n"
        "policy: policy.yaml\nhyperv: {backend: simulator}\n",
        encoding="utf-8",
    )
    assert invoke(cwd, "-c", "bot.yaml", "db", "upgrade").returncode == 0
    (cwd / "policy.yaml").write_text(POLICY, encoding="utf-8")
    done = invoke(
        cwd, "-c", "bot.yaml", "checkpoint", "create", "WEB01", "WEB02", "APP01",
        "-r", "KB5044284", "--yes", "--json", *extra,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    wave: dict[str, object] = json.loads(done.stdout)
    return wave


def _lifetimes(cwd: Path, wave: dict[str, object]) -> dict[str, int]:
    found = {}
    for member in wave["members"]:  # type: ignore[attr-defined]
        shown = invoke(cwd, "-c", "bot.yaml", "change", "show", member["change"], "--json")
        found[member["vm"]] = json.loads(shown.stdout)["ttl_seconds"]
    return found


def test_without_ttl_each_member_gets_its_policy_default(tmp_path: Path) -> None:
    wave = _wave(tmp_path)
    assert _lifetimes(tmp_path, wave) == {"WEB01": 4 * 3600, "WEB02": 4 * 3600, "APP01": 7200}
    shown = invoke(tmp_path, "-c", "bot.yaml", "batch", "show", "BAT-1").stdout
    assert "lifetime per VM, 2h to 4h" in shown, shown


def test_with_ttl_every_member_asks_for_it(tmp_path: Path) -> None:
    wave = _wave(tmp_path, "--ttl", "90m")
    assert set(_lifetimes(tmp_path, wave).values()) == {90 * 60}
    shown = invoke(tmp_path, "-c", "bot.yaml", "batch", "show", "BAT-1").stdout
    assert "lifetime 1h 30m" in shown, shown
