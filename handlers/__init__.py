"""Slack listeners (Bolt for Python): they parse slash commands, buttons and
modal submissions into service calls and render the results. Each listener
calls one function of `bot.service`; no business logic lives here."""

from handlers.grammar import (
    COMMANDS,
    ApproveRequest,
    CreateRequest,
    ExtendRequest,
    GrammarError,
    HelpRequest,
    ListRequest,
    MergeRequest,
    OpenCreateModal,
    PolicyRequest,
    RejectRequest,
    Request,
    RollbackRequest,
    SettingsRequest,
    StatusRequest,
    WindowsRequest,
    normalize_change_ref,
    parse,
    usage,
)
from handlers.grammar_help import help_sections, help_text

__all__ = [
    "COMMANDS",
    "ApproveRequest",
    "CreateRequest",
    "ExtendRequest",
    "GrammarError",
    "HelpRequest",
    "ListRequest",
    "MergeRequest",
    "OpenCreateModal",
    "PolicyRequest",
    "RejectRequest",
    "Request",
    "RollbackRequest",
    "SettingsRequest",
    "StatusRequest",
    "WindowsRequest",
    "help_sections",
    "help_text",
    "normalize_change_ref",
    "parse",
    "usage",
]
