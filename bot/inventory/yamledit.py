"""Edit an inventory file in place, keeping what people wrote around the data.

    doc = load_document(text)            a round-trip document (ruamel.yaml)
    apply_plan(doc, plan, today)         the merge plan's edits, key by key
    fresh_document(hosts_text)           a new file: the hosts of another, no VMs
    dump_document(doc) -> str
    write_atomically(path, text)         all of it or nothing

ruamel.yaml's round-trip mode keeps comments, key order, quoting and flow
style of everything it is not told to change
(https://yaml.dev/doc/ruamel.yaml/detail/), so a merge changes only the keys
the plan names: hand-set roles, tags, domains and comments stay as written.
"""

from __future__ import annotations

import io
import os
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from bot.inventory.discovery import UNDISCOVERABLE, Kind, MergePlan

_TAG_THESE = f"unknown — tag these: {', '.join(UNDISCOVERABLE)}?"
_FLOW_KEYS = frozenset({"roles", "disks", "tags"})


class DocumentError(ValueError):
    """The text is not an inventory document this module can edit."""


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 100
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def load_document(text: str) -> CommentedMap:
    doc = _yaml().load(text)
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, CommentedMap):
        raise DocumentError("the inventory is not a mapping with hosts: and vms:")
    vms = doc.get("vms")
    if vms is None:
        doc["vms"] = CommentedSeq()
    elif not isinstance(vms, CommentedSeq):
        raise DocumentError("vms: is not a list")
    return doc


def fresh_document(hosts_text: str, header: str) -> CommentedMap:
    """A new inventory: `hosts:` (with its comments) from another file's text,
    and an empty `vms:`."""
    source = load_document(hosts_text)
    doc = CommentedMap()
    doc.yaml_set_start_comment(header)
    doc["hosts"] = source.get("hosts", CommentedSeq())
    doc["vms"] = CommentedSeq()
    return doc


def _value(key: str, value: Any) -> Any:
    """A plain value as the document should show it."""
    if isinstance(value, dict):
        node = CommentedMap(value)
        node.fa.set_flow_style()
        return node
    if isinstance(value, list):
        seq = CommentedSeq(value)
        if key in _FLOW_KEYS:
            seq.fa.set_flow_style()
        return seq
    return value


def _set_key(entry: CommentedMap, key: str, value: Any) -> None:
    if isinstance(value, dict) and not value:
        entry.pop(key, None)  # no disk flags left: the default says it
        return
    if value is False and key in ("automatic_checkpoints", "hyperv_replica"):
        entry.pop(key, None)  # the default
        return
    entry[key] = _value(key, value)


def apply_plan(doc: CommentedMap, plan: MergePlan, today: date) -> None:
    """Make the plan's edits in `doc` (in place), key by key."""
    vms: CommentedSeq = doc["vms"]
    first_added = True
    for entry in plan.entries:
        if entry.index is not None:
            target = vms[entry.index]
            if not isinstance(target, CommentedMap):
                raise DocumentError(f"vms[{entry.index}] is not a mapping")
            for key, value in entry.set:
                _set_key(target, key, value)
            for key in entry.unset:
                target.pop(key, None)
            if entry.kind is Kind.MISSING:
                target.yaml_add_eol_comment(
                    f"not found by discovery on {today.isoformat()}", "missing_since"
                )
        elif entry.kind is Kind.ADDED:
            record = CommentedMap()
            for key, value in entry.record:
                if not (isinstance(value, dict) and not value):
                    record[key] = _value(key, value)
            record.yaml_add_eol_comment(_TAG_THESE, "roles_unknown")
            vms.append(record)
            if first_added:
                added = len(plan.of(Kind.ADDED))
                vms.yaml_set_comment_before_after_key(
                    len(vms) - 1,
                    before=f"Added by `inventory discover` on {today.isoformat()} ({added} VMs).",
                    indent=2,
                )
                first_added = False


def dump_document(doc: CommentedMap) -> str:
    out = io.StringIO()
    _yaml().dump(doc, out)
    return out.getvalue()


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` so that a reader sees the old file or the new
    one, never half of it: a temporary file beside it, flushed to disk, then
    renamed over it (os.replace is atomic on one file system)."""
    directory = path.resolve().parent
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            os.chmod(temp, path.stat().st_mode & 0o777)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
