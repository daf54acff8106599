"""Secrets: read from an environment variable or a file, never printed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class SecretError(ValueError):
    pass


@dataclass(frozen=True)
class Secret:
    """A secret value whose repr and str never show it."""

    _value: str = field(repr=False)
    origin: str = ""

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return f"<secret from {self.origin}>"

    def __repr__(self) -> str:
        return f"Secret(origin={self.origin!r})"


def secret_from(
    *, env_name: str | None, file: Path | None, env: Mapping[str, str], what: str
) -> Secret | None:
    """The secret named by an env var or a file; None when neither is set.
    Errors say where it was looked for, never what was found."""
    if file is not None:
        try:
            value = file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretError(f"{what}: cannot read {file}: {exc.strerror}") from None
        if not value:
            raise SecretError(f"{what}: {file} is empty")
        return Secret(value, f"file {file}")
    if env_name:
        value = env.get(env_name, "")
        if value:
            return Secret(value, f"${env_name}")
    return None
