"""Executors on this machine: inline, threads, and forked worker processes.

Processes share the study through its SQL storage, so CPU-bound Python
objectives really run in parallel (no GIL between them). Each process owns a
:class:`~tunesmith.execution.gpu.Slot`: one thread for numeric libraries
and, when GPUs are given, one device in ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from ..exceptions import StorageError
from ..trial import FrozenTrial, TrialState
from .base import Executor, Job
from .gpu import (
    EXIT_OOM,
    Slot,
    SlotPool,
    apply_env,
    is_oom_error,
    parse_gpus,
    plan_slots,
    retry_attrs,
)
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


class ProcessExecutor(Executor):
    """Forked worker processes sharing a SQL storage; optional GPU packing.

    Args:
        n_jobs: worker processes (with ``gpus``: at most that many).
        gpus: devices to use (ids, "0,1", or a count); None: CPU only.
        trials_per_gpu: concurrent trials per device.
        threads_per_trial: threads for numeric libraries in each worker
            (OMP_NUM_THREADS, torch); None leaves them as they are.
    """

    name = "process"

    def __init__(
        self,
        n_jobs: int | None = None,
        *,
        gpus: Sequence[int | str] | int | str | None = None,
        trials_per_gpu: int = 1,
        threads_per_trial: int | None = 1,
    ) -> None:
        self.slots = plan_slots(n_jobs, parse_gpus(gpus), trials_per_gpu)
        self.threads = threads_per_trial

    def run(self, job: Job) -> str | None:
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        budget = Budget(job.n_trials, job.timeout, ctx)
        exhausted = ctx.Value("b", 0, lock=False)
        run = Run(job.study, job.objective, budget, job.catch, job.callbacks)
        pool = SlotPool(self.slots)
        procs = {s.index: (s, self._start(ctx, run, s, exhausted)) for s in self.slots}
        try:
            self._watch(ctx, run, pool, procs, exhausted, job)
        except KeyboardInterrupt:
            budget.stop()
            alive = [p for _, p in procs.values()]
            _wait(alive, 2.0, kill=False)  # a terminal's Ctrl-C reaches the workers too
            for p in alive:  # the signal came to this process only: pass it on
                if p.is_alive():
                    os.kill(p.pid, signal.SIGINT)
            _wait(alive, 10.0)
            for p in alive:
                if p.exitcode not in (0,):
                    _fail_dead(run, p.pid, f"interrupted (worker exit code {p.exitcode})")
            logger.warning("interrupted: running trials marked failed; optimize stopped")
        finally:
            _wait([p for _, p in procs.values()], 5.0)
        if job.poll is not None:
            job.poll()
        return "the search is exhausted: every configuration has been tried" if exhausted.value else None

    def _start(self, ctx: Any, run: Run, slot: Slot, exhausted: Any) -> Any:
        p = ctx.Process(target=_child, args=(run, slot, self.threads, exhausted), daemon=False)
        p.start()
        return p

    def _watch(self, ctx: Any, run: Run, pool: SlotPool, procs: dict[int, Any], exhausted: Any, job: Job) -> None:
        # every exit is handled, the last ones too: a death noticed after the
        # others finished still fails (and may re-queue and re-run) its trial
        while True:
            time.sleep(0.2)
            if job.poll is not None:
                job.poll()
            for index, (slot, p) in list(procs.items()):
                if p.is_alive() or index not in pool.live:
                    continue
                self._exited(ctx, run, pool, procs, slot, p, exhausted)
            if not any(p.is_alive() for _, p in procs.values()):
                return

    def _exited(self, ctx: Any, run: Run, pool: SlotPool, procs: dict[int, Any], slot: Slot, p: Any, exhausted: Any) -> None:
        code = p.exitcode
        retries = held = 0
        if code not in (0, 130, EXIT_OOM):
            logger.warning(
                "worker process %d died (exit code %s); its running trial is failed "
                "(paused again if it had been resumed from a checkpoint)", p.pid, code,
            )  # fmt: skip
            lost = _fail_dead(run, p.pid, f"worker process died (exit code {code})")
            # a re-queued copy runs under this call's budget, in a fresh worker: the lost
            # attempt is not counted (once per trial: a copy that dies again costs its slot)
            retries = sum("requeued_as" in t.attrs and "retry_of" not in t.attrs for t in lost)
            run.budget.give_back(retries)
            held = sum(t.state is TrialState.PAUSED for t in lost)  # a resumed trial kept its promotion
        new = pool.exited(slot, oom=code == EXIT_OOM, replace=retries + held > 0)
        budget = run.budget
        may_start = not (budget.stopped or budget.expired or budget.left == 0)
        # held promotions, and re-queued copies after an exhausted search, still run
        may_drain = not budget.expired and (not budget.stopped or budget.exhausted)
        if new is not None and (may_start or ((held or retries) and may_drain)):
            procs[new.index] = (new, self._start(ctx, run, new, exhausted))


def _fail_dead(run: Run, pid: int, error: str) -> list[FrozenTrial]:
    try:
        return run.study.fail_worker(_me(pid), error, dead=True)
    except StorageError as exc:
        logger.warning("could not mark the dead worker's trial failed: %s", exc)
        return []


def _oom_retirer(run: Run) -> Any:
    def after(record: FrozenTrial) -> bool:
        if record.state is not TrialState.FAILED or not is_oom_error(record.error):
            return True
        attrs = retry_attrs(record.number, record.attrs)
        if attrs is not None:
            n = run.study.enqueue(record.params, attrs=attrs)
            logger.warning("trial %d ran out of GPU memory; re-queued as %s with fewer neighbours", record.number, n)
        return False  # this worker retires: its device keeps one trial fewer

    return after


def _child(run: Run, slot: Slot, threads: int | None, exhausted: Any) -> None:
    code = 0
    try:
        apply_env(slot.env(threads))
        run.study.sampler.reseed(run.study._session, slot.index + 1)
        run.study._finished.clear()
        run.study._cursor = 0
        if slot.device is not None:
            run.after_trial = _oom_retirer(run)
        worker_loop(run)
        if run.exhausted:
            exhausted.value = 1
        elif run.retired:
            code = EXIT_OOM
    except KeyboardInterrupt:
        _interrupted(run)
        code = 130
    except BaseException:  # noqa: BLE001 - report and exit with failure
        logging.getLogger("tunesmith").exception("worker %d crashed", slot.index)
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _interrupted(run: Run) -> None:
    try:
        run.study.fail_worker(_me(), "interrupted (KeyboardInterrupt)", requeue=False)
    except StorageError as exc:
        logger.warning("could not mark the interrupted trial failed: %s", exc)


def _wait(procs: list[Any], timeout: float, *, kill: bool = True) -> None:
    end = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.0, end - time.monotonic()))
    for p in procs:
        if kill and p.is_alive():
            os.kill(p.pid, signal.SIGTERM)
            p.join(1.0)
