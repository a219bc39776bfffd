"""Suggestion overhead at 100 and 1,000 completed trials, side by side.

tunesmith's bayes and tpe samplers against Optuna's GPSampler and default
TPESampler, on the same 5-d problem and the same random history. Each
sampler is asked ``--repeats`` times per history size (the history does not
change between asks); we report the median and the mean seconds per
suggestion. The mean of bayes includes its hyperparameter fit (the first
ask); the median is the steady state, where fits happen every ~5% growth.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bayes_overhead.py
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable

import numpy as np

import tunesmith as ts
from tunesmith.trial import Direction, FrozenTrial, TrialState

D = 5


def objective(x: np.ndarray) -> float:
    return float(np.sum((x - 1.0) ** 2) + np.sin(3 * x).sum())


def history(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    X = np.random.default_rng(seed).uniform(-5, 5, size=(n, D))
    return X, np.array([objective(x) for x in X])


def time_tunesmith(name: str, X: np.ndarray, y: np.ndarray, repeats: int) -> list[float]:
    space = ts.Space({f"x{i}": ts.Float(-5, 5) for i in range(D)})
    trials = [FrozenTrial(i, TrialState.COMPLETE, {f"x{j}": float(X[i, j]) for j in range(D)}, float(y[i]))
              for i in range(len(y))]
    sampler = ts.BayesSampler(seed=0) if name == "bayes" else ts.TPESampler(seed=0)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sampler.suggest(space, trials, Direction.MINIMIZE)
        out.append(time.perf_counter() - t0)
    return out


def time_optuna(make: Callable[[], object], X: np.ndarray, y: np.ndarray, repeats: int) -> list[float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {f"x{i}": optuna.distributions.FloatDistribution(-5, 5) for i in range(D)}
    study = optuna.create_study(sampler=make())  # type: ignore[arg-type]
    study.add_trials([
        optuna.trial.create_trial(params={f"x{j}": float(X[i, j]) for j in range(D)}, distributions=dists,
                                  value=float(y[i]))
        for i in range(len(y))
    ])
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        trial = study.ask(dists)
        out.append(time.perf_counter() - t0)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)  # keep the history fixed
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    ts.set_verbosity(logging.WARNING)
    import optuna
    import torch

    torch.set_num_threads(1)
    peers: dict[str, Callable[[], object]] = {
        "optuna GPSampler": lambda: optuna.samplers.GPSampler(seed=0),
        "optuna TPESampler": lambda: optuna.samplers.TPESampler(seed=0),
    }
    print("| trials | sampler | median s/suggestion | mean s/suggestion |")
    print("|---|---|---|---|")
    for n in args.sizes:
        X, y = history(n)
        rows: dict[str, list[float]] = {}
        for name in ("bayes", "tpe"):
            rows[f"tunesmith {name}"] = time_tunesmith(name, X, y, args.repeats)
        for name, make in peers.items():
            rows[name] = time_optuna(make, X, y, args.repeats if "TPE" in name else max(3, args.repeats // 2))
        for name, t in rows.items():
            print(f"| {n} | {name} | {np.median(t):.4f} | {np.mean(t):.4f} |")
        b = np.median(rows["tunesmith bayes"])
        print(f"| {n} | ratio bayes / GPSampler | {b / np.median(rows['optuna GPSampler']):.3f} | |")
        print(f"| {n} | ratio bayes / TPESampler | {b / np.median(rows['optuna TPESampler']):.2f} | |")


if __name__ == "__main__":
    main()
