"""Playwright driving Debian's Chromium (`make test` installs it when
missing; nothing is ever downloaded): a fresh profile per run, screenshots
kept under var/test-artifacts/playground/. Without Chromium the browser
tests skip loudly, and fail in CI where it must be there."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, sync_playwright

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "var" / "test-artifacts" / "playground"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def need_chromium() -> None:
    if Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK):
        return
    why = f"no Chromium at {CHROMIUM} (`make test` installs Debian's chromium when it can)"
    if os.environ.get("CI"):
        pytest.fail(f"browser tests need Chromium in CI: {why}")
    pytest.skip(f"BROWSER TESTS SKIPPED: {why}")


@contextmanager
def chromium_context(
    width: int = 1400, height: int = 900, timezone: str | None = None
) -> Iterator[BrowserContext]:
    """A persistent context on a throwaway profile (no state between runs);
    `timezone` (IANA) is the browser's local zone."""
    need_chromium()
    profile = tempfile.mkdtemp(prefix="playground-chromium-")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": width, "height": height},
                timezone_id=timezone,
            )
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name
