"""`/hyperv`: the emulated estate's console in the playground (not the bot's).

What an administrator does at the cluster, behind the bot's back, so the
demo can show the bot following it:

    /hyperv where WEB02              which node runs it
    /hyperv migrate WEB02 HV01       live-migrate it (Move-ClusterVirtualMachineRole)

It acts on the host model directly (`ModelHost.live_migrate`), never through
the bot; the bot finds out the way it would on a real cluster, by asking the
nodes (docs/clusters.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from bot.devtools.hostmodel.host import ModelHost
from bot.devtools.hostmodel.migration import MigrationRefused

CONSOLE = "/hyperv"
USAGE = (
    f"`{CONSOLE} where VM` says which node runs a VM; "
    f"`{CONSOLE} migrate VM NODE` live-migrates it to another node of its cluster "
    "(e.g. `/hyperv migrate WEB02 HV01`)"
)


class HyperVConsole:
    def __init__(self, hosts: Callable[[], Iterable[ModelHost]]) -> None:
        self._hosts = hosts

    def _find(self, name: str) -> tuple[ModelHost, str, str] | None:
        """The node running the VM called `name`, its VMId and its name."""
        for host in self._hosts():
            for vm in host.get_vms():
                if vm.name.casefold() == name.casefold():
                    return host, vm.vm_id, vm.name
        return None

    def run(self, args: str) -> str:
        words = args.split()
        if len(words) == 2 and words[0].lower() == "where":
            found = self._find(words[1])
            if found is None:
                return f"No node runs a VM called {words[1]}."
            return f"{found[2]} runs on {found[0].name}."
        if len(words) in (3, 4) and words[0].lower() == "migrate":
            target = words[-1]
            found = self._find(words[1])
            if found is None:
                return f"No node runs a VM called {words[1]}: nothing was moved."
            host, vm_id, name = found
            nodes = {h.name.casefold(): h.name for h in self._hosts()}
            if target.casefold() not in nodes:
                return f"There is no node {target} (nodes: {', '.join(nodes.values())})."
            if nodes[target.casefold()] == host.name:
                return f"{name} already runs on {host.name}."
            try:
                host.live_migrate(vm_id, nodes[target.casefold()])
            except MigrationRefused as exc:
                return f"Live migration refused: {exc}."
            return (
                f":twisted_rightwards_arrows: {name} live-migrated from {host.name} to "
                f"{nodes[target.casefold()]}. The bot is not told: it finds the VM by its "
                "VMId on the cluster's nodes the next time it acts."
            )
        return USAGE
