"""ts.cv as a user writes it: the documented objective with parallel folds, folds made once."""

from __future__ import annotations

import numpy as np
import pytest

import tunesmith as ts
from tunesmith import cv

X = np.linspace(0.0, 1.0, 24)


def _study() -> ts.Study:
    return ts.Study(ts.Space({"a": ts.Float(0.0, 1.0)}), direction="maximize", sampler="random", seed=0)


def test_parallel_folds_take_a_score_that_uses_the_trial_as_the_guide_writes_it() -> None:
    folds = cv.kfold(len(X), k=3)

    def objective(trial: ts.Trial, n_jobs: int) -> float:
        def score(train_idx: np.ndarray, val_idx: np.ndarray) -> float:  # holds the trial: not picklable
            return float(trial.params["a"] * X[val_idx].mean())

        return cv.cross_validate(trial, score, folds, n_jobs=n_jobs)

    serial, parallel = _study(), _study()
    serial.optimize(lambda t: objective(t, 1), n_trials=2)
    parallel.optimize(lambda t: objective(t, 2), n_trials=2)
    assert [t.state.value for t in parallel.trials] == ["complete", "complete"]
    assert [t.value for t in parallel.trials] == pytest.approx([t.value for t in serial.trials])


def test_folds_from_a_generator_made_once_say_why_the_second_trial_has_none() -> None:
    KFold = pytest.importorskip("sklearn.model_selection").KFold  # noqa: N806

    folds = KFold(3).split(X)  # made once: the first trial uses it up
    study = _study()
    study.optimize(lambda t: cv.cross_validate(t, lambda a, b: 1.0, folds), n_trials=2)
    first, second = study.trials
    assert first.state.value == "complete" and second.state.value == "failed"
    assert "folds is empty: a generator such as KFold(5).split(x)" in (second.error or "")
    assert "pass list(...) of it, or cv.split(splitter, x, y)" in (second.error or "")


def test_a_splitter_or_a_number_of_folds_is_refused_with_the_split_to_write() -> None:
    model_selection = pytest.importorskip("sklearn.model_selection")
    study = _study()
    for folds, write in ((model_selection.StratifiedKFold(5), r"cv.split\(StratifiedKFold\(.*\), x, y\)"),
                         (5, r"cv.kfold\(len\(x\), 5\) or cv.stratified\(y, 5\)")):
        with pytest.raises(TypeError, match=rf"takes folds as \(train_idx, val_idx\) pairs, got .*: write {write}"):
            study.optimize(lambda t, f=folds: cv.cross_validate(t, lambda a, b: 1.0, f), n_trials=1, catch=())


def test_missing_labels_are_refused_and_rare_classes_warned_about() -> None:
    with pytest.raises(ValueError, match=r"stratified\(\) got y with 2 NaN value\(s\) \(at positions \[1, 3\]\)"):
        cv.stratified(np.array([0.0, np.nan, 1.0, np.nan, 0.0, 1.0]), k=2)
    with pytest.raises(ValueError, match=r"grouped\(\) got groups with 1 NaN"):
        cv.grouped(np.array([1.0, 2.0, np.nan, 3.0]), k=2)
    with pytest.warns(UserWarning, match=r"1 class\(es\) have fewer members than k=5 folds \(1: 2\)"):
        folds = cv.stratified(np.array([0] * 10 + [1] * 2), k=5)
    assert sorted(np.concatenate([v for _, v in folds]).tolist()) == list(range(12))


@pytest.mark.parametrize("returned", [None, "high", np.array([0.9, 0.8])])
def test_a_fold_function_that_returns_no_number_is_named(returned: object) -> None:
    study = _study()
    study.optimize(lambda t: cv.cross_validate(t, lambda a, b: returned, cv.kfold(len(X), 3)), n_trials=1)
    error = study.trials[0].error or ""
    assert "the fold function returned" in error and "as 'score'; return a number" in error, error


def test_parallel_folds_under_a_pruner_say_once_that_they_run_in_order(caplog: pytest.LogCaptureFixture) -> None:
    study = ts.Study(ts.Space({"a": ts.Float(0.0, 1.0)}), direction="maximize", sampler="random", seed=0,
                     pruner="folds", name="racing-in-order")
    with caplog.at_level("INFO", logger="tunesmith"):
        study.optimize(lambda t: cv.cross_validate(t, lambda a, b: 1.0, cv.kfold(len(X), 3), n_jobs=2), n_trials=3)
    said = [r.getMessage() for r in caplog.records if "runs its folds in order" in r.getMessage()]
    assert len(said) == 1 and "study.optimize(..., n_jobs=2)" in said[0]
