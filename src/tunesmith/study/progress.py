"""A progress bar for long runs: trials done, best value so far, time left."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..trial import FrozenTrial, best_of

if TYPE_CHECKING:
    from .study import Study


class Progress:
    """Wraps rich's progress bar; does nothing when disabled."""

    def __init__(self, study: Study, n_trials: int | None, timeout: float | None, *, enabled: bool) -> None:
        self.study = study
        self.enabled = enabled
        self.n_trials = n_trials
        self.timeout = timeout
        self._done = 0
        self._best: FrozenTrial | None = None
        self._lock = threading.Lock()
        self._bar: Any = None
        self._task: Any = None
        self._t0 = time.monotonic()

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.markup import escape
            from rich.progress import (
                BarColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[trials]} trials"),
                TextColumn("best {task.fields[best]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                transient=False,
                console=Console(stderr=True),  # stdout stays clean for results
            )
            self._bar.__enter__()
            self._best = best_of(self.study.trials, self.study.direction)  # a resumed study: its stored best
            total = self.n_trials if self.n_trials is not None else self.timeout
            self._task = self._bar.add_task(escape(self.study.name), total=total, best="-", trials=self._count())
        return self

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)

    def advance(self, record: FrozenTrial) -> None:
        """Count one finished trial (thread-safe)."""
        if self._bar is None:
            return
        with self._lock:
            self._done += 1
            self._best = best_of([t for t in (self._best, record) if t is not None], self.study.direction)
            self._render()

    def poll(self, start: int) -> None:
        """Refresh from the storage (process workers report nothing directly)."""
        if self._bar is None:
            return
        trials = self.study.trials
        finished = [t for t in trials if t.state.is_finished]
        self._done = max(0, len(finished) - start)
        self._best = best_of(trials, self.study.direction)
        self._render()

    def _count(self) -> str:
        """Trials done: "12/50" against n_trials, else "12" (the bar then shows time)."""
        return f"{self._done}/{self.n_trials}" if self.n_trials is not None else str(self._done)

    def _render(self) -> None:
        best = "-" if self._best is None else f"{self._best.value:.6g}"
        if self.n_trials is not None:
            self._bar.update(self._task, completed=self._done, best=best, trials=self._count())
        else:
            elapsed = time.monotonic() - self._t0
            self._bar.update(self._task, completed=elapsed, best=best, trials=self._count())
