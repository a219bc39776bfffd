"""Executors in this process: inline and threads (forked processes: process.py).

Neither can stop an objective that is running: a per-trial timeout needs a
worker process (``executor="process"`` or ``"ray"``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from ..exceptions import StorageError
from .base import Executor, Job
from .loop import Budget, Run, worker_loop

logger = logging.getLogger("tunesmith")


def _run_of(job: Job, budget: Budget) -> Run:
    return Run(job.study, job.objective, budget, job.catch, job.callbacks, job.on_trial)


class InlineExecutor(Executor):
    """Trials one after another in the calling thread."""

    name = "inline"

    def run(self, job: Job) -> str | None:
        run = _run_of(job, Budget(job.n_trials, job.timeout))
        try:
            worker_loop(run)
        except KeyboardInterrupt:
            _interrupted(run)  # in case it landed outside the objective
            logger.warning("interrupted: stopped after the running trial was marked failed")
        return run.exhausted[0] if run.exhausted else None


class ThreadExecutor(Executor):
    """``n_jobs`` threads in this process (for objectives that release the GIL)."""

    name = "thread"

    def __init__(self, n_jobs: int) -> None:
        self.n_jobs = n_jobs

    def run(self, job: Job) -> str | None:
        run = _run_of(job, Budget(job.n_trials, job.timeout))
        threads = [threading.Thread(target=worker_loop, args=(run,), daemon=True) for _ in range(self.n_jobs)]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.1)
        except KeyboardInterrupt:
            run.budget.stop()
            job.study.fail_worker(_me(), "interrupted (KeyboardInterrupt)", requeue=False)
            logger.warning("interrupted: running trials marked failed; optimize stopped")
        return run.exhausted[0] if run.exhausted else None


def _me(pid: int | None = None) -> str:
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"


def _interrupted(run: Run) -> None:
    try:
        run.study.fail_worker(_me(), "interrupted (KeyboardInterrupt)", requeue=False)
    except StorageError as exc:
        logger.warning("could not mark the interrupted trial failed: %s", exc)
