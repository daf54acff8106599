"""Secrets: read from an environment variable or a file, never printed."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class SecretError(ValueError):
    pass


# systemd's LoadCredential= hands a service its secrets as files in a private
# directory named by $CREDENTIALS_DIRECTORY, whose path is not to be hard-coded
# (https://systemd.io/CREDENTIALS/). A secret's file may start with it.
CREDENTIALS_DIRECTORY = "CREDENTIALS_DIRECTORY"
_CREDENTIAL_PREFIXES = (f"${CREDENTIALS_DIRECTORY}", f"${{{CREDENTIALS_DIRECTORY}}}")


def relative_to(file: Path, base: Path) -> Path:
    """A secret file named in a config file, relative to that file's
    directory; an absolute path or one under `$CREDENTIALS_DIRECTORY` as it
    is (that one is resolved when it is read, `credential_path`)."""
    if file.is_absolute() or (file.parts and file.parts[0] in _CREDENTIAL_PREFIXES):
        return file
    return base / file


def credential_path(file: Path, env: Mapping[str, str], what: str) -> Path:
    """`file`, with a leading `$CREDENTIALS_DIRECTORY` (or `${...}`) replaced
    by that variable's value; any other path as it is."""
    parts = file.parts
    if not parts or parts[0] not in _CREDENTIAL_PREFIXES:
        return file
    directory = env.get(CREDENTIALS_DIRECTORY, "")
    if not directory:
        raise SecretError(
            f"{what}: {file} names ${CREDENTIALS_DIRECTORY}, which is not set "
            "(systemd sets it for a unit with LoadCredential=)"
        )
    return Path(directory, *parts[1:])


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


# The names environment variables are given by convention: capitals, digits
# and underscores (POSIX reserves the lowercase ones for applications,
# https://pubs.opengroup.org/onlinepubs/9799919799/basedefs/V1_chap08.html).
_CONVENTIONAL_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*\Z")


def env_name_shown(env_name: str, field: str = "") -> str:
    """`$NAME`, for a name written as variables are (HV_PASSWORD); any other
    (`S3cretPassw0rd`) is described, not shown: a secret typed where its
    variable's name belongs would otherwise be printed back."""
    if _CONVENTIONAL_ENV_NAME.match(env_name):
        return f"${env_name}"
    named = f"{field} names" if field else "named"
    return (
        f"the environment variable {named} (not shown: not in capitals, so it may be "
        "the secret itself)"
    )


def unset_or_empty(env_name: str, env: Mapping[str, str], field: str = "") -> str:
    """Why `env_name` gave no value, as a message ends: `$NAME is not set`, or
    `$NAME is set but empty` (an `export NAME=` or a template that rendered
    nothing), which are fixed in different places. `field` names where the
    name was given, for a name not shown (`env_name_shown`)."""
    shown = env_name_shown(env_name, field)
    if env_name in env:
        return f"{shown} is set but empty"
    return f"{shown} is not set"


def missing_file_words(file: Path, field: str) -> str:
    """Why the file `field` names cannot be read, when there is no such file,
    without its name: a value that names nothing may be the secret itself
    typed where its file's path belongs. Only whether it looks like a path
    is said (a separator, or a leading ~ or .)."""
    text = str(file)
    path_like = any(sep in text for sep in ("/", "\\")) or text.startswith(("~", "."))
    hint = (
        "it looks like a path: check it"
        if path_like
        else f"it does not look like a path: set {field} to the path of the file that "
        "holds it (e.g. /etc/checkpoint-bot/hv-password), or use password_env"
    )
    return (
        f"the file {field} names does not exist (not shown, in case it is the secret "
        f"itself; {hint})"
    )


def secret_from(
    *, env_name: str | None, file: Path | None, env: Mapping[str, str], what: str
) -> Secret | None:
    """The secret named by an env var or a file; None when neither is set.
    Errors say where it was looked for, never what was found."""
    if file is not None:
        file = credential_path(file, env, what)
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
