"""Hyper-V over WinRM: the production backend.

    WinRMFleet(inventory, env, ...).host(name) -> WinRMHost   (a HyperVHost)

`host` runs the operations; `commands` builds the cmdlet pipelines (values
only as parameters); `pool` runs them on a runspace pool under deadlines;
`mapping` reads Hyper-V's objects into the bot's types; `errors` turns error
records and transport faults into the `bot.hyperv.errors` tree; `connect`
holds credentials and the WSMan transport options.
"""

from bot.hyperv.winrm.connect import Credentials, HostCredential
from bot.hyperv.winrm.host import WinRMFleet, WinRMHost
from bot.hyperv.winrm.pool import WinRMTimeouts

__all__ = ["Credentials", "HostCredential", "WinRMFleet", "WinRMHost", "WinRMTimeouts"]
