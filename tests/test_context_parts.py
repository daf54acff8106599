"""The context builds its inventory, policy, decider, runner, host calls and
metrics when first used (bot.context `_Parts`): what reads the record needs none of
them, and what serves or runs jobs builds them all at its start."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from bot.config import ConfigError
from bot.context import build_context
from bot.service import show_change
from tests.helpers import broken_policy, settings_for


def test_a_broken_policy_stops_a_worker_at_its_start(tmp_path: Path) -> None:
    settings = dataclasses.replace(settings_for(tmp_path), policy_files=(broken_policy(tmp_path),))
    ctx = build_context(settings, huey_kind="memory")
    try:
        with pytest.raises(ConfigError, match="no_such_rule"):
            ctx.build_all()
        with pytest.raises(ConfigError, match="no_such_rule"):
            ctx.start_workers(periodic=False)
        with pytest.raises(ConfigError, match="no_such_rule"):
            _ = ctx.decider
        # What needs no policy still answers.
        assert ctx.ledger.running_for_vm("nothing") is None
    finally:
        ctx.close()


def test_a_broken_inventory_stops_a_worker_at_its_start_and_the_outbox_still_answers(
    tmp_path: Path,
) -> None:
    from bot.service import outbox_status

    broken = tmp_path / "inventory.yaml"
    broken.write_text("hosts: [\n", encoding="utf-8")
    settings = dataclasses.replace(settings_for(tmp_path), inventory_path=broken)
    ctx = build_context(settings, huey_kind="memory")
    try:
        with pytest.raises(ConfigError, match=r"inventory\.yaml"):
            ctx.build_all()
        with pytest.raises(ConfigError, match=r"inventory\.yaml"):
            _ = ctx.inventory
        assert outbox_status(ctx).undelivered_jobs == []
    finally:
        ctx.close()


def test_a_credential_that_cannot_be_read_is_said_at_the_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """docs/operations.md: a start reads every credential the inventory
    names, without asking a host, and says which it cannot read (seen: an
    unset password_env said nothing until the host's first call); that
    host's calls will fail, the others' need not, so it starts. A reload
    refuses an edit that makes one unreadable (tests/test_cli_local_socket.py)."""
    import logging

    from bot.config import load_settings
    from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV, emulated_inventory
    from bot.inventory import demo_inventory_path, load_inventory
    from bot.store import migrate
    from bot.store.db import make_engine

    # Nothing listens there: no host is asked. One port each, as an
    # inventory gives every host its own endpoint.
    ports = {"HV01": 5985, "HV02": 5986, "HV03": 5987}
    text = emulated_inventory(
        load_inventory(demo_inventory_path()), ports, "hvadmin", EMULATOR_PASSWORD_ENV
    )
    (tmp_path / "inventory.yaml").write_text(text, encoding="utf-8")
    (tmp_path / "bot.yaml").write_text(
        "inventory: inventory.yaml\nhyperv: {backend: winrm}\n", encoding="utf-8"
    )
    settings = load_settings(tmp_path / "bot.yaml", {}, tmp_path)
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    engine.dispose()
    for env, said in (({}, "is not set"), ({EMULATOR_PASSWORD_ENV: ""}, "is set but empty")):
        ctx = build_context(settings, env=env, huey_kind="memory")
        try:
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="bot.context"):
                ctx.build_all()
            problems = ctx.credential_problems()
            assert [p.split(":")[0] for p in problems] == ["HV01", "HV02", "HV03"]
            assert all("no password" in p and said in p for p in problems)
            logged = [r.getMessage() for r in caplog.records]
            assert logged == [f"a host's credential cannot be read: {p}" for p in problems]
        finally:
            ctx.close()
    ctx = build_context(settings, env={EMULATOR_PASSWORD_ENV: "secret"}, huey_kind="memory")
    try:
        ctx.build_all()
        assert ctx.credential_problems() == []
    finally:
        ctx.close()


def test_each_part_is_built_once_however_many_threads_ask(tmp_path: Path) -> None:
    ctx = build_context(settings_for(tmp_path), huey_kind="memory")
    try:
        seen: list[tuple[int, int, int, int, int]] = []
        start = threading.Barrier(8)

        def ask() -> None:
            start.wait()
            seen.append(
                (
                    id(ctx.runner),
                    id(ctx.decider),
                    id(ctx.policy),
                    id(ctx.metrics),
                    id(ctx.inventory),
                )
            )

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(set(seen)) == 1
        assert ctx.parts.built() == {"inventory", "host_for", "policy", "decider", "runner"}
    finally:
        ctx.close()


def test_showing_a_change_builds_no_part(tmp_path: Path) -> None:
    from bot.service import request_checkpoint

    ctx = build_context(settings_for(tmp_path), huey_kind="memory")
    try:
        out = request_checkpoint(ctx, "STG-WEB01", reason="KB5044284", requester="alice")
    finally:
        ctx.close()
    fresh = build_context(settings_for(tmp_path), huey_kind="memory")
    try:
        assert show_change(fresh, out.change.ref).ref == out.change.ref
        assert fresh.parts.built() == frozenset()
    finally:
        fresh.close()
