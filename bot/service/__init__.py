"""The use cases, one path for Slack, the CLI and the playground."""

from bot.service.adopt import AdoptOutcome, adopt_checkpoint
from bot.service.approvals import ApprovalOutcome, approve, reject
from bot.service.audit_format import export_audit
from bot.service.deciding import Principal
from bot.service.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ServiceError,
    Unavailable,
)
from bot.service.queries import (
    CheckpointListing,
    list_checkpoints,
    show_change,
)
from bot.service.requests import (
    Outcome,
    StartOutcome,
    explain,
    extend,
    merge,
    request_checkpoint,
    rollback,
    start_vm,
)
from bot.service.settings import SettingsOutcome, change_settings, show_settings
from bot.service.sweep import SweepTask, run_sweep

__all__ = [
    "AdoptOutcome",
    "ApprovalOutcome",
    "BadRequest",
    "CheckpointListing",
    "Conflict",
    "Forbidden",
    "NotFound",
    "Outcome",
    "Principal",
    "ServiceError",
    "SettingsOutcome",
    "StartOutcome",
    "SweepTask",
    "Unavailable",
    "adopt_checkpoint",
    "approve",
    "change_settings",
    "explain",
    "export_audit",
    "extend",
    "list_checkpoints",
    "merge",
    "reject",
    "request_checkpoint",
    "rollback",
    "run_sweep",
    "show_change",
    "show_settings",
    "start_vm",
]
