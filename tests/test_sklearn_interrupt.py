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
from sklearn.base import clone  # noqa: E402
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


def test_a_study_whose_budget_an_interrupted_trial_filled_runs_that_configuration_on_its_next_fit(
        tmp_path: Path) -> None:
    """A fit of an earlier tunesmith counted the trial Ctrl-C interrupted toward ``n_trials`` and returned; its
    study holds as many trials as the budget. Fitting it again with the same budget evaluates the interrupted
    configuration (docs/trust.md), so every row of ``cv_results_`` is a configuration that ran."""
    first = TunedSearchCV(LogisticRegression(max_iter=500), {"C": loguniform(1e-2, 1e2)}, n_trials=3, cv=3,
                          scoring=CtrlCAtScore(at=8), storage=f"sqlite:///{tmp_path / 's.db'}", name="lr", random_state=0)
    with pytest.raises(KeyboardInterrupt):
        first.fit(X, Y)
    interrupted = first.study_.trials[-1]
    assert len(first.study_.trials) == 3 and interrupted.error == "interrupted (KeyboardInterrupt)"
    again = clone(first).set_params(scoring=CtrlCAtScore(at=0)).fit(X, Y)
    assert len(again.cv_results_["params"]) == 3 and again.cv_results_["params"][-1] == interrupted.params
    assert np.isfinite(again.cv_results_["mean_test_score"]).all() and len(again.study_.trials) == 4


def test_a_grid_point_ctrl_c_stopped_is_evaluated_when_fitting_again(shared_storage_url: str) -> None:
    """Its point stayed taken by the failed trial: fitting again searched 2 points of 3 and said nothing."""
    grid = {"C": [0.01, 1.0, 100.0]}
    db = shared_storage_url
    first = TunedSearchCV(LogisticRegression(max_iter=500), grid, n_trials=None, cv=3, scoring=CtrlCAtScore(at=5),
                          storage=db, name="g", random_state=0)
    with pytest.raises(KeyboardInterrupt, match="1 configuration kept"):
        first.fit(X, Y)
    interrupted = first.study_.trials[-1].params
    for _ in range(2):  # a second fit finds the whole grid searched, the copy run once
        again = TunedSearchCV(LogisticRegression(max_iter=500), grid, n_trials=None, cv=3, scoring=CtrlCAtScore(at=0),
                              storage=db, name="g", random_state=0).fit(X, Y)
        assert sorted(p["C"] for p in again.cv_results_["params"]) == grid["C"]
        assert interrupted in list(again.cv_results_["params"])
    assert len(again.study_.trials) == 4  # 2 complete, the interrupted one, its copy


def test_ctrl_c_in_a_search_held_in_memory_does_not_say_fitting_again_resumes() -> None:
    """storage=None with a name gives each fit its own study: "fit again with the same storage and name
    to resume" was untrue."""
    search = TunedSearchCV(LogisticRegression(max_iter=500), {"C": loguniform(1e-2, 1e2)}, n_trials=5, cv=3,
                           scoring=CtrlCAtScore(at=5), name="lr", random_state=0)
    with pytest.raises(KeyboardInterrupt, match=r"after 1 configuration; give storage= and name= to resume") as info:
        search.fit(X, Y)
    assert "fit again" not in str(info.value)


class OwnCtrlC(CtrlCAtScore):
    """A scorer that raises KeyboardInterrupt itself at its ``at``-th call, as a library does that takes SIGINT
    with a handler of its own while it trains and raises KeyboardInterrupt once it has stopped."""

    def __call__(self, estimator: object, X: np.ndarray, y: np.ndarray) -> float:
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return float(accuracy_score(y, estimator.predict(X)))  # type: ignore[attr-defined]


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_ctrl_c_that_a_library_took_stops_fit_too(tmp_path: Path, n_jobs: int) -> None:
    """No SIGINT reached tunesmith's handler: fit refitted on a part of the budget and returned (n_jobs=2 with a
    pruner: trials in threads)."""
    first = TunedSearchCV(LogisticRegression(max_iter=500), {"C": loguniform(1e-2, 1e2)}, n_trials=5, cv=3,
                          scoring=OwnCtrlC(at=8), storage=f"sqlite:///{tmp_path / 's.db'}", name="lr",
                          random_state=0, n_jobs=n_jobs, pruner=None if n_jobs == 1 else "median")
    with pytest.raises(KeyboardInterrupt, match=r"configurations? kept in study 'lr'"):
        first.fit(X, Y)
    assert not hasattr(first, "best_estimator_")
