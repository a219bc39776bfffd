"""Real tuning tasks of the broad benchmark beyond the three in :mod:`.problems`.

All on data scikit-learn ships (no download), 3-fold CV with fixed folds, ``n_jobs=1``;
a failed fit is the worst loss (1.0 for accuracy-like losses). The PyTorch task trains
with a fresh seed per evaluation, so it carries its own noise, as training does.

* ``rf-digits``: RandomForest on 900 digits: n_estimators, max_depth, min_samples_split,
  max_features, criterion (categorical); 1 - accuracy.
* ``logreg-breast-cancer``: standardized LogisticRegression (saga): penalty l1/l2/elasticnet,
  C, l1_ratio only for elasticnet (conditional); CV log loss.
* ``knn-digits``: KNeighbors on 900 digits: n_neighbors, weights, Minkowski p; 1 - accuracy.
* ``kridge-diabetes``: KernelRidge on standardized diabetes: alpha, kernel rbf/laplacian/poly,
  gamma, degree only for poly (conditional); 1 - R^2.
* ``gbr-diabetes``: GradientBoostingRegressor: learning_rate, n_estimators, max_depth,
  subsample, min_samples_leaf; 1 - R^2.
* ``torch-mlp-digits``: a 2-layer PyTorch MLP, 10 epochs of AdamW on 1,200 digits, validated
  on the other 597: lr, weight_decay, hidden, dropout, batch_size; 1 - validation accuracy.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

import tunesmith as ts

from .problems import _cv, _data

Objective = Callable[[dict[str, Any]], float]


@cache
def _diabetes() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    idx = np.random.default_rng(0).permutation(len(y))
    return X[idx], y[idx]


def _cv_regression(model: Any) -> float:
    from sklearn.model_selection import KFold, cross_val_score

    X, y = _diabetes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            s = cross_val_score(model, X, y, cv=KFold(3, shuffle=True, random_state=0), scoring="r2", n_jobs=1)
        except Exception:  # noqa: BLE001 - a failed fit is the worst loss, for everyone
            return 1.0
    mean = float(np.mean(s))
    return min(1.0 - mean, 1.0) if np.isfinite(mean) else 1.0


def rf_space() -> ts.Space:
    return ts.Space({
        "n_estimators": ts.Int(10, 200, log=True),
        "max_depth": ts.Int(2, 32, log=True),
        "min_samples_split": ts.Int(2, 20),
        "max_features": ts.Float(0.05, 1.0),
        "criterion": ts.Categorical(["gini", "entropy"]),
    })


def rf_objective() -> Objective:
    from sklearn.ensemble import RandomForestClassifier

    return lambda cfg: _cv(RandomForestClassifier(random_state=0, **cfg), "digits", "accuracy", n=900)


def logreg_space() -> ts.Space:
    return ts.Space({
        "penalty": ts.Categorical(["l1", "l2", "elasticnet"]),
        "C": ts.Float(1e-4, 1e3, log=True),
        "l1_ratio": ts.Float(0.0, 1.0, when={"penalty": ["elasticnet"]}),
    })


def logreg_objective() -> Objective:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _data("breast_cancer")

    def loss(cfg: dict[str, Any]) -> float:
        model = make_pipeline(StandardScaler(), LogisticRegression(solver="saga", max_iter=500, **logreg_args(cfg)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = cross_val_score(model, X, y, cv=StratifiedKFold(3, shuffle=True, random_state=0),
                                scoring="neg_log_loss", n_jobs=1)
        return float(-np.mean(s))

    return loss


def logreg_args(cfg: dict[str, Any]) -> dict[str, Any]:
    """The space's ``penalty`` (and ``l1_ratio``) as the installed scikit-learn takes them: from 1.8 on,
    ``penalty=`` is deprecated and ``l1_ratio`` alone says it (0: L2, 1: L1, between: elastic net)."""
    import sklearn

    if tuple(int(p) for p in sklearn.__version__.split(".")[:2]) < (1, 8):
        return cfg
    ratio = {"l1": 1.0, "l2": 0.0}.get(cfg["penalty"], cfg.get("l1_ratio"))
    return {**{k: v for k, v in cfg.items() if k != "penalty"}, "l1_ratio": ratio}


def knn_space() -> ts.Space:
    return ts.Space({
        "n_neighbors": ts.Int(1, 50, log=True),
        "weights": ts.Categorical(["uniform", "distance"]),
        "p": ts.Float(1.0, 3.0),
    })


def knn_objective() -> Objective:
    from sklearn.neighbors import KNeighborsClassifier

    return lambda cfg: _cv(KNeighborsClassifier(**cfg), "digits", "accuracy", n=900)


def kridge_space() -> ts.Space:
    return ts.Space({
        "alpha": ts.Float(1e-4, 10.0, log=True),
        "kernel": ts.Categorical(["rbf", "laplacian", "poly"]),
        "gamma": ts.Float(1e-4, 10.0, log=True),
        "degree": ts.Int(2, 4, when={"kernel": ["poly"]}),
    })


def kridge_objective() -> Objective:
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return lambda cfg: _cv_regression(make_pipeline(StandardScaler(), KernelRidge(**cfg)))


def gbr_space() -> ts.Space:
    return ts.Space({
        "learning_rate": ts.Float(1e-3, 1.0, log=True),
        "n_estimators": ts.Int(20, 200, log=True),
        "max_depth": ts.Int(1, 6),
        "subsample": ts.Float(0.5, 1.0),
        "min_samples_leaf": ts.Int(1, 30, log=True),
    })


def gbr_objective() -> Objective:
    from sklearn.ensemble import GradientBoostingRegressor

    return lambda cfg: _cv_regression(GradientBoostingRegressor(random_state=0, **cfg))


def torch_space() -> ts.Space:
    return ts.Space({
        "lr": ts.Float(1e-4, 1e-1, log=True),
        "weight_decay": ts.Float(1e-6, 1e-1, log=True),
        "hidden": ts.Int(16, 256, log=True),
        "dropout": ts.Float(0.0, 0.6),
        "batch_size": ts.Int(16, 128, log=True),
    })


def torch_objective() -> Objective:
    import torch

    torch.set_num_threads(1)
    X, y = _data("digits")
    Xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    calls = [0]

    def loss(cfg: dict[str, Any]) -> float:
        calls[0] += 1
        g = torch.Generator().manual_seed(calls[0])  # a new draw per evaluation: training noise
        torch.manual_seed(calls[0])
        net = torch.nn.Sequential(
            torch.nn.Linear(64, cfg["hidden"]), torch.nn.ReLU(), torch.nn.Dropout(cfg["dropout"]),
            torch.nn.Linear(cfg["hidden"], cfg["hidden"]), torch.nn.ReLU(), torch.nn.Linear(cfg["hidden"], 10))
        opt = torch.optim.AdamW(net.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
        for _ in range(10):
            for idx in torch.randperm(1200, generator=g).split(cfg["batch_size"]):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(net(Xt[idx]), yt[idx]).backward()
                opt.step()
        net.eval()
        with torch.no_grad():
            acc = (net(Xt[1200:]).argmax(1) == yt[1200:]).float().mean().item()
        return 1.0 - acc if np.isfinite(acc) else 1.0

    return loss


TASKS: dict[str, tuple[Callable[[], ts.Space], Callable[[], Objective]]] = {
    "rf-digits": (rf_space, rf_objective),
    "logreg-breast-cancer": (logreg_space, logreg_objective),
    "knn-digits": (knn_space, knn_objective),
    "kridge-diabetes": (kridge_space, kridge_objective),
    "gbr-diabetes": (gbr_space, gbr_objective),
    "torch-mlp-digits": (torch_space, torch_objective),
}
