"""pypsrp's CLIXML deserialiser, without the work it repeats per value.

pypsrp's `Serializer.deserialize` (pypsrp 0.9.1, pypsrp/serializer.py) is
called for every element of every output object, properties included, and
each call first re-serialises the element it was given (`ET.tostring`, kept
for a fallback that returns the raw XML) and builds two dispatch tables of
lambdas, before it looks at the tag. For a property that is a primitive
(`<S>`, `<I32>`, `<B>`, ...; MS-PSRP 2.2.5.1,
https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-psrp/c8c85974-ffd7-4455-84a8-e49016c20683)
none of that is used. Sampling a 100-host sweep (bench/fleet_sweep.py) put
half of the client's CPU in deserialisation and a quarter in that
`tostring` alone.

`QuickSerializer` answers primitive elements itself, with pypsrp's own
conversions, and leaves everything else (objects, lists, dictionaries,
references to types) to pypsrp unchanged. Strings skip pypsrp's `_xHHHH_`
unescaping only when they are ASCII and contain no `_x`, where it finds
nothing to replace.
"""

from __future__ import annotations

import base64
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from pypsrp.serializer import Serializer

__all__ = ["QuickSerializer", "quicken"]


def _string(s: QuickSerializer, e: ET.Element) -> Any:
    text = e.text
    if text is None:
        return ""
    if text.isascii() and "_x" not in text:
        return text  # nothing pypsrp's unescaping would replace
    return s._deserialize_string(text)


def _int(_s: QuickSerializer, e: ET.Element) -> Any:
    return int(e.text or "")


def _text(_s: QuickSerializer, e: ET.Element) -> Any:
    return e.text


# pypsrp 0.9.1's table of primitive tags, with the same conversions.
_PRIMITIVES: dict[str, Callable[[QuickSerializer, ET.Element], Any]] = {
    "S": _string,
    "ToString": _string,
    "URI": _string,
    "XD": _string,
    "SBK": _string,
    "C": lambda _s, e: chr(int(e.text or "")),
    "B": lambda _s, e: (e.text or "").lower() == "true",
    "DT": _text,
    "TS": _text,
    "D": _text,
    "Version": _text,
    "By": _int,
    "SB": _int,
    "U16": _int,
    "I16": _int,
    "U32": _int,
    "I32": _int,
    "U64": _int,
    "I64": _int,
    "Sg": lambda _s, e: float(e.text or ""),
    "Db": lambda _s, e: float(e.text or ""),
    "BA": lambda _s, e: base64.b64decode(e.text or ""),
    "G": lambda _s, e: uuid.UUID(e.text),
    "Nil": lambda _s, _e: None,
    "SS": lambda s, e: s._deserialize_secure_string(e),
    "Ref": lambda s, e: s.obj[e.attrib["RefId"]],
}


class QuickSerializer(Serializer):
    def deserialize(
        self, element: ET.Element | str, metadata: Any = None, clear: bool = True
    ) -> Any:
        # A primitive has no children (no type names to record): pypsrp would
        # only convert its text, after the work this skips.
        if not isinstance(element, str) and len(element) == 0:
            unpack = _PRIMITIVES.get(element.tag)
            if unpack is not None:
                if clear:
                    self._clear()
                if metadata is not None and metadata.tag == "*":
                    metadata.tag = element.tag  # as pypsrp does to the caller's metadata
                return unpack(self, element)
        return super().deserialize(element, metadata, clear)


def quicken(pool: Any) -> Any:
    """Give a pypsrp `RunspacePool` (before `open()`) the quick serializer,
    where pypsrp 0.9 keeps it: the pool's own and its fragmenter's."""
    serializer = QuickSerializer()
    pool._serializer = serializer
    pool._fragmenter.serializer = serializer
    return pool
