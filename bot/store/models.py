"""The tables: the change record, its append-only events, the job ledger.

Ids are integers; people see changes as `CHG-0042` (see `change_ref`).
Each part of the record is defined in its own module under
`bot.store.tables`; importing this module maps every table, which the
schema, the migrations and code that reads across the record want. A
command that reads one part imports that part's module alone.
"""

from __future__ import annotations

from bot.store.tables import batch_ref, change_ref
from bot.store.tables.approval_dms import ApprovalDM
from bot.store.tables.approvals import ApprovalRequest
from bot.store.tables.batches import Batch, BatchEvent
from bot.store.tables.changes import Change, ChangeEvent
from bot.store.tables.deployment import DeploymentKey
from bot.store.tables.hosts import CheckpointSize, VMSighting
from bot.store.tables.jobs import HostSlot, Job, Tick, VMLock
from bot.store.tables.slack import SlackOutbox
from bot.store.tables.slack_deliveries import SlackDelivery
from bot.store.tables.stale_homes import StaleHome
from bot.store.tables.ttl_notices import TTLNotice
from bot.store.tables.vm_record import CheckpointAdoption, VMSettingChange

__all__ = [
    "ApprovalDM",
    "ApprovalRequest",
    "Batch",
    "BatchEvent",
    "Change",
    "ChangeEvent",
    "CheckpointAdoption",
    "CheckpointSize",
    "DeploymentKey",
    "HostSlot",
    "Job",
    "SlackDelivery",
    "SlackOutbox",
    "StaleHome",
    "TTLNotice",
    "Tick",
    "VMLock",
    "VMSettingChange",
    "VMSighting",
    "batch_ref",
    "change_ref",
]
