"""The config, inventory and policy files as a long-running process read them.

`serve` and `worker` read their files once, at start, and decide on what
they read until they reload (SIGHUP, bot/cli/reload.py) or restart: an
inventory that now names a VM a domain controller, or a new guardrail in
the policy, applies from then on.
So that nobody believes an edit is in force when it is not, the process
looks at the files on every tick and says when one changed under it: a
warning in its log (once per change), the gauge
`checkpoint_bot_files_changed{file}` (1 while the file on disk is not what
the process read; docs/operations.md), and, for the CLI, a running bot
that declines its requests so that the CLI runs them on the files as they
are now (bot/cli/local_server.py).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily, Metric

from bot.observe.metrics import PREFIX

if TYPE_CHECKING:
    from bot.config import Settings

log = logging.getLogger(__name__)

Stamp = tuple[int, int] | None  # (mtime in ns, size), or None: not there


def _stamp(path: Path) -> Stamp:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_mtime_ns, found.st_size


def files_read(settings: Settings) -> list[Path]:
    """Every file the settings were built from: the config (none in demo
    mode without one), the inventory and each policy file."""
    paths = [settings.inventory_path, *settings.policy_files]
    if settings.config_path is not None:
        paths.insert(0, settings.config_path)
    return paths


class FileWatch:
    """The files' stamps when the process read them, against now. A tick
    logs each change once; a scrape reports every file."""

    name = "files-changed"

    def __init__(self, paths: list[Path]) -> None:
        self._read = {path: _stamp(path) for path in paths}
        self._said: frozenset[Path] = frozenset()
        self._lock = threading.Lock()

    def changed(self) -> list[Path]:
        """The files whose content on disk may differ from what was read."""
        return [path for path, stamp in self._read.items() if _stamp(path) != stamp]

    def tick(self, now: datetime) -> None:
        changed = self.changed()
        with self._lock:
            new = [p for p in changed if p not in self._said]
            back = [p for p in self._said if p not in changed]
            self._said = frozenset(changed)
        if new:
            log.warning(
                "%s changed since this process read it: it decides on the old copy until it "
                "reloads (SIGHUP) or restarts (docs/operations.md, 'Changing the config, "
                "inventory or policy')",
                ", ".join(str(p) for p in new),
            )
        if back:
            log.info("%s is again as this process read it", ", ".join(str(p) for p in back))

    # A prometheus-client collector, read at scrape time.
    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            PREFIX + "files_changed",
            "1 while the file on disk differs from what this process read at start "
            "(it decides on the old copy until it reloads or restarts), else 0.",
            labels=["file"],
        )
        changed = set(self.changed())
        for path in self._read:
            gauge.add_metric([str(path)], 1 if path in changed else 0)
        yield gauge
