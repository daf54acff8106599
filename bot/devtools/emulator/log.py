"""What the emulated hosts received: proof that only cmdlets and parameters arrive.

    EmulatorLog().entries -> [LogEntry(host, cmdlet, parameters, is_script, at)]

One log can be shared by every server of a fleet; it is thread-safe. With
`mirror`, each entry is also appended to that file as one JSON line, flushed
at once, so another process (an operator, a test) can read what arrived:
{"host": "HV01", "cmdlet": "Get-VM", "parameters": {...}, "is_script": false, "at": "..."}
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
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
    def __init__(self, mirror: Path | None = None) -> None:
        self._entries: list[LogEntry] = []
        self._lock = threading.Lock()
        self._mirror = mirror.open("a", encoding="utf-8") if mirror is not None else None

    def __repr__(self) -> str:
        return f"EmulatorLog({len(self.entries)} entries)"

    def append(self, entry: LogEntry) -> None:
        with self._lock:
            self._entries.append(entry)
            if self._mirror is not None:
                row = {**asdict(entry), "at": entry.at.isoformat()}
                self._mirror.write(json.dumps(row, default=str) + "\n")
                self._mirror.flush()

    def close(self) -> None:
        with self._lock:
            if self._mirror is not None:
                self._mirror.close()
                self._mirror = None

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
