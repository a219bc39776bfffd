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


def test_a_regression_target_is_refused_by_stratified_with_what_to_use() -> None:
    """cv.stratified(y) of a continuous target (diabetes' y / 7.3) warned that 209 "classes" had fewer members
    than k and made folds of them; scikit-learn's StratifiedKFold refuses such a y. Whole-number floats (0.0,
    1.0, as read from a CSV) stay class labels."""
    y = np.random.default_rng(0).normal(size=60)
    with pytest.raises(ValueError, match=r"stratified\(\) takes class labels, but y holds 60 distinct fractional "
                                         r"values \(a regression target, such as 0.12573\d*\): use "
                                         r"cv.kfold\(len\(y\), k=5\)"):
        cv.stratified(y, k=5)
    folds = cv.stratified(np.array([0.0, 1.0] * 10), k=5)
    assert sorted(np.concatenate([v for _, v in folds]).tolist()) == list(range(20))
    # the example is a fractional value, not the first label (a whole number here)
    with pytest.raises(ValueError, match=r"y holds 1 distinct fractional values \(a regression target, such as 2.5\).*"
                                         r"classes coded as fractions \(0.5, 1.5\) are labels once written as integers"):
        cv.stratified([1.0, 2.0, 2.5, 3.0] * 5, k=5)
    assert len(cv.stratified(np.array(["1.0", "2.0", "2.5", "3.0"] * 5), k=5)) == 5


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


def test_parallel_folds_of_a_score_that_holds_the_trial_say_once_that_they_run_in_threads(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # the info line came once per trial: a hundred trials, a hundred lines saying the same
    study = ts.Study(ts.Space({"a": ts.Float(0.0, 1.0)}), direction="maximize", sampler="random", seed=0,
                     name="folds-in-threads")

    def objective(trial: ts.Trial) -> float:
        return cv.cross_validate(trial, lambda a, b: float(trial.params["a"] * X[b].mean()), cv.kfold(len(X), 3),
                                 n_jobs=2)

    with caplog.at_level("INFO", logger="tunesmith"):
        study.optimize(objective, n_trials=3)
    said = [r.getMessage() for r in caplog.records if "cannot be pickled" in r.getMessage()]
    assert [t.state.value for t in study.trials] == ["complete"] * 3
    assert len(said) == 1 and "'folds-in-threads'" in said[0] and "runs its folds in threads" in said[0]


@pytest.mark.parametrize(("bad", "n_jobs"), [(float("nan"), 1), (float("inf"), 1), (float("nan"), 2)])
def test_a_fold_scored_nan_or_infinite_is_named_in_a_warning(
    bad: float, n_jobs: int, caplog: pytest.LogCaptureFixture
) -> None:
    # the failed trial's error said "objective returned nan" and no more: which fold, which value?
    # With n_jobs=2 the folds after it ran in parallel (the warning said "not run"): they are not recorded
    study = _study()

    def score(train_idx: np.ndarray, val_idx: np.ndarray) -> dict[str, float]:
        return {"val": bad if 10 in val_idx else 0.5, "train": 1.0}

    with caplog.at_level("WARNING", logger="tunesmith"):
        study.optimize(lambda t: cv.cross_validate(t, score, cv.kfold(len(X), 4, shuffle=False), key="val",
                                                   n_jobs=n_jobs), n_trials=1)
    trial = study.trials[0]
    assert trial.state.value == "failed" and trial.attrs["cv"]["scores"]["val"] == [0.5, None]
    said = [r.getMessage() for r in caplog.records if "fold 2 of 4" in r.getMessage()]
    assert said == [f"trial 0: fold 2 of 4 scored {bad} ('val'); the trial fails, and no fold after it is recorded "
                    "(its fold scores are in trial.attrs['cv'])"]


def test_huge_finite_fold_scores_give_a_finite_mean_not_a_failed_trial(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    # folds of 1e308 and 1.5e308: their sum overflowed, the trial failed as "objective returned inf" and the
    # warning named the last fold as if it had scored no number
    study = ts.Study(ts.Space({"a": ts.Float(0.0, 1.0)}), direction="maximize", sampler="random", seed=0,
                     storage=f"sqlite:///{tmp_path / 'cv.db'}", name="huge")
    scores = iter([1e308, 1.5e308])
    with caplog.at_level("WARNING", logger="tunesmith"):
        study.optimize(lambda t: cv.cross_validate(t, lambda a, b: next(scores), cv.kfold(len(X), 2)), n_trials=1)
    trial = study.trials[0]
    assert trial.state.value == "complete" and trial.value == pytest.approx(1.25e308)
    assert trial.intermediate == {1: 1e308, 2: pytest.approx(1.25e308)}
    assert trial.attrs["cv"]["mean"] == pytest.approx(1.25e308) and trial.attrs["cv"]["std"] == pytest.approx(0.25e308)
    assert not [r for r in caplog.records if "scored" in r.getMessage()]


def test_the_cv_mean_is_numpy_s_mean_to_the_last_digit(tmp_path) -> None:
    # the huge-fold fix scaled the folds by their largest score: 0.1, 0.2, 0.3 averaged 0.19999999999999998
    # where np.mean gives 0.20000000000000004, as did the means of a study stored before it, which
    # FoldPruner compares with the running means of the trials run now
    study = ts.Study(ts.Space({"a": ts.Float(0.0, 1.0)}), direction="maximize", sampler="random", seed=0,
                     storage=f"sqlite:///{tmp_path / 'cv.db'}", name="exact")
    folds = [0.1, 0.2, 0.3]
    scores = iter(folds)
    study.optimize(lambda t: cv.cross_validate(t, lambda a, b: next(scores), cv.kfold(len(X), 3)), n_trials=1)
    trial = study.trials[0]
    assert trial.value == float(np.mean(folds)) == trial.attrs["cv"]["mean"]
    assert trial.intermediate == {1: 0.1, 2: float(np.mean(folds[:2])), 3: float(np.mean(folds))}
    assert trial.attrs["cv"]["std"] == float(np.std(folds))


def test_show_and_the_report_give_the_spread_over_folds(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    # the fold scores' spread was stored, but show and the report gave the mean alone: 0.934 against 0.904
    # could not be read against a spread of 0.03 over the folds
    datasets = pytest.importorskip("sklearn.datasets")
    tree = pytest.importorskip("sklearn.tree")
    from tunesmith.cli import main

    x, y = datasets.load_breast_cancer(return_X_y=True)
    folds = cv.stratified(y, k=5, seed=0)

    def objective(trial: ts.Trial) -> float:
        def score(train_idx: np.ndarray, val_idx: np.ndarray) -> float:
            model = tree.DecisionTreeClassifier(max_depth=trial.params["depth"], random_state=0)
            return float(model.fit(x[train_idx], y[train_idx]).score(x[val_idx], y[val_idx]))

        return cv.cross_validate(trial, score, folds)

    url = f"sqlite:///{tmp_path / 'cv.db'}"
    study = ts.Study(ts.Space({"depth": ts.Int(1, 8)}), direction="maximize", sampler="random", seed=0,
                     storage=url, name="trees")
    study.optimize(objective, n_trials=2)
    cells = [f"± {np.std(t.attrs['cv']['scores']['score']):.2g} (5 folds)" for t in study.trials]
    assert main(["show", "trees", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "spread over folds" in out and all(c in out for c in cells), out
    pytest.importorskip("plotly")
    from tunesmith.report import build_report

    page = build_report(study)
    assert "<th>spread over folds</th>" in page and all(f"<td>{c}</td>" in page for c in cells)
    # the dashboard showed them only inside the trial's raw attributes
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from tunesmith.dashboard import create_app, open_storage

    c = TestClient(create_app(open_storage(url)))
    table = c.get("/studies/trees").text
    assert "<th>spread over folds</th>" in table and all(f"<td>{c}</td>" in table for c in cells)
    trial = c.get(f"/studies/trees/trials/{study.trials[0].number}").text
    assert f"<td class=l>spread over folds</td><td>{cells[0]}</td>" in trial, trial


def test_show_the_report_and_the_dashboard_give_a_searchs_train_score_and_gap(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    """TunedSearchCV(return_train_score=True) stored every fold's training score, but show, the report and the
    dashboard gave the validation mean alone: a scikit-learn user's overfitting signal (train 1.0 against
    validation 0.63) was in cv_results_ only, and the overfitting plot said nothing was kept."""
    datasets = pytest.importorskip("sklearn.datasets")
    svm = pytest.importorskip("sklearn.svm")
    from tunesmith.cli import main
    from tunesmith.sklearn import TunedSearchCV

    x, y = datasets.load_breast_cancer(return_X_y=True)
    url = f"sqlite:///{tmp_path / 'rt.db'}"
    search = TunedSearchCV(svm.SVC(), {"C": [1.0, 100.0], "gamma": [1e-5, 0.05]}, cv=3, return_train_score=True,
                           storage=url, name="rt").fit(x, y)
    res = search.cv_results_
    cells = [f"{tr:.4g} ({tr - va:+.4g})" for tr, va in zip(res["mean_train_score"], res["mean_test_score"], strict=True)]
    assert any(c.startswith("1 (+0.3") for c in cells), cells  # gamma=0.05 learns the training folds by heart
    assert main(["show", "rt", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "train (train − validation)" in out and all(c in out for c in cells), out
    pytest.importorskip("plotly")
    from tunesmith.report import build_report

    page = build_report(ts.load_study("rt", url))
    assert "<th>train (train − validation)</th>" in page and all(f"<td>{c}</td>" in page for c in cells)
    plain = TunedSearchCV(svm.SVC(), {"C": [1.0, 100.0]}, cv=3, storage=url, name="plain").fit(x, y)
    assert "train (train" not in build_report(plain.study_)  # no training scores, no column
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from tunesmith.dashboard import create_app, open_storage

    c = TestClient(create_app(open_storage(url)))
    table = c.get("/studies/rt").text
    assert all(f"<td>{c}</td>" in table for c in cells), table
    from tunesmith.plots import overfitting

    best = search.study_.best_trial
    assert "its training score over the folds is the 'train (train − validation)' column" in (
        overfitting(best).message or "")
    assert "training score" not in (overfitting(plain.study_.best_trial).message or "")


def test_a_fold_function_s_train_value_is_the_training_score_over_the_folds_validated() -> None:
    """A fold function's "train" value pairs with the reported one fold by fold (a pruned trial's folds it ran);
    scores another writer stored as text or booleans are passed over, not read as numbers."""
    from tunesmith.cv import train_and_validation

    study = _study()

    def objective(trial: ts.Trial) -> float:
        return cv.cross_validate(trial, lambda tr, va: {"score": len(va) / 10, "train": len(tr) / 10},
                                 cv.kfold(20, k=4), key="score")

    study.optimize(objective, n_trials=1)
    assert train_and_validation(study.trials[0].attrs["cv"]) == (1.5, 0.5)
    record = {"folds": 3, "key": "test_f1", "scores": {"test_f1": [0.5, "x", 0.7], "train_f1": [1.0, 1.0, True]}}
    assert train_and_validation(record) == (1.0, 0.5)
    # the trial's value averages folds 0 and 2 (0.6); the gap is over fold 0 alone, and its cell says so
    from tunesmith.cv import paired_folds
    from tunesmith.report import train_cell

    assert paired_folds(record) == (1, 2)
    trial = _study().add_trial({"a": 0.5}, value=0.6, attrs={"cv": record})
    assert train_cell(trial) == "1 (+0.5; 1 of 2 folds)"
    assert train_cell(study.trials[0]) == "1.5 (+1)"  # every validated fold has its training score: no count
    assert train_and_validation({"folds": 2, "key": "score", "scores": {"score": [0.5]}}) is None
    # a loss in the thousands (neg_mean_squared_error) and one in thousandths: the gap as the score, never "+5.1e+02"
    from tunesmith.report import train_cell

    for train, validation, cell in ((-2876.4, -3387.6, "-2876 (+511.2)"), (0.00121, 0.00173, "0.00121 (-0.00052)")):
        study = _study()
        study.optimize(lambda trial, tr=train, va=validation: cv.cross_validate(
            trial, lambda _t, _v: {"score": va, "train": tr}, cv.kfold(20, k=4), key="score"), n_trials=1)
        assert train_cell(study.trials[0]) == cell
