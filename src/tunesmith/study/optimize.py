"""The optimize loop: workers that ask, evaluate and tell until the budget ends.

Workers run in the calling thread (``n_jobs=1``), in threads (in-memory
storage), or in forked processes sharing a SQL storage, so CPU-bound Python
objectives really run in parallel. The budget (trials and deadline) is shared
by all workers through a small counter.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..exceptions import SearchExhausted, TrialFinishedError
from ..samplers.simple import GridSampler, grid_remaining
from ..storage import MemoryStorage
from ..trial import FrozenTrial, TrialState
from .progress import Progress

if TYPE_CHECKING:
    from .study import Objective, Study

logger = logging.getLogger("tunesmith")

Catch = tuple[type[BaseException], ...]
Callbacks = tuple[Callable[["Study", FrozenTrial], None], ...]


class Budget:
    """Trials left and deadline, shared by threads or processes."""

    def __init__(self, n_trials: int | None, timeout: float | None, ctx: Any = None) -> None:
        self.limited = n_trials is not None
        left = n_trials if n_trials is not None else 0
        if ctx is None:
            self._left: Any = _Box(left)
            self._stop: Any = _Box(0)
            self._lock: Any = threading.Lock()
        else:
            self._left = ctx.Value("q", left, lock=False)
            self._stop = ctx.Value("b", 0, lock=False)
            self._lock = ctx.Lock()
        self.deadline = None if timeout is None else time.monotonic() + timeout

    def take(self) -> bool:
        """Reserve one trial; False when the budget is spent or a stop was asked."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return False
        with self._lock:
            if self._stop.value:
                return False
            if not self.limited:
                return True
            if self._left.value <= 0:
                return False
            self._left.value -= 1
            return True

    def give_back(self) -> None:
        if self.limited:
            with self._lock:
                self._left.value += 1

    def stop(self) -> None:
        self._stop.value = 1

    @property
    def stopped(self) -> bool:
        return bool(self._stop.value)


@dataclass
class _Box:
    value: int = 0


@dataclass
class Run:
    study: Study
    objective: Objective
    budget: Budget
    catch: tuple[type[BaseException], ...]
    callbacks: tuple[Callable[[Study, FrozenTrial], None], ...]
    on_trial: Callable[[FrozenTrial], None] | None = None
    exhausted: list[str] = field(default_factory=list)


def worker_loop(run: Run) -> None:
    """Ask, evaluate, tell until the budget ends or the search is exhausted."""
    study = run.study
    while run.budget.take():
        try:
            trial = study.ask()
        except SearchExhausted as exc:
            run.budget.give_back()
            run.budget.stop()
            run.exhausted.append(str(exc))
            return
        resumed = trial.is_resumed
        if resumed:
            run.budget.give_back()  # a promotion continues a trial; n_trials counts new ones
        try:
            record = study.run_trial(run.objective, trial, run.catch)
        except TrialFinishedError:
            continue  # marked interrupted by the main thread meanwhile
        for cb in run.callbacks:
            cb(study, record)
        if run.on_trial is not None and not resumed:
            run.on_trial(record)


def run_optimize(
    study: Study,
    objective: Objective,
    *,
    n_trials: int | None,
    timeout: float | None,
    n_jobs: int,
    catch: tuple[type[BaseException], ...],
    callbacks: tuple[Callable[[Study, FrozenTrial], None], ...],
    show_progress: bool | None,
    executor: str | None,
) -> None:
    _check_args(objective, n_trials, timeout, n_jobs)
    if n_jobs == -1:
        n_jobs = os.cpu_count() or 1
    kind = executor or ("thread" if isinstance(study.storage, MemoryStorage) else "process")
    if kind not in ("thread", "process"):
        raise ValueError(f"executor must be 'thread' or 'process', got {executor!r}")
    if kind == "process" and isinstance(study.storage, MemoryStorage) and n_jobs > 1:
        raise ValueError(
            "process workers need a storage they can share: pass storage='sqlite:///file.db' "
            "(or use executor='thread')"
        )
    study.budget_hint = n_trials
    study.sampler.set_budget(n_trials)
    if show_progress is None:
        show_progress = sys.stderr.isatty()
    progress = Progress(study, _expected(study, n_trials) if show_progress else n_trials, timeout,
                        enabled=show_progress)
    start = len(study.trials_in(*TrialState)) if show_progress else 0
    with progress:
        if n_jobs == 1:
            exhausted = _run_inline(study, objective, n_trials, timeout, catch, callbacks, progress)
        elif kind == "thread":
            exhausted = _run_threads(study, objective, n_trials, timeout, n_jobs, catch, callbacks, progress)
        else:
            exhausted = _run_processes(study, objective, n_trials, timeout, n_jobs, catch, callbacks, progress, start)
    if exhausted:
        logger.info("%s; optimize stopped", exhausted)


def _expected(study: Study, n_trials: int | None) -> int | None:
    """Trials this run will do, for the progress bar: a grid ends when its points do."""
    if not isinstance(study.sampler, GridSampler):
        return n_trials
    left = grid_remaining(study.sampler, study.space, study.trials)
    return left if n_trials is None else min(n_trials, left)


def _check_args(objective: Any, n_trials: Any, timeout: Any, n_jobs: Any) -> None:
    if not callable(objective):
        raise TypeError(f"objective must be callable as objective(trial), got {objective!r}")
    if n_trials is not None and (not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 0):
        raise ValueError(f"n_trials must be a non-negative integer or None, got {n_trials!r}")
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
    if not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or (n_jobs < 1 and n_jobs != -1):
        raise ValueError(f"n_jobs must be a positive integer or -1 (all cores), got {n_jobs!r}")


def _run_inline(
    study: Study, objective: Objective, n_trials: int | None, timeout: float | None,
    catch: Catch, callbacks: Callbacks, progress: Progress,
) -> str | None:
    run = Run(study, objective, Budget(n_trials, timeout), catch, callbacks, progress.advance)
    try:
        worker_loop(run)
    except KeyboardInterrupt:
        _mark_running_interrupted(study)  # in case it landed outside the objective
        logger.warning("interrupted: stopped after the running trial was marked failed")
    return run.exhausted[0] if run.exhausted else None


def _run_threads(
    study: Study, objective: Objective, n_trials: int | None, timeout: float | None, n_jobs: int,
    catch: Catch, callbacks: Callbacks, progress: Progress,
) -> str | None:
    run = Run(study, objective, Budget(n_trials, timeout), catch, callbacks, progress.advance)
    threads = [threading.Thread(target=worker_loop, args=(run,), daemon=True) for _ in range(n_jobs)]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.1)
    except KeyboardInterrupt:
        run.budget.stop()
        _mark_running_interrupted(study)
        logger.warning("interrupted: running trials marked failed; optimize stopped")
    return run.exhausted[0] if run.exhausted else None


def _mark_running_interrupted(
    study: Study, pids: Iterable[int] | None = None, error: str = "interrupted (KeyboardInterrupt)"
) -> None:
    """Mark failed the running trials of these processes (default: this one)."""
    ends = tuple(f":{pid}" for pid in (pids if pids is not None else [os.getpid()]))
    if not ends:
        return
    for t in study.trials_in(TrialState.RUNNING):
        if t.worker is not None and t.worker.endswith(ends):
            try:
                study.tell(t, state=TrialState.FAILED, error=error)
            except TrialFinishedError:
                pass


def _child(run: Run, index: int, exhausted: Any) -> None:
    code = 0
    try:
        run.study.sampler.reseed(run.study._session, index + 1)
        run.study._finished.clear()
        run.study._cursor = 0
        worker_loop(run)
        if run.exhausted:
            exhausted.value = 1
    except KeyboardInterrupt:
        _mark_running_interrupted(run.study)
        code = 130
    except BaseException:  # noqa: BLE001 - report and exit with failure
        logging.getLogger("tunesmith").exception("worker %d crashed", index)
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _run_processes(
    study: Study, objective: Objective, n_trials: int | None, timeout: float | None, n_jobs: int,
    catch: Catch, callbacks: Callbacks, progress: Progress, start: int,
) -> str | None:
    ctx: Any = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    budget = Budget(n_trials, timeout, ctx)
    exhausted = ctx.Value("b", 0, lock=False)
    run = Run(study, objective, budget, catch, callbacks)
    procs = [ctx.Process(target=_child, args=(run, i, exhausted), daemon=False) for i in range(n_jobs)]
    for p in procs:
        p.start()
    interrupted = False
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(0.2)
            progress.poll(start)
    except KeyboardInterrupt:
        budget.stop()
        _wait(procs, 2.0, kill=False)  # a terminal's Ctrl-C reaches the workers too
        for p in procs:  # the signal came to this process only: pass it on
            if p.is_alive():
                os.kill(p.pid, signal.SIGINT)
        _wait(procs, 10.0)
        interrupted = True
        logger.warning("interrupted: running trials marked failed; optimize stopped")
    finally:
        _wait(procs, 5.0)
    progress.poll(start)
    _mark_orphans(study, procs, interrupted)
    return "the search is exhausted: every configuration has been tried" if exhausted.value else None


def _mark_orphans(study: Study, procs: list[Any], interrupted: bool) -> None:
    """Workers that died mid-trial (killed, crashed) leave running trials: mark them failed."""
    bad = [p for p in procs if p.exitcode != 0]
    if not bad:
        return
    if not all(p.exitcode == 130 for p in bad):
        codes = [p.exitcode for p in bad]
        logger.warning("%d worker process(es) exited abnormally (codes %s)", len(bad), codes)
    for p in bad:
        why = "interrupted" if interrupted or p.exitcode == 130 else "worker process died"
        _mark_running_interrupted(study, [p.pid], f"{why} (worker exit code {p.exitcode})")


def _wait(procs: list[Any], timeout: float, *, kill: bool = True) -> None:
    end = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.0, end - time.monotonic()))
    for p in procs:
        if kill and p.is_alive():
            os.kill(p.pid, signal.SIGTERM)
            p.join(1.0)
