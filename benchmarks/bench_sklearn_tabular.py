"""A small search as a tabular user runs it: TunedSearchCV against GridSearchCV, RandomizedSearchCV and
OptunaSearchCV, wall time of ``fit``.

A ``Pipeline(ColumnTransformer(...), LogisticRegression)`` on a generated frame of numeric and categorical
columns (450 training rows), 5-fold, 16 configurations, refit included, n_jobs=1, in memory. GridSearchCV and
TunedSearchCV run the same 16-point grid; RandomizedSearchCV, TunedSearchCV (``sampler="random"`` and its
default) and OptunaSearchCV (its default, TPE) draw 16 configurations of ``loguniform(1e-3, 1e2)`` x 2 imputer
strategies. The searches alternate within each round (order reversed every other round); wall time and the
process's CPU time of each ``fit``; ratios to GridSearchCV's time are per round, then their median.

By default scikit-learn's searches and TunedSearchCV score ``accuracy`` and ``roc_auc`` (``refit="roc_auc"``) while
OptunaSearchCV, which takes one scorer, scores ``roc_auc``; ``--one-scorer`` gives every search ``roc_auc`` alone,
the same work for all.

    OMP_NUM_THREADS=1 PYTHONPATH=src nice -n 10 .venv/bin/python benchmarks/bench_sklearn_tabular.py [--one-scorer]
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

SCORING = ["accuracy", "roc_auc"]


def frame(n: int = 600, seed: int = 0) -> tuple[Any, np.ndarray]:
    """Age (5% missing), income, city and plan; a label from a logistic model of them."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"age": rng.integers(18, 80, n).astype(float), "income": rng.lognormal(10, 1, n),  # noqa: N806
                      "city": rng.choice(["paris", "lyon", "nice", "lille"], n),
                      "plan": rng.choice(["basic", "pro"], n)})
    X.loc[rng.random(n) < 0.05, "age"] = np.nan
    logit = (0.03 * (X["age"].fillna(50) - 50) + 0.8 * (X["city"] == "nice") + 0.5 * np.log(X["income"] / 2e4)
             + (X["plan"] == "pro"))
    return X, (rng.random(n) < 1 / (1 + np.exp(-logit))).to_numpy().astype(int)


def pipeline() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    num = Pipeline([("imp", SimpleImputer()), ("sc", StandardScaler())])
    pre = ColumnTransformer([("num", num, ["age", "income"]), ("cat", OneHotEncoder(), ["city", "plan"])])
    return Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=2000))])


def searches(seed: int, scoring: Any = SCORING) -> dict[str, Callable[[], Any]]:
    """Each search, made fresh per call (a new study for tunesmith and Optuna); ``scoring``: the scorers of all but
    OptunaSearchCV, which scores roc_auc."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna_integration import OptunaSearchCV
    from scipy.stats import loguniform
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

    from tunesmith.sklearn import TunedSearchCV

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    grid = {"clf__C": list(np.logspace(-3, 2, 8)), "pre__num__imp__strategy": ["mean", "median"]}
    dists = {"clf__C": loguniform(1e-3, 1e2), "pre__num__imp__strategy": ["mean", "median"]}
    odists = {"clf__C": FloatDistribution(1e-3, 1e2, log=True),
              "pre__num__imp__strategy": CategoricalDistribution(["mean", "median"])}
    common = {"cv": 5, "scoring": scoring, "refit": "roc_auc" if isinstance(scoring, list) else True}
    return {
        "GridSearchCV": lambda: GridSearchCV(pipeline(), grid, **common),
        "TunedSearchCV, the same grid": lambda: TunedSearchCV(pipeline(), grid, random_state=seed, **common),
        "RandomizedSearchCV": lambda: RandomizedSearchCV(pipeline(), dists, n_iter=16, random_state=seed, **common),
        "TunedSearchCV, random": lambda: TunedSearchCV(pipeline(), dists, n_trials=16, sampler="random",
                                                       random_state=seed, **common),
        "TunedSearchCV, default (auto)": lambda: TunedSearchCV(pipeline(), dists, n_trials=16, random_state=seed,
                                                               **common),
        "OptunaSearchCV, default (TPE)": lambda: OptunaSearchCV(pipeline(), odists, n_trials=16, cv=5,
                                                                scoring="roc_auc", random_state=seed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--one-scorer", action="store_true", help="every search scores roc_auc alone")
    args = parser.parse_args()
    scoring = "roc_auc" if args.one_scorer else SCORING
    warnings.filterwarnings("ignore")
    logging.getLogger("tunesmith").setLevel(logging.WARNING)
    X, y = frame()  # noqa: N806
    X_train, y_train = X[:450], y[:450]  # noqa: N806
    names = list(searches(0, scoring))
    times: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    best: dict[str, list[float]] = {n: [] for n in names}
    print(f"scoring of all but OptunaSearchCV (roc_auc): {scoring}")
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    for r in range(args.rounds):
        made = searches(r, scoring)
        for name in names if r % 2 == 0 else names[::-1]:
            search = made[name]()
            start, start_cpu = time.perf_counter(), time.process_time()
            search.fit(X_train, y_train)
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
            best[name].append(float(search.best_score_))
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    print("| search | wall s (median) | rounds | vs GridSearchCV | CPU s (median) | rounds | vs GridSearchCV "
          "| best CV score (median) |")
    print("|---|---:|---|---:|---:|---|---:|---:|")
    for name in names:
        cells = []
        for kind in (times, cpu):
            ratio = statistics.median(t / g for t, g in zip(kind[name], kind["GridSearchCV"], strict=True))
            cells.append(f"{statistics.median(kind[name]):.2f} | {', '.join(f'{t:.2f}' for t in kind[name])} | "
                         f"{ratio:.2f}x")
        print(f"| {name} | {' | '.join(cells)} | {statistics.median(best[name]):.4f} |")


if __name__ == "__main__":
    main()
