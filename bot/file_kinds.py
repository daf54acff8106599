"""What a path is, in words, for a refusal that names it: the file types
of stat(2) (https://man7.org/linux/man-pages/man7/inode.7.html) other than
a regular file. `db backup` and `audit export --output` write a regular
file by renaming a new one over the name, which would put a regular file
in place of whatever else is there."""

from __future__ import annotations

import stat

_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def not_a_file(mode: int) -> str | None:
    """What an entry of `mode` (from lstat) is, when it is not a regular
    file; None when it is one."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")
