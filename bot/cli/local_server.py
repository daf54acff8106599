"""The bot's side of the local socket: `serve` and `worker` answer the
CLI's `checkpoint create`, `rollback`, `merge` and `list` of their own
config and user (bot.cli.local_socket has the wire and the why).

A request is run by the same code as when the CLI runs it itself
(bot.cli.finishing.run_request), in a thread of its own, with the bot's
context: its record, its warm connections to the hosts, its job consumer.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.cli.colour import paint
from bot.cli.finishing import CLI_LOOK, json_text, outage_exit, run_request, wait_for_job
from bot.cli.local_socket import (
    MAX_REQUEST,
    OtherVersion,
    Request,
    directory_problem,
    peer_uid,
)
from bot.cli.runtime import simulated_hosts, unchecked_certificates
from bot.domain import plain_mentions

if TYPE_CHECKING:
    from bot.cli.runtime import Runtime
    from bot.context import AppContext
    from bot.observe.stale_files import FileWatch
    from templates import Renderer

LOG = logging.getLogger("checkpoint_bot.local_socket")
# Requests answered at once; the next waits in the listen backlog. Each
# holds a thread while its job runs (seconds), and only the bot's own user
# can connect.
MAX_REQUESTS = 16
# A CLI sends its request as soon as it connects.
READ_SECONDS = 10.0
# A CLI that stops reading does not hold a thread: its job goes on.
SEND_SECONDS = 10.0
# How often the accept loop looks whether it was closed.
POLL_SECONDS = 0.5

Answer = Callable[[Request, "Wire"], None]


class Unusable(Exception):
    """The socket cannot be offered here; the CLI runs its commands itself."""


class Taken(Unusable):
    """Another bot of this config answers the CLI on this machine already."""


def checked_directory(path: Path) -> None:
    """Make the socket's directory (0700), or check that the one there is
    this user's and that nobody else can write in it: a directory another
    user made could hold their socket under our name."""
    parent = path.parent
    try:
        parent.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise Unusable(f"cannot make {parent}: {exc.strerror}") from None
    problem = directory_problem(parent)
    if problem is not None:
        raise Unusable(problem)


def _answers(path: Path) -> bool:
    """Whether a process listens at `path` now."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(os.fspath(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def bind(path: Path) -> socket.socket:
    """A listening socket at `path`, readable and writable by this user only.

    It is bound under a temporary name, made 0600, then renamed into place:
    there is no moment when another user could connect, and a file a
    stopped bot left is replaced in one step. A live bot of the same config
    keeps its socket (Unusable)."""
    checked_directory(path)
    if _answers(path):
        raise Taken(f"another bot of this config answers the CLI at {path}")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(os.fspath(temporary))
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
        sock.listen(MAX_REQUESTS)
    except OSError as exc:
        sock.close()
        temporary.unlink(missing_ok=True)
        raise Unusable(f"cannot listen at {path}: {exc.strerror or exc}") from None
    return sock


class Wire:
    """The terminal of a request a CLI handed over: lines on its socket."""

    def __init__(self, conn: socket.socket, renderer: Renderer, colour: bool) -> None:
        self._conn = conn
        self._renderer = renderer
        self._colour = colour
        self._stdout: list[str] = []
        self.gone = False

    def progress(self, message: str, ref: str = "") -> None:
        self._send({"progress": plain_mentions(message), "ref": ref})

    def out(self, template: str, **values: Any) -> None:
        # As the CLI itself prints it (bot.cli.runtime): @names, not Slack's tokens.
        text = plain_mentions(self._renderer.render(template, **values))
        self._stdout.append(paint(text) if self._colour else text)

    def json(self, data: Any) -> None:
        self._stdout.append(json_text(data))

    def done(self, code: int) -> None:
        self._send({"done": code, "stdout": "".join(self._stdout)})

    def decline(self, why: str) -> None:
        """Nothing was done: the CLI runs the command itself."""
        self._send({"declined": why})

    def error(self, message: str, code: int) -> None:
        # What the command printed before it failed is printed first, as
        # the CLI alone would (a listing, then the hosts it could not ask).
        self._send({"error": message, "code": code, "stdout": "".join(self._stdout)})

    def _send(self, message: dict[str, Any]) -> None:
        if self.gone:
            return
        try:
            self._conn.sendall(json.dumps(message).encode() + b"\n")
        except OSError:
            # The CLI went away (Ctrl-C): the work goes on, unwatched.
            self.gone = True


class LocalSocket:
    """Accepts the CLI's connections at `path` until closed."""

    def __init__(self, sock: socket.socket, path: Path, answer: Answer, renderer: Renderer):
        self.path = path
        self._sock = sock
        self._inode = os.stat(path).st_ino
        self._answer = answer
        self._renderer = renderer
        self._slots = threading.BoundedSemaphore(MAX_REQUESTS)
        self._closed = threading.Event()
        sock.settimeout(POLL_SECONDS)
        self._thread = threading.Thread(target=self._accept, name="local-socket", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop taking requests. Those already taken are not waited for:
        their jobs are the bot's, as every job is when its process stops,
        and a CLI still waiting is told that the bot stopped answering."""
        self._closed.set()
        self._thread.join(timeout=POLL_SECONDS * 4)
        self._sock.close()
        try:
            # Only our own file: another bot may have taken the name since.
            if os.stat(self.path).st_ino == self._inode:
                self.path.unlink()
        except OSError:
            pass

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._closed.is_set():
                    return
                LOG.warning("the local socket %s failed; CLI commands run on their own", self.path)
                return
            self._slots.acquire()
            threading.Thread(
                target=self._serve, args=(conn,), name="local-request", daemon=True
            ).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                self._serve_one(conn)
        except Exception:
            LOG.exception("a request on the local socket failed")
        finally:
            self._slots.release()

    def _serve_one(self, conn: socket.socket) -> None:
        uid = peer_uid(conn)
        wire = Wire(conn, self._renderer, colour=False)
        conn.settimeout(SEND_SECONDS)
        if uid != os.getuid():
            LOG.warning("refused a request on %s from uid %s", self.path, uid)
            wire.error(f"this bot takes requests from its own user (uid {os.getuid()}) only", 2)
            return
        try:
            line = _read_line(conn)
            if line is None:
                return  # a probe (another bot starting), or a CLI that gave up
            request = Request.from_line(line)
        except OtherVersion as exc:
            # A CLI of another version (upgraded before this bot restarted):
            # nothing was done, so it runs the command itself.
            LOG.info("declined a request: %s", exc)
            wire.decline(str(exc))
            return
        except ValueError as exc:
            wire.error(str(exc), 2)
            return
        self._answer(request, Wire(conn, self._renderer, colour=request.colour))


def _read_line(conn: socket.socket) -> bytes | None:
    """The request's line, or None when the peer closed or was too slow;
    ValueError when it sent more than a request holds."""
    conn.settimeout(READ_SECONDS)
    data = bytearray()
    try:
        while (end := data.find(b"\n")) < 0:
            chunk = conn.recv(1 << 16)
            if not chunk:
                return None
            data += chunk
            if len(data) > MAX_REQUEST:
                raise ValueError(f"the request is longer than {MAX_REQUEST // 1024} KiB")
    except OSError:
        return None
    finally:
        conn.settimeout(SEND_SECONDS)
    return bytes(data[:end])


def answerer(ctx: AppContext, files: FileWatch) -> Answer:
    """Runs a request with the bot's context, as the CLI would run it."""
    from bot.cli.main import known_failure
    from bot.service import committed_writes, outage_message

    def answer(request: Request, wire: Wire) -> None:
        # A bot decides on the files it read at start; the CLI alone reads
        # them afresh. An inventory that now names a VM a domain controller
        # must refuse its checkpoint from the CLI at once, not after the bot
        # restarts: so the CLI runs it (the change is logged on the tick).
        changed = files.changed()
        if changed:
            names = ", ".join(path.name for path in changed)
            wire.decline(
                f"the running bot read {names} before it last changed, so this command "
                "runs here (reload or restart the bot to give it the new one)"
            )
            return
        settings = ctx.settings
        if settings.hyperv.backend == "simulator" and settings.config_path is not None:
            # Said as the CLI alone says it (bot.cli.runtime), before anything else.
            wire.progress(simulated_hosts(str(settings.config_path)))
        unchecked = ctx.inventory.unchecked_certificates
        if unchecked and settings.hyperv.backend == "winrm":
            # As the CLI alone says it once it reads the inventory.
            wire.progress(unchecked_certificates(str(settings.inventory_path), unchecked))
        writes_before = committed_writes()
        try:
            code = run_request(
                ctx, request, wire, lambda job_id, ref: wait_for_job(ctx, job_id, ref)
            )
        except Exception as exc:
            known = known_failure(exc)
            if known is not None:
                wire.error(str(exc), known)
                return
            said = outage_message(exc, writes_before, look=CLI_LOOK)
            if said is not None:
                # One line per request; the driver's traceback only with -v
                # (docs/operations.md: an outage is said, not repeated).
                trace = exc if LOG.isEnabledFor(logging.DEBUG) else None
                LOG.info("a request from the CLI: %s", said, exc_info=trace)
                wire.error(said, outage_exit(said))
                return
            LOG.exception("a request from the CLI failed")
            wire.error(f"internal error ({type(exc).__name__}); the bot's log has the details", 1)
            return
        wire.done(code)

    return answer


def start_local_socket(ctx: AppContext, path: Path | None) -> LocalSocket | None:
    """Answer the CLI at `path`, or None (and why, in the log) when it cannot."""
    if path is None:
        return None
    if not hasattr(socket, "SO_PEERCRED"):
        LOG.info("no local socket: this system cannot tell who connects (SO_PEERCRED)")
        return None
    try:
        sock = bind(path)
    except Taken as exc:
        LOG.info("%s", exc)
        return None
    except Unusable as exc:
        LOG.warning("no local socket for the CLI: %s; CLI commands run in their own process", exc)
        return None
    from templates import Renderer

    return LocalSocket(sock, path, answerer(ctx, ctx.watch_files()), Renderer())


def start_cli_socket(rt: Runtime, ctx: AppContext) -> LocalSocket | None:
    """`serve` and `worker`: answer the CLI of their config and user."""
    import click

    from bot.cli.local_socket import socket_path

    local = start_local_socket(ctx, socket_path(rt.config_path, rt.env, rt.cwd))
    if local is not None:
        click.echo(
            "checkpoint-bot: answering this config's `checkpoint create`, `rollback`, "
            f"`merge` and `list` from the CLI at {local.path}",
            err=True,
        )
    return local
