"""Time to suggest the next point given N completed trials (5-d function).

The history (N uniformly random points of a 5-d function) is the same for
every optimizer. tunesmith samplers are asked directly (they are pure: the
trials go in, a configuration comes out); Optuna samplers through
``study.ask`` on a study holding the same N trials. Each optimizer is asked
``repeats`` times with the history unchanged; the median is reported.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

import tunesmith as ts
from tunesmith.trial import Direction, FrozenTrial, TrialState

D = 5


def _f(x: np.ndarray) -> float:
    return float(np.sum((x - 1.0) ** 2) + np.sin(3 * x).sum())


def history(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    X = np.random.default_rng(seed).uniform(-5, 5, size=(n, D))
    return X, np.array([_f(x) for x in X])


def time_tunesmith(sampler: str, X: np.ndarray, y: np.ndarray, repeats: int) -> list[float]:
    from tunesmith.samplers import make_sampler

    space = ts.Space({f"x{i}": ts.Float(-5.0, 5.0) for i in range(D)})
    trials = [FrozenTrial(i, TrialState.COMPLETE, {f"x{j}": float(X[i, j]) for j in range(D)}, float(y[i]))
              for i in range(len(y))]
    s = make_sampler(sampler, seed=0)
    s.set_budget(len(trials) + 1)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        s.suggest(space, trials, Direction.MINIMIZE)
        out.append(time.perf_counter() - t0)
    return out


def time_optuna(make: Callable[[], Any], X: np.ndarray, y: np.ndarray, repeats: int) -> list[float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    dists = {f"x{i}": optuna.distributions.FloatDistribution(-5, 5) for i in range(D)}
    study = optuna.create_study(sampler=make())
    study.add_trials([
        optuna.trial.create_trial(params={f"x{j}": float(X[i, j]) for j in range(D)},
                                  distributions=dists, value=float(y[i]))
        for i in range(len(y))
    ])
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        trial = study.ask(dists)
        out.append(time.perf_counter() - t0)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)  # history stays the same
    return out


def _optuna(kind: str) -> Callable[[], Any]:
    def make() -> Any:
        import optuna
        import torch

        torch.set_num_threads(1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if kind == "gp":
                return optuna.samplers.GPSampler(seed=0)
            return optuna.samplers.TPESampler(seed=0)

    return make


def measure(sizes: Sequence[int], samplers: Sequence[str], repeats: int) -> list[dict[str, Any]]:
    """One row per (N, optimizer): median and mean seconds per suggestion."""
    ts.set_verbosity(logging.WARNING)
    rows = []
    for n in sizes:
        X, y = history(n)
        timings: dict[str, list[float]] = {}
        for s in samplers:
            timings[f"ts-{s}"] = time_tunesmith(s, X, y, repeats)
        timings["optuna-tpe"] = time_optuna(_optuna("tpe"), X, y, repeats)
        timings["optuna-gp"] = time_optuna(_optuna("gp"), X, y, max(3, repeats // 2))
        for name, t in timings.items():
            rows.append({"n_trials": n, "optimizer": name, "median_s": float(np.median(t)),
                         "mean_s": float(np.mean(t)), "repeats": len(t)})
            print(f"  N={n:5d} {name:14s} median {np.median(t):.4f} s", flush=True)
    return rows


# -- through the public ask/tell loop, the history growing trial by trial ----------------------


def loop_tunesmith(sampler: str, n: int, seed: int = 0) -> Iterator[float]:
    """Seconds of ``study.ask()`` + ``study.tell()`` for each of ``n`` trials of a fresh
    in-memory study (the objective's own time left out), one trial per ``next()``: what a
    user's loop pays, model refits included, as the history grows."""
    space = ts.Space({f"x{i}": ts.Float(-5.0, 5.0) for i in range(D)})
    study = ts.Study(space, sampler=sampler, seed=seed)
    study.sampler.set_budget(n)
    for _ in range(n):
        t0 = time.perf_counter()
        trial = study.ask()
        asked = time.perf_counter()
        value = _f(np.array([trial.params[f"x{i}"] for i in range(D)]))
        t1 = time.perf_counter()
        study.tell(trial, value)
        yield asked - t0 + time.perf_counter() - t1


def loop_optuna(kind: str, n: int, seed: int = 0) -> Iterator[float]:
    """The same loop through Optuna's ``study.ask`` / ``study.tell``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampler = optuna.samplers.TPESampler(seed=seed) if kind == "tpe" else optuna.samplers.GPSampler(seed=seed)
    study = optuna.create_study(sampler=sampler)
    dists = {f"x{i}": optuna.distributions.FloatDistribution(-5, 5) for i in range(D)}
    for _ in range(n):
        t0 = time.perf_counter()
        trial = study.ask(dists)
        asked = time.perf_counter()
        value = _f(np.array([trial.params[f"x{i}"] for i in range(D)]))
        t1 = time.perf_counter()
        study.tell(trial, value)
        yield asked - t0 + time.perf_counter() - t1


def lockstep(loops: dict[str, Iterator[float]]) -> dict[str, list[float]]:
    """Run the loops one trial each in turn, so a burst of load on a shared machine hits
    every optimizer at the same history size."""
    times: dict[str, list[float]] = {name: [] for name in loops}
    live = dict(loops)
    while live:
        for name, loop in list(live.items()):
            try:
                times[name].append(next(loop))
            except StopIteration:
                del live[name]
    return times


def loop_summary(name: str, times: Sequence[float], window: int = 100) -> dict[str, Any]:
    """Median and 90th percentile over the last ``window`` trials and over all of them."""
    last = np.asarray(times[-window:])
    every = np.asarray(times)
    return {"optimizer": name, "n_trials": len(times), "last_window": window,
            "median_last_s": float(np.median(last)), "p90_last_s": float(np.percentile(last, 90)),
            "median_all_s": float(np.median(every)), "p90_all_s": float(np.percentile(every, 90)),
            "total_s": float(every.sum())}
