"""The adversarial suite's tally: every hostile input a test sends is
counted with whether the bot accepted it (did what it asked). The session
ends with one line, `adversarial: N hostile inputs, M accepted`, and a test
fails as soon as one is accepted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest


@dataclass
class Tally:
    """Counts per kind of hostile input (`forged signature`, `look-alike VM name`, …)."""

    sent: Counter[str] = field(default_factory=Counter)
    accepted: Counter[str] = field(default_factory=Counter)

    def record(self, kind: str, accepted: bool, what: str = "") -> None:
        self.sent[kind] += 1
        if accepted:
            self.accepted[kind] += 1
        assert not accepted, f"{kind}: accepted {what!r}"

    def summary(self) -> str:
        lines = [
            f"adversarial: {sum(self.sent.values())} hostile inputs, "
            f"{sum(self.accepted.values())} accepted"
        ]
        lines += [
            f"  {kind}: {n} sent, {self.accepted[kind]} accepted"
            for kind, n in sorted(self.sent.items())
        ]
        return "\n".join(lines)


_TALLY = pytest.StashKey[Tally]()


@pytest.fixture
def hostile(request: pytest.FixtureRequest) -> Tally:
    stash = request.config.stash
    if _TALLY not in stash:
        stash[_TALLY] = Tally()
    return stash[_TALLY]


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    if _TALLY in config.stash:
        terminalreporter.write_line(config.stash[_TALLY].summary())
