"""Headless Debian chromium driven by Playwright's Python package, for the report's and the
dashboard's browser tests: where screenshots go (test-artifacts/, kept by CI), and a route
that lets a page reach only the allowed addresses and records every other request."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]


def browser_or_skip() -> Any:
    """Playwright's sync API, with Debian's chromium there; skipped when missing, except in CI
    (env var CI set: scripts/test installs both), where that is a failure."""
    try:
        from playwright import sync_api
    except ImportError:
        sync_api = None
    missing = "playwright (pip install 'tunesmith[test]')" if sync_api is None else (
        None if Path(CHROMIUM).exists() else f"{CHROMIUM} (apt-get install chromium)")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: install {missing}")
        pytest.skip(f"needs {missing}")
    return sync_api


def only(allowed: tuple[str, ...], outside: list[str]) -> Callable[[Any], None]:
    """A ``page.route`` handler: requests whose URL starts with one of ``allowed`` go on;
    any other is aborted and recorded in ``outside``."""
    def route(r: Any) -> None:
        if r.request.url.startswith(allowed):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    return route
