"""Shared by tests/test_emulator_*.py: the demo host model's fleet and pypsrp clients."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan

from bot.devtools.emulator import EmulatedFleet, EmulatorLog
from bot.devtools.hostmodel import InMemoryHostStateStore, demo_hosts_path, load_host_model

USER, PASSWORD = "hvadmin", "Passw0rd!"


def start_fleet(hosts: list[str], **kwargs: Any) -> EmulatedFleet:
    kwargs.setdefault("log", EmulatorLog())
    model = load_host_model(demo_hosts_path())
    return EmulatedFleet.start(InMemoryHostStateStore(), hosts=hosts, model=model, **kwargs)


def wsman(port: int, *, auth: str = "basic", password: str = PASSWORD, **kwargs: Any) -> WSMan:
    """Deliberate timeouts: nothing retries, nothing waits for long."""
    options: dict[str, Any] = {
        "port": port,
        "username": USER,
        "password": password,
        "ssl": False,
        "auth": auth,
        "operation_timeout": 3,
        "connection_timeout": 3,
        "read_timeout": 6,
        "reconnection_retries": 0,
        "reconnection_backoff": 0.1,
    }
    if auth == "basic":
        options["encryption"] = "never"
    options.update(kwargs)
    return WSMan("127.0.0.1", **options)


@contextmanager
def pool(port: int, **kwargs: Any) -> Iterator[RunspacePool]:
    with RunspacePool(wsman(port, **kwargs)) as opened:
        yield opened


def run(pool: RunspacePool, build: Callable[[PowerShell], Any]) -> PowerShell:
    ps = PowerShell(pool)
    build(ps)
    ps.invoke()
    return ps


def within(seconds: float, work: Callable[[], Any]) -> Any:
    """Runs `work` on a thread; fails the test instead of hanging it."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = work()
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"did not finish within {seconds}s"
    if "error" in result:
        raise result["error"]
    return result.get("value")
