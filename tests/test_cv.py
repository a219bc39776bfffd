"""ts.cv: the splits and cross_validate inside an objective (reports, pruning, the record)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tunesmith as ts
from tunesmith import cv
from tunesmith.pruners import Decision
from tunesmith.trial import Direction


def _covers(folds: list[cv.Fold], n: int) -> None:
    val = np.concatenate([v for _, v in folds])
    assert sorted(val.tolist()) == list(range(n))  # every sample validated exactly once
    for train, v in folds:
        assert not set(train.tolist()) & set(v.tolist())


@pytest.mark.parametrize("n", [-1, 0, 1])
def test_too_few_samples_name_the_valid_range(n: int) -> None:
    # before: kfold(-1) said "takes an integer; got int", kfold(1) "use fewer folds" (there are none)
    with pytest.raises(ValueError, match=rf"kfold\(n, ...\) takes the number of samples, at least 2 .* got {n}$"):
        cv.kfold(n)
    with pytest.raises(ValueError, match=r"cannot make 5 folds from 3 samples; k can be 2 to 3$"):
        cv.kfold(3)
    with pytest.raises(ValueError, match=r"cannot make folds from 1 groups: at least 2 are needed \(k from 2 to n\)"):
        cv.grouped([0])
    with pytest.raises(ValueError, match=r"k must be an integer >= 1 .* got 0; k can be 1 to 4 with 5 samples"):
        cv.time_series(5, 0)  # before: "k must be an integer >= 2, got 1" (its k + 1)
    with pytest.raises(ValueError, match=r"cannot make 5 folds from 3 samples \(time series folds need k \+ 1 blocks\); "
                                         r"k can be 1 to 2"):
        cv.time_series(3)


def test_kfold_and_stratified_cover_every_sample_once() -> None:
    _covers(cv.kfold(23, 4, seed=1), 23)
    y = np.array([0] * 30 + [1] * 10 + [2] * 5)
    folds = cv.stratified(y, 5, seed=0)
    _covers(folds, len(y))
    for _, v in folds:
        assert np.bincount(y[v], minlength=3).tolist() == [6, 2, 1]
    assert [v.tolist() for _, v in cv.kfold(10, 2, seed=3)] == [v.tolist() for _, v in cv.kfold(10, 2, seed=3)]
    assert [v.tolist() for _, v in cv.kfold(10, 2, seed=3)] != [v.tolist() for _, v in cv.kfold(10, 2, seed=4)]


def test_grouped_keeps_groups_apart_and_time_series_never_trains_on_the_future() -> None:
    groups = np.repeat(["a", "b", "c", "d", "e", "f"], [5, 4, 3, 3, 2, 1])
    folds = cv.grouped(groups, 3)
    _covers(folds, len(groups))
    for train, v in folds:
        assert not set(groups[train]) & set(groups[v])
    for train, v in cv.time_series(20, 4, gap=2):
        assert train.max() + 2 < v.min()
    with pytest.raises(ValueError, match="cannot make 7 folds from 6 groups"):
        cv.grouped(groups, 7)
    with pytest.raises(ValueError, match="k must be an integer >= 2 .* got 1; k can be 2 to 10 with 10 samples"):
        cv.kfold(10, 1)


def test_split_takes_a_scikit_learn_splitter() -> None:
    from sklearn.model_selection import KFold

    folds = cv.split(KFold(3), np.zeros((9, 2)))
    assert [v.tolist() for _, v in folds] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


def test_splits_refuse_data_where_they_take_a_count_or_labels() -> None:
    x = np.zeros((30, 4))
    with pytest.raises(TypeError, match=r"kfold\(n, ...\) takes the number of samples.*shape \(30, 4\).*len\(x\)"):
        cv.kfold(x, k=3)
    with pytest.raises(TypeError, match=r"time_series\(len\(x\), ...\)"):
        cv.time_series(x, k=3)
    with pytest.raises(ValueError, match=r"one label per sample \(1-d\); got an array of shape \(30, 4\)"):
        cv.stratified(x, k=3)
    with pytest.raises(ValueError, match="grouped.*groups as one label per sample"):
        cv.grouped(x, k=3)
    assert [len(v) for _, v in cv.stratified(np.arange(30)[:, None] % 2, k=3)] == [10, 10, 10]  # a column vector
    from sklearn.model_selection import KFold

    with pytest.raises(TypeError, match=r"not the class KFold: write KFold\(...\)"):
        cv.split(KFold, x)


def test_cross_validate_reports_each_fold_and_records_the_spread() -> None:
    study = ts.Study({"x": ts.Float(0, 1)}, direction="maximize", sampler="random", seed=0)
    scores = [0.5, 0.7, 0.6]

    def objective(trial: ts.Trial) -> float:
        return cv.cross_validate(trial, lambda tr, va: scores[int(va[0]) // 2], cv.kfold(6, 3, shuffle=False))

    study.optimize(objective, n_trials=1)
    t = study.trials[0]
    assert t.value == pytest.approx(0.6)
    assert t.intermediate == pytest.approx({1: 0.5, 2: 0.6, 3: 0.6})  # running means
    assert t.attrs["cv"]["scores"]["score"] == scores
    assert t.attrs["cv"]["std"] == pytest.approx(np.std(scores))


def test_a_fold_value_is_taken_as_a_trial_value_is() -> None:
    """A fold score of 10**400 ended the run with Python's 'int too large to convert to float', a
    boolean (np.bool_ too) was the score 1.0 where a trial's value refuses it. Now 10**400 is inf (the
    trial fails saying so) and a boolean score is refused by name; a boolean extra stays a recorded 1.0."""
    folds = cv.kfold(6, 3, shuffle=False)
    study = ts.Study({"x": ts.Float(0, 1)}, sampler="random", seed=0)
    study.optimize(lambda t: cv.cross_validate(t, lambda tr, va: 10**400, folds), n_trials=1, catch=())
    assert study.trials[0].error == "objective returned inf (float); return a finite number"
    for flag in (True, np.bool_(True)):
        with pytest.raises(TypeError, match=r"the fold function returned (np\.)?True_? as 'score'; return a number"):
            study.optimize(lambda t, flag=flag: cv.cross_validate(t, lambda tr, va: flag, folds), n_trials=1, catch=())
    study.optimize(lambda t: cv.cross_validate(t, lambda tr, va: {"acc": 0.5, "converged": np.bool_(True)}, folds,
                                               key="acc"), n_trials=1, catch=())
    assert study.trials[-1].attrs["cv"]["scores"]["converged"] == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_fold_function_that_raises_names_the_fold_and_its_sizes(n_jobs: int) -> None:
    """Before, the error of a fold function (and the failed trial's error) said nothing of the fold:
    which of five had failed, on how many samples. Now the error keeps its type (a study's catch=
    still matches it) and says the fold and the split's sizes, in the traceback and the trial's error."""
    folds = cv.kfold(10, 5, shuffle=False)

    def score(train: np.ndarray, val: np.ndarray) -> float:
        if 6 in val:
            raise ValueError("the fit diverged")
        return 0.5

    study = ts.Study({"x": ts.Float(0, 1)}, sampler="random", seed=0)
    with pytest.raises(ValueError, match="the fit diverged") as info:
        cv.cross_validate(study.ask(), score, folds, n_jobs=n_jobs)
    assert info.value.__notes__ == ["in fold 4 of 5: 8 training, 2 validation samples"]
    study.optimize(lambda t: cv.cross_validate(t, score, folds, n_jobs=n_jobs), n_trials=1, catch=(ValueError,))
    error = study.trials[-1].error
    assert error.startswith("ValueError: the fit diverged at ") and error.endswith(
        "(in fold 4 of 5: 8 training, 2 validation samples)")


FOLD_NOTE = "(in fold 4 of 5: 8 training, 2 validation samples)"


def test_a_fold_s_note_reads_in_one_pair_of_brackets_wherever_the_error_is_shown(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The stored error read "... (in fold 4 of 5 (8 training, 2 validation samples))": brackets in
    brackets, in `tunesmith show`, the report and the dashboard's trial page alike."""
    from tunesmith.cli import main
    from tunesmith.report import build_report

    def score(train: np.ndarray, val: np.ndarray) -> float:
        if 6 in val:
            raise ValueError("the fit diverged")
        return 0.5

    url = f"sqlite:///{tmp_path / 'cv.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, sampler="random", seed=0, storage=url, name="cv")
    study.optimize(lambda t: cv.cross_validate(t, score, cv.kfold(10, 5, shuffle=False)), n_trials=1,
                   catch=(ValueError,))
    assert study.trials[0].error.endswith(FOLD_NOTE)
    monkeypatch.setenv("COLUMNS", "300")
    assert main(["show", "cv", "--storage", url]) == 0
    shown = capsys.readouterr().out
    assert "))" not in shown and f"the fit diverged at {__file__}:" in shown and FOLD_NOTE in shown
    report = build_report(ts.load_study("cv", url))
    assert "))" not in report.split("<h2>Failed trials</h2>")[1].split("</table>")[0] and FOLD_NOTE in report
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from tunesmith.dashboard import create_app, open_storage

    page = TestClient(create_app(open_storage(url, allow_writes=False))).get("/studies/cv/trials/0").text
    error = page.split("<pre id='error'>")[1].split("</pre>")[0]
    assert error.startswith("ValueError: the fit diverged at ") and error.endswith(FOLD_NOTE)


def test_cross_validate_stops_where_the_pruner_says() -> None:
    study = ts.Study({"x": ts.Float(0, 1)}, direction="maximize", sampler="grid", pruner="median")
    for good in (0.9, 0.8):
        study.enqueue({"x": good})
    study.enqueue({"x": 0.1})
    calls: list[int] = []

    def objective(trial: ts.Trial) -> float:
        def score(tr: np.ndarray, va: np.ndarray) -> dict[str, float]:
            calls.append(trial.number)
            return {"val": trial.params["x"], "train": 1.0}

        return cv.cross_validate(trial, score, cv.kfold(50, 5), key="val")

    study.pruner = ts.pruners.make_pruner({"name": "median", "n_startup_trials": 2})
    study.optimize(objective, n_trials=3)
    bad = study.trials[2]
    assert bad.state is ts.TrialState.PRUNED and calls.count(2) == 1
    assert bad.attrs["cv"]["scores"] == {"val": [0.1], "train": [1.0]} and bad.attrs["cv"]["folds"] == 5
    with pytest.raises(ValueError, match="pass key="):
        cv._record({}, {"a": 1.0}, None)


def test_a_paused_trial_resumes_after_the_folds_it_recorded(caplog: pytest.LogCaptureFixture) -> None:
    from tunesmith.pruners import ASHA

    study = ts.Study({"x": ts.Float(0, 1)}, direction="maximize", sampler="random", seed=0,
                     pruner=ASHA(pause=True, min_resource=1, reduction_factor=2, max_resource=4))
    for x in (0.5, 0.6, 0.35, 0.1, 0.2, 0.05, 0.02, 0.01):  # worse later trials promote paused ones
        study.enqueue({"x": x})
    calls: list[tuple[int, int]] = []
    folds = cv.kfold(8, 4, shuffle=False)

    def objective(trial: ts.Trial) -> float:
        def score(tr: np.ndarray, va: np.ndarray) -> float:
            calls.append((trial.number, int(va[0]) // 2))
            return trial.params["x"]

        return cv.cross_validate(trial, score, folds)

    study.optimize(objective, n_trials=8)
    resumed = [t for t in study.trials if t.is_resumed]
    assert resumed and all(t.state is not ts.TrialState.FAILED for t in study.trials)
    for t in resumed:  # fold 0 before the pause, fold 1 after the resume: each fold ran once
        assert t.attrs["cv"]["scores"]["score"] == [t.params["x"]] * 2 and sorted(t.intermediate) == [1, 2]
        assert sorted(k for n, k in calls if n == t.number) == [0, 1]
    # before: "paused without attrs['checkpoint'] ... Save a checkpoint", which folds do not need
    assert "paused without attrs['checkpoint']" not in caplog.text


def _fold_trial(number: int, means: list[float], state: ts.TrialState) -> ts.FrozenTrial:
    value = means[-1] if state is ts.TrialState.COMPLETE else None
    return ts.FrozenTrial(number=number, state=state, params={"x": 0.0}, value=value,
                          intermediate={k: m for k, m in enumerate(means, start=1)})


def test_fold_racing_stops_what_is_behind_the_best_on_the_same_folds() -> None:
    racing = ts.pruners.make_pruner("folds")
    best = _fold_trial(0, [0.9, 0.8, 0.85], ts.TrialState.COMPLETE)  # the best by mean over every fold
    other = _fold_trial(1, [0.95, 0.9, 0.7], ts.TrialState.COMPLETE)  # ahead on fold 1, worse in the end
    up = ts.TrialState.RUNNING
    for means, decision in (([0.92], Decision.CONTINUE), ([0.9], Decision.CONTINUE), ([0.89], Decision.PRUNE),
                            ([0.95, 0.8], Decision.CONTINUE), ([0.95, 0.79], Decision.PRUNE)):
        me = _fold_trial(2, means, up)
        assert racing.decide(me, [best, other, me], Direction.MAXIMIZE) is decision, means
    near = _fold_trial(2, [0.89], up)
    assert ts.cv.FoldPruner(margin=0.02).decide(near, [best, near], Direction.MAXIMIZE) is Decision.CONTINUE
    assert ts.cv.FoldPruner(n_startup_trials=3).decide(near, [best, other, near], Direction.MAXIMIZE) \
        is Decision.CONTINUE  # only two trials finished every fold
    with pytest.raises(ValueError, match="margin must be a number >= 0"):
        ts.cv.FoldPruner(margin=-0.1)
    # NumPy's scalars (a margin computed with NumPy) were refused as "must be a number"
    assert ts.cv.FoldPruner(margin=np.float32(0.02)).decide(near, [best, near], Direction.MAXIMIZE) is Decision.CONTINUE
    assert ts.cv.FoldPruner(spread=np.int64(1)).spread == 1.0
    with pytest.raises(ValueError, match="margin must be a number >= 0"):
        ts.cv.FoldPruner(margin=np.bool_(True))


def test_fold_racing_spread_follows_how_much_the_best_folds_disagree() -> None:
    # the best's fold scores 0.9, 0.7, 0.95 (running means 0.9, 0.8, 0.85): sd 0.1323
    best = _fold_trial(0, [0.9, 0.8, 0.85], ts.TrialState.COMPLETE)
    wide = ts.cv.FoldPruner(spread=1.0)
    up = ts.TrialState.RUNNING
    for means, decision in (([0.77], Decision.CONTINUE), ([0.76], Decision.PRUNE),  # 0.1323 after one fold
                            ([0.9, 0.71], Decision.CONTINUE), ([0.9, 0.70], Decision.PRUNE)):  # 0.0935 after two
        me = _fold_trial(2, means, up)
        assert wide.decide(me, [best, me], Direction.MAXIMIZE) is decision, means
    agreeing = _fold_trial(0, [0.9, 0.9, 0.9], ts.TrialState.COMPLETE)  # folds agree: no tolerance
    me = _fold_trial(2, [0.899], up)
    assert wide.decide(me, [agreeing, me], Direction.MAXIMIZE) is Decision.PRUNE
    assert wide.describe()["spread"] == 1.0
    with pytest.raises(ValueError, match="spread must be a number >= 0"):
        ts.cv.FoldPruner(spread=-1)


def test_fold_racing_stops_a_configuration_tied_fold_by_fold_with_a_finished_one() -> None:
    best = _fold_trial(0, [0.9, 0.85, 0.9], ts.TrialState.COMPLETE)  # folds 0.9, 0.8, 1.0
    other = _fold_trial(1, [0.92, 0.86, 0.8], ts.TrialState.COMPLETE)  # ahead on folds 1-2, behind in the end
    racing = ts.cv.FoldPruner(ties=2)
    up = ts.TrialState.RUNNING
    for means, decision in (([0.9], Decision.CONTINUE),  # one fold alike: not yet
                            ([0.9, 0.85], Decision.PRUNE),  # the best's scores on two folds: it cannot get ahead
                            ([0.92, 0.86], Decision.PRUNE),  # the other's: it would end behind the best as it did
                            ([0.95, 0.85], Decision.CONTINUE),  # level with the best on the mean only
                            ([0.9, 0.85, 0.9], Decision.CONTINUE)):  # the last fold: never stopped
        me = _fold_trial(2, means, up)
        assert racing.decide(me, [best, other, me], Direction.MAXIMIZE) is decision, means
    copy = _fold_trial(2, [0.9, 0.85], up)
    assert ts.cv.FoldPruner(ties=3).decide(copy, [best, other, copy], Direction.MAXIMIZE) is Decision.CONTINUE
    assert ts.cv.FoldPruner(ties=0).decide(copy, [best, other, copy], Direction.MAXIMIZE) is Decision.CONTINUE
    assert racing.describe()["ties"] == 2
    with pytest.raises(ValueError, match="ties"):
        ts.cv.FoldPruner(ties=-1)


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_fold_racing_races_against_the_trial_the_study_names_best_among_ties(direction: str) -> None:
    # two finished configurations tie on the mean over 3 folds (0.75); the study names the later one
    # best (its running means, read from the last fold back, are ahead: 1.0 after fold 1 against 0.5),
    # so that is the one a new configuration must keep up with. Racing took the earliest of the tied
    # ones, a best no other part of tunesmith named, and kept a configuration behind the best running.
    runs = {0.1: [0.5, 1.0, 0.75], 0.2: [1.0, 0.5, 0.75], 0.3: [0.8, 0.6, 0.6]}  # the third: behind after 2 folds
    sign = 1.0 if direction == "maximize" else -1.0
    study = ts.Study({"x": ts.Float(0, 1)}, direction=direction, sampler="grid", pruner="folds")
    # ahead of the earlier tied trial after fold 1 (0.8 > 0.5), behind the named best (0.8 < 1.0)
    assert _folds_run(study, list(runs), fold_score=lambda x, k: sign * runs[x][k], n_folds=3) == [3, 3, 1]
    assert study.trials[0].value == study.trials[1].value and study.best_trial.number == 1
    # the same decision whatever order the trials come in (min() took the first of the tied ones)
    first, second = _fold_trial(0, [0.5, 0.75, 0.75], ts.TrialState.COMPLETE), \
        _fold_trial(1, [1.0, 0.75, 0.75], ts.TrialState.COMPLETE)
    me = _fold_trial(2, [0.8], ts.TrialState.RUNNING)
    for trials in ([first, second, me], [second, first, me]):
        assert ts.cv.FoldPruner().decide(me, trials, Direction.MAXIMIZE) is Decision.PRUNE


def test_fold_racing_never_stops_a_configuration_at_its_last_fold() -> None:
    # an objective that asks the pruner after every fold, the last one too (a loop of its own,
    # not cross_validate): the third configuration is behind the best only at fold 3 of 3
    study = ts.Study({"x": ts.Float(0, 1)}, direction="maximize", sampler="grid", pruner="folds")
    runs = {0.5: [0.9, 0.8, 0.85], 0.6: [0.9, 0.81, 0.84]}
    for x in runs:
        study.enqueue({"x": x})

    def objective(trial: ts.Trial) -> float:
        for k, mean in enumerate(runs[trial.params["x"]], start=1):
            trial.report(mean, k)
            if trial.should_prune():
                raise ts.TrialPruned(f"fold {k}")
        return mean

    study.optimize(objective, n_trials=2)
    assert [t.state for t in study.trials] == [ts.TrialState.COMPLETE] * 2 and study.trials[1].value == 0.84
    best = _fold_trial(0, [0.9, 0.8, 0.85], ts.TrialState.COMPLETE)  # the same scores on every fold but the last
    last = _fold_trial(1, [0.9, 0.8, 0.84], ts.TrialState.RUNNING)
    assert ts.cv.FoldPruner().decide(last, [best, last], Direction.MAXIMIZE) is Decision.CONTINUE


def test_fold_racing_in_a_study_runs_one_fold_of_a_configuration_behind_the_best() -> None:
    study = ts.Study({"x": ts.Float(0, 1)}, direction="maximize", sampler="grid", pruner="folds")
    for x in (0.5, 0.4, 0.6, 0.55):
        study.enqueue({"x": x})
    calls: list[int] = []

    def objective(trial: ts.Trial) -> float:
        def score(tr: np.ndarray, va: np.ndarray) -> float:
            calls.append(trial.number)
            return trial.params["x"] + 0.01 * int(va[0])  # later folds score a little higher for everyone

        return cv.cross_validate(trial, score, cv.kfold(50, 5, shuffle=False))

    study.optimize(objective, n_trials=4)
    assert [calls.count(n) for n in range(4)] == [5, 1, 5, 1]
    assert study.best_trial.params["x"] == 0.6 and study.trials[3].state is ts.TrialState.PRUNED


def test_fold_racing_runs_two_folds_of_a_configuration_that_repeats_the_best() -> None:
    # a second configuration with the same predictions (a copy, or a parameter that changes nothing)
    # cannot get ahead of the first: it stops after two folds instead of running all five
    study = ts.Study({"x": ts.Float(0, 1)}, direction="maximize", sampler="grid", pruner="folds")
    assert _folds_run(study, [0.5, 0.5, 0.6, 0.6, 0.4]) == [5, 2, 5, 2, 1]
    assert study.best_trial.number == 2


def _folds_run(study: ts.Study, xs: list[float], scale: float = 1.0,
               fold_score: Callable[[float, int], float] | None = None, n_folds: int = 5) -> list[int]:
    """How many of ``n_folds`` folds each configuration ``x`` of ``xs`` ran (in this order), fold k
    (from 0) scoring ``fold_score(x, k)``, by default ``scale * (x + 0.01 * k)``."""
    first = len(study.trials)
    for x in xs:
        study.enqueue({"x": x})
    calls: list[int] = []

    def objective(trial: ts.Trial) -> float:
        def score(tr: np.ndarray, va: np.ndarray) -> float:
            calls.append(trial.number)
            x, k = trial.params["x"], int(va[0]) // 10
            return fold_score(x, k) if fold_score else scale * (x + 0.01 * k)

        return cv.cross_validate(trial, score, cv.kfold(10 * n_folds, n_folds, shuffle=False))

    study.optimize(objective, n_trials=len(xs))
    return [calls.count(first + n) for n in range(len(xs))]


@pytest.mark.parametrize("scale", [1.0, 1e-13, 1e13])
def test_fold_racing_ties_are_equal_fold_scores_at_any_scale(scale: float) -> None:
    # minimized squared errors of 1e-13 (targets in micro-units): configurations two and five times
    # better than the first are no tie with it and run every fold; only the exact copy stops
    study = ts.Study({"x": ts.Float(0, 1)}, direction="minimize", sampler="grid", pruner="folds")
    assert _folds_run(study, [0.5, 0.3, 0.3, 0.1], scale) == [5, 5, 2, 5]
    assert study.best_trial.params["x"] == 0.1


def test_a_study_stored_before_ties_existed_reopens_racing_as_it_was_created(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    # a study made with pruner="folds" before FoldPruner had ties stored no "ties": it ran every tie to
    # the end, and reopened it goes on so (before: rebuilt with ties=2, its rule changed under it, and
    # passing ties=0 to keep the old rule warned that it differed from the stored one)
    url = f"sqlite:///{tmp_path / 'racing.db'}"
    space = {"x": ts.Float(0, 1)}
    ts.Study(space, storage=url, name="old", pruner="folds")
    ts.Study(space, storage=url, name="new", pruner="folds")
    with sqlite3.connect(tmp_path / "racing.db") as con:
        config = json.loads(con.execute("SELECT config FROM ts_studies WHERE name = 'old'").fetchone()[0])
        del config["pruner"]["ties"]
        con.execute("UPDATE ts_studies SET config = ? WHERE name = 'old'", (json.dumps(config),))
    con.close()
    assert ts.Study(space, storage=url, name="new").pruner.describe()["ties"] == 2
    old = ts.Study(space, storage=url, name="old")
    assert old.pruner.describe()["ties"] == 0
    with caplog.at_level("WARNING", logger="tunesmith"):
        ts.Study(space, storage=url, name="old", pruner={"name": "folds", "ties": 0})
    assert "was created with pruner" not in caplog.text
    assert _folds_run(old, [0.5, 0.5]) == [5, 5]  # the copy runs every fold, as the study was made to


@pytest.mark.parametrize("record", [[1], "ab", {"folds": 4, "scores": {"score": [10**400]}},
                                    {"folds": 4, "scores": {"score": ["fold text"]}}])
def test_a_paused_trial_whose_fold_record_another_writer_changed_fails_naming_it(
    tmp_path: Path, record: Any
) -> None:
    """A paused trial's fold record of another shape (another writer of the database, between the pause
    and the resume) failed the resumed trial in a bare TypeError ('dictionary update sequence'),
    OverflowError (a score of 10**400, JSON keeps it whole), ValueError, or one blaming the objective's
    loop ('reported step 1 again'): the trial fails naming its record, the other trials run on."""
    import sqlite3

    from tunesmith.pruners import ASHA

    db = tmp_path / "cv.db"
    study = ts.Study({"x": ts.Float(0, 1)}, direction="maximize", sampler="random", seed=0, storage=f"sqlite:///{db}",
                     pruner=ASHA(pause=True, min_resource=1, reduction_factor=2, max_resource=4))
    for x in (0.5, 0.6, 0.35, 0.1, 0.2, 0.05, 0.02, 0.01):  # worse later trials promote paused ones
        study.enqueue({"x": x})
    folds = cv.kfold(8, 4, shuffle=False)

    def objective(trial: ts.Trial) -> float:
        with sqlite3.connect(db) as con:  # another writer, meanwhile
            con.execute("UPDATE ts_trials SET attrs = json_set(attrs, '$.cv', json(?)) WHERE state = 'paused'",
                        (json.dumps(record),))
        return cv.cross_validate(trial, lambda tr, va: trial.params["x"], folds)

    study.optimize(objective, n_trials=8)
    resumed = [t for t in study.trials if t.is_resumed]
    assert resumed and len(study.trials) == 8
    for t in resumed:
        assert t.state is ts.TrialState.FAILED and "resumes after fold 1, but its record attrs['cv']" in (t.error or "")
    assert all(t.state is not ts.TrialState.FAILED for t in study.trials if not t.is_resumed)
