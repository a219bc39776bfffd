"""TunedSearchCV's own cost per model fit, against GridSearchCV, RandomizedSearchCV and OptunaSearchCV.

The estimator does no work (``fit`` keeps the classes, ``score`` is a formula of its one parameter), so
all the time is the search's: splitting, cloning, scoring, bookkeeping and, for tunesmith and Optuna,
their studies. Each search evaluates ``--configs`` configurations of the same one-parameter space
with 5-fold cross-validation (the history grows from 0) and refits the best; per fit = CPU time of
``fit`` / (configurations x 5 + 1). The searches alternate within each round, ``--rounds`` rounds,
medians; ratios to GridSearchCV's time are per round, then their median.

    OMP_NUM_THREADS=1 PYTHONPATH=src nice -n 10 .venv/bin/python benchmarks/bench_sklearn_overhead.py

Searches: GridSearchCV (an evenly spaced grid of ``--configs`` values), RandomizedSearchCV
(uniform), OptunaSearchCV (optuna-integration, its RandomSampler, and its default TPE), and
TunedSearchCV with ``sampler="random"`` and its default (``"auto"``), in memory, n_jobs=1.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

FOLDS = 5


class Trivial(ClassifierMixin, BaseEstimator):
    """A classifier that learns nothing: its score is a fixed function of ``c`` (best at 0.3)."""

    def __init__(self, c: float = 0.5) -> None:
        self.c = c

    def fit(self, X: Any, y: Any) -> Trivial:
        self.classes_ = np.unique(y)
        return self

    def predict(self, X: Any) -> Any:
        return np.full(len(X), self.classes_[0])

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        return -((self.c - 0.3) ** 2)


def searches(n: int, seed: int) -> dict[str, Callable[[], Any]]:
    """Each search, made fresh per call (a new study for tunesmith and Optuna)."""
    import optuna
    from optuna_integration import OptunaSearchCV
    from scipy.stats import uniform
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

    import tunesmith as ts
    from tunesmith.sklearn import TunedSearchCV

    est = Trivial()
    dist = {"c": optuna.distributions.FloatDistribution(0.0, 1.0)}
    return {
        "GridSearchCV": lambda: GridSearchCV(est, {"c": list(np.linspace(0.0, 1.0, n))}, cv=FOLDS),
        "RandomizedSearchCV": lambda: RandomizedSearchCV(est, {"c": uniform(0.0, 1.0)}, n_iter=n, cv=FOLDS,
                                                         random_state=seed),
        "OptunaSearchCV random": lambda: OptunaSearchCV(est, dist, n_trials=n, cv=FOLDS, random_state=seed,
                                                        study=optuna.create_study(
                                                            direction="maximize",
                                                            sampler=optuna.samplers.RandomSampler(seed=seed))),
        "OptunaSearchCV (TPE, default)": lambda: OptunaSearchCV(est, dist, n_trials=n, cv=FOLDS, random_state=seed),
        "TunedSearchCV random": lambda: TunedSearchCV(est, {"c": ts.Float(0.0, 1.0)}, n_trials=n, cv=FOLDS,
                                                      sampler="random", random_state=seed),
        "TunedSearchCV (auto, default)": lambda: TunedSearchCV(est, {"c": ts.Float(0.0, 1.0)}, n_trials=n, cv=FOLDS,
                                                               random_state=seed),
    }


def per_fit_ms(make: Callable[[], Any], X: Any, y: Any, n: int) -> float:
    """CPU ms of one search's ``fit`` per model fit (n configurations x FOLDS, and the refit)."""
    search = make()
    cpu = time.process_time()
    search.fit(X, y)
    return (time.process_time() - cpu) * 1e3 / (n * FOLDS + 1)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", type=int, default=100, help="configurations per search (default 100)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--only", default="", help="comma-separated search names (default: all)")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")  # OptunaSearchCV's experimental warning
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("tunesmith").setLevel(logging.ERROR)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 2)), np.arange(200) % 2
    names = list(searches(args.configs, 0))
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    times: dict[str, list[float]] = {n: [] for n in names}
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    for r in range(args.rounds):
        made = searches(args.configs, r)
        for name in names if r % 2 == 0 else names[::-1]:
            times[name].append(per_fit_ms(made[name], X, y, args.configs))
        print(f"round {r + 1}: " + ", ".join(f"{n} {times[n][-1]:.3f}" for n in names), flush=True)
    base = times.get("GridSearchCV")
    print(f"\n| search | CPU ms per fit (median of {args.rounds}) | runs | vs GridSearchCV (median of per-round ratios) |")
    print("|---|---:|---|---:|")
    for n in names:
        ratio = "" if base is None else f"{statistics.median(a / b for a, b in zip(times[n], base, strict=True)):.2f}x"
        runs = ", ".join(f"{t:.3f}" for t in times[n])
        print(f"| {n} | {statistics.median(times[n]):.3f} | {runs} | {ratio} |")
    print(f"\nload average {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)


if __name__ == "__main__":
    main()
