"""Errors raised by `HyperVHost` implementations.

    HyperVError                      host, message, category, error_id
    ├── HostUnreachable              connection refused, DNS, dropped
    ├── HostAuthError                401 / credentials rejected or missing
    ├── HostTimeout                  the call's deadline passed
    ├── NotFoundError
    │   ├── VMNotFound
    │   └── CheckpointNotFound
    └── PowerShellError              a cmdlet failed on the host
        ├── CommandNotVisible        the endpoint lacks a command (a JEA role)
        ├── CheckpointsDisabled      CheckpointType = Disabled
        ├── CheckpointLimitReached   50 per VM
        ├── ProductionCheckpointFailed  ProductionOnly and VSS unavailable
        ├── InvalidVMState           e.g. restore while merging
        └── InsufficientSpace        the volume cannot hold the operation

Every error carries the host's own text in `message`; `category` and
`error_id` are PowerShell's CategoryInfo and FullyQualifiedErrorId when the
host gave them.
"""

from __future__ import annotations


class HyperVError(Exception):
    def __init__(
        self,
        message: str,
        *,
        host: str = "",
        category: str = "",
        error_id: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.host = host
        self.category = category
        self.error_id = error_id

    def __str__(self) -> str:
        where = f"{self.host}: " if self.host else ""
        return f"{where}{self.message}"


class HostUnreachable(HyperVError):
    pass


class HostAuthError(HyperVError):
    """The host could not be logged in to: a credential missing, or one the
    host refused. Unlike a host that does not answer, asking again will not
    help until someone fixes the credential."""


# `error_id` of a HostAuthError whose credential the host refused (HTTP 401,
# a ticket it cannot decrypt): what to check is the credential itself.
CREDENTIALS_REJECTED = "CredentialsRejected"


class HostTimeout(HyperVError):
    pass


class NotFoundError(HyperVError):
    pass


class VMNotFound(NotFoundError):
    pass


class CheckpointNotFound(NotFoundError):
    pass


class PowerShellError(HyperVError):
    pass


# The role capability this project ships for the bot's endpoint
# (deploy/jea/README.md): where an operator adds a command the role hides.
JEA_ROLE_CAPABILITY = "deploy/jea/CheckpointBot.psrc"


class CommandNotVisible(PowerShellError):
    """The endpoint has no such command: a JEA role capability that does
    not make it visible answers `CommandNotFoundException` (JEA overview,
    https://learn.microsoft.com/powershell/scripting/security/remoting/jea/overview;
    role capabilities,
    https://learn.microsoft.com/powershell/scripting/security/remoting/jea/role-capabilities).
    `command` is the name it did not find."""

    def __init__(self, message: str, *, command: str = "", **where: str) -> None:
        super().__init__(message, **where)
        self.command = command

    def in_role_terms(self) -> str:
        """What the refusal means, for whoever must fix it. The engine's
        own text ("The term 'X' is not recognized ...") reads like a typo,
        and what the missing command would have read (a guest's KVP items,
        say) is not at fault: the endpoint's role is, and only its role
        capability's VisibleCmdlets can change that."""
        name = self.command or "a command the bot sends"
        return (
            f"the endpoint's JEA role does not let the bot run {name} "
            f"(CommandNotFoundException): its role capability must list {name} in "
            f"VisibleCmdlets, as {JEA_ROLE_CAPABILITY} does"
        )


class CheckpointsDisabled(PowerShellError):
    pass


class CheckpointLimitReached(PowerShellError):
    pass


class ProductionCheckpointFailed(PowerShellError):
    pass


class InvalidVMState(PowerShellError):
    pass


class InsufficientSpace(PowerShellError):
    pass
