"""Executors in this process: inline and threads (forked processes: process.py).

Neither can stop an objective that is running: a per-trial timeout needs a
worker process (``executor="process"`` or ``"ray"``).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import os
import queue
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ..exceptions import StorageError, interrupted
from ..trial import FrozenTrial, TrialState
from .base import Executor, Job
from .callbacks import Callbacks
from .loop import Budget, Run, worker_loop

logger = logging.getLogger("tunesmith")

_T = TypeVar("_T")

#: the signals that stop a run (held while an interrupted run's trials are recorded)
STOPS = {signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])}


def _run_of(job: Job, budget: Budget) -> tuple[Run, Callbacks]:
    calls = Callbacks(job.study, job.callbacks, budget)
    return Run(job.study, job.objective, budget, job.catch, calls, job.on_trial), calls


class InlineExecutor(Executor):
    """Trials one after another in the calling thread."""

    name = "inline"

    def run(self, job: Job) -> str | None:
        run, calls = _run_of(job, Budget(job.n_trials, job.timeout))
        try:
            worker_loop(run)
        except KeyboardInterrupt as exc:
            job.interrupted = interrupted(exc)
            failed = _interrupted(run, exc)  # in case it landed outside the objective
            if failed is None:
                logger.warning("interrupted: stopped; %s", _LEFT_RUNNING)
            elif failed or run.stopped:  # none left running: run_trial failed (or paused) the trial the interrupt stopped
                logger.warning("interrupted: stopped after %s", _fate(run.stopped_trial))
            else:  # between trials, in a callback (a Ctrl-C once the last trial had ended)
                said_stopped(False)
        calls.raise_error()
        return run.exhausted


class ThreadExecutor(Executor):
    """``n_jobs`` threads in this process (for objectives that release the GIL).
    Callbacks run in the calling thread, one at a time."""

    name = "thread"

    def __init__(self, n_jobs: int) -> None:
        self.n_jobs = n_jobs

    def run(self, job: Job) -> str | None:
        run, calls = _run_of(job, Budget(job.n_trials, job.timeout))
        inbox: queue.SimpleQueue[tuple[FrozenTrial, threading.Event]] = queue.SimpleQueue()
        if job.callbacks:  # a worker goes on once its record was called back (as inline)
            run.ended = functools.partial(_hand_over, inbox)
        raised: list[BaseException] = []  # what an objective raised that ``catch`` does not cover
        threads = [  # each in a copy of the caller's context (its context variables: a quiet fit's, say)
            threading.Thread(target=contextvars.copy_context().run, args=(_worker, run, raised), daemon=True)
            for _ in range(self.n_jobs)
        ]
        try:
            for t in threads:  # a signal while they start stops those started too
                t.start()
            while any(t.is_alive() for t in threads):
                _deliver(inbox, calls, 0.1)
        except KeyboardInterrupt as exc:
            with _held(STOPS):  # a second one, raised between the two, left the trials running
                run.interrupted = job.interrupted = interrupted(exc)  # first: a trial asked from now on is failed by its thread
                run.budget.stop()
                failed = _interrupted(run, exc)
                if failed is None:  # again: a busy database may be free by now
                    failed = _interrupted(run, exc)
            said_stopped(bool(failed), _LEFT_RUNNING if failed is None else "")
            calls.error = None
            calls.callbacks = ()  # no more callbacks; the waiting threads go on
            _deliver(inbox, calls, 0.0)
        if job.interrupted is None and run.budget.interrupted:
            job.interrupted = interrupted()  # study.interrupted as inline
        calls.raise_error(raised[0] if raised else None)
        return run.exhausted


def _worker(run: Run, raised: list[BaseException]) -> None:
    """A thread's loop. An exception out of the objective that ``catch`` lets through
    (its trial is already recorded failed) stops the run as it does inline: no new
    trial starts, the other threads end their trials, and ``optimize`` raises it
    (a KeyboardInterrupt: returns, as after a Ctrl-C)."""
    try:
        worker_loop(run)
    except Exception as exc:  # noqa: BLE001 - handed to the calling thread
        raised.append(exc)
        run.budget.stop()
    except KeyboardInterrupt:  # the objective's own (a Ctrl-C reaches the calling thread): it stops the run, as
        run.budget.stop(interrupted=True)  # inline; the thread died of it, its traceback printed, and the others went on
        logger.warning("the objective raised KeyboardInterrupt in a worker thread (no Ctrl-C came): the run stops")


def _hand_over(inbox: queue.SimpleQueue[tuple[FrozenTrial, threading.Event]], record: FrozenTrial) -> None:
    """A worker thread's record to the calling thread; back once its callbacks ran."""
    done = threading.Event()
    inbox.put((record, done))
    done.wait()


def _deliver(inbox: queue.SimpleQueue[tuple[FrozenTrial, threading.Event]], calls: Callbacks, wait: float) -> None:
    """Run the callbacks on the records the threads ended (waiting up to ``wait`` for the first)."""
    calls.check_stop()
    try:
        item = inbox.get(timeout=wait) if wait else inbox.get_nowait()
    except queue.Empty:
        return
    while True:
        record, done = item
        try:
            calls(record)
        finally:
            done.set()
        try:
            item = inbox.get_nowait()
        except queue.Empty:
            return


def _me(pid: int | None = None) -> str:
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"


def _fate(stopped: FrozenTrial | None) -> str:
    """What became of the trial an interrupt stopped inline."""
    if stopped is not None and stopped.state is TrialState.PAUSED:
        return (f"trial {stopped.number} was paused with its checkpoint (attrs['checkpoint']): the next optimize "
                "resumes it first, from there")
    return "the running trial was marked failed"


#: what an interrupted run says when the storage refused to record its running trials as failed
_LEFT_RUNNING = "the running trials could not be marked failed (said above): they stay running in the storage"


def _interrupted(run: Run, exc: KeyboardInterrupt | None = None) -> list[FrozenTrial] | None:
    """Fail this process's running trials as interrupted by ``exc``; a second Ctrl-C or SIGTERM waits
    until they are recorded (raised in the middle, it left the trials after it running). The trials
    failed; None when the storage refused the write (said)."""
    with _held(STOPS):
        try:
            return run.study.fail_worker(_me(), interrupted(exc), requeue=False)
        except StorageError as error:
            logger.warning("could not mark the interrupted trial failed: %s", error)
            return None


def fail_stopped(stopped: list[_T], fail: Callable[[_T], list[FrozenTrial] | None]) -> tuple[list[FrozenTrial], list[_T]]:
    """Fail the running trials of each stopped worker or actor with ``fail`` (None: the storage refused
    the write, said); the trials failed, and those whose trials stay running. A refusal is looked at
    once more (a database another writer held past busy_timeout may be free by now), and ends the
    round: each write after it, to the same database, waited as long (two per worker, 2 x n_jobs
    busy_timeouts in all, where the guide says one more)."""
    failed: list[FrozenTrial] = []
    left = list(stopped)
    for _ in range(2):
        while left:
            trials = fail(left[0])
            if trials is None:
                break
            failed += trials
            del left[0]
    return failed, left


def left_running(failed: int, left: int, who: str) -> str:
    """:func:`said_stopped`'s ``left`` after :func:`fail_stopped` failed ``failed`` trials and left
    the trials of ``left`` workers or actors (``who``) running; "" when it left none."""
    if not left:
        return ""
    if failed:
        return (f"{failed} running trial(s) marked failed, but those of {left} {who}(s) could not be (said "
                "above): they stay running in the storage")
    return f"the running trials of {left} {who}(s) could not be marked failed (said above): they stay running in the storage"


#: what the interrupt did to the running trials of worker processes under a pruner that pauses
HELD_OR_FAILED = ("running trials paused where they can go on from their checkpoints (the next optimize resumes "
                  "them first; tunesmith show names them), the others marked failed")


def said_stopped(failed: bool, left: str = "", *, ended: bool = False, held: bool = False) -> None:
    """Log that an interrupt stopped optimize: with the running trials it failed, after every trial
    had ended (a Ctrl-C as the workers finished said trials were marked failed when none was; ``ended``:
    trials ran, and ended before the interrupt reached them), or with ``left``, what stays running
    because the storage refused to record it. ``held``: the workers' objectives were stopped under a pruner
    that pauses, so those of their trials that can go on from a checkpoint went back to paused, not failed."""
    logger.warning("interrupted: %s; optimize stopped", left if left else
                   HELD_OR_FAILED if failed and held else
                   "running trials marked failed" if failed else
                   "the running trials ended before it reached them, recorded as they ended" if ended else
                   "no trial was running")


class _Noting:
    """The handlers of a hold's signals while it lasts: each signal noted; passed on to the handler it
    stood in for once the hold is over (a signal that came as the hold ended)."""

    def __init__(self, mask: set[int] | None = None) -> None:
        self.holding = True
        self.kept: list[int] = []
        self.replaced: dict[int, Any] = {}
        self.mask, self.thread = mask, threading.get_ident()  # the holding thread's mask before it

    def take(self, signals: set[signal.Signals]) -> None:
        """Stand in for the handlers of ``signals``; each one noted in :attr:`replaced` before it is
        replaced (a handler that raises in between leaves :meth:`restore` all it has to put back)."""
        if threading.current_thread() is not threading.main_thread():
            return  # the main thread runs the handlers anyway: none of ours
        for signum in signals:  # not those ignored or set outside Python
            before = signal.getsignal(signum)
            if before is not None and before is not signal.SIG_IGN:
                self.replaced[signum] = before
                signal.signal(signum, self)

    def __call__(self, signum: int, frame: Any) -> None:
        if self.holding:
            self.kept.append(signum)
            return
        before = self.replaced[signum]
        if callable(before):
            before(signum, frame)
        else:
            signal.signal(signum, before)
            signal.raise_signal(signum)

    def restore(self) -> None:
        self.holding = False  # first: a signal from here on reaches its handler, whatever is restored yet
        left = dict(self.replaced)
        try:
            for signum, handler in self.replaced.items():
                signal.signal(signum, handler)
                del left[signum]
        finally:  # a handler put back that raised at once (another thread took its signal): the others too
            for signum, handler in left.items():
                signal.signal(signum, handler)


_HOLDS: list[_Noting] = []  # the holds in force (a worker forked in one puts the handlers back)


@contextlib.contextmanager
def _held(signals: set[signal.Signals]) -> Iterator[None]:
    """``signals`` kept until it ends, then delivered. Blocked in this thread (where the system can), and
    their handlers only note them meanwhile: a signal that another thread took (one a library started)
    runs its handler in the main thread at its next instruction, in a fork's own hooks too, where what
    the handler raises is dropped."""
    # the mask to put back read first, all the rest inside the ``try``: a handler that raises as the hold
    # starts (another thread took a signal) or ends leaves the signals neither blocked nor only noted
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, ()) if hasattr(signal, "pthread_sigmask") else None
    noting = _Noting(mask)
    try:
        _HOLDS.append(noting)
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_BLOCK, signals)
        noting.take(signals)
        yield
    finally:
        try:
            if mask is not None:  # first: a signal it kept back is noted, as the handlers are still ours
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            noting.restore()
        finally:  # what it kept, whatever a handler put back raised meanwhile
            try:  # out of the holds last: a process another thread forks until then puts the handlers back
                if noting in _HOLDS:
                    _HOLDS.remove(noting)
            finally:
                _raise_each(noting.kept)


def _raise_each(signals: list[int]) -> None:
    """Raise ``signals`` again, each once and each of them, as they would have come unheld: a SIGTERM
    left to the system's default still ends the process after a Ctrl-C's KeyboardInterrupt; the first
    exception a handler raises is raised after, a handler's ``sys.exit`` before any other (unheld, it
    ended the process: an interrupt raised first, that ``optimize`` takes, would have dropped it)."""
    raised: list[BaseException] = []
    for signum in dict.fromkeys(signals):
        try:
            signal.raise_signal(signum)
        except BaseException as exc:  # noqa: BLE001 - raised once the others are delivered
            raised.append(exc)
    if raised:
        raise next((exc for exc in raised if isinstance(exc, SystemExit)), raised[0])


def _unhold_in_worker() -> None:
    """In a process forked inside :func:`_held`: the handlers its parent had (the signals noted there
    were its parent's: the pool's worker's own stay blocked until it unblocks them). Run as every fork's
    child starts: one that another thread forked (an objective's data loader, as the thread executor
    marks interrupted trials failed) only noted its signals for good."""
    try:
        while _HOLDS:
            noting = _HOLDS.pop()
            if noting.holding:  # one over (its handlers back) that an interrupt left in the list: nothing to undo
                noting.restore()
    finally:  # a handler put back that raised at once (the child's own Ctrl-C): the outer holds' too
        if _HOLDS:
            _unhold_in_worker()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_unhold_in_worker)


def _unheld_mask() -> set[int] | None:
    """This thread's signal mask as it was before its holds (None where the system has none)."""
    if not hasattr(signal, "pthread_sigmask"):
        return None
    me = threading.get_ident()
    outer = next((noting.mask for noting in _HOLDS if noting.thread == me and noting.holding), None)  # outermost
    return outer if outer is not None else set(signal.pthread_sigmask(signal.SIG_BLOCK, ()))
