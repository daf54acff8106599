"""Fault injection for one emulated host.

    Faults(latency_ms=0, refuse=False, drop=False, unauthorized=False, hang=frozenset())
    Faults.parse("latency=50,hang=Checkpoint-VM,refuse")

- latency_ms: added before every HTTP request is answered.
- refuse: the port stops listening (connection refused) until cleared.
- drop: every request is read, then the connection is closed with no answer.
- unauthorized: every request gets 401, whatever the credentials.
- hang: cmdlets (case-insensitive) that never finish until the client stops
  the pipeline (PSRP stop, i.e. the WSMan `powershell/signal/crtl_c` signal).
- slow: cmdlets that take this many milliseconds before they run (a
  production checkpoint waiting on the guest's VSS); a stop cuts it short.
- late: cmdlets that do their work at once, then take this many
  milliseconds to answer (the answer delayed on its way back). A stop
  ends the wait but does not undo the work: PowerShell hands a stop to a
  running cmdlet as a notification (`Cmdlet.StopProcessing`,
  https://learn.microsoft.com/dotnet/api/system.management.automation.cmdlet.stopprocessing),
  and nothing in it reverses what the cmdlet already did.
- hidden: cmdlets the endpoint does not expose, as a JEA role capability
  without them: `CommandNotFoundException`
  (https://learn.microsoft.com/powershell/scripting/security/remoting/jea/role-capabilities).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

SPEC_HELP = (
    "Comma-separated: latency=MS, refuse, drop, 401 (or unauthorized), "
    "hang=CMDLET (repeatable, e.g. hang=Checkpoint-VM,hang=Remove-VMSnapshot), "
    "slow=CMDLET:MS (repeatable, e.g. slow=Checkpoint-VM:4000), "
    "late=CMDLET:MS (done at once, answered MS later, e.g. late=Set-VM:5000), "
    "hide=CMDLET (repeatable: a JEA role without it, e.g. hide=Get-CimInstance)."
)


class FaultSpecError(ValueError):
    pass


@dataclass(frozen=True)
class Faults:
    latency_ms: int = 0
    refuse: bool = False
    drop: bool = False
    unauthorized: bool = False
    hang: frozenset[str] = field(default_factory=frozenset)
    slow: Mapping[str, int] = field(default_factory=dict)
    hidden: frozenset[str] = field(default_factory=frozenset)
    late: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.latency_ms < 0:
            raise ValueError("latency_ms must not be negative")
        # Accept any iterable of names (a set literal in tests); keep them folded.
        names: Iterable[str] = self.hang
        object.__setattr__(self, "hang", frozenset(n.strip().casefold() for n in names))
        if any(ms < 0 for ms in self.slow.values()):
            raise ValueError("slow delays must not be negative")
        folded = {name.strip().casefold(): int(ms) for name, ms in self.slow.items()}
        object.__setattr__(self, "slow", folded)
        if any(ms < 0 for ms in self.late.values()):
            raise ValueError("late delays must not be negative")
        late = {name.strip().casefold(): int(ms) for name, ms in self.late.items()}
        object.__setattr__(self, "late", late)
        hidden: Iterable[str] = self.hidden
        object.__setattr__(self, "hidden", frozenset(n.strip().casefold() for n in hidden))

    def hangs(self, cmdlet: str) -> bool:
        return cmdlet.casefold() in self.hang

    def delay_ms(self, cmdlet: str) -> int:
        return self.slow.get(cmdlet.casefold(), 0)

    @classmethod
    def parse(cls, spec: str) -> Faults:
        latency, refuse, drop, unauthorized = 0, False, False, False
        hang: set[str] = set()
        hidden: set[str] = set()
        slow: dict[str, int] = {}
        late: dict[str, int] = {}
        for raw in spec.split(","):
            item = raw.strip()
            if not item:
                continue
            key, _, value = item.partition("=")
            key = key.strip().lower()
            if key == "latency" and value.strip().isdigit():
                latency = int(value)
            elif key == "hang" and value.strip():
                hang.add(value.strip())
            elif key == "hide" and value.strip():
                hidden.add(value.strip())
            elif key in ("slow", "late") and re.fullmatch(r"\s*[\w-]+\s*:\s*\d+\s*", value):
                name, _, ms = value.partition(":")
                (slow if key == "slow" else late)[name.strip()] = int(ms)
            elif key == "refuse" and not value:
                refuse = True
            elif key == "drop" and not value:
                drop = True
            elif key in ("401", "unauthorized") and not value:
                unauthorized = True
            else:
                raise FaultSpecError(f"bad fault {item!r}; {SPEC_HELP}")
        return cls(
            latency, refuse, drop, unauthorized, frozenset(hang), slow, frozenset(hidden), late
        )
