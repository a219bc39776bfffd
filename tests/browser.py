"""Headless Debian chromium driven by Playwright's Python package, for the report's and the
dashboard's browser tests: where screenshots go (test-artifacts/, kept by CI), and a route
that lets a page reach only the allowed addresses and records every other request."""

from __future__ import annotations

import contextlib
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


class Pages:
    """A test's own contexts and pages in its module's chromium (the ``chromium`` fixture), closed at its end:
    nothing a page holds (cookies, storage, routes, its viewport) reaches the next test."""

    def __init__(self, browser: Any) -> None:
        self.browser = browser
        self.contexts: list[Any] = []

    def new_context(self, **options: Any) -> Any:
        context = self.browser.new_context(**options)
        self.contexts.append(context)
        return context

    def new_page(self, **options: Any) -> Any:
        return self.new_context(**options).new_page()

    def close(self) -> None:
        """Close the pages opened so far (before a server they reach stops, as a browser of their own was)."""
        for context in self.contexts:
            with contextlib.suppress(Exception):  # the browser gone: its contexts with it
                context.close()
        self.contexts.clear()


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


#: true once every figure of the page is drawn and still: no resize waiting on plotly's timer, no title or axes
#: cut (or column switch) in flight, and the same sizes and titles for ``ms``
STILL = """(ms) => {
  // a figure's div before plotly started drawing it (a script that draws it later) is not still: with none of
  // them begun, an empty page was
  const gds = [...document.querySelectorAll('.plotly-graph-div, .js-plotly-plot')];
  const fits = typeof tunesmithFitTitles === 'function';
  // plotly's resize leaves _resolveResize set where it draws nothing again (a figure of a set width and height, a
  // hidden one): pending only where it redraws, or a page holding such a figure was never still
  const resizing = (gd) => gd._resolveResize && gd.layout && !(gd.layout.width && gd.layout.height) &&
    getComputedStyle(gd).display !== 'none';
  const busy = gds.some((gd) => !gd._fullLayout || resizing(gd) || gd.tunesmithFitting || gd.tunesmithRefit ||
    gd.tunesmithFittingAxes || gd.tunesmithRefitAxes || gd.tunesmithStacking || (fits && !gd.tunesmithFitted));
  const now = JSON.stringify([window.innerWidth, ...gds.map((gd) => {
    const box = gd.getBoundingClientRect(), full = gd._fullLayout || {};
    return [box.width, box.height, full.width, full.height, gd.layout && gd.layout.title && gd.layout.title.text,
            full.margin && full.margin.t, gd.querySelectorAll('.axis-title').length];
  })]);
  const seen = window.tunesmithStill || (window.tunesmithStill = {});
  if (busy || seen.last !== now) { seen.last = now; seen.since = performance.now(); return false; }
  return performance.now() - seen.since >= ms;
}"""


def settled(page: Any, width: int | None = None) -> None:
    """Return once the page's figures are drawn and still (:data:`STILL`), the window first resized to
    ``width`` px (900 high) where given: in place of a fixed wait, as long as a loaded machine needs and
    no longer where it is idle."""
    page.evaluate("window.tunesmithStill = null")  # still from now on, not since an earlier wait
    if width is not None and page.evaluate("window.innerWidth") != width:  # the same width fires no resize
        page.evaluate("window.tunesmithResized = false;"
                      " window.addEventListener('resize', () => { window.tunesmithResized = true; }, {once: true})")
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_function("window.tunesmithResized", timeout=30_000)
    page.wait_for_function(STILL, arg=400, polling=50, timeout=30_000)
