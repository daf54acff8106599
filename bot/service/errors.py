"""What the service layer raises to its callers (CLI, Slack, playground).

ServiceError            message: one line a person can act on
├── BadRequest          the input was wrong; nothing was written
├── NotFound            no such change, VM or checkpoint
│   └── NotOnCluster    no node of the VM's cluster has it (bot.service.locate)
├── Forbidden           the one asking may not do this
├── Conflict            the change's state does not allow this now
│   ├── Stale           a button or command acted on what is no longer waiting
│   └── Ambiguous       more than one request could be meant (bot.service.binding)
└── Unavailable         a host or dependency could not be reached
    ├── HostUnavailable the host a decision needs did not answer (bot.service.locate)
    └── OwnerAmbiguous  two nodes report the VM's VMId (bot.service.locate)
"""

from __future__ import annotations


class ServiceError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ServiceError):
    pass


class NotFound(ServiceError):
    pass


class Forbidden(ServiceError):
    pass


class Conflict(ServiceError):
    pass


class Unavailable(ServiceError):
    pass
