"""A WinRM/PSRP endpoint on 127.0.0.1 that serves modelled Hyper-V hosts.

The real pypsrp client runs end to end against it. What it serves is the
host model (bot.devtools.hostmodel), in the model's own vocabulary: nothing
here imports the bot's types or its `HyperVHost`, so the wire shows what a
host would say, not what the client believes. Layers, each knowing only the
one below:

    server.py   HTTP, Basic / NTLM (+ message encryption), fault injection
    wsman.py    WSMan SOAP shell actions ([MS-WSMV])
    psrp.py     runspace pool and pipelines via psrpcore ([MS-PSRP])
    cmdlets.py  a NoLanguage JEA-like command table on a ModelHost
                (hyperv_cmdlets.py, binding.py, shapes.py, objects.py, messages.py)

    server = EmulatorServer(ModelHost(...), port=0, users={"hvadmin": "Passw0rd!"})
    server.start(); server.url; server.faults = Faults(hang={"Checkpoint-VM"})
    server.log.entries; server.stop()
    fleet = EmulatedFleet.start(store, model=host_model); fleet.port_of("HV01")

The same command table also runs in process, without HTTP (bot.devtools.simulator.session).
"""

from bot.devtools.emulator.faults import Faults, FaultSpecError
from bot.devtools.emulator.fleet import EmulatedFleet
from bot.devtools.emulator.log import EmulatorLog, LogEntry
from bot.devtools.emulator.server import DEFAULT_USERS, EmulatorServer, Logon, TlsIdentity

__all__ = [
    "DEFAULT_USERS",
    "EmulatedFleet",
    "EmulatorLog",
    "EmulatorServer",
    "FaultSpecError",
    "Faults",
    "LogEntry",
    "Logon",
    "TlsIdentity",
]
