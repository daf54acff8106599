"""The use cases, one path for Slack, the CLI and the playground: callers
import from here (and `bot.service.lookups` for Slack's screens), never
from the modules behind it."""

from bot.service.adopt import AdoptOutcome, adopt_checkpoint, locate_checkpoint
from bot.service.approvals import ApprovalOutcome, approve, may_reject, reject
from bot.service.at_time import AtTime, parse_at, zone_of
from bot.service.audit import AuditFilter, audit_text, parse_filter, stream_audit
from bot.service.audit_format import export_audit
from bot.service.backups import (
    BackupReport,
    DowngradePlan,
    backup_database,
    downgrade_schema,
    plan_downgrade,
)
from bot.service.batch_actions import (
    BatchAction,
    BatchApproval,
    MemberAction,
    MemberResult,
    approve_batch,
    merge_batch,
    rollback_batch,
)
from bot.service.batches import (
    BatchOutcome,
    BatchPreview,
    BatchWithdrawal,
    Candidate,
    create_batch,
    list_batches,
    preview_batch,
    show_batch,
    withdraw_batch,
)
from bot.service.binding import (
    APPROVAL_ACTIONS,
    Ambiguous,
    Card,
    Happened,
    Stale,
    Target,
    check_card,
    settled_words,
)
from bot.service.deciding import Principal
from bot.service.deliveries import delivery_keys
from bot.service.directory import Directory, GroupsUnavailable, with_slack
from bot.service.discovery import DiscoveryReport, DiscoveryRequest, discover
from bot.service.dispatch import OutboxStatus, outbox_status
from bot.service.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ServiceError,
    Unavailable,
)
from bot.service.outage import DATABASE_DOWN, committed_writes, outage_message
from bot.service.queries import (
    CheckpointListing,
    ScheduledRun,
    audit_rows,
    list_checkpoints,
    scheduled_runs,
    show_change,
)
from bot.service.reconcile import RESOLUTIONS, Reconciler, resolve
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
from bot.service.schema import upgrade_schema
from bot.service.selection import Selection
from bot.service.stale_homes import claim_stale_homes, stale_homes_published
from bot.service.sweep import SweepTask, run_sweep, size_history
from bot.service.sweep_views import parse_orphan_value
from bot.service.vm_settings import SettingsOutcome, change_settings, show_settings
from bot.service.whereabouts import InventoryView, inventory_view
from bot.service.window_notices import WindowNotices, due_notices
from bot.service.withdraw import withdraw

__all__ = [
    "APPROVAL_ACTIONS",
    "DATABASE_DOWN",
    "RESOLUTIONS",
    "AdoptOutcome",
    "Ambiguous",
    "ApprovalOutcome",
    "AtTime",
    "AuditFilter",
    "BackupReport",
    "BadRequest",
    "BatchAction",
    "BatchApproval",
    "BatchOutcome",
    "BatchPreview",
    "BatchWithdrawal",
    "Candidate",
    "Card",
    "CheckpointListing",
    "Conflict",
    "Directory",
    "DiscoveryReport",
    "DiscoveryRequest",
    "DowngradePlan",
    "Forbidden",
    "GroupsUnavailable",
    "Happened",
    "InventoryView",
    "MemberAction",
    "MemberResult",
    "NotFound",
    "OutboxStatus",
    "Outcome",
    "Principal",
    "Reconciler",
    "ScheduledRun",
    "Selection",
    "ServiceError",
    "SettingsOutcome",
    "Stale",
    "StartOutcome",
    "SweepTask",
    "Target",
    "Unavailable",
    "WindowNotices",
    "adopt_checkpoint",
    "approve",
    "approve_batch",
    "audit_rows",
    "audit_text",
    "backup_database",
    "change_settings",
    "check_card",
    "claim_stale_homes",
    "committed_writes",
    "create_batch",
    "delivery_keys",
    "discover",
    "downgrade_schema",
    "due_notices",
    "explain",
    "export_audit",
    "extend",
    "inventory_view",
    "list_batches",
    "list_checkpoints",
    "locate_checkpoint",
    "may_reject",
    "merge",
    "merge_batch",
    "outage_message",
    "outbox_status",
    "parse_at",
    "parse_filter",
    "parse_orphan_value",
    "plan_downgrade",
    "preview_batch",
    "reject",
    "request_checkpoint",
    "resolve",
    "rollback",
    "rollback_batch",
    "run_sweep",
    "scheduled_runs",
    "settled_words",
    "show_batch",
    "show_change",
    "show_settings",
    "size_history",
    "stale_homes_published",
    "start_vm",
    "stream_audit",
    "upgrade_schema",
    "with_slack",
    "withdraw",
    "withdraw_batch",
    "zone_of",
]
