"""Loaded by the interpreter of a production-install test (PYTHONPATH): the
demo extra's dependency is absent, and what the process imported of the dev
tools is written to $IMPORT_REPORT when it exits."""

import atexit
import os
import sys

# `import psrpcore` now fails as if it were not installed, and
# importlib.util.find_spec("psrpcore") returns None.
sys.modules["psrpcore"] = None  # type: ignore[assignment]


def _report() -> None:
    loaded = sorted(
        name
        for name, module in sys.modules.items()
        if module is not None and name.startswith(("bot.devtools.", "psrpcore"))
    )
    with open(os.environ["IMPORT_REPORT"], "w", encoding="utf-8") as out:
        out.write("\n".join(loaded))


atexit.register(_report)
