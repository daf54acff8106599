"""Checkpoints the bot took after the backup its record was restored from.

Seen (an on-call engineer following docs/upgrading.md's restore drill):
after `db backup`, a `checkpoint create`, and the restore, the next sweep
called the new checkpoint "another checkpoint-bot deployment's" and `sweep
adopt` refused it, since the job that drew its token was not in the
restored record: the checkpoint sat on the host with no way to settle it
through the bot. A name now also carries a mark made with the record's own
key (migration 0021; bot.service.ownership), which a restore keeps: such a
checkpoint is an orphan of this deployment, to adopt. Another record's
key, or a copy of the name on another VM, never verifies.

The hosts are the WinRM emulator (tests/test_host_truth_service.py's
estate); the backup is `db backup`'s own (bot.store.backup), and the
restored record a context opened on it, as a restarted bot would."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bot.context import AppContext, build_context
from bot.service import adopt_checkpoint, list_checkpoints, show_change
from bot.service.ownership import token_of
from bot.service.sweep import run_sweep
from bot.store.backup import backup_sqlite
from bot.store.db import make_engine
from bot.store.migrate import upgrade
from templates import Renderer
from tests.test_host_truth_service import (
    PASSWORD,
    PASSWORD_ENV,
    STG01,
    WEB01,
    Estate,
    _created,
)

# The fixture, under its own name (pytest finds it in this module).
from tests.test_host_truth_service import estate as estate


def _record_at(estate: Estate, database: Path, *, fresh: bool = False) -> AppContext:
    """A bot on the same hosts and inventory whose record is `database`."""
    settings = dataclasses.replace(estate.ctx.settings, database_url=f"sqlite:///{database}")
    if fresh:
        engine = make_engine(settings.database_url)
        upgrade(engine)
        engine.dispose()
    env = {PASSWORD_ENV: PASSWORD}
    return build_context(settings, env=env, clock=estate.clock, huey_kind="memory")


@pytest.fixture
def taken_after_the_backup(estate: Estate, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The backup, then CHG-0001's checkpoint of WEB01: its id, and the backup."""
    live = make_url(estate.ctx.settings.database_url).database
    assert live is not None
    backup = tmp_path / "backup.db"
    backup_sqlite(Path(live), backup)
    change_id = _created(estate, "WEB01")
    taken = show_change(estate.ctx, f"CHG-{change_id}").checkpoint_id
    assert taken is not None
    estate.clock.advance(timedelta(days=2))  # past sweep.orphan_after
    yield taken, backup


def test_after_a_restore_the_bots_own_checkpoint_is_an_orphan_to_adopt(
    estate: Estate, taken_after_the_backup: tuple[str, Path]
) -> None:
    taken, backup = taken_after_the_backup
    restored = _record_at(estate, backup)
    try:
        report = run_sweep(restored)
        [item] = [i for i in report.items if i.checkpoint_id == taken]
        token = token_of(item.name)
        assert item.finding.value == "orphan", item
        assert item.provenance == (
            f"carries token cb-{token} with this deployment's mark, but its create job is "
            "not in the record (taken after the backup it was restored from?)"
        )
        # `checkpoint list` names it as the sweep does (CLI and Slack).
        listing = list_checkpoints(restored, vm="WEB01")
        [row] = [r for r in listing.rows if r.id == taken]
        assert (row.marked_token, row.foreign_token) == (token, None)
        text = Renderer().render("cli/checkpoints.txt.j2", listing=listing, scope="WEB01")
        line = next(line for line in text.splitlines() if taken in line)
        assert line.endswith(
            f"orphan: this deployment's (token cb-{token} with its mark), its create job not "
            "in the record"
        ), line
        adopted = adopt_checkpoint(restored, "HV01", WEB01, taken, "alice", source="cli")
        assert adopted.change.checkpoint_id == taken
        # The restored record numbers from where the backup ended: CHG-0001 again.
        assert adopted.change.ref == "CHG-0001"
    finally:
        restored.close()


def test_another_record_never_proves_them_its_own(
    estate: Estate, taken_after_the_backup: tuple[str, Path], tmp_path: Path
) -> None:
    """A record made afresh (a staging bot on the same hosts) drew its own
    key: the checkpoint stays another deployment's, never adopted."""
    taken, _backup = taken_after_the_backup
    other = _record_at(estate, tmp_path / "other.db", fresh=True)
    try:
        report = run_sweep(other)
        [item] = [i for i in report.items if i.checkpoint_id == taken]
        assert item.finding.value == "foreign", item
        [row] = [r for r in list_checkpoints(other, vm="WEB01").rows if r.id == taken]
        assert row.marked_token is None and row.foreign_token == token_of(item.name)
        with pytest.raises(Exception, match="another checkpoint-bot deployment's"):
            adopt_checkpoint(other, "HV01", WEB01, taken, "alice", source="cli")
    finally:
        other.close()


def test_a_copy_of_the_name_on_another_vm_is_not_proven(
    estate: Estate, taken_after_the_backup: tuple[str, Path]
) -> None:
    """The mark covers the VM: the same name typed on another VM (by hand in
    Hyper-V Manager) is not this deployment's checkpoint of that VM."""
    taken, backup = taken_after_the_backup
    host = estate.ctx.host_for("HV01")
    [name] = [c.name for c in host.list_checkpoints(WEB01) if c.id == taken]
    copy = host.create_checkpoint(STG01, name)
    estate.clock.advance(timedelta(days=2))
    restored = _record_at(estate, backup)
    try:
        report = run_sweep(restored)
        found = {i.checkpoint_id: i.finding.value for i in report.items}
        assert found[taken] == "orphan" and found[copy.id] == "foreign", found
    finally:
        restored.close()
