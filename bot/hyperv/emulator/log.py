"""What the emulated hosts received: proof that only cmdlets and parameters arrive.

    EmulatorLog().entries -> [LogEntry(host, cmdlet, parameters, is_script, at)]

One log can be shared by every server of a fleet; it is thread-safe.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class LogEntry:
    host: str
    cmdlet: str  # the command text as received (a script's text when is_script)
    # Named arguments by name; positional ones as "#<index>". Values as plain
    # Python (str, int, bool, None, lists).
    parameters: dict[str, Any]
    is_script: bool
    at: datetime


class EmulatorLog:
    def __init__(self) -> None:
        self._entries: list[LogEntry] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"EmulatorLog({len(self.entries)} entries)"

    def append(self, entry: LogEntry) -> None:
        with self._lock:
            self._entries.append(entry)

    @property
    def entries(self) -> list[LogEntry]:
        """A copy, oldest first."""
        with self._lock:
            return list(self._entries)

    def for_host(self, host: str) -> list[LogEntry]:
        return [e for e in self.entries if e.host == host]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
