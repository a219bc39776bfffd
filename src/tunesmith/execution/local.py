"""Executors in this process: inline and threads (forked processes: process.py).

Neither can stop an objective that is running: a per-trial timeout needs a
worker process (``executor="process"`` or ``"ray"``).
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import socket
import threading

from ..exceptions import StorageError, interrupted
from ..trial import FrozenTrial
from .base import Executor, Job
from .callbacks import Callbacks
from .loop import Budget, Run, worker_loop

logger = logging.getLogger("tunesmith")


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
            _interrupted(run, exc)  # in case it landed outside the objective
            logger.warning("interrupted: stopped after the running trial was marked failed")
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
        threads = [
            threading.Thread(target=_worker, args=(run, raised), daemon=True) for _ in range(self.n_jobs)
        ]
        for t in threads:
            t.start()
        try:
            while any(t.is_alive() for t in threads):
                _deliver(inbox, calls, 0.1)
        except KeyboardInterrupt as exc:
            run.budget.stop()
            job.study.fail_worker(_me(), interrupted(exc), requeue=False)
            logger.warning("interrupted: running trials marked failed; optimize stopped")
            calls.error = None
            calls.callbacks = ()  # no more callbacks; the waiting threads go on
            _deliver(inbox, calls, 0.0)
        calls.raise_error()
        if raised:
            raise raised[0]
        return run.exhausted


def _worker(run: Run, raised: list[BaseException]) -> None:
    """A thread's loop. An exception out of the objective that ``catch`` lets through
    (its trial is already recorded failed) stops the run as it does inline: no new
    trial starts, the other threads end their trials, and ``optimize`` raises it."""
    try:
        worker_loop(run)
    except Exception as exc:  # noqa: BLE001 - handed to the calling thread
        raised.append(exc)
        run.budget.stop()


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


def _interrupted(run: Run, exc: KeyboardInterrupt | None = None) -> None:
    try:
        run.study.fail_worker(_me(), interrupted(exc), requeue=False)
    except StorageError as exc:
        logger.warning("could not mark the interrupted trial failed: %s", exc)
