"""A search stopped by Ctrl-C: ``fit`` raises KeyboardInterrupt, as scikit-learn's searches do, and the
trials the interruption failed count neither toward ``n_trials`` nor as configurations of ``cv_results_``."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ..exceptions import is_interrupt
from ..study import Study
from ..study.lifecycle import requeue_copy
from ..trial import FrozenTrial, TrialState


def was_interrupted(trial: FrozenTrial) -> bool:
    """Whether Ctrl-C or a stopping signal failed ``trial`` (its configuration was not evaluated)."""
    return trial.state is TrialState.FAILED and is_interrupt(trial.error)


def evaluated(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The finished trials whose configuration was evaluated: all but those an interruption failed."""
    return [t for t in trials if t.state.is_finished and not was_interrupted(t)]


def rerun_interrupted(study: Study, todo: int) -> None:
    """Queue a copy of each trial an interruption failed (``todo`` at most), to run first: a grid's point
    stays taken by the failed trial, so the sampler would never offer it again. Once per trial, whichever
    fit queues it (the copy's claim is unique to the trial)."""
    for t in [t for t in study.trials if was_interrupted(t)][:todo]:
        requeue_copy(study.storage, study._study_id, t)


def noting_interrupts(objective: Callable[[Any], float], came: list[int]) -> Callable[[Any], float]:
    """``objective``, noting in ``came`` a KeyboardInterrupt raised through it: one raised by a library that
    takes SIGINT with a handler of its own while it trains, which :func:`noting_ctrl_c`'s never sees."""

    def noting(trial: Any) -> float:
        try:
            return objective(trial)
        except KeyboardInterrupt:
            came.append(signal.SIGINT)
            raise

    return noting


@contextlib.contextmanager
def noting_ctrl_c() -> Iterator[list[int]]:
    """Note each Ctrl-C (SIGINT) that reaches this process in the block, and hand it on to the handler
    in place (``optimize`` takes it: it fails the running trials as interrupted and returns). Nothing is
    noted outside the main thread, which alone receives signals, or where SIGINT is ignored."""
    came: list[int] = []
    before = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or before in (signal.SIG_IGN, None):
        yield came
        return

    def on_sigint(signum: int, frame: Any) -> None:
        came.append(signum)
        (before if callable(before) else signal.default_int_handler)(signum, frame)

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield came
    finally:
        signal.signal(signal.SIGINT, before)
