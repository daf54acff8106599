"""The use cases, one path for Slack, the CLI and the playground."""

from bot.service.errors import BadRequest, Conflict, NotFound, ServiceError, Unavailable
from bot.service.queries import (
    CheckpointListing,
    export_audit,
    list_checkpoints,
    show_change,
)
from bot.service.requests import (
    Outcome,
    explain,
    merge,
    request_checkpoint,
    rollback,
)

__all__ = [
    "BadRequest",
    "CheckpointListing",
    "Conflict",
    "NotFound",
    "Outcome",
    "ServiceError",
    "Unavailable",
    "explain",
    "export_audit",
    "list_checkpoints",
    "merge",
    "request_checkpoint",
    "rollback",
    "show_change",
]
