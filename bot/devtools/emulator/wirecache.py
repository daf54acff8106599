"""The emulated shell's psrpcore runspace pool, with two CPU shortcuts.

    CachingServerPool()          a psrpcore ServerRunspacePool
      .output_message(value)     what to hand `ServerPipeline.write_output` for one object

Neither changes a byte on the wire; both skip work psrpcore would redo with
the same result (tests/test_emulator_wirecache.py compares them with the
uncached path):

- Output objects. psrpcore turns every output object into a PSObject, an
  ElementTree and then CLIXML text, which was most of the emulator's CPU in
  a fleet sweep (bench/fleet_sweep.py). Objects of one shape (type names,
  property names and value types; RefIds restart at 0 in every message,
  [MS-PSRP] 2.2.5.2.1) differ only in the text of some values, so psrpcore
  serializes one probe of each shape, with a unique stand-in for each such
  value, and the object's CLIXML is that text with each stand-in replaced by
  the value's text, made by psrpcore's own formatters (strings, GUIDs,
  DateTimes, sized integers, the ToString) and escaped as ElementTree
  escapes element text. Every other value (booleans, plain integers, lists,
  empty strings, $null) is part of the shape, so it is psrpcore's text.
- Incoming session-setup and pipeline messages. Every client of a fleet
  sends the same INIT_RUNSPACEPOOL and, for the same command,
  CREATE_PIPELINE CLIXML; only the message header (pool and pipeline ids)
  differs. The deserialized object of the same CLIXML bytes is kept and
  shared, read-only: psrpcore and the cmdlet layer only read it (the
  pipeline's commands are rebuilt from it on every `event.pipeline`).

Both caches are bounded and cleared when full; a value that cannot be keyed
exactly (a type the key does not know) simply takes the uncached path.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from psrpcore import PSRPCoreError, ServerRunspacePool, StreamType
from psrpcore._events import PSRPEvent
from psrpcore._payload import PSRPMessage, create_message
from psrpcore.types import (
    ApplicationPrivateData,
    PipelineState,
    PSEnumBase,
    PSInt64,
    PSObject,
    PSRPMessageType,
    PSUInt16,
    PSUInt64,
    PSVersion,
    RunspacePoolStateMsg,
    SessionCapability,
    deserialize,
    serialize,
)
from psrpcore.types._serializer import _serialize_datetime, _serialize_string

from bot.devtools.emulator.objects import HvObject, _at_depth_zero, to_remoting

# Messages that are the same CLIXML from every client of a fleet. Pipeline
# input, host responses and key exchange are left alone: they differ per
# call or carry secrets.
_SHARED_INPUT = frozenset(
    {
        PSRPMessageType.SessionCapability,
        PSRPMessageType.InitRunspacePool,
        PSRPMessageType.CreatePipeline,
    }
)
# psrpcore's own messages that are the same CLIXML for the same property
# values: the pool's and a pipeline's state (an error record, which _key
# declines, takes psrpcore's path) and the pool's SESSION_CAPABILITY and
# APPLICATION_PRIVATE_DATA answers. Their ToPSObjectForRemoting, where they
# have one, reads those properties and nothing else (psrpcore.types._psrp).
_FIXED_MESSAGES = frozenset(
    {PipelineState, RunspacePoolStateMsg, SessionCapability, ApplicationPrivateData}
)
MAX_ENTRIES = 16_384
_SCALARS = (str, int, uuid.UUID, dt.timedelta, type(None))
# Types _at_depth_zero returns unchanged; checked by type() first because
# isinstance() on a psrpcore object goes through its slow __getattribute__.
_AS_THEY_ARE = frozenset(
    {str, bool, int, uuid.UUID, dt.datetime, type(None), PSUInt64, PSInt64, PSUInt16}
)
# psrpcore's sized integers whose text is str(int(value)) in an element
# named by the type (psrpcore.types._serializer, "Integer types").
_SIZED = (PSUInt64, PSInt64, PSUInt16)


class _Uncacheable(Exception):
    pass


def _key(value: Any) -> Any:
    """A hashable key that two values share only if psrpcore serializes them
    to the same text. `type` is part of every key: 1, True, 1.0 and an enum
    member of value 1 are equal in Python and differ on the wire."""
    kind = type(value)
    if isinstance(value, PSObject) and not isinstance(value, PSEnumBase) and _has_properties(value):
        raise _Uncacheable(kind.__name__)  # an extended primitive: its properties are not keyed
    if isinstance(value, list | tuple):
        return (kind, tuple(_key(v) for v in value))
    if isinstance(value, dict):
        return (kind, tuple((_key(k), _key(v)) for k, v in value.items()))
    if isinstance(value, PSVersion):
        return (kind, str(value))  # its element text (psrpcore's "Naive strings")
    if isinstance(value, dt.datetime):
        # Equal instants in other time zones compare equal; the text differs.
        return (kind, value.isoformat(), value.fold)
    if isinstance(value, float):
        return (kind, repr(value))  # 0.0 == -0.0
    if isinstance(value, _SCALARS):
        # int covers bool, psrpcore's sized integers and its enums (PSEnumBase).
        return (kind, value)
    raise _Uncacheable(kind.__name__)


def _hole_text(value: Any) -> str | None:
    """The element text psrpcore writes for a value whose text is all that
    varies within a shape, or None for a value that belongs to the shape.
    An empty string is part of the shape: its element is written `<S />`."""
    kind = type(value)
    if kind is str:
        if not value:
            return None
        if value.isascii() and value.isprintable() and "_x" not in value and "_X" not in value:
            # Nothing for _serialize_string to encode (C0/C1 controls,
            # astral characters, "_x"), without its two regex passes.
            return escape(value)
        return escape(_serialize_string(value))
    if kind is uuid.UUID:
        return str(value)
    if kind is dt.datetime:
        return escape(_serialize_datetime(value))
    if kind in _SIZED:
        if _has_properties(value):
            raise _Uncacheable(kind.__name__)
        return str(int(value))
    return None


def _has_properties(value: Any) -> bool:
    # One with properties of its own goes out as <Obj> (an extended primitive).
    meta = value.PSObject
    return bool(meta.adapted_properties or meta.extended_properties)


def _stand_in(value: Any, index: int) -> Any:
    """A value of the same type and element whose text occurs nowhere else."""
    kind = type(value)
    if kind is str:
        return f"WireCacheHole{index:04d}q"
    if kind is uuid.UUID:
        return uuid.UUID(int=(0x5E4A11D << 100) + index)
    if kind is dt.datetime:
        return dt.datetime(1601, 2, 3, 4, 5, 6, 700000 + index, tzinfo=dt.UTC)
    return kind(55_555 + index)


@dataclass(frozen=True)
class _Template:
    parts: tuple[bytes, ...]  # len(holes) + 1 pieces of psrpcore's text
    holes: tuple[int, ...]  # which value's text goes after parts[i]


def _shape(value: HvObject) -> tuple[Any, list[str]]:
    """(the shape's key, the varying texts in a fixed order); the texts of
    the properties as to_remoting gives them to psrpcore."""
    texts: list[str] = []
    bags = []
    for bag in (value.props, value.notes):
        shape = []
        for name, prop in bag.items():
            wire = prop if type(prop) in _AS_THEY_ARE else _at_depth_zero(prop)
            text = _hole_text(wire)
            if text is None:
                shape.append((name, _key(wire)))
            else:
                shape.append((name, type(wire)))
                texts.append(text)
        bags.append(tuple(shape))
    if value.to_string:
        # ToString is written as it is, escaped but not _serialize_string'd.
        texts.append(escape(value.to_string))
    return (value.type_names, bool(value.to_string), *bags), texts


def _probe(value: HvObject) -> tuple[HvObject, list[bytes]]:
    """The same shape with a stand-in for every varying text, and those
    stand-ins' texts, in _shape's order."""
    marks: list[bytes] = []
    bags: list[dict[str, Any]] = []
    for bag in (value.props, value.notes):
        probed: dict[str, Any] = {}
        for name, prop in bag.items():
            wire = _at_depth_zero(prop)
            if _hole_text(wire) is None:
                probed[name] = prop
            else:
                stand_in = _stand_in(wire, len(marks))
                probed[name] = stand_in
                marks.append(_require(_hole_text(stand_in)).encode())
        bags.append(probed)
    to_string = value.to_string
    if to_string:
        to_string = _stand_in("", len(marks))
        marks.append(to_string.encode())
    probe = HvObject(type_names=value.type_names, props=bags[0], notes=bags[1], to_string=to_string)
    return probe, marks


def _require(text: str | None) -> str:
    assert text is not None
    return text


def _template(clixml: bytes, marks: list[bytes]) -> _Template | None:
    """psrpcore's text of a probe, cut at each stand-in; None when a stand-in
    is not found exactly once (then the shape is never cached)."""
    found = []
    for index, mark in enumerate(marks):
        if clixml.count(mark) != 1:
            return None
        found.append((clixml.index(mark), index, len(mark)))
    found.sort()
    parts, at = [], 0
    for position, _, length in found:
        parts.append(clixml[at:position])
        at = position + length
    parts.append(clixml[at:])
    return _Template(tuple(parts), tuple(index for _, index, _ in found))


def _message_key(message: Any, message_type: PSRPMessageType | None) -> Any:
    """A key for one of psrpcore's own messages whose properties are all
    scalars (the pool's and a pipeline's state changes without an error), or
    None. Such a message is the same CLIXML every time: a pipeline's state
    went out as a fresh serialization three times per listing."""
    kind = type(message)
    if message_type is not None or kind not in _FIXED_MESSAGES:
        return None
    meta = message.PSObject
    try:
        values = tuple(
            (prop.name, _key(prop.get_value(message)))
            for prop in (*meta.adapted_properties, *meta.extended_properties)
        )
    except _Uncacheable:
        return None
    if _shares_a_container(message):
        return None  # psrpcore writes a repeated object as <Ref>: not in the key
    return (kind, tuple(meta.type_names), meta.to_string, values)


def _shares_a_container(message: Any) -> bool:
    seen: set[int] = set()
    pending = [
        prop.get_value(message)
        for prop in (*message.PSObject.adapted_properties, *message.PSObject.extended_properties)
    ]
    while pending:
        value = pending.pop()
        if isinstance(value, dict | list | tuple):
            if id(value) in seen:
                return True
            seen.add(id(value))
            pending.extend(value.values() if isinstance(value, dict) else value)
    return False


@dataclass(frozen=True)
class SerializedOutput:
    """An output object's CLIXML, ready for the message psrpcore would build."""

    clixml: bytes


_templates: dict[Any, _Template | None] = {}
_messages: dict[Any, tuple[PSRPMessageType, bytes]] = {}
_pipelines: dict[tuple[PSRPMessageType, bytes], Any] = {}
_inputs: dict[tuple[PSRPMessageType, bytes], Any] = {}
_lock = threading.Lock()


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    with _lock:
        if len(cache) >= MAX_ENTRIES:
            cache.clear()
        cache[key] = value


def clear() -> None:
    """Forget every cached message (tests)."""
    with _lock:
        _templates.clear()
        _messages.clear()
        _pipelines.clear()
        _inputs.clear()


class CachingServerPool(ServerRunspacePool):
    def output_message(self, value: Any) -> Any:
        """The argument for `write_output`: an HvObject's CLIXML from its
        shape's template, or the psrpcore value of anything else."""
        if not isinstance(value, HvObject):
            return to_remoting(value)
        try:
            key, texts = _shape(value)
            encoded = [text.encode("utf-8") for text in texts]
        except (_Uncacheable, UnicodeEncodeError):
            # A type the key does not know, or a lone surrogate (ElementTree
            # writes it as a character reference).
            return to_remoting(value)
        if key not in _templates:
            probe, marks = _probe(value)
            _remember(_templates, key, _template(self._serialize(to_remoting(probe)), marks))
        template = _templates.get(key)
        if template is None:
            return to_remoting(value)
        pieces = [template.parts[0]]
        for hole, part in zip(template.holes, template.parts[1:], strict=True):
            pieces.append(encoded[hole])
            pieces.append(part)
        return SerializedOutput(b"".join(pieces))

    def _serialize(self, value: Any) -> bytes:
        # psrpcore's RunspacePool.prepare_message, up to the CLIXML bytes.
        element = serialize(
            value,
            self._cipher,
            our_capability=self.our_capability,
            their_capability=self.their_capability,
        )
        data: bytes = ElementTree.tostring(element, encoding="utf-8", method="xml")
        return data

    def prepare_message(
        self,
        message: Any,
        message_type: PSRPMessageType | None = None,
        pipeline_id: uuid.UUID | None = None,
        stream_type: StreamType = StreamType.default,
    ) -> None:
        if isinstance(message, SerializedOutput):
            kind = message_type if message_type is not None else PSRPMessageType.PipelineOutput
            clixml = message.clixml
        else:
            key = _message_key(message, message_type)
            if key is None:
                super().prepare_message(message, message_type, pipeline_id, stream_type)
                return
            cached = _messages.get(key)
            if cached is None:
                cached = (PSRPMessageType.get_message_id(type(message)), self._serialize(message))
                _remember(_messages, key, cached)
            kind, clixml = cached
        # The rest of psrpcore's prepare_message, with the CLIXML already made.
        data = create_message(False, kind, clixml, self.runspace_pool_id, pipeline_id)
        self._send_buffer.append(
            PSRPMessage(
                kind,
                bytearray(data),
                self.runspace_pool_id,
                pipeline_id,
                self._fragment_counter,
                stream_type,
            )
        )

    def _process_message(self, message: PSRPMessage) -> PSRPEvent[Any, Any]:
        data = bytes(message.data)
        kind = message.message_type
        if kind not in _SHARED_INPUT or b"<SS" in data:
            # A SecureString is decrypted with this pool's session key.
            event: PSRPEvent[Any, Any] = super()._process_message(message)
            return event
        key = (kind, data)
        ps_object = _inputs.get(key)
        if ps_object is None:
            # psrpcore's RunspacePool._process_message from here on.
            ps_object = deserialize(
                ElementTree.fromstring(data),  # noqa: S314 - loopback test endpoint
                cipher=self._cipher,
                our_capability=self.our_capability,
                their_capability=self.their_capability,
            )
            _remember(_inputs, key, ps_object)
        event = PSRPEvent.create(kind, ps_object, message.runspace_pool_id, message.pipeline_id)
        if kind == PSRPMessageType.CreatePipeline:
            self._create_pipeline(key, event)
            return event
        process = getattr(self, f"_process_{kind.name}", None)
        if process is not None:
            process(event)
        return event

    def _create_pipeline(self, key: tuple[PSRPMessageType, bytes], event: Any) -> None:
        """psrpcore's _process_CreatePipeline, with the pipeline's metadata
        (`event.pipeline`, rebuilt from the CLIXML object on every read) made
        once per CLIXML and shared, read-only, like that object."""
        pipeline = self.pipeline_table.get(event.pipeline_id)
        if pipeline is None:
            raise PSRPCoreError(f"Failed to find pipeline for incoming event {event.pipeline_id!s}")
        metadata = _pipelines.get(key)
        if metadata is None:
            metadata = event.pipeline
            _remember(_pipelines, key, metadata)
        pipeline.metadata = metadata
