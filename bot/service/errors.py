"""What the service layer raises to its callers (CLI, Slack, playground).

ServiceError          message: one line a person can act on
├── BadRequest        the input was wrong; nothing was written
├── NotFound          no such change or checkpoint
├── Conflict          the change's state does not allow this now
└── Unavailable       a host or dependency could not be reached
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
