"""A WinRM session without the network: the client's pipelines run on the
emulator's command table in this process.

    InProcessSession(host)   .run(pipeline) -> Outcome, .close(), .stats, .is_open

Why it exists: the simulator backend (demo mode, the fast tests) must be the
real client (`WinRMHost`, its command builders, its mapping of answers and
errors) talking to a modelled host, not a second client with beliefs of its
own. So each `Cmd` becomes the emulator's `Invocation` with its parameter
values as pypsrp serializes them and psrpcore reads them, and everything the
host writes back (output objects, error records, the failed pipeline's
state) travels as a PSRP message: psrpcore serializes it and builds the
message, pypsrp unpacks it (`Message.unpack`) exactly as from a WinRM
receive, and it lands where pypsrp's PowerShell puts it. Only HTTP, WSMan,
authentication and fragmenting are skipped; `bot.devtools.emulator` serves the
same command table over all of those.

What it refuses to do: hand the client anything that did not go through
that wire format, or keep a deadline (a modelled host answers at once; the
faults that need one live in the network emulator).
"""

from __future__ import annotations

import logging
import threading
import uuid
import xml.etree.ElementTree as ET
from typing import Any

from psrpcore._payload import create_message
from psrpcore.types import (
    PipelineState,
    PSCryptoProvider,
    PSInvocationState,
    PSRPMessageType,
    deserialize,
    serialize,
)
from pypsrp.complex_objects import ObjectMeta
from pypsrp.complex_objects import PSInvocationState as ClientInvocationState
from pypsrp.messages import Message, MessageType
from pypsrp.serializer import Serializer

from bot.devtools.emulator.cmdlets import (
    Invocation,
    PipelineFailed,
    PipelineStopped,
    RunContext,
    run_pipeline,
)
from bot.devtools.emulator.log import EmulatorLog, LogEntry
from bot.devtools.emulator.messages import ErrorInfo
from bot.devtools.emulator.psrp import error_record
from bot.devtools.hostmodel.host import ModelHost
from bot.hyperv.errors import HyperVError
from bot.hyperv.winrm.pool import Outcome, Pipeline, SessionStats, describe

log = logging.getLogger(__name__)

# One runspace pool id per session, as a server would have; pipelines get
# their own, as pypsrp gives them.
_CIPHER = PSCryptoProvider()


class _DiscardLog(EmulatorLog):
    """The command log of a session nobody reads: keeps nothing."""

    def append(self, entry: LogEntry) -> None:
        pass


class _Received:
    """What pypsrp's PowerShell keeps of one pipeline's messages (output,
    the error stream, had_errors), filled by the same rules."""

    def __init__(self) -> None:
        self.output: list[Any] = []
        self.errors: list[Any] = []
        self.had_errors = False

    def take(self, message: Message) -> None:
        data: Any = message.data
        if message.message_type == MessageType.PIPELINE_OUTPUT:
            self.output.append(data.data)
        elif message.message_type == MessageType.ERROR_RECORD:
            self.errors.append(data)
        elif message.message_type == MessageType.PIPELINE_STATE:
            if data.error_record is not None:
                self.errors.append(data.error_record)
            if data.state == ClientInvocationState.FAILED:
                self.had_errors = True


class _WireSink:
    """The emulator's sink: every value leaves as a PSRP message and is
    read back by the client's library."""

    def __init__(self, pool_id: uuid.UUID, pipeline_id: uuid.UUID) -> None:
        self._pool_id = pool_id
        self._pipeline_id = pipeline_id
        self._serializer = Serializer()
        self.received = _Received()

    def _send(self, message_type: PSRPMessageType, value: Any) -> None:
        data = ET.tostring(serialize(value, _CIPHER), encoding="utf-8", method="xml")
        raw = create_message(False, message_type, data, self._pool_id, self._pipeline_id)
        self.received.take(Message.unpack(raw, self._serializer))

    def output(self, value: Any) -> None:
        self._send(PSRPMessageType.PipelineOutput, value)

    def error(self, info: ErrorInfo) -> None:
        self._send(PSRPMessageType.ErrorRecord, error_record(info))

    def finished(self, failure: ErrorInfo | None) -> None:
        state = PipelineState(
            PipelineState=int(
                PSInvocationState.Completed if failure is None else PSInvocationState.Failed
            )
        )
        if failure is not None:
            state.ExceptionAsErrorRecord = error_record(failure)
        self._send(PSRPMessageType.PipelineState, state)


def _argument(value: object) -> Any:
    """A parameter value as the host receives it: pypsrp's CLIXML, read by psrpcore."""
    element = Serializer().serialize(value, ObjectMeta())
    assert element is not None
    return deserialize(element, _CIPHER)


def invocations(pipeline: Pipeline) -> list[Invocation]:
    """The commands as the emulator receives them from a client."""
    return [
        Invocation(
            name=cmd.name,
            parameters=[(name, _argument(value)) for name, value in cmd.params],
            end_of_statement=cmd.end_of_statement,
        )
        for cmd in pipeline
    ]


class InProcessSession:
    """What `WinRMHost` needs of a session (`run`, `close`, `stats`,
    `is_open`), on one modelled host. Thread-safe: the model serializes
    its own writers, as a host does."""

    def __init__(self, host: ModelHost, *, log: EmulatorLog | None = None) -> None:
        self._host = host
        self._log = log if log is not None else _DiscardLog()
        self._pool_id = uuid.uuid4()
        self._closed = False
        self._guard = threading.Lock()
        self.stats = SessionStats()

    def __repr__(self) -> str:
        return f"InProcessSession({self._host.name!r})"

    @property
    def is_open(self) -> bool:
        return not self._closed

    def run(self, pipeline: Pipeline) -> Outcome:
        if not pipeline:
            raise ValueError("an empty pipeline")
        if self._closed:
            raise HyperVError(
                f"{describe(pipeline)} on {self._host.name}: the connection was closed",
                host=self._host.name,
            )
        with self._guard:
            self.stats.calls += 1
        sink = _WireSink(self._pool_id, uuid.uuid4())
        context = RunContext(
            host=self._host,
            stop=threading.Event(),
            hang=frozenset,
            log=self._log,
        )
        failure: ErrorInfo | None = None
        try:
            run_pipeline(invocations(pipeline), [], context, sink)
        except PipelineFailed as exc:
            failure = exc.info
        except PipelineStopped:  # nothing here stops a pipeline
            failure = ErrorInfo("The pipeline has been stopped.", "OperationStopped",
                                "PipelineStopped", "PipelineStoppedException")  # fmt: skip
        except Exception as exc:
            # As the network emulator does: a bug fails the pipeline, never the caller.
            log.exception("%s: the modelled host failed", self._host.name)
            failure = ErrorInfo(str(exc), "NotSpecified", "EmulatorError", type(exc).__name__)
        sink.finished(failure)
        received = sink.received
        return Outcome(received.output, received.errors, received.had_errors)

    def close(self, *, wait: bool = True) -> None:
        # A modelled call ends at once: there is nothing to wait for.
        self._closed = True
