"""The audit trail's two file formats: JSON lines (one
`json.dumps(row, sort_keys=True)` per row) and CSV (the details column
holds the same sorted JSON). Rows are written as they come: nothing here
holds more than one row."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from bot.service.errors import BadRequest

AUDIT_FIELDS = (
    "change",
    "seq",
    "at",
    "actor",
    "actor_team",
    "event",
    "from_state",
    "to_state",
    "vm",
    "host",
    "requester",
    "requester_team",
    "message",
    # The batch (patch wave) the change is a member of; empty for a change
    # asked for alone and for a settings change.
    "batch",
)

_DETAILS = json.JSONEncoder(sort_keys=True)


def export_audit(rows: Iterable[dict[str, Any]], fmt: str) -> Iterator[str]:
    """The rows as text, one chunk per row (CSV: the header first)."""
    if fmt == "jsonl":
        for row in rows:
            yield json.dumps(row, sort_keys=True) + "\n"
        return
    if fmt != "csv":
        raise BadRequest(f"unknown format '{fmt}': use jsonl or csv")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*AUDIT_FIELDS, "details"])
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "details": _DETAILS.encode(row["details"])})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()
