"""Where trials run: inline, threads, local processes (with GPU packing), Ray.

``make_executor`` turns ``study.optimize(..., n_jobs=, executor=, **options)``
into an :class:`Executor`. The Ray adapter is imported only when asked for.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..space.params import did_you_mean
from ..storage import MemoryStorage, Storage
from ..study.runner import use_runner
from .base import Executor, Job
from .gpu import Slot, SlotPool, plan_slots
from .local import InlineExecutor, ThreadExecutor
from .loop import Budget, Run, worker_loop
from .optimize import run_optimize
from .process import ProcessExecutor, check_trial_timeout

_OPTIONS = {
    "inline": set(),
    "thread": set(),
    "process": {"gpus", "trials_per_gpu", "threads_per_trial", "trial_timeout"},
    "ray": {"ray_address", "resources_per_trial", "trials_per_gpu", "ray_init", "trial_timeout", "ray_start_timeout"},
}

#: Ray Tune's names (tune.run, tune.TuneConfig, tune.with_resources) and Optuna's (study.optimize)
#: and what to write here instead
PEER_NAMES = {
    "gc_after_trial": "no such option here: call gc.collect() at the end of the objective (a callback runs in the calling process, not in a worker process or Ray actor)",
    "show_progress_bar": "write show_progress=",
    "num_samples": "write n_trials=",
    "max_concurrent_trials": "write n_jobs= (with executor='ray': actors at once)",
    "time_budget_s": "write timeout=",
    "metric": "the objective returns the value itself; no metric name",
    "mode": "write ts.Study(..., direction='minimize' or 'maximize')",
    "search_alg": "write ts.Study(..., sampler=...)",
    "scheduler": "write ts.Study(..., pruner=...)",
    "resources": "write resources_per_trial= (with executor='ray')",
    "address": "write ray_address=",
}

NO_TIMEOUT = (
    "trial_timeout needs an executor that can stop a running objective: executor='process' "
    "(with a SQL storage such as storage='sqlite:///study.db') or executor='ray'. The {kind} "
    "executor runs the objective in this process, where it cannot be stopped; there, check "
    "the time inside the objective (raise ts.TrialPruned) or use optimize(timeout=...), "
    "which stops starting new trials"
)


def make_executor(spec: Any, n_jobs: int, storage: Storage, options: Mapping[str, Any]) -> Executor:
    """An executor from a name ("inline", "thread", "process", "ray"), an
    instance, or None (inline for one job; threads in memory; else processes)."""
    if isinstance(spec, Executor):
        if options:
            raise TypeError(f"options {sorted(options)} go to the executor's constructor, not optimize()")
        return spec
    if isinstance(spec, type) and issubclass(spec, Executor):
        raise TypeError(f"executor={spec.__name__} is the class; pass an instance, {spec.__name__}(...), or the "
                        f"executor's name with n_jobs= (e.g. executor='thread')")
    n = (os.cpu_count() or 1) if n_jobs == -1 else n_jobs
    options = _given(options)
    kind = spec if spec is not None else _default_kind(n, storage, options)
    if kind not in _OPTIONS:
        raise ValueError(f"executor must be one of {sorted(_OPTIONS)} or an Executor, got {spec!r}"
                         f"{did_you_mean(spec, sorted(_OPTIONS))}")
    if "trial_timeout" in options and kind in ("inline", "thread"):
        raise ValueError(NO_TIMEOUT.format(kind=kind))
    if kind == "inline" and n > 1:  # it ran one trial at a time, n_jobs silently ignored
        raise ValueError(
            f"executor='inline' runs one trial at a time in this process, so n_jobs={n_jobs} would be ignored; "
            "use executor='thread' or 'process' (or leave executor out) for parallel workers, or n_jobs=1"
        )
    unknown = set(options) - _OPTIONS[kind]
    if unknown:
        raise TypeError(_unknown_options(sorted(unknown), kind))
    if kind == "ray":
        from .ray import RayExecutor

        # n_jobs=-1: as many as the cluster fits, not one per core of this (driver) machine
        return RayExecutor(n_workers=None if n_jobs in (1, -1) else n, **_ray_options(options))
    if kind == "process":
        if isinstance(storage, MemoryStorage):
            raise ValueError(
                "process workers need a storage they can share: pass storage='sqlite:///file.db' "
                + ("(or use executor='ray' for trial_timeout)" if "trial_timeout" in options else "(or use executor='thread')")
            )
        fill = options.get("gpus") is not None and n_jobs == 1  # default n_jobs: fill the devices
        return ProcessExecutor(None if fill else n, **options)
    if kind == "thread" and n > 1:
        return ThreadExecutor(n)
    return InlineExecutor()


#: optimize()'s own arguments and every executor's options: where a misspelt keyword lands
_ARGUMENTS = sorted({"n_trials", "timeout", "n_jobs", "catch", "callbacks", "show_progress", "executor"}
                    .union(*_OPTIONS.values()))


def _unknown_options(unknown: list[str], kind: str) -> str:
    """What optimize() says of keywords neither it nor executor ``kind`` takes: a misspelt,
    Ray Tune or Optuna keyword first with its answer; an executor's option with the executor it belongs to."""
    hints = {k: _hint(k) for k in unknown}
    said = "; ".join(f"{k}: {h}" for k, h in hints.items() if h)
    if all(hints.values()) and not any(k in opts for k in unknown for opts in _OPTIONS.values()):
        return f"optimize() got an unexpected keyword argument{'s' * (len(unknown) > 1)}: {said}"
    allowed = ", ".join(sorted(_OPTIONS[kind])) or "none"
    return (f"optimize() got options {unknown} that executor {kind!r} does not take (it takes: {allowed})"
            + (f"; {said}" if said else ""))


def _hint(key: str) -> str:
    """The answer for one keyword optimize() and its executor do not take, or ``""``."""
    owners = [name for name, opts in sorted(_OPTIONS.items()) if key in opts]
    if owners:
        return f"an option of executor={' or '.join(map(repr, owners))}"
    return PEER_NAMES.get(key) or _closest_argument(key)


def _closest_argument(key: str) -> str:
    """``did you mean 'n_trials'?`` for ``ntrials=`` (a misspelt keyword lands among the executor's options), or ``""``."""
    return did_you_mean(key, _ARGUMENTS).strip(" ()")


def runs_in_processes(spec: Any, n_jobs: int, storage: Storage, options: Mapping[str, Any]) -> bool:
    """Whether ``optimize(executor=spec, n_jobs=n_jobs, **options)`` may run the objective in other
    processes of this machine (forked workers): the in-process executors and Ray's actors do not;
    an executor of another kind may."""
    if spec is None:
        return _default_kind((os.cpu_count() or 1) if n_jobs == -1 else n_jobs, storage, _given(options)) == "process"
    return getattr(spec, "name", spec) not in ("inline", "thread", "ray")


def _given(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` without ``trial_timeout=None`` (no limit: as if left out)."""
    return {k: v for k, v in options.items() if not (k == "trial_timeout" and v is None)}


def _default_kind(n: int, storage: Storage, options: Mapping[str, Any]) -> str:
    if options.get("gpus") is not None or "trial_timeout" in options:
        return "process"
    if n == 1:
        return "inline"
    return "thread" if isinstance(storage, MemoryStorage) else "process"


def _ray_options(options: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(options)
    if "ray_address" in out:
        from .ray import check_address

        check_address(out["ray_address"], "ray_address")
        out["address"] = out.pop("ray_address")
    if "ray_start_timeout" in out:
        out["start_timeout"] = check_trial_timeout(out.pop("ray_start_timeout"), "ray_start_timeout")
    return out


use_runner(run_optimize)  # Study.optimize runs through the executors of this package

__all__ = [
    "Budget",
    "Executor",
    "InlineExecutor",
    "Job",
    "ProcessExecutor",
    "Run",
    "Slot",
    "SlotPool",
    "ThreadExecutor",
    "make_executor",
    "plan_slots",
    "runs_in_processes",
    "worker_loop",
]
