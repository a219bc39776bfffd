"""The worker loop shared by every executor: ask, evaluate, tell until the budget ends."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..exceptions import SearchExhausted, TrialFinishedError
from ..trial import FrozenTrial

if TYPE_CHECKING:
    from ..study import Study, Trial


logger = logging.getLogger("tunesmith")

#: seconds after which the budget's lock counts as held by a dead worker
LOCK_TIMEOUT = 5.0

#: what an executor returns when the search ran out of configurations
EXHAUSTED = "the search is exhausted: every configuration has been tried"

# Budget's shared stop flag: trials may start; stopped (interrupt, timeout, a callback);
# stopped because the search is exhausted (promotions earned and waiting trials still run)
_GOING, _STOPPED, _EXHAUSTED = 0, 1, 2


class Budget:
    """Trials left and deadline, shared by threads (ctx=None) or forked processes."""

    def __init__(self, n_trials: int | None, timeout: float | None, ctx: Any = None) -> None:
        self.limited = n_trials is not None
        left = n_trials if n_trials is not None else 0
        if ctx is None:
            self._left: Any = _Box(left)
            self._stop: Any = _Box(_GOING)
            self._lock: Any = threading.Lock()
        else:
            self._left = ctx.Value("q", left, lock=False)
            self._stop = ctx.Value("b", _GOING, lock=False)
            self._lock = ctx.Lock()
        self.deadline = None if timeout is None else time.monotonic() + timeout

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The budget's lock. A worker process killed while it held it (a few
        instructions) would block every other for good: after LOCK_TIMEOUT seconds
        its lock is taken over (and released after)."""
        got = self._lock.acquire(timeout=LOCK_TIMEOUT)
        if not got:
            logger.warning("the trial budget's lock was held for %g s (its worker died); taken over", LOCK_TIMEOUT)
        try:
            yield
        finally:
            try:
                self._lock.release()
            except (ValueError, RuntimeError):  # taken over, and released meanwhile
                pass

    @property
    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def take(self, n: int = 1, *, exhausted_ok: bool = False, seat: Seat | None = None) -> int:
        """Reserve up to ``n`` trials; how many were granted (0: spent or stopped;
        with ``exhausted_ok``, a search that ran out still grants them: waiting
        trials need no new configuration). A forked worker's ``seat`` records the
        unit in the same locked step, next to the count, so that a worker killed
        right after taking it never loses it (its parent gives it back)."""
        if self.expired:
            return 0
        with self._locked():
            if self._stop.value != _GOING and not (exhausted_ok and self._stop.value == _EXHAUSTED):
                return 0
            got = min(n, max(0, self._left.value)) if self.limited else n
            if got and seat is not None:
                seat.took()
            if self.limited:
                self._left.value -= got
            return int(got)

    def give_back(self, n: int = 1) -> None:
        if self.limited and n > 0:
            with self._locked():
                self._left.value += n

    def stop(self, *, exhausted: bool = False) -> None:
        """No new trial starts; ``exhausted``: because the search has none left
        (earned promotions still run then, see :func:`finish_promoted`)."""
        with self._locked():  # an interrupt (plain stop) is never turned back into exhaustion
            self._stop.value = _EXHAUSTED if exhausted and self._stop.value != _STOPPED else _STOPPED

    @property
    def stopped(self) -> bool:
        return self._stop.value != _GOING

    @property
    def exhausted(self) -> bool:
        """Stopped because the search is exhausted (seen by every worker)."""
        return self._stop.value == _EXHAUSTED

    @property
    def left(self) -> int | None:
        return int(self._left.value) if self.limited else None

    @property
    def may_start(self) -> bool:
        """Whether a new trial may still start (a unit is left, nothing stopped the run)."""
        return not (self.stopped or self.expired or self.left == 0)

    @property
    def may_drain(self) -> bool:
        """Whether earned promotions (and, after an exhausted search, waiting trials)
        may still run: not once the timeout passed or the run was stopped otherwise."""
        return not self.expired and (not self.stopped or self.exhausted)


@dataclass
class _Box:
    value: int = 0


class Seat:
    """What one forked worker shares with its parent: whether it holds a budget
    unit that is not yet a trial in the storage (lost with the worker unless the
    parent gives it back), and since when its current trial runs (0: none)."""

    def __init__(self, ctx: Any) -> None:
        self._holding = ctx.Value("b", 0, lock=False)
        self._since = ctx.Value("d", 0.0, lock=False)

    @property
    def holding(self) -> bool:
        return bool(self._holding.value)

    @property
    def since(self) -> float:
        return float(self._since.value)

    def took(self) -> None:
        self._holding.value = 1

    def seated(self, running: bool) -> None:
        """The unit became a trial (``running``), or went back to the budget."""
        self._since.value = time.time() if running else 0.0
        self._holding.value = 0

    def done(self) -> None:
        self._since.value = 0.0


@dataclass
class Run:
    """A worker's view of a job: the study, objective, shared budget and hooks."""

    study: Study
    objective: Callable[..., Any]
    budget: Budget
    catch: tuple[type[BaseException], ...]
    ended: Callable[[FrozenTrial], None] | None = None  # each record, to the driver's callbacks
    on_trial: Callable[[FrozenTrial], None] | None = None
    exhausted: str | None = None  # why this worker's search ended early (SearchExhausted's message)
    after_trial: Callable[[FrozenTrial], bool] | None = None  # False: this worker retires
    retired: bool = False
    lost: int = 0  # trials that were failed elsewhere while this worker ran them
    seat: Seat | None = None  # a forked worker's state, shared with its parent

    def seated(self, running: bool) -> None:
        if self.seat is not None:
            self.seat.seated(running)


def worker_loop(run: Run) -> None:
    """Ask, evaluate, tell until the budget ends, the search is exhausted, or
    ``after_trial`` retires this worker; then resume the paused trials that
    have earned a promotion (see :func:`finish_promoted`)."""
    while run.budget.take(seat=run.seat):
        record = run_one(run)
        if record is None:
            if run.exhausted is not None:
                break
            continue
        if run.after_trial is not None and not run.after_trial(record):
            run.retired = True
            return
    finish_promoted(run)


def finish_promoted(run: Run) -> None:
    """Once no new trial may start, run the promotions the last trials earned.

    A pausing pruner (ASHA, Hyperband with ``pause=True``) decides promotions as
    results arrive, so the trial that ends the budget often promotes a paused
    one. Resumes do not count against ``n_trials``; each continues one trial
    to its next rung, so this ends. Not once ``timeout`` has passed.
    """
    while run.budget.may_drain:
        lost = run.lost
        if run_one(run, only="promoted") is not None or run.lost > lost:
            continue  # a trial failed elsewhere meanwhile is over; look again
        # an exhausted search still runs waiting trials (re-queued copies of lost ones,
        # queued ones), each under the budget like any new trial
        if not (run.budget.exhausted and run.budget.take(exhausted_ok=True, seat=run.seat)):
            return
        if run_one(run, only="waiting") is None and run.lost == lost:
            run.budget.give_back()  # none was waiting
            return


def _ask(run: Run, only: str | None) -> Trial | None:
    """The next trial to run (see :func:`run_one`); the seat records that it started."""
    if only is not None:
        picked = run.study.ask_promoted() if only == "promoted" else run.study.ask_waiting()
        run.seated(picked is not None)
        return picked
    try:
        trial = run.study.ask()
    except SearchExhausted as exc:
        run.seated(False)
        run.budget.give_back()
        run.budget.stop(exhausted=True)
        run.exhausted = str(exc)
        return None
    run.seated(True)
    return trial


def run_one(run: Run, *, only: str | None = None) -> FrozenTrial | None:
    """One trial; None when the search is exhausted or it was failed elsewhere.
    ``only="promoted"``: a promoted paused trial, ``only="waiting"``: a waiting
    one (None: there is none), never a new configuration."""
    trial = _ask(run, only)
    if trial is None:
        return None
    resumed = trial.is_resumed
    if resumed and only is None:
        run.budget.give_back()  # a promotion continues a trial; n_trials counts new ones
    try:
        record = run.study.run_trial(run.objective, trial, run.catch)
    except TrialFinishedError:  # failed meanwhile (interrupted, or its heartbeat was judged lost)
        run.lost += 1
        if run.study.trials[trial.number].system.requeued_as is not None:
            run.budget.give_back()  # its copy runs under this call's budget: the lost attempt is not counted
        return None
    finally:
        if run.seat is not None:
            run.seat.done()
    if run.ended is not None:
        run.ended(record)
    if run.on_trial is not None and not resumed:
        run.on_trial(record)
    return record
