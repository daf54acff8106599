"""RFC 5545 recurrence rules for change windows, on a naive local wall clock."""

from __future__ import annotations

from datetime import datetime

from dateutil.rrule import rrule, rrulestr

# An RRULE without DTSTART counts from here (local wall clock); only rules
# with INTERVAL > 1 care, and those should name their own DTSTART.
RRULE_EPOCH = datetime(2000, 1, 3)  # a Monday


def parse_rrule(text: str) -> rrule:
    """An RRULE ("FREQ=WEEKLY;BYDAY=SA;BYHOUR=22;BYMINUTE=0", optionally
    with a DTSTART line) whose occurrences are naive local times."""
    rule = rrulestr(text, dtstart=RRULE_EPOCH, ignoretz=True)
    if not isinstance(rule, rrule):
        raise ValueError("give one RRULE, not a set of rules")
    return rule
