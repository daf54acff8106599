"""A package's names, each imported from its module when first asked for.

A package whose `__init__` imported every module it re-exports made every
caller pay for all of them: `bot.service`, `bot.hyperv` and `bot.jobs`
instead answer a name from a module-level `__getattr__` (PEP 562,
https://peps.python.org/pep-0562/) built here, and list the same imports
under TYPE_CHECKING for the type checker (bench/cli_start.py).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def names_on_first_use(
    package: str, where: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """The `__getattr__` of `package`: `where` maps each name to the module
    that defines it; a name once found is kept in `namespace` (the
    package's globals), so it is looked up once."""

    def lookup(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return lookup
