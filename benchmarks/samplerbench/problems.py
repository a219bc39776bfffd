"""Benchmark problems: each one is a tunesmith Space and a loss to minimize.

* BBOB (coco-experiment, ``import cocoex``): noiseless functions on [-5, 5]^d,
  instance 1. The known optimum f* is read from the suite itself: the problem
  exposes its optimal point (``Problem._best_parameter``), and f* = f(x*),
  which BBOB defines with two decimals.
* Real tuning tasks on data scikit-learn ships (no download), 3-fold CV,
  ``n_jobs=1``: an SVM on digits with a conditional space, an MLP trained with
  Adam on digits, a gradient-boosting model on breast_cancer (medical).
  Every evaluation is a real fit; nothing is cached or precomputed. An
  exception inside a fit counts as the worst possible loss (1.0) for every
  optimizer alike.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

import tunesmith as ts

Objective = Callable[[dict[str, Any]], float]

BBOB_FUNCTIONS = (1, 2, 7, 8, 10, 15, 17, 20, 21, 24)
BBOB_NAMES = {
    1: "sphere", 2: "ellipsoid", 7: "step-ellipsoid", 8: "rosenbrock", 10: "ellipsoid-rot",
    15: "rastrigin-rot", 17: "schaffers-f7", 20: "schwefel", 21: "gallagher-101",
    24: "lunacek-bi-rastrigin",
}
BBOB_DIMS = (2, 5, 10)
REAL_TASKS = ("svm-digits", "mlp-adam-digits", "hgb-breast-cancer")


@dataclass(frozen=True)
class Problem:
    """A named problem; ``family`` is "bbob" or "real" here, or one of the broad
    benchmark's (:mod:`.broad`); ``pending``: suggestions in flight at a time (> 1 only
    in the parallel family, whose names are "p<pending>:<base problem>")."""

    name: str
    family: str
    space: ts.Space
    budget: int
    pending: int = 1

    @property
    def base(self) -> str:
        """The problem without its parallel prefix."""
        return self.name.split(":", 1)[-1]

    def objective(self) -> Objective:
        """Build the loss function (call inside the worker process); a noisy problem's
        returns (observed, noiseless)."""
        if self.base in real_tasks():
            return real_tasks()[self.base][1]()
        if self.family == "bbob":
            return _bbob_objective(self.name)
        from . import broad

        return broad.objective(self.base)


# -- BBOB ---------------------------------------------------------------------
def bbob_name(f: int, d: int) -> str:
    return f"bbob-f{f:02d}-d{d:02d}"


def _parse_bbob(name: str) -> tuple[int, int, int]:
    """(function, dimension, instance) of "bbob-fFF-dDD" (instance 1) or "bbob-fFF-dDD-iI"."""
    _, f, d, *inst = name.split("-")
    return int(f[1:]), int(d[1:]), int(inst[0][1:]) if inst else 1


@cache
def _suite() -> Any:
    import cocoex

    return cocoex.Suite("bbob", "", "dimensions:2,3,5,10,20 instance_indices:1-5")


def bbob_problem(name: str) -> Any:
    f, d, i = _parse_bbob(name)
    return _suite().get_problem_by_function_dimension_instance(f, d, i)


def bbob_space(d: int) -> ts.Space:
    return ts.Space({f"x{i}": ts.Float(-5.0, 5.0) for i in range(d)})


def _bbob_objective(name: str) -> Objective:
    problem = bbob_problem(name)
    d = problem.dimension

    def loss(cfg: dict[str, Any]) -> float:
        return float(problem(np.array([cfg[f"x{i}"] for i in range(d)])))

    return loss


@cache
def bbob_optimum(name: str) -> float:
    """f* of a BBOB problem: f at the optimal point the suite exposes."""
    problem = bbob_problem(name)
    return round(float(problem(optimal_point(problem))), 2)


def optimal_point(problem: Any) -> np.ndarray:
    """x* of a COCO problem (the suite writes it to a file in the working directory)."""
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            problem._best_parameter("print")  # writes x* to this file
            return np.atleast_1d(np.loadtxt("._bbob_problem_best_parameter.txt"))
        finally:
            os.chdir(cwd)


def bbob_random_median(name: str, n: int = 1000, seed: int = 12345) -> float:
    """Median loss of ``n`` uniformly random points (the regret normalizer)."""
    problem = bbob_problem(name)
    lo, hi = problem.lower_bounds, problem.upper_bounds
    X = np.random.default_rng(seed).uniform(lo, hi, size=(n, problem.dimension))
    return float(np.median([problem(x) for x in X]))


# -- real tasks -----------------------------------------------------------------
@cache
def _data(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer, load_digits

    if name == "digits":
        X, y = load_digits(return_X_y=True)
        X = X / 16.0
    else:
        X, y = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(y))
    return X[idx], y[idx]


def _cv(model: Any, data: str, scoring: str, n: int | None = None) -> float:
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    X, y = _data(data)
    if n is not None:
        X, y = X[:n], y[:n]
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            scores = cross_val_score(model, X, y, cv=folds, scoring=scoring, n_jobs=1)
        except Exception:  # noqa: BLE001 - a failed fit is the worst loss, for everyone
            return 1.0
    mean = float(np.mean(scores))
    return 1.0 - mean if np.isfinite(mean) else 1.0


def svm_space() -> ts.Space:
    return ts.Space({
        "kernel": ts.Categorical(["linear", "poly", "rbf"]),
        "C": ts.Float(1e-3, 1e3, log=True),
        "gamma": ts.Float(1e-5, 10.0, log=True, when={"kernel": ["poly", "rbf"]}),
        "degree": ts.Int(2, 5, when={"kernel": ["poly"]}),
    })


def svm_objective() -> Objective:
    from sklearn.svm import SVC

    def loss(cfg: dict[str, Any]) -> float:  # 1 - accuracy, 3-fold CV, 900 digits
        return _cv(SVC(**cfg, max_iter=20_000), "digits", "accuracy", n=900)

    return loss


def mlp_space() -> ts.Space:
    return ts.Space({
        "learning_rate_init": ts.Float(1e-4, 1e-1, log=True),
        "beta_1": ts.Float(0.5, 0.99),
        "beta_2": ts.Float(0.9, 0.9999),
        "epsilon": ts.Float(1e-9, 1e-4, log=True),
        "alpha": ts.Float(1e-6, 1e-1, log=True),
        "batch_size": ts.Int(16, 256, log=True),
    })


def mlp_objective() -> Objective:
    from sklearn.neural_network import MLPClassifier

    def loss(cfg: dict[str, Any]) -> float:  # 1 - accuracy, 3-fold CV, 500 digits, 12 epochs
        model = MLPClassifier(hidden_layer_sizes=(32,), solver="adam", max_iter=12,
                              random_state=0, **cfg)
        return _cv(model, "digits", "accuracy", n=500)

    return loss


def hgb_space() -> ts.Space:
    return ts.Space({
        "learning_rate": ts.Float(1e-3, 1.0, log=True),
        "max_iter": ts.Int(10, 100, log=True),
        "max_leaf_nodes": ts.Int(4, 64, log=True),
        "min_samples_leaf": ts.Int(2, 100, log=True),
        "l2_regularization": ts.Float(1e-6, 10.0, log=True),
        "max_features": ts.Float(0.1, 1.0),
    })


def hgb_objective() -> Objective:
    from sklearn.ensemble import HistGradientBoostingClassifier

    def loss(cfg: dict[str, Any]) -> float:  # 1 - ROC AUC, 3-fold CV, all 569 patients
        model = HistGradientBoostingClassifier(early_stopping=False, random_state=0, **cfg)
        return _cv(model, "breast_cancer", "roc_auc")

    return loss


_REAL: dict[str, tuple[Callable[[], ts.Space], Callable[[], Objective]]] = {
    "svm-digits": (svm_space, svm_objective),
    "mlp-adam-digits": (mlp_space, mlp_objective),
    "hgb-breast-cancer": (hgb_space, hgb_objective),
}


def real_tasks() -> dict[str, tuple[Callable[[], ts.Space], Callable[[], Objective]]]:
    """Every real task: the three above and the broad benchmark's (:mod:`.tasks`)."""
    from .tasks import TASKS

    return {**_REAL, **TASKS}


def problems(family: str, budget: int | None = None, *, functions: tuple[int, ...] = BBOB_FUNCTIONS,
             dims: tuple[int, ...] = BBOB_DIMS, tasks: tuple[str, ...] = REAL_TASKS) -> list[Problem]:
    """The problems of a family ("bbob" or "real"); default budgets 100 and 50."""
    if family == "bbob":
        b = budget or 100
        return [Problem(bbob_name(f, d), "bbob", bbob_space(d), b) for d in dims for f in functions]
    if family == "real":
        b = budget or 50
        unknown = sorted(set(tasks) - set(_REAL))
        if unknown:
            raise ValueError(f"unknown real task(s) {unknown}; choose from {list(_REAL)}")
        return [Problem(t, "real", _REAL[t][0](), b) for t in tasks]
    raise ValueError(f"unknown problem family {family!r}; use 'bbob' or 'real'")
