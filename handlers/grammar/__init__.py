"""The `/checkpoint` slash-command grammar: text in, a typed request out.

Pure: no I/O, no Slack client, no inventory resolution. One table
(`table.COMMANDS`) drives both the parser (`parser`) and the help (`help`),
so they cannot drift apart; `tokens` splits Slack's text into words and
`requests` holds what parsing produces.
"""

from handlers.grammar.help import help_sections, help_text
from handlers.grammar.parser import find_command, parse, usage
from handlers.grammar.requests import (
    ApproveRequest,
    BatchRequest,
    ChangesRequest,
    CreateRequest,
    ExtendRequest,
    GrammarError,
    HelpRequest,
    ListRequest,
    MergeRequest,
    OpenCreateModal,
    PolicyRequest,
    RejectRequest,
    RollbackRequest,
    SettingsRequest,
    SlashRequest,
    StatusRequest,
    WaveRequest,
    WindowsRequest,
    WithdrawRequest,
)
from handlers.grammar.table import COMMANDS, SLASH, CommandSpec, Kind, Param, normalize_change_ref

__all__ = [
    "COMMANDS",
    "SLASH",
    "ApproveRequest",
    "BatchRequest",
    "ChangesRequest",
    "CommandSpec",
    "CreateRequest",
    "ExtendRequest",
    "GrammarError",
    "HelpRequest",
    "Kind",
    "ListRequest",
    "MergeRequest",
    "OpenCreateModal",
    "Param",
    "PolicyRequest",
    "RejectRequest",
    "RollbackRequest",
    "SettingsRequest",
    "SlashRequest",
    "StatusRequest",
    "WaveRequest",
    "WindowsRequest",
    "WithdrawRequest",
    "find_command",
    "help_sections",
    "help_text",
    "normalize_change_ref",
    "parse",
    "usage",
]
