"""TunedSearchCV stopped by Ctrl-C: fit stops (no refit on a part of the budget), and fitting again resumes
the full budget, the interrupted configuration run again rather than kept as a row of NaN."""

from __future__ import annotations

import signal
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
from scipy.stats import loguniform  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import accuracy_score  # noqa: E402

from tunesmith.sklearn import TunedSearchCV  # noqa: E402
from tunesmith.trial import TrialState  # noqa: E402

X, Y = load_iris(return_X_y=True)


class CtrlCAtScore:
    """An accuracy scorer that sends this process a real SIGINT at its ``at``-th call (counted from 1)."""

    def __init__(self, at: int) -> None:
        self.at, self.calls = at, 0

    def __call__(self, estimator: object, X: np.ndarray, y: np.ndarray) -> float:
        self.calls += 1
        if self.calls == self.at:
            signal.raise_signal(signal.SIGINT)
        return float(accuracy_score(y, estimator.predict(X)))  # type: ignore[attr-defined]


def search(tmp_path: Path, scoring: object) -> TunedSearchCV:
    return TunedSearchCV(LogisticRegression(max_iter=500), {"C": loguniform(1e-2, 1e2)}, n_trials=5, cv=3,
                         scoring=scoring, storage=f"sqlite:///{tmp_path / 's.db'}", name="lr", random_state=0)


def test_ctrl_c_stops_fit_and_fitting_again_runs_the_whole_budget(tmp_path: Path) -> None:
    first = search(tmp_path, CtrlCAtScore(at=8))  # the second fold of the third configuration
    with pytest.raises(KeyboardInterrupt, match=r"2 configurations kept in study 'lr'.*fit again"):
        first.fit(X, Y)
    assert not hasattr(first, "best_estimator_")  # nothing refitted on two configurations of five
    states = [t.state for t in first.study_.trials]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAILED]
    again = search(tmp_path, CtrlCAtScore(at=0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "non-finite" warning for the interrupted trial
        again.fit(X, Y)
    assert len(again.cv_results_["params"]) == 5  # five configurations evaluated, the interrupted one not kept
    assert np.isfinite(again.cv_results_["mean_test_score"]).all()
    assert list(again.cv_results_["state"]) == ["complete"] * 5
