"""The optimize call: check the arguments, pick an executor, run it with progress.

``Study.optimize`` calls :func:`run_optimize` through the runner this package
registers with the study layer (:func:`tunesmith.study.runner.use_runner`), so
the study layer never imports the executors.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..samplers.simple import GridSampler, grid_remaining
from ..space.params import uncallable_with
from ..study.progress import Progress
from ..trial import FrozenTrial, TrialState
from .base import Job

if TYPE_CHECKING:
    from ..study import Study
    from ..study.study import Objective

logger = logging.getLogger("tunesmith")

#: the most parallel workers one optimize call starts (each is a thread, a
#: process or a Ray task); more is a typo that would exhaust memory first
MAX_JOBS = 1024


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
    executor: Any,
    options: Mapping[str, Any],
) -> str | None:
    """Run ``study``'s trials (``Study.optimize``); the error of the trials an interrupt stopped, if one did."""
    from . import make_executor

    _check_args(objective, n_trials, timeout, n_jobs)
    if show_progress is not None and not isinstance(show_progress, (bool, np.bool_)):  # "no" is true: a bar
        raise TypeError(f"show_progress must be True, False or None (a bar when stderr is a terminal), got {show_progress!r}")
    options = _check_gpus(executor, options)
    runner = make_executor(executor, n_jobs, study.storage, options)
    if n_trials is None and timeout is None and not isinstance(study.sampler, GridSampler):  # optimize(objective)
        logger.info("study %r: no n_trials or timeout, so trials run until the run is stopped (Ctrl-C, or "
                    "study.stop() in a callback)", study.name)
    study.sampler.set_budget(n_trials)
    show_progress = sys.stderr.isatty() if show_progress is None else bool(show_progress)
    progress = Progress(study, _expected(study, n_trials) if show_progress else n_trials, timeout,
                        enabled=show_progress)
    start = len(study.trials_in(*TrialState)) if show_progress else 0
    job = Job(study, objective, n_trials, timeout, catch, callbacks, progress.advance, lambda: progress.poll(start))
    error: BaseException | None = None
    try:
        with progress:
            exhausted = runner.run(job)
    except BaseException as exc:
        error = exc
        raise
    finally:
        _end_callbacks(study, callbacks, error)
    if exhausted:
        logger.info("%s; optimize stopped", exhausted)
    return job.interrupted


def _end_callbacks(study: Study, callbacks: tuple[Callable[..., Any], ...], error: BaseException | None) -> None:
    """Call ``cb.on_optimize_end(study, error)`` on each callback that has it, once the run is
    over (``error``: what optimize raises, else None), e.g. to close a run the callback opened.
    All are called; the first exception is raised after them, unless optimize already raises. A Ctrl-C
    in one (a second one, stopping its long logging) is raised after them too, the others called with
    it as the error (so they end at once, their runs KILLED, rather than logging on or staying open)."""
    first: Exception | None = None
    interrupt: BaseException | None = None
    for cb in callbacks:
        end = getattr(cb, "on_optimize_end", None)
        if not callable(end):
            continue
        try:
            end(study, interrupt or error)
        except Exception as exc:  # noqa: BLE001 - the others are still called
            logger.warning("%s.on_optimize_end raised %s: %s", type(cb).__name__, type(exc).__name__, exc)
            first = first or exc
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: the others still end
            interrupt = interrupt or exc
    if interrupt is not None:
        raise interrupt
    if first is not None and error is None:
        raise first


def _check_gpus(executor: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """Refuse ``gpus`` this machine lacks (unless ``allow_missing_gpus=True``); the
    options without that flag."""
    from .gpu import check_gpus_present, parse_gpus

    options = dict(options)
    allow = options.pop("allow_missing_gpus", False)
    if not isinstance(allow, bool):
        raise TypeError(f"allow_missing_gpus must be True or False, got {allow!r}")
    ids = parse_gpus(options["gpus"]) if options.get("gpus") is not None and executor in (None, "process") else None
    if ids:
        check_gpus_present(ids, allow_missing=allow)
    return options


def _expected(study: Study, n_trials: int | None) -> int | None:
    """Trials this run will do, for the progress bar: a grid ends when its points do."""
    if not isinstance(study.sampler, GridSampler):
        return n_trials
    left = grid_remaining(study.sampler, study.space, study.trials)
    return left if n_trials is None else min(n_trials, left)


def _check_takes_trial(objective: Any) -> None:
    """An objective that cannot be called with one argument failed every trial, each a line of
    log and a failed record, rather than this call."""
    wrong = uncallable_with(objective, 1)
    if wrong:
        raise TypeError(f"objective must take one argument, the trial (def objective(trial): ...); "
                        f"{wrong} cannot be called as objective(trial)")


def _check_args(objective: Any, n_trials: Any, timeout: Any, n_jobs: Any) -> None:
    if not callable(objective):
        raise TypeError(f"objective must be callable as objective(trial), got {objective!r}")
    _check_takes_trial(objective)
    if n_trials is not None and (not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 0):
        raise ValueError(f"n_trials must be a non-negative integer or None, got {n_trials!r}")
    if timeout is not None and (
        not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not math.isfinite(timeout) or timeout <= 0
    ):
        raise ValueError(f"timeout must be a positive, finite number of seconds or None (no limit), got {timeout!r}")
    if not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or (n_jobs < 1 and n_jobs != -1):
        raise ValueError(f"n_jobs must be a positive integer or -1 (all cores), got {n_jobs!r}")
    if n_jobs > MAX_JOBS:
        raise ValueError(
            f"n_jobs={n_jobs} is more parallel workers than tunesmith starts (at most {MAX_JOBS}; this "
            f"machine has {os.cpu_count()} cores); use -1 for one worker per core"
        )
