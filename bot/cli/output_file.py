"""Where `audit export --output` writes, safely: the file `--output` names,
through symlinks only another user could not have aimed, replaced whole by a
rename, keeping its permission bits (bot/cli/admin_cmds.py)."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from bot.file_kinds import not_a_file

# Symlinks followed at most, as the kernel does (MAXSYMLINKS, 40).
_MAX_LINKS = 40

_OR_STDOUT = "or leave --output out to write to stdout"


@dataclass(frozen=True)
class Target:
    """Where an export goes: `path`, the file (through `--output`'s
    symlinks, never resolved further: the kernel resolves its directory
    when it is written, applying its own rules); `shown`, that file for a
    message; `mode`, the permission bits of the file it replaces (None
    for a new file)."""

    path: Path
    shown: Path
    mode: int | None


def _who(uid: int) -> str:
    try:
        import pwd

        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def untrusted(entry: os.stat_result, directory: os.stat_result, me: int) -> str | None:
    """Why a path's last entry may not be followed (a symlink) or replaced
    (a file) by user `me`: "owner" for a symlink of a third user, who could
    point it at any file `me` can write; "sticky" for an entry in a
    world-writable sticky directory (/tmp) that is neither `me`'s nor the
    directory owner's. That is the rule of the kernel's fs.protected_symlinks
    and fs.protected_regular
    (https://docs.kernel.org/admin-guide/sysctl/fs.html#protected-symlinks),
    which never runs here: `export_target` reads a symlink itself, and the
    export replaces its file by a rename, not an open."""
    if stat.S_ISLNK(entry.st_mode) and entry.st_uid not in (me, 0):
        return "owner"
    shared = directory.st_mode & stat.S_ISVTX and directory.st_mode & stat.S_IWOTH
    if shared and entry.st_uid not in (me, directory.st_uid):
        return "sticky"
    return None


def _entry(path: Path) -> tuple[os.stat_result, os.stat_result | None, str | None]:
    """The stat of `path`'s directory, of `path` itself (not followed; None
    when there is none) and, for a symlink, what it points to. On Linux the
    three come from one directory and one inode (O_PATH), so a link cannot
    be swapped between its check and its reading."""
    o_path = getattr(os, "O_PATH", 0)
    if not o_path:
        directory = os.stat(path.parent)
        try:
            found = os.lstat(path)
        except FileNotFoundError:
            return directory, None, None
        return directory, found, os.readlink(path) if stat.S_ISLNK(found.st_mode) else None
    dir_fd = os.open(path.parent, o_path | os.O_DIRECTORY)
    try:
        directory = os.fstat(dir_fd)
        try:
            # "/" (a link to it) has no name: the directory is the entry.
            fd = os.open(path.name or ".", o_path | os.O_NOFOLLOW, dir_fd=dir_fd)
        except FileNotFoundError:
            return directory, None, None
    finally:
        os.close(dir_fd)
    try:
        found = os.fstat(fd)
        # readlinkat(2) of an O_PATH descriptor and "" reads that very link.
        link = os.readlink("", dir_fd=fd) if stat.S_ISLNK(found.st_mode) else None
    finally:
        os.close(fd)
    return directory, found, link


def _refuse(path: Path, output: Path, shown: Path, why: str, entry: os.stat_result) -> NoReturn:
    from bot.service import BadRequest

    via = f" ({output} points to it)" if path != output else ""
    owner = _who(entry.st_uid)
    place = Path(os.path.realpath(path.parent))
    if why == "owner":
        raise BadRequest(
            f"{shown}{via} is a symlink of {owner}, not yours or root's: --output does not "
            f"follow it, as its owner chooses the file it names; name the file itself, "
            f"{_OR_STDOUT}"
        )
    if stat.S_ISLNK(entry.st_mode):
        raise BadRequest(
            f"{shown}{via} is a symlink of {owner} in {place}, a world-writable sticky "
            "directory: --output follows a symlink there only when it is yours (as the "
            f"kernel's fs.protected_symlinks does); name the file itself, {_OR_STDOUT}"
        )
    raise BadRequest(
        f"{shown}{via} is a file of {owner} in {place}, a world-writable sticky directory: "
        "--output replaces only a file of yours there (as the kernel's "
        f"fs.protected_regular does); name another file, {_OR_STDOUT}"
    )


def export_target(output: Path) -> Target:
    """The regular file `--output` names: the file itself, or the one its
    symlinks lead to, each link followed only when another user could not
    have chosen where it leads (`untrusted`). The export is written beside
    it and renamed over it, which would replace a symlink, a FIFO or a
    device by a regular file: anything but a regular file is refused, as is
    a missing directory."""
    from bot.service import BadRequest

    me = os.geteuid() if hasattr(os, "geteuid") else None
    path = output
    for _ in range(_MAX_LINKS):
        # A path reached through a link is shown in its directory resolved
        # (not the entry: a link is named as itself).
        shown = path if path == output else Path(os.path.realpath(path.parent)) / path.name
        try:
            directory, entry, link = _entry(path)
        except (FileNotFoundError, NotADirectoryError):
            parent = shown.parent
            what = "is not a directory" if parent.exists() else "does not exist"
            raise BadRequest(
                f"{parent} {what}: create it first, or name a file elsewhere"
            ) from None
        except OSError as exc:
            raise BadRequest(f"cannot write {output}: {exc.strerror or exc}") from None
        if entry is None:
            return Target(path, shown, None)
        if link is None:
            break
        why = None if me is None else untrusted(entry, directory, me)
        if why is not None:
            _refuse(path, output, shown, why, entry)
        # Relative to the link's directory, ".." included, as the kernel
        # reads it: the directory is left for the kernel to resolve.
        path = path.parent / link
    else:
        raise BadRequest(f"cannot write {output}: {os.strerror(errno.ELOOP)}")
    kind = not_a_file(entry.st_mode)
    if kind is not None:
        via = f" ({output} points to it)" if path != output else ""
        raise BadRequest(
            f"{shown}{via} is {kind}: --output writes a regular file; name one, or leave "
            "--output out to write to stdout"
        )
    why = None if me is None else untrusted(entry, directory, me)
    if why is not None:
        _refuse(path, output, shown, why, entry)
    return Target(path, shown, stat.S_IMODE(entry.st_mode) & 0o777)


def write_export(target: Target, chunks: Iterable[str]) -> None:
    """Write `chunks` to a new file beside the target, renamed over it when
    whole (the caller counts what it wrote: bot.service.audit.Tally). The
    new file is made by `mkstemp` (O_EXCL: never through a link or into a
    file someone else left under its name)
    with mode 0600 less the umask, as the export holds the record; a file
    it replaces keeps its permission bits. One line (exit 2) when the
    directory does not take it (permissions, a read-only file system)."""
    from bot.service import BadRequest

    path = target.path
    try:
        fd, name = tempfile.mkstemp(prefix=f"{path.name}.", suffix=".partial", dir=path.parent)
    except OSError as exc:
        raise BadRequest(f"cannot write {target.shown}: {exc.strerror or exc}") from None
    partial = Path(name)
    try:
        with open(fd, "w", encoding="utf-8", newline="") as fh:
            if target.mode is not None and hasattr(os, "fchmod"):
                os.fchmod(fh.fileno(), target.mode)  # before a byte of the record is in it
            for chunk in chunks:
                fh.write(chunk)
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
