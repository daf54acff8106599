"""Idle pools are closed by one thread per fleet (bot/hyperv/winrm/idle.py),
not a timer thread per pool: the reaper's own rules with plain sessions,
then a fleet of emulated hosts over real WinRM."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.devtools.emulator import EmulatedFleet
from bot.devtools.emulator.pointing import emulated_inventory
from bot.hyperv.winrm.host import WinRMFleet
from bot.hyperv.winrm.idle import IdleReaper
from bot.hyperv.winrm.pool import PoolSession, WinRMTimeouts
from bot.inventory import Inventory, demo_inventory_path, load_inventory
from tests.emulator_support import PASSWORD, USER, start_fleet


class InFlight:
    """How many closes run at once, at most."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.most = 0

    def enter(self) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def leave(self) -> None:
        with self.lock:
            self.now -= 1


class Session:
    """Records when the reaper closed it; a close takes `hold` seconds."""

    def __init__(
        self, name: str, *, hold: float = 0.0, fail: bool = False, flight: InFlight | None = None
    ) -> None:
        self.name = name
        self.hold = hold
        self.fail = fail
        self.flight = flight or InFlight()
        self.closed_at: float | None = None

    def close_if_idle(self) -> None:
        self.flight.enter()
        try:
            time.sleep(self.hold)
            self.closed_at = time.monotonic()
            if self.fail:
                raise RuntimeError("the host is gone")
        finally:
            self.flight.leave()


def idle_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("winrm-idle"))


def wait_until(done: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert done(), "not in time"


def test_due_sessions_are_closed_after_their_timeout_and_the_thread_then_ends() -> None:
    reaper = IdleReaper()
    soon, later = Session("soon"), Session("later")
    started = time.monotonic()
    reaper.schedule(later, 0.4)
    reaper.schedule(soon, 0.1)
    wait_until(lambda: soon.closed_at is not None and later.closed_at is not None)
    assert soon.closed_at is not None and later.closed_at is not None
    assert 0.1 <= soon.closed_at - started < later.closed_at - started
    assert later.closed_at - started >= 0.4
    wait_until(lambda: not reaper.waiting)  # nothing due: no thread left
    again = Session("again")
    reaper.schedule(again, 0.05)  # the next schedule starts one again
    wait_until(lambda: again.closed_at is not None)


def test_a_call_pushes_the_close_back_and_cancel_or_stop_prevents_it() -> None:
    reaper = IdleReaper()
    used, cancelled, stopped = Session("used"), Session("cancelled"), Session("stopped")
    reaper.schedule(used, 0.2)
    reaper.schedule(cancelled, 0.2)
    time.sleep(0.1)
    reaper.schedule(used, 0.3)  # what the end of a call does
    reaper.cancel(cancelled)  # what the start of a call, or close(), does
    started = time.monotonic()
    wait_until(lambda: used.closed_at is not None)
    assert used.closed_at is not None and used.closed_at - started >= 0.25
    assert cancelled.closed_at is None
    reaper.schedule(stopped, 0.1)
    reaper.stop()
    reaper.schedule(Session("after stop"), 0.0)  # a stopped reaper takes nothing
    time.sleep(0.3)
    assert stopped.closed_at is None
    assert not reaper.waiting


def test_sessions_due_together_close_on_at_most_closers_threads_and_one_failure_spares_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bot.hyperv.winrm.idle")
    reaper = IdleReaper(closers=2)
    flight = InFlight()
    sessions = [Session(f"HV0{i}", hold=0.2, fail=i == 0, flight=flight) for i in range(6)]
    for session in sessions:
        reaper.schedule(session, 0.05)
    wait_until(lambda: all(s.closed_at is not None for s in sessions))
    assert flight.most == 2  # in parallel, and never more than `closers`
    times = sorted(s.closed_at for s in sessions if s.closed_at is not None)
    assert times[-1] - times[0] >= 0.35  # 0.2 s each, two at a time: not all at once
    assert "closing the idle pool on HV00 failed: RuntimeError" in caplog.text


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[EmulatedFleet, Inventory]]:
    emulated = start_fleet(["HV01", "HV02", "HV03"])
    ports = {name: server.port for name, server in emulated.servers.items()}
    pointed = tmp_path / "inventory.yaml"
    pointed.write_text(
        emulated_inventory(load_inventory(demo_inventory_path()), ports, USER, "HV_PASSWORD"),
        encoding="utf-8",
    )
    try:
        yield emulated, load_inventory(pointed)
    finally:
        emulated.stop()


def test_a_fleet_closes_its_idle_pools_with_one_thread(
    fleet: tuple[EmulatedFleet, Inventory],
) -> None:
    _, inventory = fleet
    timeouts = WinRMTimeouts(call=10, connect=2, read=10, operation=2, stop_grace=1)
    winrm = WinRMFleet(
        inventory, {"HV_PASSWORD": PASSWORD}, fanout=4, idle_timeout=0.5, timeouts=timeouts
    )
    # Other tests' hosts in this process may still have a reaper waiting.
    before = idle_threads()
    try:
        hosts = [winrm.host(name) for name in ("HV01", "HV02", "HV03")]
        for host in hosts:
            assert host.list_vms()
        assert all(host.is_open for host in hosts)
        # Three open pools, one thread to close them (it was a timer each).
        assert winrm._reaper.waiting
        assert idle_threads() <= before + 1
        wait_until(lambda: all(host.stats.idle_closes == 1 for host in hosts))
        assert not any(host.is_open for host in hosts)
        assert hosts[0].list_vms()  # reopened on the next call
        assert hosts[0].stats.opens == 2
        # The reaper took the pool as due (popped it), but it was used since:
        # it stays open, and is closed once it has been idle long enough.
        session = hosts[0]._session
        assert isinstance(session, PoolSession)
        winrm._reaper.cancel(session)
        session.close_if_idle()
        assert hosts[0].is_open
        wait_until(lambda: hosts[0].stats.idle_closes == 2)
    finally:
        winrm.close()
