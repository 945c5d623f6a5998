"""Headless Chromium for the UI tests (Debian's `chromium`, driven by Playwright)."""

from __future__ import annotations

import os
import shutil

import pytest

# Flags for a container: no sandbox (root), no GPU, no network beyond the page, no /dev/shm.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage"]


def chromium_or_skip() -> str:
    """The chromium executable ($SBBENCH_CHROMIUM, else `chromium` on PATH) and Playwright;
    skipped with the reason where either is missing, except in CI (.ci/run installs both)."""
    executable = os.environ.get("SBBENCH_CHROMIUM") or shutil.which("chromium") or \
        shutil.which("chromium-browser")
    missing = None
    if executable is None:
        missing = ("Chromium is not installed (apt-get install -y chromium; .ci/run installs "
                   "it)")
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "Playwright is not installed (pip install -e '.[test]')"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: {missing}")
        pytest.skip(missing)
    return executable
