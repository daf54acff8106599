"""Errors of the inventory.

Error tree::

    ValueError
    └── YamlValidationError (bot.yamlio)
        └── InventoryError        the inventory file is unreadable, malformed or inconsistent;
                                  `.problems` lists every finding as FILE:LINE: FIELD: MESSAGE
    LookupError
    └── InventoryLookupError      a name or id someone typed does not resolve
        ├── InvalidName           it could never be a name: wildcard, metacharacter, too long
        ├── UnknownVM             no such VM (`.suggestions` holds close names)
        ├── UnknownHost           no such host (`.suggestions` holds close names)
        └── UnknownGroup          no such group of VMs (`.suggestions` holds close names)

Lookup errors carry what was asked for and read as a sentence, ready for Slack or the CLI.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.yamlio import YamlValidationError

__all__ = [
    "InvalidName",
    "InventoryError",
    "InventoryLookupError",
    "UnknownGroup",
    "UnknownHost",
    "UnknownVM",
]


class InventoryError(YamlValidationError):
    """The inventory file cannot be used; every problem found is in `.problems`."""


class InventoryLookupError(LookupError):
    """A VM or host that someone asked for cannot be resolved."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidName(InventoryLookupError):
    """A name that is refused before any lookup, so it can never reach a host."""

    def __init__(self, name: str, reason: str, *, kind: str = "VM") -> None:
        self.name = name
        self.reason = reason
        self.kind = kind
        super().__init__(f"{_called(kind)} {_shown(name) + ' ' if name else ''}{reason}")


def _called(kind: str) -> str:
    """What a value of `kind` is called: "VM name", "host name"; a tag is a
    key=value, not a name ("tag 'env=x'"), and a kind that already says
    "name" is not given a second one."""
    if kind == "tag" or kind.endswith("name"):
        return kind
    return f"{kind} name"


def _did_you_mean(suggestions: Sequence[str]) -> str:
    return f"; did you mean {', '.join(suggestions)}?" if suggestions else ""


class UnknownVM(InventoryLookupError):
    def __init__(self, name: str, suggestions: Sequence[str] = (), *, by_id: bool = False) -> None:
        self.name = name
        self.suggestions = list(suggestions)
        what = "with id" if by_id else "named"
        super().__init__(
            f"no VM {what} {_shown(name)} in the inventory{_did_you_mean(self.suggestions)}"
        )


class UnknownGroup(InventoryLookupError):
    def __init__(self, name: str, known: Sequence[str], suggestions: Sequence[str] = ()) -> None:
        self.name = name
        self.suggestions = list(suggestions)
        listed = f" (groups: {', '.join(known)})" if known else " (it lists no `groups:`)"
        super().__init__(
            f"no group named {_shown(name)} in the inventory"
            + (_did_you_mean(self.suggestions) if self.suggestions else listed)
        )


class UnknownCluster(InventoryLookupError):
    def __init__(self, name: str, known: Sequence[str], suggestions: Sequence[str] = ()) -> None:
        self.name = name
        self.suggestions = list(suggestions)
        listed = f" (clusters: {', '.join(known)})" if known else " (it lists no `clusters:`)"
        super().__init__(
            f"no cluster named {_shown(name)} in the inventory"
            + (_did_you_mean(self.suggestions) if self.suggestions else listed)
        )


class UnknownHost(InventoryLookupError):
    def __init__(self, name: str, suggestions: Sequence[str] = ()) -> None:
        self.name = name
        self.suggestions = list(suggestions)
        super().__init__(
            f"no host named {_shown(name)} in the inventory{_did_you_mean(self.suggestions)}"
        )


def _shown(name: str, limit: int = 40) -> str:
    # repr() keeps control characters visible and quotes the name unambiguously.
    return repr(name if len(name) <= limit else name[: limit - 3] + "...")
