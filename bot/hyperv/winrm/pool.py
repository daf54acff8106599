"""One PSRP runspace pool per host, reused, with a hard deadline on every call.

    PoolSession(name, connect, timeouts=...)   .run(pipeline) -> Outcome, .close()

Why it looks like this (docs/winrm-client.md, "Deadlines and connections"):

- `PowerShell.invoke()` blocks until the pipeline ends and retries WSMan
  operation timeouts forever, and pypsrp retries a Receive five times on an
  HTTP read timeout. So a call runs `begin_invoke()` and then `poll_invoke(t)`
  with `t` taken from the call's own deadline, and every HTTP request the
  connection sends (opening the pool, the Command, each Receive) is clamped to
  what is left of that deadline with no retries. When it passes, the
  pipeline gets `stop()` and the pool is dropped: its connection may hold a
  half-read reply (and with NTLM, sealing counters out of step).
- One pipeline at a time per pool (a lock): pypsrp shares one requests
  session and one message-encryption context per connection, neither safe
  for concurrent use. Hosts run in parallel; see `WinRMFleet`.
- The pool is closed after `timeouts.idle` seconds without a call (by the
  fleet's `IdleReaper`, idle.py: one thread for all hosts), so an idle bot
  holds no shells on its hosts.
- Only cmdlets and parameters are sent (`add_cmdlet` / `add_parameter` /
  `add_statement`); this module has no way to send a script.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pypsrp.complex_objects import PSInvocationState
from pypsrp.exceptions import WSManFaultError
from pypsrp.powershell import DEFAULT_CONFIGURATION_NAME, PowerShell, RunspacePool

from bot.hyperv.errors import HostTimeout, HyperVError
from bot.hyperv.winrm.clixml import create_pipeline, quicken
from bot.hyperv.winrm.errors import is_transport_error, transport_error
from bot.hyperv.winrm.idle import IdleReaper

log = logging.getLogger(__name__)

Clock = Callable[[], float]

# Time left for the host's answer to a long-poll to arrive before the deadline.
_ANSWER_MARGIN = 0.25
# A shorter long-poll is not worth a round trip: the deadline is as good as passed.
_MIN_POLL = 0.05


@dataclass(frozen=True)
class WinRMTimeouts:
    """Seconds. `call` is the hard deadline of one operation, pool opening
    included; `connect` and `read` bound each HTTP request within it;
    `operation` is the longest WSMan long-poll a Receive asks for."""

    call: float = 60.0
    connect: float = 5.0
    read: float = 30.0
    operation: int = 20
    idle: float = 300.0
    # After the deadline: time allowed to send Stop and to delete the shell.
    stop_grace: float = 3.0
    # A read-only call that could not connect is tried again this many
    # times, `retry_backoff` seconds apart and doubling: one dropped
    # connection must not read as "no checkpoints" or as a refusal.
    read_retries: int = 2
    retry_backoff: float = 0.5

    def __post_init__(self) -> None:
        for name in ("call", "connect", "read", "idle", "stop_grace"):
            if getattr(self, name) <= 0:
                raise ValueError(f"timeout {name} must be positive, got {getattr(self, name)}")
        if self.operation < 1:
            raise ValueError("timeout operation must be at least 1 second")
        if self.read_retries < 0 or self.retry_backoff < 0:
            raise ValueError("read_retries and retry_backoff must not be negative")


@dataclass(frozen=True)
class Cmd:
    """One command of a pipeline: a cmdlet name and its parameters, in order.
    A parameter whose value is None is a switch."""

    name: str
    params: tuple[tuple[str, object], ...] = ()
    end_of_statement: bool = False

    def __str__(self) -> str:
        parts = [self.name]
        for key, value in self.params:
            if value is None:
                parts.append(f"-{key}")
            elif isinstance(value, bool):
                parts.append(f"-{key}:${str(value).lower()}")
            elif isinstance(value, uuid.UUID):
                parts.append(f"-{key} ([guid]'{value}')")
            else:
                parts.append(f"-{key} {value!r}")
        return " ".join(parts)


Pipeline = tuple[Cmd, ...]


def describe(pipeline: Pipeline) -> str:
    """The cmdlets of a pipeline without parameters or the trimming
    `Select-Object`, for errors: `Get-VM | Checkpoint-VM` names the command
    that did not finish, where `Get-VM` alone would mislead. Several
    statements in one call (the facts a decision needs) are named by their
    cmdlets, each once: joined by " | " they read as a pipeline no one ran
    ("Get-VM | Get-VM | Get-VMHardDiskDrive | Get-CimInstance | …")."""
    names = [cmd.name for cmd in pipeline if cmd.name.casefold() != "select-object"]
    if not any(cmd.end_of_statement for cmd in pipeline[:-1]):
        return " | ".join(names or [pipeline[0].name])
    return ", ".join(dict.fromkeys(names))


def render(pipeline: Pipeline) -> str:
    """`Get-VM -Id '…' | Checkpoint-VM …` for logs and reports (never sent)."""
    out = ""
    for cmd in pipeline:
        out += str(cmd) + ("; " if cmd.end_of_statement else " | ")
    return out.rstrip("|; ")


@dataclass
class Outcome:
    output: list[Any]
    errors: list[Any]
    had_errors: bool

    @property
    def failed(self) -> bool:
        return self.had_errors or bool(self.errors)


class DeadlineExpired(Exception):
    """The call's deadline passed before a request could be sent."""


class _Deadline:
    """The deadline of the call in progress, read by the clamped transport."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.at: float | None = None

    def remaining(self) -> float:
        return math.inf if self.at is None else self.at - self._clock()


def clamp_transport(wsman: Any, deadline: _Deadline, timeouts: WinRMTimeouts) -> None:
    """Bound every HTTP request of `wsman` by the deadline, without retries."""
    original = wsman.transport.send

    def send(
        message: bytes,
        *,
        retries_on_read_timeout: int = 0,
        timeout: float | tuple[float, float] | None = None,
    ) -> bytes:
        del retries_on_read_timeout  # a retry would outlive the deadline
        remaining = deadline.remaining()
        if remaining <= 0:
            raise DeadlineExpired
        read = timeouts.read
        if isinstance(timeout, tuple):
            read = float(timeout[1])
        elif timeout is not None:
            read = float(timeout)  # a Receive's long-poll plus pypsrp's 2 s margin
        bounds = (min(timeouts.connect, remaining), min(read, remaining))
        return bytes(original(message, retries_on_read_timeout=0, timeout=bounds))

    wsman.transport.send = send


class PoolSession:
    """The runspace pool of one host. `connect` builds a fresh, unopened
    `pypsrp.wsman.WSMan` each time a pool is (re)opened. `reaper` closes it
    when idle: the fleet's, shared by its hosts, else one of its own."""

    def __init__(
        self,
        name: str,
        connect: Callable[[], Any],
        *,
        timeouts: WinRMTimeouts,
        configuration_name: str | None = None,
        clock: Clock = time.monotonic,
        reaper: IdleReaper | None = None,
    ) -> None:
        self.name = name
        self._connect = connect
        self._timeouts = timeouts
        self._configuration = configuration_name or DEFAULT_CONFIGURATION_NAME
        self._clock = clock
        self._lock = threading.Lock()
        self._deadline = _Deadline(clock)
        self._pool: Any = None
        self._wsman: Any = None
        self._reaper = reaper if reaper is not None else IdleReaper(closers=1)
        self._last_used = clock()
        self._closed = False
        self.stats = SessionStats()

    def __repr__(self) -> str:
        state = "open" if self._pool is not None else "closed"
        return f"PoolSession({self.name!r}, {state})"

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    # -- running -----------------------------------------------------------------

    def run(self, pipeline: Pipeline, *, timeout: float | None = None) -> Outcome:
        """Run one pipeline; raises HostTimeout, HostUnreachable, HostAuthError."""
        if not pipeline:
            raise ValueError("an empty pipeline")
        started = self._clock()
        deadline = started + (timeout if timeout is not None else self._timeouts.call)
        what = f"{describe(pipeline)} on {self.name}"
        if not self._lock.acquire(timeout=max(0.0, deadline - started)):
            raise HostTimeout(
                f"{what}: the host's previous operation is still running", host=self.name
            )
        try:
            if self._closed:
                raise HyperVError(f"{what}: the connection was closed", host=self.name)
            self._cancel_idle_close()
            self._deadline.at = deadline
            # The limit and where it is set, for a timeout's message: a longer
            # operation is raised there.
            setting = "" if timeout is not None else " (hyperv.call_timeout)"
            return self._run_locked(pipeline, what, f"{deadline - started:g}s{setting}")
        finally:
            self._deadline.at = None
            self._last_used = self._clock()
            self.stats.calls += 1
            self._schedule_idle_close()
            self._lock.release()

    def _run_locked(self, pipeline: Pipeline, what: str, limit: str) -> Outcome:
        reused = self._pool is not None
        ps: Any = None
        try:
            pool = self._ensure_open()
            ps = PowerShell(pool)
            try:
                begin_invoke(ps, pipeline)
            except WSManFaultError:
                if not reused:
                    raise
                # The host dropped a pool we kept (service restart, its own
                # idle timeout). The Command was refused, so nothing ran:
                # reopen once and send it again.
                log.info("pool on %s was gone; reopening", self.name)
                self._discard()
                pool = self._ensure_open()
                ps = PowerShell(pool)
                begin_invoke(ps, pipeline)
            self._poll(ps)
            pool.pipelines.pop(ps.id, None)  # pypsrp keeps every pipeline otherwise
            return Outcome(list(ps.output), list(ps.streams.error), bool(ps.had_errors))
        except DeadlineExpired:
            self._stop_and_discard(ps)
            raise HostTimeout(f"{what}: no result within {limit}", host=self.name) from None
        except Exception as exc:
            # Whatever went wrong, the pool's state is unknown now: drop it.
            self._stop_and_discard(ps)
            if not is_transport_error(exc):
                raise
            raise transport_error(exc, host=self.name, what=what) from exc

    def _poll(self, ps: Any) -> None:
        while ps.state == PSInvocationState.RUNNING:
            # Ask the host to answer (data or an OperationTimeout fault)
            # shortly before the deadline, so expiry finds no request in
            # flight and Stop can go out on a clean connection. Fractional
            # seconds are fine: the header is an xs:duration (PT0.75S).
            wait = min(float(self._timeouts.operation), self._deadline.remaining() - _ANSWER_MARGIN)
            if wait < _MIN_POLL:
                raise DeadlineExpired
            ps.poll_invoke(timeout=round(wait, 3))

    def _ensure_open(self) -> Any:
        if self._pool is not None:
            return self._pool
        wsman = self._connect()
        clamp_transport(wsman, self._deadline, self._timeouts)
        # CLIXML read without pypsrp's per-value overhead (clixml.py).
        pool = quicken(RunspacePool(wsman, configuration_name=self._configuration))
        self._wsman = wsman
        try:
            pool.open()
        except BaseException:
            self._pool = pool
            self._discard()
            raise
        self._pool = pool
        self.stats.opens += 1
        return pool

    def _stop_and_discard(self, ps: Any) -> None:
        """Best effort, within `stop_grace`: stop the pipeline, delete the shell."""
        self._deadline.at = self._clock() + self._timeouts.stop_grace
        if ps is not None and ps.state == PSInvocationState.RUNNING:
            try:
                ps.stop()
                self.stats.stops += 1
            except Exception as exc:  # the host may be gone; the pool goes anyway
                log.info("stopping the pipeline on %s failed: %s", self.name, type(exc).__name__)
        self._discard()

    def _discard(self) -> None:
        pool, wsman, self._pool, self._wsman = self._pool, self._wsman, None, None
        if pool is None:
            return
        if self._deadline.remaining() == math.inf:
            self._deadline.at = self._clock() + self._timeouts.stop_grace
        try:
            fresh_seal(wsman)
            pool.close()
        except Exception as exc:
            log.info("closing the pool on %s failed: %s", self.name, type(exc).__name__)
        finally:
            if wsman is not None:
                wsman.close()

    # -- idle and close ------------------------------------------------------------

    def _schedule_idle_close(self) -> None:
        if self._pool is None or self._closed:
            return
        self._reaper.schedule(self, self._timeouts.idle)

    def _cancel_idle_close(self) -> None:
        self._reaper.cancel(self)

    def close_if_idle(self) -> None:
        """The reaper's call: close the pool unless a call is running (it
        schedules the close again as it ends) or the pool was used within
        the idle timeout (then the close is scheduled for what is left)."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            if self._pool is None or self._closed:
                return
            idle_for = self._clock() - self._last_used
            if idle_for >= self._timeouts.idle * 0.99:
                self._deadline.at = self._clock() + self._timeouts.stop_grace
                self._discard()
                self.stats.idle_closes += 1
            else:
                self._reaper.schedule(self, self._timeouts.idle - idle_for)
        finally:
            self._deadline.at = None
            self._lock.release()

    def close(self, *, wait: bool = True) -> None:
        """Close the pool (waiting at most one call's deadline for a call in
        progress) and refuse further calls. Without `wait` a pool whose call
        is in progress is left to it: its process is leaving (the host ends
        the shell after its idle timeout)."""
        if wait:
            acquired = self._lock.acquire(timeout=self._timeouts.call + self._timeouts.stop_grace)
        else:
            acquired = self._lock.acquire(blocking=False)
            if not acquired:
                self._closed = True
                self._cancel_idle_close()
                return
        try:
            self._closed = True
            self._cancel_idle_close()
            self._deadline.at = self._clock() + self._timeouts.stop_grace
            self._discard()
        finally:
            self._deadline.at = None
            if acquired:
                self._lock.release()


def fresh_seal(wsman: Any) -> None:
    """Before a pool's Delete: have pypsrp set up message encryption again
    (its empty POST) instead of sealing the Delete with the context of the
    pool's last call.

    NTLM and Kerberos authenticate a connection, not a request (MS-WSMV
    3.1.4.1.30.1; the keep-alive the bot keeps per host). A WinRM listener
    closes a connection idle for HTTP.sys's IdleConnectionTimeout (120 s
    by default), shorter than `hyperv.idle_timeout` (300 s): the pool of a
    host not asked for two minutes is closed over a new connection. pypsrp
    then authenticates it and sends again the message it had sealed with the
    old context, which the host cannot unseal: HTTP 400 with no body,
    logged by pypsrp as `ERROR Failed to parse WSManFault message`, and
    the shell left until the host's own idle timeout. With the encryption
    set up again, a new connection is authenticated first and the Delete
    sealed for it; on a connection still open the empty POST is answered at
    once and the context stays the same. Nothing to do without message
    encryption (TLS, or Basic)."""
    transport = getattr(wsman, "transport", None)
    if transport is not None and getattr(transport, "wrap_required", False):
        transport.encryption = None


def begin_invoke(ps: Any, pipeline: Pipeline) -> None:
    """What `ps.begin_invoke()` does for a pipeline without input (pypsrp
    0.9.1): send the CREATE_PIPELINE message in a wxf:Command (and any
    further fragments in wxf:Send), the pipeline is then RUNNING. The
    message's Data is serialised once per distinct pipeline (clixml.py);
    pypsrp's `_invoke` frames it for this pool and pipeline."""
    ps._invoke(create_pipeline(ps.runspace_pool, pipeline))


@dataclass
class SessionStats:
    """Counters for tests and the bench: pools opened, calls, stops."""

    opens: int = 0
    calls: int = 0
    stops: int = 0
    idle_closes: int = 0
    extra: dict[str, int] = field(default_factory=dict)
