"""The PSRP side of one emulated shell: a psrpcore ServerRunspacePool.

    PsrpSession(host_name, runner)   one per WSMan shell (one runspace pool)
      .open(creation_xml_bytes)      SESSION_CAPABILITY + INIT_RUNSPACEPOOL
      .command(pipeline_id, bytes)   CREATE_PIPELINE (first fragment(s))
      .send(pipeline_id|None, bytes) further fragments, pipeline input, host responses
      .receive(pipeline_id|None, timeout) -> Received   long poll
      .stop(pipeline_id)             PS ctrl_c: the pipeline ends Stopped
      .terminate(pipeline_id)        Terminate signal: forget the pipeline
      .close()                       the shell is deleted

psrpcore does no I/O ([MS-PSRP] 3.1/3.2 state machines only): bytes go in
with `receive_data`, events come out of `next_event`, and everything to send
is drained from `data_to_send` into one queue per target (the pool or a
pipeline), which the WSMan Receive for that target empties. All psrpcore calls
happen under one lock per session; each pipeline runs on its own thread so a
hung cmdlet blocks only itself, and Receive waits on a condition.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from psrpcore import PSRPPayload, ServerPipeline, StreamType
from psrpcore._events import (
    CreatePipelineEvent,
    EndOfPipelineInputEvent,
    GetAvailableRunspacesEvent,
    PipelineInputEvent,
    ResetRunspaceStateEvent,
    SetMaxRunspacesEvent,
    SetMinRunspacesEvent,
)
from psrpcore.types import (
    ErrorCategory,
    ErrorCategoryInfo,
    ErrorRecord,
    NETException,
    PSInvocationState,
)

from bot.devtools.emulator.cmdlets import (
    Invocation,
    PipelineFailed,
    PipelineStopped,
    RunContext,
    run_pipeline,
)
from bot.devtools.emulator.messages import ErrorInfo
from bot.devtools.emulator.wirecache import CachingServerPool

PipelineId = uuid.UUID | None
# Builds the cmdlet layer's context for one pipeline run (the host, the live
# hang set, the log), given that pipeline's stop event.
ContextFactory = Callable[[threading.Event], RunContext]
_TERMINAL = (PSInvocationState.Completed, PSInvocationState.Failed, PSInvocationState.Stopped)
_JOIN_SECONDS = 2.0


class UnknownPipeline(KeyError):
    pass


class SessionClosed(Exception):
    pass


@dataclass
class Received:
    chunks: list[bytes]
    done: bool  # the pipeline reached a final state and everything was sent


@dataclass
class _Run:
    pipeline: ServerPipeline
    stop: threading.Event = field(default_factory=threading.Event)
    input: list[Any] = field(default_factory=list)
    thread: threading.Thread | None = None
    started: bool = False


def error_record(info: ErrorInfo) -> ErrorRecord:
    exception = NETException(Message=info.message, HResult=-2146233087)
    exception.PSObject.type_names = [info.exception_type, "System.Exception", "System.Object"]
    return ErrorRecord(
        Exception=exception,
        CategoryInfo=_category(info),
        TargetObject=info.target_object,
        FullyQualifiedErrorId=info.error_id,
    )


def _category(info: ErrorInfo) -> ErrorCategoryInfo:
    return ErrorCategoryInfo(
        Category=getattr(ErrorCategory, info.category, ErrorCategory.NotSpecified),
        Activity=info.activity or None,
        Reason=info.reason,
        TargetName=info.target_name or None,
        # .NET's short type name, as CategoryInfo shows it ("String").
        TargetType="String" if isinstance(info.target_object, str) else None,
    )


class PsrpSession:
    def __init__(self, new_context: ContextFactory) -> None:
        self._new_context = new_context
        self._pool = CachingServerPool()
        self._cond = threading.Condition()
        self._queues: dict[PipelineId, deque[bytes]] = {None: deque()}
        self._runs: dict[uuid.UUID, _Run] = {}
        self._closed = False

    # -- input -------------------------------------------------------------

    def open(self, data: bytes) -> None:
        self._feed(data, None)

    def command(self, pipeline_id: uuid.UUID, data: bytes) -> None:
        with self._cond:
            self._check_open()
            # psrpcore needs the pipeline registered before CREATE_PIPELINE.
            self._runs[pipeline_id] = _Run(ServerPipeline(self._pool, pipeline_id))
            self._queues[pipeline_id] = deque()
        self._feed(data, pipeline_id)

    def send(self, pipeline_id: PipelineId, data: bytes, stream: str) -> None:
        with self._cond:
            if pipeline_id is not None and pipeline_id not in self._runs:
                raise UnknownPipeline(pipeline_id)
        kind = StreamType.prompt_response if stream == "pr" else StreamType.default
        self._feed(data, pipeline_id, kind)

    def _feed(
        self, data: bytes, pipeline_id: PipelineId, kind: StreamType = StreamType.default
    ) -> None:
        with self._cond:
            self._check_open()
            self._pool.receive_data(PSRPPayload(data, kind, pipeline_id))
            while (event := self._pool.next_event()) is not None:
                self._handle(event)
            self._flush()

    def _handle(self, event: Any) -> None:
        if isinstance(event, CreatePipelineEvent):
            run = self._runs[event.pipeline_id]
            # psrpcore stored `event.pipeline` as the metadata; each read of
            # it rebuilds the commands from the CLIXML object.
            metadata = run.pipeline.metadata
            if (metadata if metadata is not None else event.pipeline).no_input:
                self._start(run)
        elif isinstance(event, PipelineInputEvent):
            self._runs[event.pipeline_id].input.append(event.data)
        elif isinstance(event, EndOfPipelineInputEvent):
            self._start(self._runs[event.pipeline_id])
        elif isinstance(event, GetAvailableRunspacesEvent):
            self._pool.runspace_availability_response(event.ci, 1)
        elif isinstance(
            event, SetMaxRunspacesEvent | SetMinRunspacesEvent | ResetRunspaceStateEvent
        ):
            self._pool.runspace_availability_response(event.ci, True)
        # Capability, init, key exchange, host responses: psrpcore answers or
        # nothing is owed.

    # -- pipelines ------------------------------------------------------------

    def _start(self, run: _Run) -> None:
        if run.started:
            return
        run.started = True
        run.pipeline.start()
        metadata = run.pipeline.metadata
        commands = [
            Invocation(
                name=str(c.command_text),
                parameters=list(c.parameters),
                is_script=bool(c.is_script),
                end_of_statement=bool(c.end_of_statement),
            )
            for c in (metadata.commands if metadata is not None else [])
        ]
        run.thread = threading.Thread(
            target=self._execute,
            args=(run, commands),
            name=f"emulator-pipeline-{run.pipeline.pipeline_id}",
            daemon=True,
        )
        run.thread.start()

    def _execute(self, run: _Run, commands: list[Invocation]) -> None:
        sink = _Sink(self, run)
        try:
            run_pipeline(commands, run.input, self._new_context(run.stop), sink, to_wire=_as_is)
        except PipelineStopped:
            return  # stop() already sent the Stopped state
        except PipelineFailed as exc:
            self._finish(run, exc.info)
            return
        except Exception as exc:  # a bug must not hang the client: fail the pipeline
            self._finish(
                run, ErrorInfo(str(exc), "NotSpecified", "EmulatorError", type(exc).__name__)
            )
            return
        self._finish(run, None)

    def _finish(self, run: _Run, failure: ErrorInfo | None) -> None:
        with self._cond:
            if self._closed or run.pipeline.state != PSInvocationState.Running:
                return
            if failure is None:
                run.pipeline.complete()
            else:
                # [MS-PSRP] 2.2.2.21 PIPELINE_STATE: Failed with the error as
                # ExceptionAsErrorRecord; psrpcore has no public "fail".
                run.pipeline._change_state(PSInvocationState.Failed, error_record(failure))
            self._flush()

    def write(self, run: _Run, value: Any, *, error: ErrorInfo | None = None) -> None:
        with self._cond:
            if self._closed or run.pipeline.state != PSInvocationState.Running:
                return
            if error is not None:
                run.pipeline.write_error(
                    error_record(error).Exception,
                    category_info=_category(error),
                    target_object=error.target_object,
                    fully_qualified_error_id=error.error_id,
                )
            else:
                run.pipeline.write_output(self._pool.output_message(value))
            self._flush()

    def stop(self, pipeline_id: uuid.UUID) -> None:
        with self._cond:
            run = self._runs.get(pipeline_id)
            if run is None:
                return
            run.stop.set()
            if run.pipeline.state == PSInvocationState.Running:
                # Sends PIPELINE_STATE Stopped with PipelineStoppedException.
                run.pipeline.stop()
                self._flush()
        self._join(run)

    def terminate(self, pipeline_id: uuid.UUID) -> None:
        self.stop(pipeline_id)
        with self._cond:
            run = self._runs.pop(pipeline_id, None)
            if run is not None and run.pipeline.state in (*_TERMINAL, PSInvocationState.NotStarted):
                run.pipeline.close()
            self._queues.pop(pipeline_id, None)
            self._cond.notify_all()

    # -- output ---------------------------------------------------------------

    def _flush(self) -> None:
        while (payload := self._pool.data_to_send()) is not None:
            queue = self._queues.setdefault(payload.pipeline_id, deque())
            queue.append(payload.data)
        self._cond.notify_all()

    def _done(self, pipeline_id: PipelineId) -> bool:
        if pipeline_id is None:
            return False
        run = self._runs.get(pipeline_id)
        return run is None or run.pipeline.state in _TERMINAL

    def receive(self, pipeline_id: PipelineId, timeout: float) -> Received | None:
        """Waits up to `timeout` for data; None when nothing came (the WSMan
        layer answers with a TimedOut fault, [MS-WSMV] 3.1.4.14)."""
        with self._cond:
            if pipeline_id is not None and pipeline_id not in self._queues:
                raise UnknownPipeline(pipeline_id)

            def ready() -> bool:
                queue = self._queues.get(pipeline_id)
                return self._closed or queue is None or bool(queue) or self._done(pipeline_id)

            self._cond.wait_for(ready, timeout)
            self._check_open()
            queue = self._queues.get(pipeline_id, deque())
            chunks = list(queue)
            queue.clear()
            done = self._done(pipeline_id)
            if not chunks and not done:
                return None
            return Received(chunks, done)

    # -- lifetime -------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise SessionClosed()

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            runs = list(self._runs.values())
            for run in runs:
                run.stop.set()
            self._cond.notify_all()
        for run in runs:
            self._join(run)

    @staticmethod
    def _join(run: _Run) -> None:
        if run.thread is not None and run.thread is not threading.current_thread():
            run.thread.join(_JOIN_SECONDS)

    @property
    def running_threads(self) -> list[threading.Thread]:
        return [r.thread for r in self._runs.values() if r.thread and r.thread.is_alive()]


def _as_is(value: Any) -> Any:
    # The session's pool serializes HvObjects itself (wirecache.CachingServerPool).
    return value


class _Sink:
    def __init__(self, session: PsrpSession, run: _Run) -> None:
        self._session = session
        self._run = run

    def output(self, value: Any) -> None:
        self._session.write(self._run, value)

    def error(self, info: ErrorInfo) -> None:
        self._session.write(self._run, None, error=info)
