"""pypsrp's CLIXML, without the work it repeats per value or per host.

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

Sending, `create_pipeline` serialises a pipeline's CREATE_PIPELINE message
(pypsrp's own objects and serializer) once per distinct pipeline and
negotiated protocol version, and reuses the bytes: a sweep sends the same
`Get-VM | Get-VMSnapshot | Select-Object ...` to every host, and building it
(a deep copy of every command, a few hundred XML elements, `ET.tostring`)
was a quarter of the client's CPU per host. Ids are set aside first: a
pipeline that names a VM or a checkpoint by its Id (a GUID, as a Guid or
in text, a WQL filter's included) is built once with stand-in GUIDs, and
each call's Data is those bytes with the stand-ins' text replaced by its
own ids, which the CLIXML carries verbatim (hex digits and dashes are
never escaped, in `<G>` or in `<S>`). A restore or remove names a
checkpoint no earlier call named, and serialising its message afresh cost
7.5-9 ms of CPU a call, now under 0.1 ms (docs/winrm-client.md). Only the
message's Data field is reused; the RPID and PID of its header and the
object and fragment ids that frame it (MS-PSRP 2.2.1,
https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-psrp/497ac440-89fb-4cb3-9cc1-3434c1aa74c3,
and 2.2.4) are still filled in by pypsrp's `Message.pack` and `Fragmenter`
for each pool and pipeline.

Opening a pool, the SESSION_CAPABILITY and INIT_RUNSPACEPOOL messages
(MS-PSRP 2.2.2.1 and 2.2.2.2) that pypsrp's `RunspacePool.open()` sends in
the shell's creationXml carry only the pool's settings (protocol versions,
min/max runspaces, thread options, apartment state, a null host) when no
local PSHost and no application arguments are given, as here: their Data is
serialised once per distinct settings (`QuickSerializer.serialize`), which
was a tenth of the client's CPU in opening a pool per host. The fragment
and message headers are still pypsrp's, per pool.
"""

from __future__ import annotations

import base64
import re
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pypsrp.complex_objects import (
    ApartmentState,
    GenericComplexObject,
    HostInfo,
    ObjectMeta,
    Pipeline,
    RemoteStreamOptions,
)
from pypsrp.messages import CreatePipeline, InitRunspacePool, MessageType, SessionCapability
from pypsrp.powershell import PowerShell
from pypsrp.serializer import Serializer

__all__ = ["PrebuiltMessage", "QuickSerializer", "create_pipeline", "quicken"]


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


class PrebuiltMessage:
    """A PSRP message whose Data field (MS-PSRP 2.2.1, CLIXML in UTF-8) is
    already serialised. pypsrp's `Message.pack` takes the bytes the
    serializer returns as they are (pypsrp 0.9.1, pypsrp/messages.py) and
    still writes the header (destination, type, RPID, PID) itself."""

    __slots__ = ("MESSAGE_TYPE", "data")

    def __init__(self, message_type: int, data: bytes) -> None:
        self.MESSAGE_TYPE = message_type
        self.data = data


class QuickSerializer(Serializer):
    def serialize(
        self,
        value: Any,
        metadata: Any = None,
        parent: ET.Element | None = None,
        clear: bool = True,
    ) -> Any:
        if isinstance(value, PrebuiltMessage):
            return value.data
        if metadata is None and parent is None and clear:
            # A whole message's Data, as `Message.pack` asks for it.
            key = _opening_key(value)
            if key is not None:
                return _OPENING.data(key, lambda: self._serialized_bytes(value))
        return super().serialize(value, metadata, parent, clear)

    def _serialized_bytes(self, value: Any) -> bytes:
        element = super().serialize(value)
        if element is None:
            raise ValueError(f"pypsrp serialised {type(value).__name__} to nothing")
        data: bytes = ET.tostring(element, encoding="utf-8", method="xml")  # as Message.pack does
        return data

    def deserialize(
        self, element: ET.Element | str, metadata: Any = None, clear: bool = True
    ) -> Any:
        if isinstance(element, str):
            if metadata is None and clear:
                found = self._plain_object(element)
                if found is not None:
                    return found
            return super().deserialize(element, metadata, clear)
        # A primitive has no children (no type names to record): pypsrp would
        # only convert its text, after the work this skips.
        if len(element) == 0:
            unpack = _PRIMITIVES.get(element.tag)
            if unpack is not None:
                if clear:
                    self._clear()
                if metadata is not None and metadata.tag == "*":
                    metadata.tag = element.tag  # as pypsrp does to the caller's metadata
                return unpack(self, element)
        return super().deserialize(element, metadata, clear)

    def _plain_object(self, text: str) -> Any:
        """A PIPELINE_OUTPUT object (MS-PSRP 2.2.2.19: the CLIXML of one
        output object, which pypsrp reads without metadata) that pypsrp
        reads as a GenericComplexObject, read as it does; else None.

        pypsrp picks the object's class by the first of its type names
        (MS-PSRP 2.2.5.2.3) in a table built anew for every complex value;
        `Select-Object` output is `Selected.<type>`, `PSCustomObject`,
        `System.Object`, which it reads as a generic object by
        `System.Object`. This reads the same objects without the table
        (and without a second parse of the text it was given)."""
        if "<!" in text:
            return None  # a DTD or entities: left to pypsrp, as before
        try:
            parsed = ET.fromstring(text)  # noqa: S314 - no DTD/entities (checked above)
        except ET.ParseError:
            return None  # pypsrp warns and returns the text
        if parsed.tag != "Obj" or parsed.find("TNRef") is not None:
            return None
        if not _generic([t.text or "" for t in parsed.iterfind("TN/T")]):
            return None
        self._clear()
        self._get_types_from_obj(parsed)  # records the type names for TNRef, as pypsrp does
        obj = self._deserialize_dynamic_obj(
            parsed, ObjectMeta("ObjDynamic", object=GenericComplexObject)
        )
        self.obj[parsed.attrib["RefId"]] = obj
        obj._xml = text  # pypsrp keeps the source of every complex object
        return obj


def _opening_key(value: Any) -> tuple[object, ...] | None:
    """What the Data of a pool-opening message depends on, or None when it
    is not one, or carries state (a local PSHost, application arguments)."""
    kind = type(value)
    if kind is SessionCapability:
        return (
            kind,
            value.protocol_version,
            value.ps_version,
            value.serialization_version,
            value.time_zone,
        )
    if kind is InitRunspacePool:
        host_info = value.host_info
        if value.application_arguments is not None or (
            host_info is not None and host_info.host is not None
        ):
            return None
        return (
            kind,
            value.min_runspaces,
            value.max_runspaces,
            None if value.thread_options is None else value.thread_options.value,
            None if value.apartment_state is None else value.apartment_state.value,
            host_info is None,
        )
    return None


class _Built:
    """Message Data already serialised, by key: bounded, first in first
    out. Built under the lock: a sweep's first wave asks for the same
    bytes from every worker at once, and one build serves them all."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._data: dict[tuple[object, ...], bytes] = {}
        self._lock = threading.Lock()

    def data(self, key: tuple[object, ...], build: Callable[[], bytes]) -> bytes:
        found = self._data.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._data.get(key)
            if found is None:
                found = build()
                if len(self._data) >= self._size:
                    del self._data[next(iter(self._data))]
                self._data[key] = found
            return found

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


# The pool-opening messages' Data, by their settings: a pool's settings
# rarely vary, so a few entries are all there will be.
_OPENING = _Built(size=16)


# The type names pypsrp 0.9.1's table (Serializer.deserialize) reads as a
# generic object; every other name it knows begins `System.` (or is
# `Deserialized.System.…`, read as its `System.` name), except one.
_GENERIC_TYPES = frozenset({"System.Object", "System.Management.Automation.PSObject"})
_KNOWN_ELSEWHERE = "Selected.Microsoft.PowerShell.Commands.GenericMeasureInfo"


def _generic(type_names: list[str]) -> bool:
    """Whether pypsrp reads an object of these type names (in order) as a
    GenericComplexObject: no names at all (it takes `System.Object`), or a
    generic name before any it knows. `PSCustomObject` is not in its table."""
    for name in type_names:
        if name in _GENERIC_TYPES:
            return True
        if name == "System.Management.Automation.PSCustomObject":
            continue
        if name.startswith(("System.", "Deserialized.")):
            return False  # possibly one of pypsrp's: let it decide
        if name.removesuffix("[]") == _KNOWN_ELSEWHERE:
            return False
    return not type_names


def quicken(pool: Any) -> Any:
    """Give a pypsrp `RunspacePool` (before `open()`) the quick serializer,
    where pypsrp 0.9 keeps it: the pool's own and its fragmenter's."""
    serializer = QuickSerializer()
    pool._serializer = serializer
    pool._fragmenter.serializer = serializer
    return pool


class CommandSpec(Protocol):
    """One command of a pipeline (`bot.hyperv.winrm.pool.Cmd`)."""

    @property
    def name(self) -> str: ...

    @property
    def params(self) -> tuple[tuple[str, object], ...]: ...

    @property
    def end_of_statement(self) -> bool: ...


def _frozen(value: object) -> object:
    # The type goes into the key: True == 1 and hash alike, but serialise
    # as <B> and <I32>.
    if isinstance(value, list | tuple):
        return (type(value), tuple(_frozen(v) for v in value))
    return (type(value), value)


def _key(pool: Any, commands: Sequence[CommandSpec]) -> tuple[object, ...]:
    # Command's serialised form depends on the protocol version the pool
    # negotiated (pypsrp adds the MergeError.. properties from 2.2 on), and
    # CreatePipeline carries the pool's apartment state.
    return (
        pool.protocol_version,
        pool.apartment_state,
        tuple(
            (
                cmd.name,
                tuple((key, _frozen(value)) for key, value in cmd.params),
                cmd.end_of_statement,
            )
            for cmd in commands
        ),
    )


def build_create_pipeline(pool: Any, commands: Sequence[CommandSpec]) -> bytes:
    """The Data of the CREATE_PIPELINE message (MS-PSRP 2.2.2.10) that
    pypsrp 0.9.1's `PowerShell.begin_invoke()` sends for these commands on
    this pool, with no input and its defaults, serialised by pypsrp."""
    ps = PowerShell(pool)
    for cmd in commands:
        ps.add_cmdlet(cmd.name)
        for key, value in cmd.params:
            ps.add_parameter(key, value)
        if cmd.end_of_statement:
            ps.add_statement()
    message = CreatePipeline(
        True,  # no input
        ApartmentState(value=pool.apartment_state),
        RemoteStreamOptions(value=RemoteStreamOptions.ADD_INVOCATION_INFO),
        False,  # add to history
        HostInfo(host=pool.host),
        Pipeline(is_nested=False, cmds=ps.commands, history=None, redirect_err_to_out=False),
        False,  # nested
    )
    element = Serializer().serialize(message)
    if element is None:  # only an optional property serialises to nothing
        raise ValueError("pypsrp serialised CREATE_PIPELINE to nothing")
    # As pypsrp's Message.pack turns the element into the Data field.
    data: bytes = ET.tostring(element, encoding="utf-8", method="xml")
    return data


# Recent CREATE_PIPELINE messages' Data, by pipeline with its ids set
# aside (`_shape`): a few dozen shapes, each a few kB.
_CREATE_PIPELINE = _Built(size=256)


@dataclass(frozen=True)
class _Shape:
    """A command with its ids replaced by stand-ins (a `CommandSpec`)."""

    name: str
    params: tuple[tuple[str, object], ...]
    end_of_statement: bool


# A GUID in text, all lower or all upper case (a VMId, or one in a WQL
# filter: `SystemName='<VMID>'`).
_GUID_IN_TEXT = re.compile(
    r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}|[0-9A-F]{8}(?:-[0-9A-F]{4}){3}-[0-9A-F]{12}"
)


def _stand_in(index: int) -> uuid.UUID:
    return uuid.UUID(int=(0x5E47_1D00 << 96) | index)


_STAND_IN_PREFIX = str(_stand_in(0))[:24]


def _mentions_stand_in(value: object) -> bool:
    if isinstance(value, list | tuple):
        return any(_mentions_stand_in(v) for v in value)
    if isinstance(value, uuid.UUID):
        value = str(value)
    return isinstance(value, str) and _STAND_IN_PREFIX in value.lower()


def _shape(
    commands: Sequence[CommandSpec],
) -> tuple[tuple[_Shape, ...], tuple[tuple[str, str], ...]] | None:
    """The commands with each id replaced by the next stand-in: a Guid
    value by a Guid, a GUID in a text value by the stand-in's text; and
    (stand-in text, id text) in that order. None when a value already
    holds text like a stand-in's, which would be replaced too."""
    ids: list[tuple[str, str]] = []

    def stand_in(found: re.Match[str]) -> str:
        text = str(_stand_in(len(ids)))
        ids.append((text, found.group(0)))
        return text

    shaped: list[_Shape] = []
    for cmd in commands:
        params: list[tuple[str, object]] = []
        for key, value in cmd.params:
            if _mentions_stand_in(value):
                return None
            if isinstance(value, uuid.UUID):
                replaced = _stand_in(len(ids))
                ids.append((str(replaced), str(value)))
                value = replaced
            elif isinstance(value, str):
                value = _GUID_IN_TEXT.sub(stand_in, value)
            params.append((key, value))
        shaped.append(_Shape(cmd.name, tuple(params), cmd.end_of_statement))
    return tuple(shaped), tuple(ids)


def _template(pool: Any, shape: Sequence[_Shape], count: int) -> bytes:
    data = build_create_pipeline(pool, shape)
    for index in range(count):
        # Each stand-in is there, as the value it stands for (twice for the
        # first statement's: in the Pipeline's Cmds and again in ExtraCmds).
        if str(_stand_in(index)).encode() not in data:
            raise ValueError("a stand-in id is not where its value is")
    return data


def create_pipeline(pool: Any, commands: Sequence[CommandSpec]) -> PrebuiltMessage:
    """The CREATE_PIPELINE message for `commands` on `pool`, its Data
    serialised once per distinct pipeline, ids aside (see the module's
    docstring)."""
    if pool.host is not None:  # a local PSHost is state, not a constant
        return PrebuiltMessage(MessageType.CREATE_PIPELINE, build_create_pipeline(pool, commands))
    shaped = _shape(commands)
    if shaped is None:
        return PrebuiltMessage(MessageType.CREATE_PIPELINE, build_create_pipeline(pool, commands))
    shape, ids = shaped
    data = _CREATE_PIPELINE.data(_key(pool, shape), lambda: _template(pool, shape, len(ids)))
    for stand_in, text in ids:
        data = data.replace(stand_in.encode(), text.encode())
    return PrebuiltMessage(MessageType.CREATE_PIPELINE, data)
