"""The use cases, one path for Slack, the CLI and the playground: callers
import from here (and `bot.service.lookups` for Slack's screens), never
from the modules behind it."""

# Loaded on first use (PEP 562's module `__getattr__`,
# https://docs.python.org/3/reference/datamodel.html#customizing-module-attribute-access):
# importing every use case took a CLI command about 140 ms before it did
# anything (`python -X importtime`, bench/cli_start.py, bench/op_latency.py),
# most of it modules the command never calls. The names and their types are
# the same for mypy and for callers.
from typing import TYPE_CHECKING

from bot.lazy_names import names_on_first_use

if TYPE_CHECKING:
    from bot.changes import RESOLUTIONS
    from bot.domain import APPROVAL_ACTIONS
    from bot.service.adopt import AdoptOutcome, adopt_checkpoint, locate_checkpoint
    from bot.service.approvals import ApprovalOutcome, approve, may_reject, reject
    from bot.service.at_time import AtTime, parse_at, zone_of
    from bot.service.audit import (
        AuditFilter,
        audit_text,
        check_filter,
        nothing_matched,
        parse_filter,
        stream_audit,
    )
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
        CardOutOfDate,
        batch_of_preview,
        create_batch,
        list_batches,
        nothing_takeable,
        preview_batch,
        show_batch,
        withdraw_batch,
    )
    from bot.service.binding import (
        Ambiguous,
        Card,
        Happened,
        Stale,
        Target,
        check_card,
        settled_words,
    )
    from bot.service.change_list import ChangeListing, list_changes
    from bot.service.deciding import Principal
    from bot.service.deliveries import delivery_keys
    from bot.service.directory import Directory, GroupsUnavailable, with_slack
    from bot.service.discovery import DiscoveryReport, DiscoveryRequest, discover
    from bot.service.errors import (
        BadRequest,
        Conflict,
        Forbidden,
        NotFound,
        ServiceError,
        Unavailable,
    )
    from bot.service.explaining import Explanation, explain
    from bot.service.outage import DATABASE_DOWN, committed_writes, outage_message
    from bot.service.outbox_view import OutboxStatus, outbox_status
    from bot.service.policy_lint import lint_policy
    from bot.service.queries import (
        CheckpointListing,
        ScheduledRun,
        audit_rows,
        list_checkpoints,
        scheduled_runs,
    )
    from bot.service.reconcile import Reconciler, resolve
    from bot.service.requests import (
        MergeBlocked,
        Outcome,
        extend,
        merge,
        request_checkpoint,
        rollback,
    )
    from bot.service.schema import SchemaState, SchemaStatus, schema_status, upgrade_schema
    from bot.service.selection import Selection
    from bot.service.showing import show_change
    from bot.service.stale_homes import claim_stale_homes, stale_homes_published
    from bot.service.strictest import WHY_THE_WAVE_ASKS
    from bot.service.sweep import SweepTask, run_sweep, size_history
    from bot.service.sweep_views import parse_orphan_value
    from bot.service.vm_settings import SettingsOutcome, change_settings, show_settings
    from bot.service.vm_start import AlreadyStarted, StartOutcome, start_vm
    from bot.service.whereabouts import (
        Focus,
        InventoryView,
        focus_on,
        inventory_view,
        last_seen_on,
    )
    from bot.service.window_notices import WindowNotices, due_notices
    from bot.service.withdrawal import withdraw, withdraw_unstarted

_WHERE = {
    "APPROVAL_ACTIONS": "bot.domain",
    "AdoptOutcome": "bot.service.adopt",
    "AlreadyStarted": "bot.service.vm_start",
    "Ambiguous": "bot.service.binding",
    "ApprovalOutcome": "bot.service.approvals",
    "AtTime": "bot.service.at_time",
    "AuditFilter": "bot.service.audit",
    "BackupReport": "bot.service.backups",
    "BadRequest": "bot.service.errors",
    "BatchAction": "bot.service.batch_actions",
    "BatchApproval": "bot.service.batch_actions",
    "BatchOutcome": "bot.service.batches",
    "BatchPreview": "bot.service.batches",
    "BatchWithdrawal": "bot.service.batches",
    "Candidate": "bot.service.batches",
    "ChangeListing": "bot.service.change_list",
    "Card": "bot.service.binding",
    "CardOutOfDate": "bot.service.batches",
    "batch_of_preview": "bot.service.batches",
    "CheckpointListing": "bot.service.queries",
    "Conflict": "bot.service.errors",
    "DATABASE_DOWN": "bot.service.outage",
    "Directory": "bot.service.directory",
    "DiscoveryReport": "bot.service.discovery",
    "DiscoveryRequest": "bot.service.discovery",
    "DowngradePlan": "bot.service.backups",
    "Explanation": "bot.service.explaining",
    "Focus": "bot.service.whereabouts",
    "Forbidden": "bot.service.errors",
    "GroupsUnavailable": "bot.service.directory",
    "Happened": "bot.service.binding",
    "InventoryView": "bot.service.whereabouts",
    "MemberAction": "bot.service.batch_actions",
    "MemberResult": "bot.service.batch_actions",
    "NotFound": "bot.service.errors",
    "OutboxStatus": "bot.service.outbox_view",
    "MergeBlocked": "bot.service.requests",
    "lint_policy": "bot.service.policy_lint",
    "Outcome": "bot.service.requests",
    "Principal": "bot.service.deciding",
    "RESOLUTIONS": "bot.changes",
    "Reconciler": "bot.service.reconcile",
    "ScheduledRun": "bot.service.queries",
    "SchemaState": "bot.service.schema",
    "SchemaStatus": "bot.service.schema",
    "Selection": "bot.service.selection",
    "ServiceError": "bot.service.errors",
    "SettingsOutcome": "bot.service.vm_settings",
    "Stale": "bot.service.binding",
    "StartOutcome": "bot.service.vm_start",
    "SweepTask": "bot.service.sweep",
    "Target": "bot.service.binding",
    "Unavailable": "bot.service.errors",
    "WindowNotices": "bot.service.window_notices",
    "WHY_THE_WAVE_ASKS": "bot.service.strictest",
    "adopt_checkpoint": "bot.service.adopt",
    "approve": "bot.service.approvals",
    "approve_batch": "bot.service.batch_actions",
    "audit_rows": "bot.service.queries",
    "audit_text": "bot.service.audit",
    "backup_database": "bot.service.backups",
    "change_settings": "bot.service.vm_settings",
    "check_card": "bot.service.binding",
    "claim_stale_homes": "bot.service.stale_homes",
    "committed_writes": "bot.service.outage",
    "create_batch": "bot.service.batches",
    "nothing_takeable": "bot.service.batches",
    "delivery_keys": "bot.service.deliveries",
    "discover": "bot.service.discovery",
    "downgrade_schema": "bot.service.backups",
    "due_notices": "bot.service.window_notices",
    "explain": "bot.service.explaining",
    "export_audit": "bot.service.audit_format",
    "extend": "bot.service.requests",
    "focus_on": "bot.service.whereabouts",
    "inventory_view": "bot.service.whereabouts",
    "last_seen_on": "bot.service.whereabouts",
    "list_batches": "bot.service.batches",
    "list_changes": "bot.service.change_list",
    "list_checkpoints": "bot.service.queries",
    "locate_checkpoint": "bot.service.adopt",
    "may_reject": "bot.service.approvals",
    "merge": "bot.service.requests",
    "merge_batch": "bot.service.batch_actions",
    "outage_message": "bot.service.outage",
    "outbox_status": "bot.service.outbox_view",
    "parse_at": "bot.service.at_time",
    "check_filter": "bot.service.audit",
    "nothing_matched": "bot.service.audit",
    "parse_filter": "bot.service.audit",
    "parse_orphan_value": "bot.service.sweep_views",
    "plan_downgrade": "bot.service.backups",
    "preview_batch": "bot.service.batches",
    "reject": "bot.service.approvals",
    "request_checkpoint": "bot.service.requests",
    "resolve": "bot.service.reconcile",
    "rollback": "bot.service.requests",
    "rollback_batch": "bot.service.batch_actions",
    "run_sweep": "bot.service.sweep",
    "scheduled_runs": "bot.service.queries",
    "schema_status": "bot.service.schema",
    "settled_words": "bot.service.binding",
    "show_batch": "bot.service.batches",
    "show_change": "bot.service.showing",
    "show_settings": "bot.service.vm_settings",
    "size_history": "bot.service.sweep",
    "stale_homes_published": "bot.service.stale_homes",
    "start_vm": "bot.service.vm_start",
    "stream_audit": "bot.service.audit",
    "upgrade_schema": "bot.service.schema",
    "with_slack": "bot.service.directory",
    # Its module is not named `withdraw`: importing a submodule binds it on
    # its package under its own name
    # (https://docs.python.org/3/reference/import.html#submodules), which
    # would hide the function from this lookup.
    "withdraw": "bot.service.withdrawal",
    "withdraw_batch": "bot.service.batches",
    "withdraw_unstarted": "bot.service.withdrawal",
    "zone_of": "bot.service.at_time",
}


__getattr__ = names_on_first_use(__name__, _WHERE, globals())


__all__ = [
    "APPROVAL_ACTIONS",
    "DATABASE_DOWN",
    "RESOLUTIONS",
    "WHY_THE_WAVE_ASKS",
    "AdoptOutcome",
    "AlreadyStarted",
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
    "CardOutOfDate",
    "ChangeListing",
    "CheckpointListing",
    "Conflict",
    "Directory",
    "DiscoveryReport",
    "DiscoveryRequest",
    "DowngradePlan",
    "Explanation",
    "Focus",
    "Forbidden",
    "GroupsUnavailable",
    "Happened",
    "InventoryView",
    "MemberAction",
    "MemberResult",
    "MergeBlocked",
    "NotFound",
    "OutboxStatus",
    "Outcome",
    "Principal",
    "Reconciler",
    "ScheduledRun",
    "SchemaState",
    "SchemaStatus",
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
    "batch_of_preview",
    "change_settings",
    "check_card",
    "check_filter",
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
    "focus_on",
    "inventory_view",
    "last_seen_on",
    "lint_policy",
    "list_batches",
    "list_changes",
    "list_checkpoints",
    "locate_checkpoint",
    "may_reject",
    "merge",
    "merge_batch",
    "nothing_matched",
    "nothing_takeable",
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
    "schema_status",
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
    "withdraw_unstarted",
    "zone_of",
]
