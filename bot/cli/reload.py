"""SIGHUP: `serve` and `worker` start again on their files as they are now.

A long-running process decides on the config, inventory and policy it read
at start (bot/observe/stale_files.py says when one changed). Reloading them
in place would mean swapping what the decider, the job handlers, the host
connections and the gauges each captured, with a moment where two of them
disagree. So a reload is a restart inside the same process instead:

1. On SIGHUP a thread checks the files as they are now, the way the process
   checked them at start: the settings, then a context with every part built
   (inventory, credentials, policy, decider, job runner), then closed.
2. If they do not check out, the process says why in its log and goes on
   deciding on what it read before: a broken edit never stops a running bot.
3. If they do, the process stops as on SIGTERM (requests already taken are
   answered, the job consumer stops as it does then) and replaces itself
   with the same command (`os.execv` of `sys.orig_argv`): the same process
   id, environment and working directory, every file read afresh.

`systemctl reload` sends SIGHUP (`ExecReload=` in deploy/systemd); see
docs/operations.md, "Changing the config, inventory or policy".
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from bot.cli.runtime import Runtime

log = logging.getLogger("checkpoint_bot.reload")


def check_files(rt: Runtime) -> str | None:
    """None when the files as they are now would start this process; else
    why not, in one line."""
    from bot.config import ConfigError, load_settings

    try:
        settings = load_settings(rt.config_path, rt.env, rt.cwd)
        ctx = rt.builder(settings, env=rt.env)  # what `Runtime.ctx` builds at start
        try:
            ctx.build_all(warn=False)
            # A host credential the edit made unreadable is a broken edit too:
            # the process goes on with what works (one unreadable at start
            # already was logged then, and stops nothing new).
            before = set(rt.ctx.credential_problems())
            broken = [p for p in ctx.credential_problems() if p not in before]
        finally:
            ctx.close()
        if broken:
            return (
                f"inventory {settings.inventory_path.name}: a host's credential cannot be "
                "read: " + "; ".join(broken)
            )
    except ConfigError as exc:
        return str(exc)
    except Exception as exc:  # anything that would stop a start stops the reload
        log.debug("the reload check failed", exc_info=True)
        return f"{type(exc).__name__}: {exc}"
    return None


class Reload:
    """Installed by `serve` and `worker`: SIGHUP asks a watcher thread to
    check the files and, when they check out, to call `stop` (the same stop
    as SIGTERM)."""

    # How often the watcher looks for a SIGHUP: a reload is never urgent.
    POLL_SECONDS = 0.2

    def __init__(self, rt: Runtime, stop: Callable[[], None]) -> None:
        self._rt = rt
        self._stop = stop
        self._asked = False
        self.requested = False

    @staticmethod
    def hold() -> None:
        """SIGHUP ignored until `install`: its default action ends the
        process, and a reload asked for while it starts (or starts again)
        must not. `serve` and `worker` call this first."""
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def install(self) -> None:
        if not hasattr(signal, "SIGHUP"):  # not on Windows
            return
        signal.signal(signal.SIGHUP, self._on_signal)
        threading.Thread(target=self._watch, name="reload-watch", daemon=True).start()

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        # A flag, nothing else: a handler may run again inside itself when
        # SIGHUPs come fast, and one that took a lock would then wait for
        # itself; the check (libraries, files) is the watcher's.
        self._asked = True

    def _watch(self) -> None:
        while not self.requested:
            time.sleep(self.POLL_SECONDS)
            if self._asked:
                self._asked = False  # SIGHUPs during the check ask for one more
                self._check()

    def _check(self) -> None:
        # Asked for by an operator (`systemctl reload`): INFO, not a warning
        # that pages; a reload refused for a broken file stays an ERROR.
        log.info("SIGHUP: checking the config, inventory and policy files before reloading")
        why = check_files(self._rt)
        if why is not None:
            log.error("not reloaded, still running on the files it last loaded: %s", why)
            return
        log.info("the files check out: stopping, then starting again on them")
        self.requested = True
        self._stop()

    def restart_if_requested(self) -> None:
        """At the end of the command, once everything it started has stopped:
        close the context and start again, if a reload asked for it."""
        if not self.requested:
            return
        # A job still running after the stop's grace is left, and says so
        # (bot.context.AppContext.close): a reconciler records this reload.
        self._rt.close("was reloaded (SIGHUP)")
        restart()


def restart() -> NoReturn:
    """This process, replaced by the command that started it."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    # An ignored signal stays ignored across exec (execve(2)): a SIGHUP
    # while the new image starts is not the end of it (Reload.hold).
    Reload.hold()
    # sys.orig_argv: the interpreter's own arguments too (-X, -m, -c ...).
    os.execv(sys.executable, sys.orig_argv)  # noqa: S606 (our own command line, no shell)
