"""Who an audit row names as its actor, said the same everywhere (2026-12-06:
docs/operations.md listed `--actor` as "a Slack user id or mention,
cli:NAME, policy or checkpoint-bot", the option's error said "policy or
bot", and its help "U0123ABCD, <@U0123ABCD>, cli:NAME"; the reconciler's
events have the actor `reconciler`, the job queue's `jobs`, and no change's
event has ever had `bot`)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from bot.devtools.emulator import Faults
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV
from bot.domain import SYSTEM_ACTORS
from bot.service.audit import parse_filter
from bot.service.errors import BadRequest
from tests.cli_support import emulated_estate, invoke
from tests.test_audit_export import NOW

REPO = Path(__file__).resolve().parents[1]
ENV = {EMULATOR_PASSWORD_ENV: "Passw0rd!", "CHECKPOINT_BOT_SOCKET": "off"}


def _written_actors() -> set[str]:
    """Every actor the code writes as a literal into a change's record: an
    `actor=` argument (not a wave's own events, `batch_note`, which the
    export does not hold), a module's `…ACTOR = "…"` and `Principal("…")`."""
    found: set[str] = set()
    for path in (REPO / "bot").rglob("*.py"):
        if "devtools" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                called = node.func.attr if isinstance(node.func, ast.Attribute) else None
                called = called or (node.func.id if isinstance(node.func, ast.Name) else "")
                if called == "batch_note":
                    continue
                for kw in node.keywords:
                    if kw.arg == "actor" and isinstance(kw.value, ast.Constant):
                        found.add(str(kw.value.value))
                if called == "Principal" and node.args and isinstance(node.args[0], ast.Constant):
                    found.add(str(node.args[0].value))
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
                if any(n.endswith("ACTOR") for n in names):
                    found.add(str(node.value.value))
    return found


def test_every_actor_the_code_writes_is_one_the_export_names() -> None:
    written = _written_actors()
    assert written, "the scan found nothing: it no longer reads the code"
    assert written <= set(SYSTEM_ACTORS), written - set(SYSTEM_ACTORS)


def test_the_docs_help_and_errors_name_every_actor() -> None:
    text = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    section = text.split("## Audit export", 1)[1].split("\n## ", 1)[0]
    said = re.search(r"`--actor` takes (.+?)\. A bad filter", section, re.S)
    assert said is not None, "the Audit export section no longer says what --actor takes"
    for actor in (*SYSTEM_ACTORS, "cli:NAME"):
        assert f"`{actor}`" in said.group(1), actor
    helped = " ".join(invoke(REPO, "audit", "export", "--help").stdout.split())
    with pytest.raises(BadRequest) as refused:
        parse_filter(now=NOW, actor="John Smith")
    for actor in SYSTEM_ACTORS:
        assert re.search(rf"\b{re.escape(actor)}\b", helped), (actor, helped)
        assert re.search(rf"\b{re.escape(actor)}\b", str(refused.value)), actor
    assert not re.search(r"\bor bot\b", str(refused.value))


def test_the_reconcilers_events_are_found_by_its_name(tmp_path: Path) -> None:
    """An interrupted create (the host answered after the call's limit),
    settled by `checkpoint-bot reconcile` on the emulated host."""

    def cli(*args: str) -> list[str]:
        done = invoke(tmp_path, "-c", "bot.yaml", *args, env=ENV)
        return [done.stdout, done.stderr, str(done.returncode)]

    with emulated_estate(tmp_path, "{backend: winrm, call_timeout: 3s}", env=ENV) as fleet:
        fleet.server("HV03").faults = Faults(late={"Checkpoint-VM": 5000})
        out, err, code = cli("checkpoint", "create", "STG-WEB01", "-r", "x")
        assert code == "4", out + err
        fleet.server("HV03").faults = Faults()
        assert "now active" in cli("reconcile")[0]
        found, _, code = cli("audit", "export", "--actor", "reconciler")
    assert code == "0"
    rows = [json.loads(line) for line in found.splitlines()]
    assert rows and {r["actor"] for r in rows} == {"reconciler"}
    assert any(r["to_state"] == "active" for r in rows)
