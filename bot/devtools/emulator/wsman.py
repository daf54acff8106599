"""A hand-written WSMan layer: the Windows Remote Shell actions PSRP rides on.

    WSManService(machine, new_session).handle(xml_bytes) -> (http_status, xml_bytes)

Implements what pypsrp's RunspacePool / PowerShell send ([MS-WSMV] 3.1.4):
Create (a shell whose creationXml carries the first PSRP fragments, 3.1.4.5),
Command (CommandLine with the CREATE_PIPELINE fragment as Arguments, 3.1.4.11),
Send (stdin / pr streams, 3.1.4.13), Receive (long poll until data or
OperationTimeout, then the w:TimedOut fault pypsrp retries, 3.1.4.14), Signal
(Terminate, and PowerShell's `powershell/signal/crtl_c` that stops a
pipeline, 3.1.4.12), Delete (3.1.4.6) and Get (the shell's state, 3.1.4.7,
used by pypsrp's `RunspacePool.is_alive`). Anything else is a SOAP fault
shaped like Windows' (`s:Fault` with a `w:` subcode and a `WSManFault`
detail whose Code pypsrp turns into `WSManFaultError.code`).
"""

from __future__ import annotations

import base64
import re
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.devtools.emulator.psrp import PsrpSession, SessionClosed, UnknownPipeline

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "wsman": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "wsmanfault": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "wst": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "pwsh": "http://schemas.microsoft.com/powershell",
    "xml": "http://www.w3.org/XML/1998/namespace",
}
_TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
_SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
CREATE, DELETE, GET = f"{_TRANSFER}/Create", f"{_TRANSFER}/Delete", f"{_TRANSFER}/Get"
COMMAND, SEND, RECEIVE, SIGNAL = (f"{_SHELL}/{a}" for a in ("Command", "Send", "Receive", "Signal"))
_PS_RESOURCE = "http://schemas.microsoft.com/powershell/"
_STATE_RUNNING = f"{_SHELL}/CommandState/Running"
_STATE_DONE = f"{_SHELL}/CommandState/Done"
_SIGNAL_TERMINATE = f"{_SHELL}/signal/terminate"
# pypsrp sends "powershell/signal/ctrl_c"; Windows PowerShell's own client
# sends the misspelt "powershell/signal/crtl_c" ([MS-PSRP] 3.1.5.3.13).
_SIGNAL_PS_STOP = ("powershell/signal/ctrl_c", "powershell/signal/crtl_c")
_DURATION = re.compile(r"^PT(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?$")
_DEFAULT_TIMEOUT = 60.0

for _prefix, _uri in NS.items():
    if _prefix != "xml":
        ET.register_namespace(_prefix, _uri)


class WSManFault(Exception):
    """A SOAP fault ([MS-WSMV] 2.2.4.43 WSManFault, codes from winerror.h)."""

    def __init__(self, code: int, subcode: str, message: str, *, status: int = 500) -> None:
        super().__init__(message)
        self.code = code
        self.subcode = subcode
        self.message = message
        self.status = status


def timed_out() -> WSManFault:
    # ERROR_WSMAN_OPERATION_TIMEDOUT 0x80338029 = 2150858793: pypsrp's
    # poll_invoke swallows exactly this code and polls again.
    return WSManFault(
        0x80338029,
        "w:TimedOut",
        "The WS-Management service cannot complete the operation within the time specified in "
        "OperationTimeout.",
    )


def shell_not_found(shell_id: str) -> WSManFault:
    # ERROR_WSMAN_INVALID_SELECTORS-family 0x8033805B: what Windows returns
    # for a deleted shell (pypsrp's is_alive treats it as closed).
    return WSManFault(
        0x8033805B,
        "w:InvalidSelectors",
        f"The request for the Windows Remote Shell with ShellId {shell_id} failed because the "
        "shell was not found on the server. Possible causes are: the specified ShellId is "
        "incorrect or the shell no longer exists on the server. Provide the correct ShellId or "
        "create a new shell and try the operation again.",
    )


def _bad_request(text: str) -> WSManFault:
    # ERROR_WSMAN_SCHEMA_VALIDATION_ERROR-style sender fault (modelled text).
    return WSManFault(0x8033801A, "w:SchemaValidationError", text, status=400)


def _unsupported(action: str) -> WSManFault:
    return WSManFault(
        0x80338104,
        "a:ActionNotSupported",
        f"The WS-Management service does not support the specified action: {action}.",
    )


@dataclass
class WSManRequest:
    """The header fields a shell action needs ([MS-WSMV] 2.2.4)."""

    action: str
    resource_uri: str
    message_id: str
    selectors: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    operation_timeout: float = _DEFAULT_TIMEOUT
    body: ET.Element | None = None

    @property
    def shell_id(self) -> str | None:
        return self.selectors.get("ShellId")


def _text(root: ET.Element, path: str) -> str:
    found = root.find(path, NS)
    return (found.text or "").strip() if found is not None else ""


def parse_duration(text: str) -> float:
    match = _DURATION.match(text.strip())
    if not match or not any(match.groups()):
        raise _bad_request(f"The OperationTimeout value {text!r} is not valid.")
    return float(match.group(1) or 0) * 60 + float(match.group(2) or 0)


def parse_request(data: bytes) -> WSManRequest:
    try:
        root = ET.fromstring(data)  # noqa: S314 - loopback test endpoint, trusted peer
    except ET.ParseError as exc:
        raise _bad_request(f"The request is not well-formed XML: {exc}") from None
    header = root.find("s:Header", NS)
    if header is None:
        raise _bad_request("The SOAP envelope has no Header.")
    request = WSManRequest(
        action=_text(header, "wsa:Action"),
        resource_uri=_text(header, "wsman:ResourceURI"),
        message_id=_text(header, "wsa:MessageID"),
    )
    for selector in header.findall("wsman:SelectorSet/wsman:Selector", NS):
        request.selectors[selector.get("Name", "")] = (selector.text or "").strip()
    for option in header.findall("wsman:OptionSet/wsman:Option", NS):
        request.options[option.get("Name", "")] = (option.text or "").strip()
    timeout = _text(header, "wsman:OperationTimeout")
    if timeout:
        request.operation_timeout = parse_duration(timeout)
    body = root.find("s:Body", NS)
    request.body = body[0] if body is not None and len(body) else None
    return request


def _envelope(action: str, relates_to: str, body: ET.Element | None = None) -> bytes:
    envelope = ET.Element(f"{{{NS['s']}}}Envelope")
    header = ET.SubElement(envelope, f"{{{NS['s']}}}Header")
    ET.SubElement(header, f"{{{NS['wsa']}}}Action").text = action
    ET.SubElement(header, f"{{{NS['wsa']}}}MessageID").text = f"uuid:{uuid.uuid4()}".upper()
    ET.SubElement(
        header, f"{{{NS['wsa']}}}To"
    ).text = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
    ET.SubElement(header, f"{{{NS['wsa']}}}RelatesTo").text = relates_to
    body_element = ET.SubElement(envelope, f"{{{NS['s']}}}Body")
    if body is not None:
        body_element.append(body)
    data: bytes = ET.tostring(envelope, encoding="utf-8", xml_declaration=False)
    return data


def fault_envelope(fault: WSManFault, relates_to: str, machine: str) -> bytes:
    s, f = NS["s"], NS["wsmanfault"]
    element = ET.Element(f"{{{s}}}Fault")
    code = ET.SubElement(element, f"{{{s}}}Code")
    sender = fault.status == 400
    ET.SubElement(code, f"{{{s}}}Value").text = "s:Sender" if sender else "s:Receiver"
    subcode = ET.SubElement(code, f"{{{s}}}Subcode")
    ET.SubElement(subcode, f"{{{s}}}Value").text = fault.subcode
    reason = ET.SubElement(element, f"{{{s}}}Reason")
    ET.SubElement(reason, f"{{{s}}}Text", {f"{{{NS['xml']}}}lang": "en-US"}).text = fault.message
    detail = ET.SubElement(element, f"{{{s}}}Detail")
    wsman_fault = ET.SubElement(
        detail, f"{{{f}}}WSManFault", {"Code": str(fault.code), "Machine": machine}
    )
    ET.SubElement(wsman_fault, f"{{{f}}}Message").text = fault.message
    return _envelope("http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", relates_to, element)


def _rsp(tag: str) -> str:
    return f"{{{NS['rsp']}}}{tag}"


def _b64(text: str | None) -> bytes:
    try:
        return base64.b64decode((text or "").strip(), validate=True)
    except ValueError:
        raise _bad_request("A stream does not hold valid base64 data.") from None


@dataclass
class _Shell:
    shell_id: str
    resource_uri: str
    session: PsrpSession


class WSManService:
    """The shells of one emulated host; thread-safe (one HTTP thread per connection)."""

    def __init__(self, machine: str, new_session: Callable[[], PsrpSession]) -> None:
        self._machine = machine
        self._new_session = new_session
        self._shells: dict[str, _Shell] = {}
        self._lock = threading.Lock()

    def handle(self, data: bytes) -> tuple[int, bytes]:
        relates_to = ""
        try:
            request = parse_request(data)
            relates_to = request.message_id
            action, body = self._dispatch(request)
            return 200, _envelope(action, relates_to, body)
        except WSManFault as fault:
            return fault.status, fault_envelope(fault, relates_to, self._machine)

    def _dispatch(self, request: WSManRequest) -> tuple[str, ET.Element | None]:
        handlers = {
            CREATE: self._create,
            COMMAND: self._command,
            SEND: self._send,
            RECEIVE: self._receive,
            SIGNAL: self._signal,
            DELETE: self._delete,
            GET: self._get,
        }
        handler = handlers.get(request.action)
        if handler is None:
            raise _unsupported(request.action)
        return f"{request.action}Response", handler(request)

    def _shell(self, request: WSManRequest) -> _Shell:
        shell_id = (request.shell_id or "").upper()
        with self._lock:
            shell = self._shells.get(shell_id)
        if shell is None:
            raise shell_not_found(shell_id)
        return shell

    def _create(self, request: WSManRequest) -> ET.Element:
        body = request.body
        if body is None or body.tag != _rsp("Shell"):
            raise _bad_request("Create needs an rsp:Shell body.")
        if not request.resource_uri.lower().startswith(_PS_RESOURCE):
            # Only PowerShell configurations are emulated, not cmd shells.
            raise WSManFault(
                0x80338000,
                "w:InvalidResourceURI",
                f"The WS-Management service cannot process the request. The resource URI "
                f"({request.resource_uri}) was not found in the WS-Management catalog.",
            )
        shell_id = (body.get("ShellId") or str(uuid.uuid4())).upper()
        creation = body.find("pwsh:creationXml", NS)
        session = self._new_session()
        try:
            session.open(_b64(creation.text if creation is not None else ""))
        except Exception:
            session.close()
            raise
        with self._lock:
            self._shells[shell_id] = _Shell(shell_id, request.resource_uri, session)
        created = ET.Element(f"{{{NS['wst']}}}ResourceCreated")
        ET.SubElement(created, f"{{{NS['wsa']}}}Address").text = f"http://{self._machine}/wsman"
        params = ET.SubElement(created, f"{{{NS['wsa']}}}ReferenceParameters")
        ET.SubElement(params, f"{{{NS['wsman']}}}ResourceURI").text = request.resource_uri
        selectors = ET.SubElement(params, f"{{{NS['wsman']}}}SelectorSet")
        ET.SubElement(selectors, f"{{{NS['wsman']}}}Selector", {"Name": "ShellId"}).text = shell_id
        # pypsrp reads only ResourceCreated; the rsp:Shell in the same body
        # (3.1.4.5.2) is left out to keep one body element.
        return created

    def _command(self, request: WSManRequest) -> ET.Element:
        shell = self._shell(request)
        body = request.body
        if body is None or body.tag != _rsp("CommandLine"):
            raise _bad_request("Command needs an rsp:CommandLine body.")
        command_id = (body.get("CommandId") or str(uuid.uuid4())).upper()
        payload = b"".join(_b64(a.text) for a in body.findall("rsp:Arguments", NS))
        try:
            shell.session.command(uuid.UUID(command_id), payload)
        except SessionClosed:
            raise shell_not_found(shell.shell_id) from None
        response = ET.Element(_rsp("CommandResponse"))
        ET.SubElement(response, _rsp("CommandId")).text = command_id
        return response

    def _send(self, request: WSManRequest) -> ET.Element:
        shell = self._shell(request)
        response = ET.Element(_rsp("SendResponse"))
        for stream in request.body.findall("rsp:Stream", NS) if request.body is not None else []:
            command_id = stream.get("CommandId")
            try:
                shell.session.send(
                    uuid.UUID(command_id) if command_id else None,
                    _b64(stream.text),
                    stream.get("Name", "stdin"),
                )
            except UnknownPipeline:
                raise _invalid_command(command_id or "") from None
            except SessionClosed:
                raise shell_not_found(shell.shell_id) from None
        return response

    def _receive(self, request: WSManRequest) -> ET.Element:
        shell = self._shell(request)
        desired = request.body.find("rsp:DesiredStream", NS) if request.body is not None else None
        command_id = desired.get("CommandId") if desired is not None else None
        pipeline = uuid.UUID(command_id) if command_id else None
        try:
            received = shell.session.receive(pipeline, request.operation_timeout)
        except UnknownPipeline:
            raise _invalid_command(command_id or "") from None
        except SessionClosed:
            raise shell_not_found(shell.shell_id) from None
        if received is None:
            raise timed_out()
        response = ET.Element(_rsp("ReceiveResponse"))
        attrs = {"Name": "stdout"}
        if command_id:
            attrs["CommandId"] = command_id.upper()
        for chunk in received.chunks:
            ET.SubElement(response, _rsp("Stream"), attrs).text = base64.b64encode(chunk).decode()
        if command_id:
            state = _STATE_DONE if received.done else _STATE_RUNNING
            ET.SubElement(
                response, _rsp("CommandState"), {"CommandId": command_id.upper(), "State": state}
            )
        return response

    def _signal(self, request: WSManRequest) -> ET.Element:
        shell = self._shell(request)
        body = request.body
        command_id = body.get("CommandId") if body is not None else None
        code = _text(body, "rsp:Code") if body is not None else ""
        if command_id:
            pipeline = uuid.UUID(command_id)
            if code.lower() in _SIGNAL_PS_STOP:
                shell.session.stop(pipeline)
            elif code.lower() == _SIGNAL_TERMINATE:
                shell.session.terminate(pipeline)
            else:
                raise _bad_request(f"The signal code {code!r} is not supported.")
        return ET.Element(_rsp("SignalResponse"))

    def _delete(self, request: WSManRequest) -> None:
        shell = self._shell(request)
        with self._lock:
            self._shells.pop(shell.shell_id, None)
        shell.session.close()

    def _get(self, request: WSManRequest) -> ET.Element:
        shell = self._shell(request)
        element = ET.Element(_rsp("Shell"))
        ET.SubElement(element, _rsp("ShellId")).text = shell.shell_id
        ET.SubElement(element, _rsp("ResourceUri")).text = shell.resource_uri
        ET.SubElement(element, _rsp("State")).text = "Connected"
        ET.SubElement(element, _rsp("InputStreams")).text = "stdin pr"
        ET.SubElement(element, _rsp("OutputStreams")).text = "stdout"
        return element

    def close(self) -> None:
        with self._lock:
            shells = list(self._shells.values())
            self._shells.clear()
        for shell in shells:
            shell.session.close()

    @property
    def shell_count(self) -> int:
        with self._lock:
            return len(self._shells)


def _invalid_command(command_id: str) -> WSManFault:
    # Modelled on ERROR_WSMAN_INVALID_COMMANDID-family text.
    return WSManFault(
        0x80338035,
        "w:InvalidParameter",
        f"The request for the Windows Remote Shell command with CommandId {command_id} failed "
        "because the command was not found on the server.",
    )
