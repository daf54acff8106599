"""Backups and schema rollbacks of the configured database, for the
operator's `db backup` and `db downgrade` (`db upgrade` is in
bot.service.schema). How a backup is made is bot.store.backup's job; this
module checks the request and turns storage failures into the service's
errors."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.file_kinds import not_a_file
from bot.service.errors import BadRequest, ServiceError, Unavailable
from bot.service.schema import SchemaChange
from bot.store import migrate
from bot.store.backup import BackupError, BackupResult, backup
from bot.store.db import make_engine


@dataclass(frozen=True)
class BackupReport:
    database: str  # the settings' label, never the URL (it may hold a password)
    result: BackupResult

    def to_dict(self) -> dict[str, Any]:
        return {"database": self.database, **self.result.to_dict()}


def _not_a_file(dest: Path) -> str | None:
    """What `dest` is when it exists and is not a regular file. The backup
    is renamed over `dest`, which would put a regular file in place of a
    device (run as root, `--force /dev/null` did), a pipe or a link."""
    try:
        mode = os.lstat(dest).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None  # a new file; its directory is checked below
    except OSError as exc:
        raise BadRequest(f"cannot write {dest}: {exc.strerror or exc}") from None
    return not_a_file(mode)


def backup_database(settings: Settings, dest: Path, *, force: bool = False) -> BackupReport:
    """The whole configured database into `dest`, whole or not at all."""
    kind = _not_a_file(dest)
    if kind is not None:
        raise BadRequest(
            f"{dest} is {kind}: db backup writes a regular file, and --force replaces only "
            "one; name a file"
        )
    if dest.exists() and not force:
        raise BadRequest(f"{dest} exists: pass --force to replace it, or name a new file")
    if not dest.parent.exists():
        raise BadRequest(f"{dest.parent} does not exist: create it first, or name a file elsewhere")
    if not dest.parent.is_dir():
        raise BadRequest(f"{dest.parent} is not a directory")
    try:
        result = backup(settings.database_url, dest)
    except BackupError as exc:
        if exc.unavailable:
            raise Unavailable(str(exc)) from None
        raise ServiceError(str(exc)) from None
    return BackupReport(settings.database_label, result)


@dataclass(frozen=True)
class DowngradePlan:
    database: str
    before: str
    target: str  # a revision, or "base"
    undone: tuple[tuple[str, str], ...]  # (revision, what it did), newest first


def plan_downgrade(settings: Settings, revision: str) -> DowngradePlan:
    """What `db downgrade REVISION` would undo; refused when there is
    nothing older to go back to."""
    known = migrate.revisions()
    ids = [rev for rev, _ in known]
    if revision != "base" and revision not in ids:
        raise BadRequest(f"no schema revision '{revision}': use one of {', '.join(ids)} or base")
    engine = make_engine(settings.database_url)
    try:
        before = migrate.current_revision(engine)
    finally:
        engine.dispose()
    label = settings.database_label
    if before is None:
        raise BadRequest(f"{label} has no schema yet: nothing to roll back")
    if before not in ids:
        raise BadRequest(
            f"{label} is at schema {before}, which this release does not know: "
            "downgrade with the release that wrote it"
        )
    target = -1 if revision == "base" else ids.index(revision)
    current = ids.index(before)
    if target >= current:
        # Named as an unknown revision's refusal names them, so the operator
        # need not look up which revisions lie behind this database's.
        older = ids[:current]
        choices = f"one of {', '.join(older)} or base" if older else "base"
        raise BadRequest(f"{label} is at schema {before}: {revision} is not older; use {choices}")
    undone = tuple(reversed(known[target + 1 : current + 1]))
    return DowngradePlan(label, before, revision, undone)


def downgrade_schema(settings: Settings, plan: DowngradePlan) -> SchemaChange:
    engine = make_engine(settings.database_url)
    try:
        migrate.downgrade(engine, plan.target)
        after = migrate.current_revision(engine)
    finally:
        engine.dispose()
    return SchemaChange(settings.database_label, plan.before, after)
