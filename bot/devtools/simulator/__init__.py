"""The simulator backend: `WinRMHost` over an in-process PSRP session that
runs the emulator's cmdlets on the host model (see `fleet` and `session`)."""

from bot.devtools.simulator.fleet import SimulatedFleet
from bot.devtools.simulator.session import InProcessSession

__all__ = ["InProcessSession", "SimulatedFleet"]
