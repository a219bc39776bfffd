"""Headless Debian chromium driven by Playwright's Python package, for the report's and the
dashboard's browser tests: where screenshots go (test-artifacts/, kept by CI), and a route
that lets a page reach only the allowed addresses and records every other request."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
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


def read_parallel_titles(page: Any) -> tuple[list[list[float]], float, float]:
    """A page's parallel axis titles ([left, right, bottom] each, once the page has cut them), the top of the
    highest tick or range label of their figure, the figure's width."""
    page.wait_for_function("window.Plotly !== undefined", timeout=30_000)
    page.wait_for_selector(".axis-title")
    page.wait_for_function("[...document.querySelectorAll('.js-plotly-plot')].filter(gd => gd.querySelector('.axis-title'))"
                           ".every(gd => gd.tunesmithFitted && !gd.tunesmithFittingAxes)", timeout=30_000)
    return page.evaluate("""() => {
      const gd = [...document.querySelectorAll('.js-plotly-plot')].find(gd => gd.querySelector('.axis-title'));
      const box = (t) => t.getBoundingClientRect();
      return [[...gd.querySelectorAll('.axis-title')].map(t => [box(t).left, box(t).right, box(t).bottom]),
              Math.min(...[...gd.querySelectorAll('.tick text, .axis-extent-text')].map(t => box(t).top)),
              box(gd.querySelector('.main-svg')).width];
    }""")


def assert_parallel_titles_apart(pages: Sequence[tuple[list[list[float]], float, float]]) -> None:
    """The 7 titles of each page apart, inside the figure, above its ticks and the ranges written above the axes."""
    for boxes, ticks, width in pages:
        boxes.sort()
        assert len(boxes) == 7 and all(a[1] <= b[0] for a, b in zip(boxes, boxes[1:], strict=False)), (width, boxes)
        assert boxes[0][0] >= 0 and boxes[-1][1] <= width and max(b[2] for b in boxes) < ticks, (boxes, ticks, width)
