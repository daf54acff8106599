"""The CLI's side of handing a command to a running bot on this machine.

`checkpoint create VM`, `checkpoint rollback`, `checkpoint merge` and
`checkpoint list` are sent to a `serve` or `worker` process of the same
config when one listens on its local socket (bot.cli.local_server), and
run here otherwise. The bot has its libraries loaded, its connections to
the hosts open and its job consumer running, so the command costs this
interpreter's start and one round trip (bench/op_latency.py); a fresh
interpreter would spend longer importing its libraries than a bare
PowerShell remoting script spends on the whole checkpoint.

This module is imported before anything else of the command, so it uses the
standard library only. The README ("When a bot runs, it answers") tells users
when a command is handed over and how to turn it off.

The wire: one JSON object per line, each way, over a Unix stream socket. The
request is one line; the bot answers with progress lines and ends with one
`done` line (the exit code and what to print), one `error` line (a
message, its exit code, and what was printed before it), or, before doing
anything, one `declined` line (why the command should run here). Both sides check
the other's user with SO_PEERCRED (unix(7)): only the bot's own user may
ask it, and the CLI talks only to a bot of its own user.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import struct
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.config_file import chosen_config
from bot.domain import operator_name_problem
from bot.interrupts import POLL_SECONDS

SOCKET_ENV = "CHECKPOINT_BOT_SOCKET"
# Raised when the request's shape or meaning changes; a bot that does not
# read the client's version declines, and the CLI runs the command itself
# (a CLI upgraded before the bot restarts). 2: `list` reads `target` (a
# host's or a VM's name), which a bot of version 1 would have ignored. 3:
# `merge` takes a VM's name, which a bot of version 2 would have refused.
PROTOCOL = 3
# A request is the CLI's arguments: a longer line is refused unread.
MAX_REQUEST = 1 << 18
# A reply holds what the command prints: a change (kilobytes), or every
# checkpoint of a large estate as JSON (about 600 bytes each). Only a
# runaway peer sends more.
MAX_REPLY = 1 << 28
OPERATIONS = ("create", "rollback", "merge", "list")
# What each operation acts on: a VM, a change (or checkpoint, or VM), or
# for `list` nothing or a host's or VM's name (it narrows with `vm` and
# `host` too).
NEEDS_TARGET = frozenset({"create", "rollback", "merge"})
# struct ucred {pid_t pid; uid_t uid; gid_t gid;} (unix(7), SO_PEERCRED).
_UCRED = struct.Struct("3i")
# Unix sockets and user ids (not Windows): elsewhere the CLI runs every
# command itself.
_HAS_UNIX_USERS = hasattr(socket, "AF_UNIX") and hasattr(os, "getuid")


class HandedOffError(Exception):
    """What the bot answered instead of doing the command, or why the
    command cannot be said to have run: printed as one line with its code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def socket_path(config_path: Path | None, env: Mapping[str, str], cwd: Path) -> Path | None:
    """Where the bot of this config listens, or None for none (demo mode, or
    $CHECKPOINT_BOT_SOCKET=off).

    $CHECKPOINT_BOT_SOCKET names it outright (for a bot whose /tmp is its
    own, e.g. systemd's PrivateTmp). Otherwise it is derived from what
    decides the settings (bot.config.load_settings): the config file's
    absolute path, $DATABASE_URL, and the working directory (where a config
    without `database_url` or `workdir` keeps its SQLite file), and from
    the user. A bot and a CLI that would run on the same record meet
    without configuring anything; two that might not, never do."""
    explicit = env.get(SOCKET_ENV, "").strip()
    if explicit.lower() == "off" or not _HAS_UNIX_USERS:
        return None
    if explicit:
        return cwd / explicit
    config = chosen_config(config_path, env, cwd)
    if config is None:
        return None
    decides = "\0".join((str(config), env.get("DATABASE_URL", ""), str(cwd.resolve())))
    digest = hashlib.sha256(decides.encode("utf-8", "surrogateescape")).hexdigest()[:24]
    # /tmp is shared: the bot makes its directory there 0700 and refuses one
    # another user made (bot.cli.local_server), and the CLI talks only to a
    # process of its own user (connect), so a squatter gets no request.
    base = env.get("XDG_RUNTIME_DIR") or "/tmp"  # noqa: S108
    return Path(base) / f"checkpoint-bot-{os.getuid()}" / f"{digest}.sock"


def peer_uid(sock: socket.socket) -> int | None:
    """The user of the process at the other end (Linux), else None."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    _pid, uid, _gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, option, _UCRED.size))
    return int(uid)


class OtherVersion(ValueError):
    """A request of another protocol version: the bot declines it unread."""


@dataclass(frozen=True)
class Request:
    """One command for the bot: the CLI's arguments, as given."""

    op: str
    target: str | None
    user: str
    as_json: bool = False
    no_wait: bool = False
    colour: bool = False
    reason: str | None = None
    checkpoint_type: str | None = None
    ttl: str | None = None
    at: str | None = None
    vm: str | None = None
    host: str | None = None

    def line(self) -> bytes:
        fields = {k: v for k, v in self.__dict__.items() if v is not None}
        return json.dumps({"v": PROTOCOL, **fields}).encode() + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> Request:
        """The request a line holds; ValueError says what is wrong with it.

        Every field is checked for its type and length here; the values
        themselves (the VM, the change, the duration) are checked by the
        service, as when the CLI runs the command itself."""
        try:
            data = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            raise ValueError("the request is not JSON") from None
        if not isinstance(data, dict):
            raise ValueError("the request is not a JSON object")
        version = data.pop("v", None)
        if version != PROTOCOL:
            raise OtherVersion(
                f"the running bot reads requests of version {PROTOCOL} and this CLI sends "
                f"{version!r}, so this command runs here (restart the bot to run the "
                "version installed now)"
            )
        unknown = sorted(set(data) - _FIELDS.keys())
        if unknown:
            raise ValueError(f"unknown fields in the request: {', '.join(map(str, unknown))}")
        for name, (kind, required) in _FIELDS.items():
            value = data.get(name)
            if value is None:
                if required:
                    raise ValueError(f"the request has no {name}")
                continue
            # A string of any length (the line's is bounded), empty too, is
            # passed on: the service answers it as it answers the CLI alone
            # (`--reason ""` is a missing reason, a long one is too long).
            if not isinstance(value, kind):
                raise ValueError(f"{name} must be a {kind.__name__}")
        # The same name the CLI alone would refuse (bot.cli.runtime): this
        # user's other processes may write here too, and the name reaches
        # the record and whoever reads it.
        problem = operator_name_problem(data["user"], "the operator name")
        if problem is not None:
            raise ValueError(problem)
        if data["op"] not in OPERATIONS:
            raise ValueError(f"op must be one of {', '.join(OPERATIONS)}")
        if data["op"] in NEEDS_TARGET and data.get("target") is None:
            raise ValueError(f"the request has no target for {data['op']}")
        return cls(**{"target": None, **data})


# Each field's type and whether the request must have it.
_FIELDS: dict[str, tuple[type, bool]] = {
    "op": (str, True),
    "target": (str, False),
    "user": (str, True),
    "as_json": (bool, False),
    "no_wait": (bool, False),
    "colour": (bool, False),
    "reason": (str, False),
    "checkpoint_type": (str, False),
    "ttl": (str, False),
    "at": (str, False),
    "vm": (str, False),
    "host": (str, False),
}


def directory_problem(directory: Path) -> str | None:
    """Why the socket directory must not be used (None when it may): it
    must be this user's own directory that nobody else can write in. One
    another user made first (it sits in /tmp when $XDG_RUNTIME_DIR is not
    set) could hold their socket under our name."""
    try:
        found = os.lstat(directory)
    except FileNotFoundError:
        return f"{directory} does not exist"
    except OSError as exc:
        return f"cannot look at {directory}: {exc.strerror}"
    if not stat.S_ISDIR(found.st_mode):
        return f"{directory} is not a directory"
    if found.st_uid != os.getuid():
        return f"{directory} belongs to uid {found.st_uid}, not to this user"
    if found.st_mode & 0o022:
        return f"other users can write in {directory}"
    return None


def connect(path: Path) -> socket.socket | None:
    """A connection to the bot at `path`, or None when no bot listens there.

    Nothing listening (no file, or a file a stopped bot left) is not an
    error: the command runs here. A socket of another user is: the request
    goes to nobody."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(os.fspath(path))
    except OSError:
        sock.close()
        return None
    uid = peer_uid(sock)
    if uid is None:
        # This system cannot tell who listens; a bot here never listens
        # without knowing who connects (bot.cli.local_server), so run here.
        sock.close()
        return None
    if uid != os.getuid():
        sock.close()
        raise HandedOffError(
            f"{path} is held by another user's process (uid {uid}), not this user's bot; "
            f"set {SOCKET_ENV}=off to run the command here",
            3,
        )
    return sock


def _lines(sock: socket.socket) -> Iterator[dict[str, Any]]:
    buffered = bytearray()
    scanned = 0  # where to look for the next newline: a long line is read once
    # Short waits: a Ctrl-C that another thread took is seen between them
    # (bot/interrupts.py); the bot may take minutes to end a job.
    sock.settimeout(POLL_SECONDS)
    while True:
        try:
            chunk = sock.recv(1 << 16)
        except TimeoutError:
            continue
        if not chunk:
            return
        buffered += chunk
        while (end := buffered.find(b"\n", scanned)) >= 0:
            message = json.loads(bytes(buffered[:end]))
            del buffered[: end + 1]
            scanned = 0
            if not isinstance(message, dict):
                raise ValueError("a reply line is not a JSON object")
            yield message
        scanned = len(buffered)
        if scanned > MAX_REPLY:
            raise ValueError("a reply line is too long")


@dataclass(frozen=True)
class Reply:
    """How the bot's run of the command ended: what it printed, its exit
    code, and the one-line error it ended with, if it did."""

    code: int
    stdout: str
    error: str | None = None
    # The bot did nothing and said why: the command runs here.
    declined: str | None = None


def converse(sock: socket.socket, request: Request) -> Reply:
    """Send the request, print the bot's progress to stderr, and return how
    the command ended.

    Once the request is sent it is the bot's: a connection that ends early
    is reported, never retried here (the bot may have recorded the change
    and started its job)."""
    ref = ""
    try:
        sock.sendall(request.line())
        for message in _lines(sock):
            if "progress" in message:
                ref = str(message.get("ref") or ref)
                print(message["progress"], file=sys.stderr, flush=True)
            elif "declined" in message:
                return Reply(0, "", declined=str(message["declined"]))
            elif "done" in message:
                return Reply(int(message["done"]), str(message.get("stdout", "")))
            elif "error" in message:
                stdout = str(message.get("stdout", ""))
                return Reply(int(message.get("code", 1)), stdout, str(message["error"]))
    except KeyboardInterrupt:
        raise HandedOffError(_stopped_waiting(ref), 130) from None
    except (OSError, ValueError) as exc:
        raise HandedOffError(_lost(ref, exc), 3) from None
    finally:
        sock.close()
    raise HandedOffError(_lost(ref, None), 3)


def _stopped_waiting(ref: str) -> str:
    what = f"{ref} goes on" if ref else "the request goes on"
    show = f"checkpoint-bot change show {ref}" if ref else "checkpoint-bot checkpoint list"
    return f"stopped waiting; {what} in the bot: `{show}` shows how it ends"


def _lost(ref: str, exc: BaseException | None) -> str:
    why = f" ({type(exc).__name__})" if exc is not None else ""
    if ref:
        return (
            f"the bot stopped answering{why} while it ran {ref}; "
            f"`checkpoint-bot change show {ref}` shows how it ended"
        )
    return (
        f"the bot stopped answering{why} after it took the request; it may have "
        "recorded it: `checkpoint-bot checkpoint list` and `checkpoint-bot outbox` show it"
    )
