"""Edit an inventory file in place, keeping what people wrote around the data.

    doc = load_document(text)            a round-trip document (ruamel.yaml)
    layout = layout_of(text)             how the file indents its lists
    apply_plan(doc, plan, today)         the merge plan's edits, key by key (and
                                         a renamed VM's name in `groups:`)
    fresh_document(hosts_text)           a new file: the hosts of another, no VMs
    dump_document(doc, layout) -> str
    write_atomically(path, text)         all of it or nothing

ruamel.yaml's round-trip mode keeps comments, key order, quoting and flow
style of everything it is not told to change
(https://yaml.dev/doc/ruamel.yaml/detail/), so a merge changes only the keys
the plan names: hand-set roles, tags, domains and comments stay as written.
It does not keep indentation: a document is written with the indentation
it is told (`YAML.indent`), so the file's own is read first (`layout_of`),
and a file that writes its list items at the key's column (`hosts:` then
`- name: HV01`) keeps them there.
"""

from __future__ import annotations

import copy
import io
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.representer import RoundTripRepresenter

from bot.inventory.discovery import UNDISCOVERABLE, Kind, MergePlan

_TAG_THESE = f"unknown — tag these: {', '.join(UNDISCOVERABLE)}?"
_FLOW_KEYS = frozenset({"roles", "disks", "tags"})


class DocumentError(ValueError):
    """The text is not an inventory document this module can edit."""


@dataclass(frozen=True)
class Layout:
    """ruamel.yaml's `indent()`: a mapping's keys under its parent, a list
    item's content under its parent, and its dash under its parent."""

    mapping: int = 2
    sequence: int = 4
    offset: int = 2


# `hosts:` at the start of a line with nothing after it (but a comment),
# and the first list item under it: its dash's column and its content's.
_BLOCK_LIST_KEY = re.compile(r"^[A-Za-z_][\w-]*:\s*(?:#.*)?$")
_ITEM = re.compile(r"^( *)-( +)\S")


def layout_of(text: str) -> Layout:
    """How the file indents its first top-level block list (`hosts:`,
    `vms:`): the default (dashes two in, content four) when it has none."""
    after_key = False
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if after_key:
            item = _ITEM.match(line)
            if item is not None:
                offset, gap = len(item.group(1)), len(item.group(2)) + 1
                return Layout(mapping=gap, sequence=offset + gap, offset=offset)
        after_key = _BLOCK_LIST_KEY.match(line) is not None
    return Layout()


class _OwnAnchorsOnly(RoundTripRepresenter):
    """Writes an alias only where the file had an anchor.

    ruamel.yaml aliases any object it meets twice, naming it `&id001`: one
    `today` for every VM a merge marks missing became `missing_since:
    *id001`, and deleting the first such VM broke the file ("found undefined
    alias"). What a person anchored keeps its anchor (ruamel.yaml loads it
    with its name), anything else is written out in full."""

    def ignore_aliases(self, data: Any) -> bool:
        anchor = getattr(data, "anchor", None)
        return getattr(anchor, "value", None) is None


def _yaml(layout: Layout = Layout()) -> YAML:
    yaml = YAML(typ="rt")
    yaml.Representer = _OwnAnchorsOnly
    yaml.preserve_quotes = True
    yaml.width = 100
    yaml.indent(mapping=layout.mapping, sequence=layout.sequence, offset=layout.offset)
    return yaml


def load_document(text: str) -> CommentedMap:
    try:
        doc = _yaml().load(text)
    except YAMLError as exc:
        # The file already passed the inventory's own loader; ruamel.yaml is
        # stricter in places (e.g. duplicate keys). One line, nothing written.
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        found = [line for line in lines if line.startswith("found")]
        why = (found or lines or [type(exc).__name__])[0]
        raise DocumentError(f"cannot be edited in place: {why}") from None
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
    """A new inventory: the hosts, the clusters and the other settings (with
    their comments) from another file's text, and an empty `vms:`. Named VM
    groups (`groups:`) are left out: they name VMs of the other file, which
    a new inventory may not have."""
    source = load_document(hosts_text)
    doc = CommentedMap()
    doc.yaml_set_start_comment(header)
    doc["hosts"] = source.get("hosts", CommentedSeq())
    for key, value in source.items():
        if key not in ("hosts", "vms", "groups"):
            doc[key] = value
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


def _move_trailing(entry: CommentedMap, old: Any, new: Any) -> None:
    """Give the comment lines after `old`'s line to `new`.

    ruamel.yaml keeps the comment lines that follow a mapping's last key
    (often the comment above the next list item) on that key; a key added
    after it, or its removal, would otherwise put that comment inside this
    entry or drop it. An end-of-line comment stays with its own key."""
    slot = entry.ca.items.get(old)
    if not slot or len(slot) < 3 or slot[2] is None:
        return
    token = slot[2]
    head, _newline, tail = str(token.value).partition("\n")
    if not tail:
        return
    moved = copy.copy(token)
    moved.value = "\n" + tail
    if head.strip():
        token.value = head + "\n"
    else:
        slot[2] = None
    target = entry.ca.items.setdefault(new, [None, None, None, None])
    if target[2] is not None and str(target[2].value).strip():
        # `new` has an end-of-line comment of its own: the lines follow it.
        own = str(target[2].value).split("\n", 1)[0]
        target[2].value = " " + own.lstrip() + "\n" + tail
    else:
        target[2] = moved


def _remove_key(entry: CommentedMap, key: str) -> None:
    if key not in entry:
        return
    keys = list(entry.keys())
    if keys[-1] == key and len(keys) > 1:
        _move_trailing(entry, key, keys[-2])
    del entry[key]
    entry.ca.items.pop(key, None)


def _set_key(entry: CommentedMap, key: str, value: Any, eol: str | None = None) -> None:
    if (isinstance(value, dict) and not value) or (
        value is False and key in ("automatic_checkpoints", "hyperv_replica")
    ):
        _remove_key(entry, key)  # no disk flags left, or false: the default says it
        return
    keys = list(entry.keys())
    entry[key] = _value(key, value)
    if eol is not None:
        entry.yaml_add_eol_comment(eol, key)
    if key not in keys and keys:
        _move_trailing(entry, keys[-1], key)


def _rename_group_members(doc: CommentedMap, plan: MergePlan) -> None:
    """A VM the plan renames is renamed in every group that lists it: the
    member alone is replaced (ruamel.yaml keeps its quoting, the list's flow
    or block style and the comments around it)."""
    groups = doc.get("groups")
    if not plan.renames or not isinstance(groups, CommentedMap):
        return
    for members in groups.values():
        if not isinstance(members, CommentedSeq):
            continue
        for index, member in enumerate(members):
            new = plan.renamed_member(member) if isinstance(member, str) else None
            if new is not None:
                members[index] = new


def apply_plan(doc: CommentedMap, plan: MergePlan, today: date, layout: Layout = Layout()) -> None:
    """Make the plan's edits in `doc` (in place), key by key."""
    _rename_group_members(doc, plan)
    vms: CommentedSeq = doc["vms"]
    first_added = True
    for entry in plan.entries:
        if entry.index is not None:
            target = vms[entry.index]
            if not isinstance(target, CommentedMap):
                raise DocumentError(f"vms[{entry.index}] is not a mapping")
            for key, value in entry.set:
                eol = None
                if key == "missing_since":
                    eol = f"not found by discovery on {today.isoformat()}"
                _set_key(target, key, value, eol)
            for key in entry.unset:
                _remove_key(target, key)
        elif entry.kind is Kind.ADDED:
            # `vms: []` is a flow sequence; entries with comments need blocks.
            vms.fa.set_block_style()
            record = CommentedMap()
            for key, value in entry.record:
                if not (isinstance(value, dict) and not value):
                    record[key] = _value(key, value)
            record.yaml_add_eol_comment(_TAG_THESE, "roles_unknown")
            vms.append(record)
            if first_added:
                added = len(plan.of(Kind.ADDED))
                count = f"{added} VM" if added == 1 else f"{added} VMs"
                vms.yaml_set_comment_before_after_key(
                    len(vms) - 1,
                    before=f"Added by `inventory discover` on {today.isoformat()} ({count}).",
                    indent=layout.offset,  # at the dashes' column
                )
                first_added = False


def dump_document(doc: CommentedMap, layout: Layout = Layout()) -> str:
    out = io.StringIO()
    _yaml(layout).dump(doc, out)
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
