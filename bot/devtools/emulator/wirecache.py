"""The emulated shell's psrpcore runspace pool, with two CPU shortcuts.

    CachingServerPool()          a psrpcore ServerRunspacePool
      .output_message(value)     what to hand `ServerPipeline.write_output` for one object

Neither changes a byte on the wire; both skip work psrpcore would redo with
the same result (tests/test_emulator_wirecache.py compares them with the
uncached path):

- Output objects. psrpcore turns every output object into a PSObject, an
  ElementTree and then CLIXML text, which was most of the emulator's CPU in
  a fleet sweep (bench/fleet_sweep.py). An `HvObject`'s CLIXML depends only
  on its type names, ToString and property names, types and values (RefIds
  restart at 0 in every message, [MS-PSRP] 2.2.5.2.1), so the text is kept,
  keyed by exactly those, and queued as psrpcore's `prepare_message` would.
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

from psrpcore import ServerRunspacePool, StreamType
from psrpcore._events import PSRPEvent
from psrpcore._payload import PSRPMessage, create_message
from psrpcore.types import PSRPMessageType, deserialize, serialize

from bot.devtools.emulator.objects import HvObject, to_remoting

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
MAX_ENTRIES = 16_384
_SCALARS = (str, int, uuid.UUID, dt.timedelta, type(None))


class _Uncacheable(Exception):
    pass


def _key(value: Any) -> Any:
    """A hashable key that two values share only if psrpcore serializes them
    to the same text. `type` is part of every key: 1, True, 1.0 and an enum
    member of value 1 are equal in Python and differ on the wire."""
    kind = type(value)
    if isinstance(value, HvObject):
        return (
            HvObject,
            value.type_names,
            value.to_string,
            tuple((name, _key(v)) for name, v in value.props.items()),
            tuple((name, _key(v)) for name, v in value.notes.items()),
        )
    if isinstance(value, list | tuple):
        return (kind, tuple(_key(v) for v in value))
    if isinstance(value, dt.datetime):
        # Equal instants in other time zones compare equal; the text differs.
        return (kind, value.isoformat(), value.fold)
    if isinstance(value, float):
        return (kind, repr(value))  # 0.0 == -0.0
    if isinstance(value, _SCALARS):
        # int covers bool, psrpcore's sized integers and its enums (PSEnumBase).
        return (kind, value)
    raise _Uncacheable(kind.__name__)


@dataclass(frozen=True)
class SerializedOutput:
    """An output object's CLIXML, ready for the message psrpcore would build."""

    clixml: bytes


_outputs: dict[Any, bytes] = {}
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
        _outputs.clear()
        _inputs.clear()


class CachingServerPool(ServerRunspacePool):
    def output_message(self, value: Any) -> Any:
        """The argument for `write_output`: the cached CLIXML of an HvObject,
        or the psrpcore value of anything else."""
        if not isinstance(value, HvObject):
            return to_remoting(value)
        try:
            key = _key(value)
        except _Uncacheable:
            return to_remoting(value)
        clixml = _outputs.get(key)
        if clixml is None:
            clixml = self._serialize(to_remoting(value))
            _remember(_outputs, key, clixml)
        return SerializedOutput(clixml)

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
        if not isinstance(message, SerializedOutput):
            super().prepare_message(message, message_type, pipeline_id, stream_type)
            return
        # The rest of psrpcore's prepare_message, with the CLIXML already made.
        kind = message_type if message_type is not None else PSRPMessageType.PipelineOutput
        data = create_message(False, kind, message.clixml, self.runspace_pool_id, pipeline_id)
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
        process = getattr(self, f"_process_{kind.name}", None)
        if process is not None:
            process(event)
        return event
