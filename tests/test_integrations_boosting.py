"""XGBoost and LightGBM pruning callbacks against the real libraries (breast cancer data)."""

from __future__ import annotations

import importlib
import re
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tunesmith as ts
from tunesmith.pruners import ASHA

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from tunesmith.integrations.lightgbm import LightGBMPruningCallback, lightgbm_space  # noqa: E402
from tunesmith.integrations.xgboost import XGBoostPruningCallback, xgboost_space  # noqa: E402

ROUNDS = 30
GOOD = {"learning_rate": 0.3, "max_depth": 4, "min_child_weight": 1.0, "subsample": 1.0,
        "colsample_bytree": 1.0, "reg_alpha": 1e-8, "reg_lambda": 1.0}
BAD = {**GOOD, "learning_rate": 0.001, "max_depth": 2}  # barely moves off the prior in 30 rounds


def _lgb(params: dict[str, Any], num_leaves: int) -> dict[str, Any]:
    return {**{k: v for k, v in params.items() if k != "max_depth"}, "num_leaves": num_leaves}


@pytest.fixture(scope="module")
def data() -> tuple[Any, ...]:
    X, y = load_breast_cancer(return_X_y=True)
    return tuple(train_test_split(X, y, test_size=0.3, random_state=0, stratify=y))


def _study(space: ts.Space, direction: str) -> ts.Study:
    return ts.Study(space, direction=direction, sampler="random", seed=0,
                    pruner=ASHA(min_resource=3, reduction_factor=3, max_resource=ROUNDS))


def _check_good_then_bad(study: ts.Study, n_trials: int) -> None:
    """Trial 0 (good) ran every round; trial 1 (bad) was pruned at the first rung (step 3);
    every trial ended complete or pruned."""
    good, bad = study.trials[0], study.trials[1]
    assert good.state is ts.TrialState.COMPLETE
    assert sorted(good.intermediate) == list(range(1, ROUNDS + 1))
    assert bad.state is ts.TrialState.PRUNED
    assert sorted(bad.intermediate) == [1, 2, 3]
    assert [t.state.value in ("complete", "pruned") for t in study.trials] == [True] * n_trials


def test_xgboost_native_prunes_a_bad_trial(data: tuple[Any, ...]) -> None:
    X_tr, X_va, y_tr, y_va = data
    dtrain, dvalid = xgb.DMatrix(X_tr, label=y_tr), xgb.DMatrix(X_va, label=y_va)
    study = _study(xgboost_space(), "minimize")
    study.enqueue(GOOD)
    study.enqueue(BAD)

    def objective(trial: ts.Trial) -> float:
        params = {**trial.params, "objective": "binary:logistic", "eval_metric": "logloss", "nthread": 1}
        booster = xgb.train(params, dtrain, ROUNDS, evals=[(dtrain, "train"), (dvalid, "valid")],
                            callbacks=[XGBoostPruningCallback(trial)], verbose_eval=False)
        return float(booster.eval(dvalid).split(":")[1])

    study.optimize(objective, n_trials=6, show_progress=False)
    _check_good_then_bad(study, 6)
    # the reports are the validation set's logloss, not the training set's
    assert study.trials[0].intermediate[ROUNDS] == pytest.approx(study.trials[0].value, rel=1e-5)


def test_xgboost_sklearn_wrapper_reports_auc(data: tuple[Any, ...]) -> None:
    X_tr, X_va, y_tr, y_va = data
    study = _study(xgboost_space(), "maximize")
    study.enqueue(GOOD)
    study.enqueue(BAD)

    def objective(trial: ts.Trial) -> float:
        model = xgb.XGBClassifier(**trial.params, n_estimators=ROUNDS, eval_metric="auc", n_jobs=1,
                                  callbacks=[XGBoostPruningCallback(trial)])
        model.fit(X_tr, y_tr, eval_set=[(X_va, y_va)], verbose=False)
        return float(model.evals_result()["validation_0"]["auc"][-1])

    study.optimize(objective, n_trials=4, show_progress=False)
    _check_good_then_bad(study, 4)


def test_xgboost_errors_name_the_fix(data: tuple[Any, ...]) -> None:
    X_tr, X_va, y_tr, y_va = data
    dtrain, dvalid = xgb.DMatrix(X_tr, label=y_tr), xgb.DMatrix(X_va, label=y_va)
    study = _study(xgboost_space(), "maximize")
    trial = study.ask()
    with pytest.raises(ValueError, match="better when lower.*direction='minimize'"):
        xgb.train({"eval_metric": "logloss"}, dtrain, 2, evals=[(dvalid, "v")],
                  callbacks=[XGBoostPruningCallback(trial)], verbose_eval=False)
    with pytest.raises(ValueError, match="no validation data.*evals="):
        xgb.train({}, dtrain, 2, callbacks=[XGBoostPruningCallback(trial)])
    with pytest.raises(ValueError, match="no metric 'auc'.*have \\['logloss'\\]"):
        xgb.train({"eval_metric": "logloss"}, dtrain, 2, evals=[(dvalid, "v")],
                  callbacks=[XGBoostPruningCallback(trial, metric="auc")], verbose_eval=False)
    pausing = ts.Study(xgboost_space(), pruner=ASHA(min_resource=1, reduction_factor=4, pause=True, max_resource=ROUNDS))
    with pytest.raises(ValueError, match="cannot resume a paused trial.*without pause=True"):
        XGBoostPruningCallback(pausing.ask())


class _CustomPausing(ts.Pruner):
    """A pruner of one's own that pauses (Pruner.pauses), with no 'pause' setting as ASHA has."""

    pauses = True

    def decide(self, trial: Any, trials: Any, direction: Any) -> ts.pruners.Decision:
        return ts.pruners.Decision.PAUSE


@pytest.mark.parametrize("callback", [XGBoostPruningCallback, LightGBMPruningCallback])
def test_a_custom_pausing_pruner_is_refused_as_asha_pause_is(callback: Any) -> None:
    # before: accepted; the trial was paused, resumed, and its callback failed on round 1 again
    study = ts.Study(xgboost_space(), pruner=_CustomPausing())
    with pytest.raises(ValueError, match="cannot resume a paused trial, but study .* has a pruner that pauses"):
        callback(study.ask())


@pytest.mark.parametrize("callback", [XGBoostPruningCallback, LightGBMPruningCallback])
def test_fold_racing_is_refused_as_it_would_read_boosting_rounds_as_folds(callback: Any) -> None:
    """pruner="folds" compares the mean over folds 1..k: it read round k as one, and stopped a
    trial behind the best one's first round there, without a word (learning rate 0.03 after 0.05:
    pruned at round 1); each trial now fails before it trains."""
    study = ts.Study(xgboost_space(), pruner="folds")
    with pytest.raises(ValueError, match=r"fold racing \(pruner='folds'\).* but \w+PruningCallback reports a value per "
                                         r"boosting round.*cv\.cross_validate.*another pruner \(pruner='asha'"):
        callback(study.ask())
    assert callback(ts.Study(xgboost_space(), pruner="median").ask()).trial is not None  # a pruner of rounds: taken


def test_lightgbm_native_prunes_a_bad_trial(data: tuple[Any, ...]) -> None:
    X_tr, X_va, y_tr, y_va = data
    study = _study(lightgbm_space(), "minimize")
    study.enqueue(_lgb(GOOD, 15))
    study.enqueue(_lgb(BAD, 4))

    def objective(trial: ts.Trial) -> float:
        params = dict(trial.params)
        params.update(objective="binary", metric="binary_logloss", num_threads=1, verbose=-1)
        dtrain = lgb.Dataset(X_tr, label=y_tr)
        dvalid = lgb.Dataset(X_va, label=y_va, reference=dtrain)
        booster = lgb.train(params, dtrain, ROUNDS, valid_sets=[dtrain, dvalid],
                            callbacks=[LightGBMPruningCallback(trial)])
        p = np.clip(booster.predict(X_va), 1e-15, 1 - 1e-15)
        return float(-np.mean(y_va * np.log(p) + (1 - y_va) * np.log(1 - p)))

    study.optimize(objective, n_trials=6, show_progress=False)
    _check_good_then_bad(study, 6)
    assert study.trials[0].intermediate[ROUNDS] == pytest.approx(study.trials[0].value, rel=1e-5)


def test_lightgbm_sklearn_wrapper_reports_auc(data: tuple[Any, ...]) -> None:
    X_tr, X_va, y_tr, y_va = data
    study = _study(lightgbm_space(), "maximize")
    study.enqueue(_lgb(GOOD, 15))
    study.enqueue(_lgb(BAD, 4))

    def objective(trial: ts.Trial) -> float:
        model = lgb.LGBMClassifier(**trial.params, n_estimators=ROUNDS, n_jobs=1, verbose=-1)
        model.fit(X_tr, y_tr, eval_X=(X_va,), eval_y=(y_va,), eval_metric="auc",
                  callbacks=[LightGBMPruningCallback(trial, metric="auc")])
        return float(model.evals_result_["valid_0"]["auc"][-1])

    study.optimize(objective, n_trials=4, show_progress=False)
    _check_good_then_bad(study, 4)


def test_lightgbm_errors_name_the_fix(data: tuple[Any, ...]) -> None:
    X_tr, X_va, y_tr, y_va = data
    dtrain = lgb.Dataset(X_tr, label=y_tr)
    dvalid = lgb.Dataset(X_va, label=y_va, reference=dtrain)
    trial = _study(lightgbm_space(), "maximize").ask()
    params = {"objective": "binary", "metric": "binary_logloss", "verbose": -1, "num_threads": 1}
    with pytest.raises(ValueError, match="'binary_logloss' is better when lower"):
        lgb.train(params, dtrain, 2, valid_sets=[dvalid], callbacks=[LightGBMPruningCallback(trial)])
    with pytest.raises(ValueError, match="no validation set named 'nope'"):
        lgb.train(params, dtrain, 2, valid_sets=[dvalid], callbacks=[LightGBMPruningCallback(trial, data="nope")])


def _misconfigured(library: str, fault: str, data: tuple[Any, ...]) -> Any:
    """An objective whose boosting run every trial shares a setting the callback refuses at round 1."""
    X_tr, X_va, y_tr, y_va = data

    def objective(trial: ts.Trial) -> float:
        if library == "xgboost":
            dtrain, dvalid = xgb.DMatrix(X_tr, label=y_tr), xgb.DMatrix(X_va, label=y_va)
            evals = [] if fault == "no validation data" else [(dvalid, "valid")]
            xgb.train({"objective": "binary:logistic", "eval_metric": "logloss", "nthread": 1}, dtrain, 3, evals=evals,
                      callbacks=[XGBoostPruningCallback(trial, metric="aucc" if fault == "metric" else None)],
                      verbose_eval=False)  # fmt: skip
        else:
            dtrain = lgb.Dataset(X_tr, label=y_tr)
            valid = [] if fault == "no validation data" else [lgb.Dataset(X_va, label=y_va, reference=dtrain)]
            lgb.train({"objective": "binary", "metric": "binary_logloss", "verbose": -1, "num_threads": 1}, dtrain, 3,
                      valid_sets=valid, callbacks=[LightGBMPruningCallback(trial, metric="aucc" if fault == "metric" else None)])  # fmt: skip
        return 0.0

    return objective


@pytest.mark.parametrize("fault", ["no validation data", "metric", "direction"])
@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_a_setting_every_trial_shares_stops_the_study_at_the_first_trial(
        library: str, fault: str, data: tuple[Any, ...]) -> None:
    """No validation data, a metric not evaluated, or a metric better the other way than the study: every
    trial failed alike at round 1 (optimize catches Exception by default), n_trials failed trials, where
    the Lightning and Transformers callbacks stop the study. Now the first such trial stops it too."""
    space = xgboost_space() if library == "xgboost" else lightgbm_space()
    study = _study(space, "maximize" if fault == "direction" else "minimize")
    study.optimize(_misconfigured(library, fault, data), n_trials=4, show_progress=False)
    assert [t.state for t in study.trials] == [ts.TrialState.FAILED], [t.error for t in study.trials]
    error = study.trials[0].error or ""
    said = {"no validation data": "no validation data", "metric": "no metric 'aucc'", "direction": "better when lower"}
    assert said[fault] in error and "the study is stopped (every trial would fail alike)" in error, error


def test_a_metric_against_the_study_names_the_evaluated_one_that_fits(data: tuple[Any, ...]) -> None:
    """eval_metric=["auc", "logloss"] in a study that maximizes: the callback takes the metric the library's
    early stopping takes (XGBoost's last, LightGBM's first), against the study's direction, and the error said
    "monitor another metric" without saying how; it names metric= and the evaluated metrics that fit."""
    X_tr, X_va, y_tr, y_va = data
    trial = _study(xgboost_space(), "maximize").ask()
    dtrain, dvalid = xgb.DMatrix(X_tr, label=y_tr), xgb.DMatrix(X_va, label=y_va)
    with pytest.raises(ValueError, match=r"'logloss' is better when lower.*XGBoostPruningCallback\(trial, "
                                         r"metric='auc'\) \(evaluated, and better higher: \['auc', 'aucpr'\]\)"):
        xgb.train({"eval_metric": ["auc", "error", "aucpr", "logloss"], "nthread": 1}, dtrain, 2,
                  evals=[(dvalid, "v")], callbacks=[XGBoostPruningCallback(trial)], verbose_eval=False)
    trial = _study(lightgbm_space(), "minimize").ask()
    ltrain = lgb.Dataset(X_tr, label=y_tr)
    params = {"objective": "binary", "metric": ["auc", "binary_logloss"], "verbose": -1, "num_threads": 1}
    with pytest.raises(ValueError, match=r"'auc' is better when higher.*LightGBMPruningCallback\(trial, "
                                         r"metric='binary_logloss'\)"):
        lgb.train(params, ltrain, 2, valid_sets=[lgb.Dataset(X_va, label=y_va, reference=ltrain)],
                  callbacks=[LightGBMPruningCallback(trial)])


def test_validation_data_without_a_metric_is_not_called_missing_data(data: tuple[Any, ...]) -> None:
    """Validation data given but no metric evaluated ('metric': 'None', disable_default_eval_metric)
    was refused as "training has no validation data: pass valid_sets=...", which the call had."""
    X_tr, X_va, y_tr, y_va = data
    dtrain = lgb.Dataset(X_tr, label=y_tr)
    params = {"objective": "binary", "metric": "None", "verbose": -1, "num_threads": 1}
    with pytest.raises(ValueError, match=r"validation sets \['valid_0'\] evaluate no metric.*set one"):
        lgb.train(params, dtrain, 2, valid_sets=[lgb.Dataset(X_va, label=y_va, reference=dtrain)],
                  callbacks=[LightGBMPruningCallback(_study(lightgbm_space(), "minimize").ask())])
    with pytest.raises(ValueError, match=r"'metric' is 'None', 'na', 'null', or 'custom' without feval="):
        lgb.train({**params, "metric": "custom"}, dtrain, 2, valid_sets=[lgb.Dataset(X_va, label=y_va, reference=dtrain)],
                  callbacks=[LightGBMPruningCallback(_study(lightgbm_space(), "minimize").ask())])
    lgb.train({**params, "metric": ""}, dtrain, 2, valid_sets=[lgb.Dataset(X_va, label=y_va, reference=dtrain)],
              callbacks=[LightGBMPruningCallback(_study(lightgbm_space(), "minimize").ask())])  # "": the default metric
    with pytest.raises(ValueError, match=r"validation sets \['valid'\] evaluate no metric"):
        lgb.cv(params, lgb.Dataset(X_tr, label=y_tr), 2, nfold=2,
               callbacks=[LightGBMPruningCallback(_study(lightgbm_space(), "minimize").ask())])
    dx, dv = xgb.DMatrix(X_tr, label=y_tr), xgb.DMatrix(X_va, label=y_va)
    for evals in ([(dv, "v")], []):  # without eval sets, setting eval_metric alone would not do
        with pytest.raises(ValueError, match=r"no metric.*disable_default_eval_metric.*set eval_metric.*evals=\[\(dvalid"):
            xgb.train({"objective": "binary:logistic", "disable_default_eval_metric": 1}, dx, 2, evals=evals,
                      callbacks=[XGBoostPruningCallback(_study(xgboost_space(), "minimize").ask())], verbose_eval=False)


def test_the_xgboost_callback_given_to_lightgbm_names_the_lightgbm_one(data: tuple[Any, ...]) -> None:
    """LightGBM calls its callbacks: the XGBoost one failed with "object is not callable"."""
    X_tr, X_va, y_tr, y_va = data
    dtrain = lgb.Dataset(X_tr, label=y_tr)
    with pytest.raises(TypeError, match=r"for LightGBM use .*LightGBMPruningCallback\(trial\)"):
        lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1}, dtrain, 2,
                  valid_sets=[lgb.Dataset(X_va, label=y_va, reference=dtrain)],
                  callbacks=[XGBoostPruningCallback(_study(xgboost_space(), "minimize").ask())])


def test_a_boosting_callback_given_to_optimize_is_refused_before_a_trial_runs() -> None:
    """study.optimize(callbacks=...) takes callback(study, record): the XGBoost callback, callable for
    LightGBM's sake with any arguments, passed that check and failed only after the first trial."""
    study = _study(xgboost_space(), "minimize")
    callback = XGBoostPruningCallback(study.ask())
    with pytest.raises(TypeError, match=r"callbacks= takes functions of two arguments.*cannot be called so"):
        study.optimize(lambda trial: 0.0, n_trials=2, callbacks=[callback], show_progress=False)
    assert len(study.trials) == 1  # the asked trial alone


def test_a_second_training_in_one_trial_names_the_cv_functions(data: tuple[Any, ...]) -> None:
    """Folds trained one after another with one trial's callback report round 1 again; the error
    was 'steps must increase' and now points to xgb.cv / lgb.cv."""
    X_tr, X_va, y_tr, y_va = data
    trial = _study(xgboost_space(), "minimize").ask()
    params = {"objective": "binary:logistic", "eval_metric": "logloss", "nthread": 1}
    dtrain, dvalid = xgb.DMatrix(X_tr, label=y_tr), xgb.DMatrix(X_va, label=y_va)
    xgb.train(params, dtrain, 3, evals=[(dvalid, "v")], callbacks=[XGBoostPruningCallback(trial)])
    with pytest.raises(ValueError, match=r"round 3 and now round 1 again.*xgb\.cv / lgb\.cv"):
        xgb.train(params, dtrain, 3, evals=[(dvalid, "v")], callbacks=[XGBoostPruningCallback(trial)])
    trial = _study(lightgbm_space(), "minimize").ask()
    lparams = {"objective": "binary", "metric": "binary_logloss", "verbose": -1, "num_threads": 1}
    ltrain = lgb.Dataset(X_tr, label=y_tr)
    lvalid = lgb.Dataset(X_va, label=y_va, reference=ltrain)
    lgb.train(lparams, ltrain, 3, valid_sets=[lvalid], callbacks=[LightGBMPruningCallback(trial)])
    with pytest.raises(ValueError, match=r"round 3 and now round 1 again"):
        lgb.train(lparams, ltrain, 3, valid_sets=[lvalid], callbacks=[LightGBMPruningCallback(trial)])


def test_space_params_are_accepted_by_both_apis(data: tuple[Any, ...]) -> None:
    """The preset spaces' names work in the native APIs and the wrappers alike."""
    X_tr, _, y_tr, _ = data
    rng = np.random.default_rng(0)
    xp, lp = xgboost_space().sample(rng), lightgbm_space().sample(rng)
    xgb.train({**xp, "nthread": 1}, xgb.DMatrix(X_tr, label=y_tr), 2)
    xgb.XGBClassifier(**xp, n_estimators=2, n_jobs=1).fit(X_tr, y_tr)
    lgb.train({**lp, "verbose": -1, "num_threads": 1}, lgb.Dataset(X_tr, label=y_tr), 2)
    lgb.LGBMClassifier(**lp, n_estimators=2, n_jobs=1, verbose=-1).fit(X_tr, y_tr)


@pytest.mark.parametrize(("module", "extra"), [("xgboost", "xgboost"), ("lightgbm", "lightgbm")])
def test_missing_library_names_the_extra(monkeypatch: pytest.MonkeyPatch, module: str, extra: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # "not installed"
    monkeypatch.delitem(sys.modules, f"tunesmith.integrations.{module}", raising=False)
    with pytest.raises(ImportError, match=rf"pip install 'tunesmith\[{extra}\]'"):
        importlib.import_module(f"tunesmith.integrations.{module}")


def test_a_study_or_a_record_instead_of_the_trial_is_refused() -> None:
    """Passing the study (or a finished trial's record) was an AttributeError about 'study';
    now a TypeError that says to pass the running trial."""
    study = _study(xgboost_space(), "minimize")
    study.ask()
    study.tell(0, 1.0)
    for make in (XGBoostPruningCallback, LightGBMPruningCallback):
        with pytest.raises(TypeError, match=r"needs the running trial.*got Study; pass study\.ask\(\)"):
            make(study)
        with pytest.raises(TypeError, match="needs the running trial.*got FrozenTrial"):
            make(study.trials[0])


def test_a_custom_xgboost_metric_follows_the_studys_direction(data: tuple[Any, ...]) -> None:
    """A custom metric (a callable eval_metric, custom_metric=) was taken as better lower: a
    study that maximizes roc_auc_score or an accuracy failed with 'better when lower'."""
    from sklearn.metrics import roc_auc_score

    X_tr, X_va, y_tr, y_va = data
    study = _study(xgboost_space(), "maximize")
    trial = study.ask()
    model = xgb.XGBClassifier(n_estimators=3, n_jobs=1, eval_metric=roc_auc_score,
                              callbacks=[XGBoostPruningCallback(trial)])
    model.fit(X_tr, y_tr, eval_set=[(X_va, y_va)], verbose=False)
    assert sorted(trial.intermediate) == [1, 2, 3]
    assert trial.intermediate[3] == pytest.approx(model.evals_result()["validation_0"]["roc_auc_score"][-1])

    def accuracy(predt: Any, d: Any) -> tuple[str, float]:
        return "acc", float(((predt > 0.5) == d.get_label()).mean())

    dtrain, dvalid = xgb.DMatrix(X_tr, label=y_tr), xgb.DMatrix(X_va, label=y_va)
    params = {"objective": "binary:logistic", "disable_default_eval_metric": 1, "nthread": 1}
    trial = study.ask()
    xgb.train(params, dtrain, 2, evals=[(dvalid, "v")], custom_metric=accuracy,
              callbacks=[XGBoostPruningCallback(trial)], verbose_eval=False)
    assert sorted(trial.intermediate) == [1, 2]
    with pytest.raises(ValueError, match="'acc' is better when lower"):  # said so: checked
        xgb.train(params, dtrain, 2, evals=[(dvalid, "v")], custom_metric=accuracy,
                  callbacks=[XGBoostPruningCallback(study.ask(), maximize=False)], verbose_eval=False)
    # built-in metrics are still checked, with a threshold too
    with pytest.raises(ValueError, match="'error@0.3' is better when lower"):
        xgb.train({**params, "eval_metric": "error@0.3", "disable_default_eval_metric": 0}, dtrain, 2,
                  evals=[(dvalid, "v")], callbacks=[XGBoostPruningCallback(study.ask())], verbose_eval=False)


def test_an_installed_package_that_fails_to_import_is_not_called_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A package whose own import fails (a dependency missing, a broken build: lightgbm without
    libgomp) was reported as 'not installed: pip install ...', hiding the real error."""
    from tunesmith.integrations._common import require

    (tmp_path / "ts_broken_pkg").mkdir()
    (tmp_path / "ts_broken_pkg" / "__init__.py").write_text("import ts_absent_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match=r"installed but failed to import: ModuleNotFoundError: .*'ts_absent_dependency'"):
        require("ts_broken_pkg", extra="xgboost", what="test")
    with pytest.raises(ImportError, match=r"'ts_absent_pkg' package, which is not installed: pip install 'tunesmith\[x\]'"):
        require("ts_absent_pkg", extra="x", what="test")


@pytest.mark.parametrize("package", ["xgboost", "lightgbm"])
def test_an_older_library_than_the_extra_asks_for_is_refused_at_the_import(monkeypatch: pytest.MonkeyPatch,
                                                                           package: str) -> None:
    """require() checked no version of xgboost or lightgbm: an older one installed apart from the extra
    failed later, inside a callback. The newest releases below the floors fail beside scikit-learn 1.9:
    xgboost 3.1.2's XGBClassifier ("_estimator_type undefined"), lightgbm 4.6's fit(eval_X=)."""
    library = importlib.import_module(package)
    old, floor = {"xgboost": ("3.1.2", "3.1.3"), "lightgbm": ("4.6.0", "4.7")}[package]
    monkeypatch.setattr(library, "__version__", old)  # the installed library, said to be an old one
    monkeypatch.delitem(sys.modules, f"tunesmith.integrations.{package}")
    with pytest.raises(ImportError, match=rf"tunesmith.integrations.{package} needs {package} >= {floor}, this is "
                                          rf"{old}: pip install -U 'tunesmith\[{package}\]'"):
        importlib.import_module(f"tunesmith.integrations.{package}")


def test_each_integration_s_floor_is_the_one_its_extra_asks_for() -> None:
    """The versions require() refuses below are those pyproject.toml's extras install (xgboost and
    lightgbm had none)."""
    import tomllib

    from tunesmith.integrations._common import FLOORS

    extras = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    asked = {m.group(1): tuple(int(n) for n in m.group(2).split("."))
             for requirements in extras.values() for r in requirements
             if (m := re.fullmatch(r"([a-z]+)(?:\[\w+\])?>=([\d.]+)", r))}
    assert {package: asked[package] for package in FLOORS} == FLOORS
    assert {"xgboost", "lightgbm", "lightning", "transformers", "mlflow", "tensorboard"} <= set(FLOORS)


def test_a_diverged_run_is_pruned_not_failed() -> None:
    """A metric that became inf or nan failed the trial ('report() takes a finite number ...
    raise ts.TrialPruned'), where the Lightning and Transformers callbacks prune it."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = X[:, 0] * 1e30  # rmse overflows at once
    study = _study(xgboost_space(), "minimize")

    def objective(trial: ts.Trial) -> float:
        d = xgb.DMatrix(X, label=y)
        xgb.train({"learning_rate": 1e10, "eval_metric": "rmse", "nthread": 1}, d, 5, evals=[(d, "v")],
                  callbacks=[XGBoostPruningCallback(trial)], verbose_eval=False)
        return 0.0

    study.optimize(objective, n_trials=1, show_progress=False)
    assert study.trials[0].state is ts.TrialState.PRUNED, study.trials[0].error
    assert study.trials[0].attrs["diverged_at"] == 1  # told apart from the pruner's stop


def test_a_lightgbm_metric_turned_nan_keeps_the_round_it_diverged_at(data: tuple[Any, ...]) -> None:
    """A diverged LightGBM run was pruned with nothing stored that said why: its trial read as one
    the pruner stopped, without a report of the round. The round is kept as attrs["diverged_at"]."""
    X_tr, X_va, y_tr, y_va = data

    def nan_from_round_3(preds: Any, ds: Any) -> tuple[str, float, bool]:
        nan_from_round_3.calls += 1  # type: ignore[attr-defined]
        return "score", float("nan") if nan_from_round_3.calls >= 3 else 0.5, True  # type: ignore[attr-defined]

    nan_from_round_3.calls = 0  # type: ignore[attr-defined]
    study = _study(lightgbm_space(), "maximize")

    def objective(trial: ts.Trial) -> float:
        dtrain = lgb.Dataset(X_tr, label=y_tr)
        lgb.train({"objective": "binary", "metric": "None", "verbose": -1, "num_threads": 1}, dtrain, 10,
                  valid_sets=[lgb.Dataset(X_va, label=y_va, reference=dtrain)], feval=nan_from_round_3,
                  callbacks=[LightGBMPruningCallback(trial)])
        return 0.0

    study.optimize(objective, n_trials=1, show_progress=False)
    trial = study.trials[0]
    assert trial.state is ts.TrialState.PRUNED and trial.intermediate == {1: 0.5, 2: 0.5}
    assert trial.attrs["diverged_at"] == 3


def test_an_xgboost_estimator_holding_the_callback_can_be_cloned_and_pickled(data: tuple[Any, ...]) -> None:
    """clone() of an XGBClassifier(callbacks=[cb]) (cross_val_score, GridSearchCV) and pickling
    the fitted model both failed with "cannot pickle '_thread.RLock' object": the callback
    copied its trial, study and storage. A clone shares the callback; a pickle drops the trial."""
    import pickle

    from sklearn.base import clone
    from sklearn.model_selection import cross_val_score

    X_tr, X_va, y_tr, y_va = data
    trial = _study(xgboost_space(), "maximize").ask()
    model = xgb.XGBClassifier(n_estimators=3, n_jobs=1, eval_metric="auc", callbacks=[XGBoostPruningCallback(trial)])
    fitted = clone(model).fit(X_tr, y_tr, eval_set=[(X_va, y_va)], verbose=False)
    assert sorted(trial.intermediate) == [1, 2, 3]
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_allclose(again.predict_proba(X_va), fitted.predict_proba(X_va))
    with pytest.raises(ValueError, match="came from a pickle, without its trial"):
        again.fit(X_tr, y_tr, eval_set=[(X_va, y_va)], verbose=False)
    with pytest.raises(ValueError, match=r"now round 1 again.*xgb\.cv"):  # folds: one training each
        cross_val_score(model, X_tr, y_tr, cv=2, error_score="raise",
                        params={"eval_set": [(X_va, y_va)], "verbose": False})


def test_a_preset_keyword_takes_a_plain_number_and_names_a_bad_one() -> None:
    """xgboost_space(max_depth=6) failed with "argument after * must be an iterable", and
    num_leaves=(4,) with "Int.__init__() missing ... 'high'", naming neither keyword."""
    assert xgboost_space(max_depth=6)["max_depth"] == ts.Fixed(6)
    assert lightgbm_space(learning_rate=0.1).sample(np.random.default_rng(0))["learning_rate"] == 0.1
    with pytest.raises(ValueError, match=r"lightgbm_space: num_leaves must be a \(low, high\) range or a plain number"):
        lightgbm_space(num_leaves=(4,))  # type: ignore[arg-type]


def test_a_preset_space_names_the_keyword_meant() -> None:
    """xgboost_space(max_dept=...) and the libraries' own names (eta=, bagging_fraction=) were a bare
    "got an unexpected keyword argument", and n_estimators= said nothing of the rounds."""
    with pytest.raises(TypeError, match=r"no keyword 'max_dept' \(did you mean max_depth=\?\); its keywords: learning_rate"):
        xgboost_space(max_dept=(3, 6))
    with pytest.raises(TypeError, match=r"'eta' \(did you mean learning_rate=\?\)"):
        xgboost_space(eta=(0.01, 0.3))
    with pytest.raises(TypeError, match=r"'bagging_fraction' \(did you mean subsample=\?\)"):
        lightgbm_space(bagging_fraction=(0.5, 1.0))
    with pytest.raises(TypeError, match=r"'n_estimators': the number of boosting rounds is not searched.*n_estimators="):
        lightgbm_space(n_estimators=(100, 500))
    with pytest.raises(TypeError, match=r"'gamma'; to search it, add it to the space it returns: ts.Space\(\{\*\*xgboost_space"):
        xgboost_space(gamma=(1e-8, 1.0))


def test_a_preset_fraction_outside_what_the_library_takes_is_refused(data: tuple[Any, ...]) -> None:
    """lightgbm_space(subsample=(0.5, 1.5)) was taken, and each trial drawing above 1 failed in LightGBM."""
    X_tr, _, y_tr, _ = data
    with pytest.raises(lgb.basic.LightGBMError, match="bagging_fraction"):  # what each such trial met
        lgb.train({"subsample": 1.2, "subsample_freq": 1, "verbose": -1}, lgb.Dataset(X_tr, label=y_tr), 1)
    with pytest.raises(ValueError, match=r"lightgbm_space: subsample must lie in \(0, 1\], got 1.5 in \(0.5, 1.5\)"):
        lightgbm_space(subsample=(0.5, 1.5))
    with pytest.raises(ValueError, match=r"xgboost_space: colsample_bytree must lie in \(0, 1\], got 0: "):
        xgboost_space(colsample_bytree=0)
    assert xgboost_space(subsample=1)["subsample"] == ts.Fixed(1)  # the bound itself is taken


def test_a_preset_space_takes_no_other_parameter_of_the_library_for_a_slip() -> None:
    """xgboost_space(colsample_bylevel=...) said "did you mean colsample_bytree=?", lightgbm_space(
    min_child_samples=...) "min_child_weight=?" and subsample_freq= "subsample=?": other parameters of the
    library, not slips, so that following the advice changed another parameter's range."""
    assert {"colsample_bylevel", "colsample_bynode"} <= set(xgb.XGBRegressor().get_params())  # XGBoost's own
    assert {"min_child_samples", "subsample_freq"} <= set(lgb.LGBMRegressor().get_params())
    for space, name in ((xgboost_space, "colsample_bylevel"), (xgboost_space, "colsample_bynode"),
                        (lightgbm_space, "min_child_samples")):
        with pytest.raises(TypeError, match=rf"no keyword '{name}'; to search it, add it to the space") as err:
            space(**{name: (0.5, 1.0)})
        assert "did you mean" not in str(err.value)
    with pytest.raises(TypeError, match=r"'subsample_freq': subsample_freq is fixed at 1, so that subsample takes effect"):
        lightgbm_space(subsample_freq=5)
    with pytest.raises(TypeError, match=r"'max_dept' \(did you mean max_depth=\?\)"):  # a slip still is one
        xgboost_space(max_dept=(3, 6))


def test_lightgbm_leaves_outside_what_lightgbm_takes_are_refused(data: tuple[Any, ...]) -> None:
    """lightgbm_space(num_leaves=(1, 64)) was taken, and each trial drawing 1 failed in LightGBM; a range of
    NumPy float32 bounds (no Python float) passed the fraction check, as subsample=(0.5, 1.5) had before."""
    X_tr, _, y_tr, _ = data
    with pytest.raises(lgb.basic.LightGBMError, match=r"\(num_leaves\) > \(1\)"):  # what each such trial met
        lgb.train({"num_leaves": 1, "verbose": -1}, lgb.Dataset(X_tr, label=y_tr), 1)
    with pytest.raises(ValueError, match=r"lightgbm_space: num_leaves must lie in \[2, 131072\], got 1 in \(1, 64\)"):
        lightgbm_space(num_leaves=(1, 64))
    with pytest.raises(ValueError, match=r"num_leaves must lie in \[2, 131072\], got 200000"):
        lightgbm_space(num_leaves=200_000)
    assert lightgbm_space(num_leaves=(2, 131072))["num_leaves"] == ts.Int(2, 131072, log=True)
    with pytest.raises(ValueError, match=r"subsample must lie in \(0, 1\], got np.float32\(1.5\)"):
        lightgbm_space(subsample=tuple(np.array([0.5, 1.5], dtype=np.float32)))  # type: ignore[arg-type]


def test_lightgbm_reporting_the_training_metric_is_warned_about(data: tuple[Any, ...]) -> None:
    """With the training data as the only evaluation (valid_sets=[dtrain], under any name) the
    trial was pruned on its training metric without a word (LightGBM's own early stopping
    warns and turns itself off)."""
    X_tr, X_va, y_tr, y_va = data
    params = {"objective": "binary", "metric": "binary_logloss", "verbose": -1, "num_threads": 1}
    for names in (None, ["train"]):
        trial = _study(lightgbm_space(), "minimize").ask()
        dtrain = lgb.Dataset(X_tr, label=y_tr)
        with pytest.warns(UserWarning, match="only evaluation is on the training data"):
            lgb.train(params, dtrain, 2, valid_sets=[dtrain], valid_names=names,
                      callbacks=[LightGBMPruningCallback(trial)])
        assert sorted(trial.intermediate) == [1, 2]
    trial = _study(lightgbm_space(), "minimize").ask()  # a validation set after the training one
    dtrain = lgb.Dataset(X_tr, label=y_tr)
    booster = lgb.train(params, dtrain, 2, valid_sets=[dtrain, lgb.Dataset(X_va, label=y_va, reference=dtrain)],
                        valid_names=["train", "valid"], callbacks=[LightGBMPruningCallback(trial)])
    assert trial.intermediate[2] == pytest.approx(booster.best_score["valid"]["binary_logloss"])


try:  # Ray workers cannot import this test module: ship its functions by value
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
except ImportError:  # pragma: no cover - the Ray tests skip without Ray
    pass

_X, _Y = load_breast_cancer(return_X_y=True)
_SPLIT = tuple(train_test_split(_X, _Y, test_size=0.3, random_state=0, stratify=_Y))


def _xgb_good_then_bad(trial: ts.Trial) -> float:
    """Trial 0 learns (learning rate 0.3), the others barely move; the validation auc per round."""
    X_tr, X_va, y_tr, y_va = _SPLIT
    dtrain, dvalid = xgb.DMatrix(X_tr, label=y_tr), xgb.DMatrix(X_va, label=y_va)
    params = {**(GOOD if trial.number == 0 else BAD), "objective": "binary:logistic", "eval_metric": "auc", "nthread": 1}
    booster = xgb.train(params, dtrain, ROUNDS, evals=[(dvalid, "valid")], callbacks=[XGBoostPruningCallback(trial)],
                        verbose_eval=False)  # fmt: skip
    return float(booster.eval(dvalid).split(":")[1])


def _lgb_good_then_bad(trial: ts.Trial) -> float:
    X_tr, X_va, y_tr, y_va = _SPLIT
    params = {**_lgb(GOOD if trial.number == 0 else BAD, 15 if trial.number == 0 else 2),
              "objective": "binary", "metric": "auc", "verbose": -1, "num_threads": 1}  # fmt: skip
    dtrain = lgb.Dataset(X_tr, label=y_tr)
    booster = lgb.train(params, dtrain, ROUNDS, valid_sets=[lgb.Dataset(X_va, label=y_va, reference=dtrain)],
                        callbacks=[LightGBMPruningCallback(trial)])  # fmt: skip
    return float(booster.best_score["valid_0"]["auc"])


_BOOSTING = {"xgboost": _xgb_good_then_bad, "lightgbm": _lgb_good_then_bad}


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["process", "ray"])
@pytest.mark.parametrize("library", list(_BOOSTING))
def test_pruned_in_worker_processes_and_ray_actors(shared_storage_url: str, executor: str, library: str,
                                                   request: pytest.FixtureRequest) -> None:  # fmt: skip
    """The pruning raised out of xgb.train / lgb.train in a worker process or a Ray actor ends the
    trial pruned at the first rung, its reports in the shared storage (SQLite, PostgreSQL)."""
    if executor == "ray":
        request.getfixturevalue("ray_local")
    study = ts.Study({"x": ts.Float(0, 1)}, direction="maximize", storage=shared_storage_url, name="boost",
                     sampler="random", pruner=ASHA(min_resource=3, reduction_factor=3, max_resource=ROUNDS))
    study.optimize(_BOOSTING[library], n_trials=1, show_progress=False)  # trial 0 sets the rung
    study.optimize(_BOOSTING[library], n_trials=1, n_jobs=1, executor=executor, show_progress=False)
    good, bad = study.trials
    assert (good.state, bad.state) == (ts.TrialState.COMPLETE, ts.TrialState.PRUNED), bad.error
    assert sorted(bad.intermediate) == [1, 2, 3]


@pytest.mark.slow
@pytest.mark.parametrize("library", list(_BOOSTING))
def test_ray_in_memory_trials_report_every_round_and_check_the_direction(ray_local: Any, library: str) -> None:
    """An actor's trial of an in-memory study stands for its study with its name alone: the callbacks
    read its pruner and direction, so every trial failed ("'_Named' object has no attribute 'pruner'").
    Now the trial completes with every round reported (the pruner stops no trial there), and a metric
    against the study's direction is still refused."""
    study = ts.Study({"x": ts.Float(0, 1)}, direction="maximize", sampler="random", seed=0,
                     pruner=ASHA(min_resource=3, reduction_factor=3, max_resource=ROUNDS))
    study.optimize(_BOOSTING[library], n_trials=2, n_jobs=1, executor="ray", show_progress=False)
    assert [t.state for t in study.trials] == [ts.TrialState.COMPLETE] * 2, [t.error for t in study.trials]
    assert [sorted(t.intermediate) for t in study.trials] == [list(range(1, ROUNDS + 1))] * 2
    wrong = ts.Study({"x": ts.Float(0, 1)}, direction="minimize", sampler="random", seed=0)
    wrong.optimize(_BOOSTING[library], n_trials=1, executor="ray", show_progress=False, catch=(ValueError,))
    assert "is better when higher, but the study's direction is 'minimize'" in str(wrong.trials[0].error)


def test_lightgbm_s_recorders_keep_the_round_that_pruned(data: tuple[Any, ...]) -> None:
    """The callback ran before LightGBM's record_evaluation and log_evaluation (its class's order was
    replaced by its place in the list), so their records ended a round before the pruning one; and
    after them, before early stopping, whose last-round stop would skip its report."""
    X_tr, X_va, y_tr, y_va = data
    study = ts.Study(lightgbm_space(), direction="minimize", sampler="random", seed=0,
                     pruner=ASHA(min_resource=3, reduction_factor=3, max_resource=ROUNDS))
    params = {"objective": "binary", "metric": "binary_logloss", "verbose": -1, "num_threads": 1}
    study.enqueue(_lgb(GOOD, 15))
    study.enqueue(_lgb(BAD, 4))
    logs: list[dict[str, Any]] = []

    def objective(trial: ts.Trial) -> float:
        dtrain = lgb.Dataset(X_tr, label=y_tr)
        log: dict[str, Any] = {}
        logs.append(log)
        booster = lgb.train({**trial.params, **params}, dtrain, ROUNDS,
                            valid_sets=[lgb.Dataset(X_va, label=y_va, reference=dtrain)],
                            callbacks=[LightGBMPruningCallback(trial), lgb.record_evaluation(log),
                                       lgb.early_stopping(ROUNDS, verbose=False)])  # fmt: skip
        return float(booster.best_score["valid_0"]["binary_logloss"])

    study.optimize(objective, n_trials=2, show_progress=False)
    good, bad = study.trials
    assert bad.state is ts.TrialState.PRUNED and sorted(bad.intermediate) == [1, 2, 3]
    assert len(logs[1]["valid_0"]["binary_logloss"]) == 3
    assert sorted(good.intermediate) == list(range(1, ROUNDS + 1))  # early stopping's last-round stop came after


class _PrunesAt(ts.Pruner):
    """A pruner of one's own that stops a trial at its report of round ``step`` or later, and keeps
    the rounds it decided on."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.decided: list[int] = []

    def needs_trials(self, trial: Any) -> bool:
        return False

    def decide(self, trial: Any, trials: Any, direction: Any) -> ts.pruners.Decision:
        self.decided.append(max(trial.intermediate))
        return ts.pruners.Decision.PRUNE if self.decided[-1] >= self.step else ts.pruners.Decision.CONTINUE


def _stopping_run(data: tuple[Any, ...], library: str, stopper_first: bool, pruner: ts.Pruner) -> tuple[Any, Any]:
    """A trial trained with the library's early stopping (it stops well before 200 rounds) listed
    before or after the pruning callback; the trial and the validation metric of every round trained,
    or the TrialPruned that ended training."""
    X_tr, X_va, y_tr, y_va = data
    trial = ts.Study({"x": ts.Float(0, 1)}, direction="minimize", sampler="random", pruner=pruner).ask()
    log: dict[str, Any] = {}
    if library == "xgboost":
        callbacks = [XGBoostPruningCallback(trial), xgb.callback.EarlyStopping(rounds=3)]
        params = {"objective": "binary:logistic", "eval_metric": "logloss", "learning_rate": 1.0, "nthread": 1}
        train = lambda: xgb.train(params, xgb.DMatrix(X_tr, label=y_tr), 200, verbose_eval=False,  # noqa: E731
                                  evals=[(xgb.DMatrix(X_va, label=y_va), "v")], evals_result=log, callbacks=callbacks)
    else:
        callbacks = [LightGBMPruningCallback(trial), lgb.early_stopping(3, verbose=False), lgb.record_evaluation(log)]
        params = {"objective": "binary", "metric": "binary_logloss", "learning_rate": 1.0, "verbose": -1, "num_threads": 1}
        dtrain = lgb.Dataset(X_tr, label=y_tr)
        train = lambda: lgb.train(params, dtrain, 200, valid_sets=[lgb.Dataset(X_va, label=y_va, reference=dtrain)],  # noqa: E731
                                  valid_names=["v"], callbacks=callbacks)
    if stopper_first:
        callbacks.reverse()
    try:
        train()
    except ts.TrialPruned as pruned:
        return trial, pruned
    return trial, next(iter(log["v"].values()))


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_early_stopping_listed_first_still_reports_the_stopping_round(data: tuple[Any, ...], library: str) -> None:
    """With xgb.callback.EarlyStopping listed before the pruning callback, the round it stopped at was never
    reported: xgboost calls no later callback's after_iteration once one returns True. Now the trial's last
    report is the stopping round's, whatever the order, and the pruner decides on it (LightGBM orders its
    callbacks itself: checked in both orders too)."""
    rounds: dict[bool, list[float]] = {}
    for stopper_first in (False, True):
        trial, rounds[stopper_first] = _stopping_run(data, library, stopper_first, ts.pruners.NopPruner())
        assert len(rounds[stopper_first]) < 200  # it stopped early
        assert sorted(trial.intermediate) == list(range(1, len(rounds[stopper_first]) + 1))
        assert trial.intermediate[len(rounds[stopper_first])] == pytest.approx(rounds[stopper_first][-1])
    assert rounds[True] == rounds[False]
    stop = len(rounds[True])
    pruner = _PrunesAt(stop)  # it stops the trial at the stopping round: the pruner must be asked about it
    trial, pruned = _stopping_run(data, library, True, pruner)
    assert isinstance(pruned, ts.TrialPruned) and f"pruned at step {stop}" in str(pruned)
    assert pruner.decided == list(range(1, stop + 1))


class _Holds(xgb.callback.TrainingCallback):  # type: ignore[misc]
    """Holds training after its first round until told to go on, having said that it got there."""

    def __init__(self) -> None:
        super().__init__()
        self.there, self.go = threading.Event(), threading.Event()

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        if epoch == 0:
            self.there.set()
            assert self.go.wait(60)
        return False


def test_a_second_training_in_another_thread_is_refused_and_leaves_the_first_whole(data: tuple[Any, ...]) -> None:
    """One callback shared by fits running at once in threads (clones fitted by GridSearchCV under joblib's
    threading backend): the second training reset the first's state, so the first one's stopping round
    (early stopping listed first) went unreported, and the second failed as "round 1 again". The second
    is refused now, naming the threads and what to do, and the first reports every round of its own."""
    X_tr, X_va, y_tr, y_va = data
    trial = ts.Study({"x": ts.Float(0, 1)}, direction="minimize", sampler="random", pruner=ts.pruners.NopPruner()).ask()
    cb, hold, log = XGBoostPruningCallback(trial), _Holds(), {}
    params = {"objective": "binary:logistic", "eval_metric": "logloss", "learning_rate": 1.0, "nthread": 1}
    dtrain, dvalid = xgb.DMatrix(X_tr, label=y_tr), xgb.DMatrix(X_va, label=y_va)

    def first() -> None:
        xgb.train(params, dtrain, 200, evals=[(dvalid, "v")], evals_result=log, verbose_eval=False,
                  callbacks=[xgb.callback.EarlyStopping(rounds=3), cb, hold])

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert hold.there.wait(60)
        with pytest.raises(ValueError, match=r"second training started with trial 0's callback while another "
                                             r"thread trains with it.*xgb\.cv"):
            xgb.train(params, dtrain, 5, evals=[(dvalid, "v")], verbose_eval=False, callbacks=[cb])
    finally:
        hold.go.set()
        thread.join(60)
    rounds = log["v"]["logloss"]
    assert len(rounds) < 200  # it stopped early, at a round only after_training reports
    assert sorted(trial.intermediate) == list(range(1, len(rounds) + 1))
    assert [trial.intermediate[i + 1] for i in range(len(rounds))] == pytest.approx(rounds)
    with pytest.raises(ValueError, match="now round 1 again"):  # the first ended: a later one is a second training
        xgb.train(params, dtrain, 2, evals=[(dvalid, "v")], verbose_eval=False, callbacks=[cb])


class _Together:
    """A LightGBM callback that holds each training at its first round until both trainings are there."""

    order = 0  # before the pruning callback's report

    def __init__(self) -> None:
        self.barrier = threading.Barrier(2, timeout=60)

    def __call__(self, env: Any) -> None:
        if env.iteration == env.begin_iteration:
            self.barrier.wait()


def test_two_lightgbm_trainings_at_once_report_one_training_only(data: tuple[Any, ...]) -> None:
    """One LightGBMPruningCallback shared by two trainings running at once in threads: the callback keeps no
    state of a training, and the trial's reports are looked at and written as one step, so exactly one
    training reports (every round, its own values) and the other is refused at its first round, naming the
    threads and what to do."""
    X_tr, X_va, y_tr, y_va = data
    trial = ts.Study({"x": ts.Float(0, 1)}, direction="minimize", sampler="random", pruner=ts.pruners.NopPruner()).ask()
    cb, together = LightGBMPruningCallback(trial), _Together()
    logs: dict[float, dict[str, Any]] = {}
    errors: dict[float, BaseException] = {}

    def fit(rate: float) -> None:
        logs[rate] = {}
        params = {"objective": "binary", "metric": "binary_logloss", "learning_rate": rate, "verbose": -1, "num_threads": 1}
        dtrain = lgb.Dataset(X_tr, label=y_tr)  # each its own: LightGBM builds a Dataset at its first training
        try:
            lgb.train(params, dtrain, 10, valid_sets=[lgb.Dataset(X_va, label=y_va, reference=dtrain)],
                      callbacks=[together, cb, lgb.record_evaluation(logs[rate])])
        except ValueError as exc:
            errors[rate] = exc

    threads = [threading.Thread(target=fit, args=(rate,)) for rate in (0.1, 0.3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(errors) == 1, errors
    (lost, error), = errors.items()
    assert re.search(r"reported boosting round \d+ and now round 1 again: one trial's callback follows one "
                     r"training \(clones of one estimator fitted in threads", str(error))
    won = 0.3 if lost == 0.1 else 0.1
    rounds = logs[won]["valid_0"]["binary_logloss"]
    assert sorted(trial.intermediate) == list(range(1, 11))
    assert [trial.intermediate[i + 1] for i in range(10)] == pytest.approx(rounds, rel=1e-12)


class _Fails(xgb.callback.TrainingCallback):  # type: ignore[misc]
    """A callback of the user's that fails at the first round, before the pruning callback reports it."""

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        raise RuntimeError("the user's callback failed")


def test_a_training_ended_by_an_error_in_another_thread_does_not_refuse_the_next(data: tuple[Any, ...]) -> None:
    """A training that an error outside the callback ended (another callback raising, bst.update failing) calls
    no after_training: its state stayed held by its thread, and the next training from another thread was
    refused as "while another thread trains with it", no training running. It is taken once its booster is gone."""
    X_tr, X_va, y_tr, y_va = data
    trial = ts.Study({"x": ts.Float(0, 1)}, direction="minimize", sampler="random", pruner=ts.pruners.NopPruner()).ask()
    cb, errors = XGBoostPruningCallback(trial), []
    params = {"objective": "binary:logistic", "eval_metric": "logloss", "nthread": 1}
    dtrain, dvalid = xgb.DMatrix(X_tr, label=y_tr), xgb.DMatrix(X_va, label=y_va)

    def failing() -> None:
        try:
            xgb.train(params, dtrain, 5, evals=[(dvalid, "v")], verbose_eval=False, callbacks=[_Fails(), cb])
        except RuntimeError as exc:
            errors.append(str(exc))

    thread = threading.Thread(target=failing)
    thread.start()
    thread.join(60)
    assert errors == ["the user's callback failed"] and not trial.intermediate
    log: dict[str, Any] = {}
    xgb.train(params, dtrain, 3, evals=[(dvalid, "v")], evals_result=log, verbose_eval=False, callbacks=[cb])
    assert [trial.intermediate[i + 1] for i in range(3)] == pytest.approx(log["v"]["logloss"])


def test_two_threads_reporting_round_1_of_a_stored_trial_at_once_report_it_once(tmp_path: Path) -> None:
    """The boosting callbacks' shared report (report_and_decide) looked at a trial's reports and wrote its own
    apart: two trainings reporting round 1 of a SQLite-stored trial at once both found it unreported and both
    wrote it, one value replacing the other, in about 4 of 10 tries. Exactly one reports now, every try."""
    from tunesmith.integrations._common import report_and_decide

    study = ts.Study({"x": ts.Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'r.db'}", name="r", sampler="random",
                     pruner=ts.pruners.NopPruner())
    for _ in range(20):
        trial, together, reported, refused = study.ask(), threading.Barrier(2, timeout=60), [], []

        def report(value: float, trial: Any = trial, together: threading.Barrier = together,
                   reported: list[float] = reported, refused: list[str] = refused) -> None:
            together.wait()
            try:
                report_and_decide(trial, value, 1)
                reported.append(value)
            except ValueError as exc:
                refused.append(str(exc))

        threads = [threading.Thread(target=report, args=(value,)) for value in (0.25, 0.75)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(reported) == 1 and len(refused) == 1 and "now round 1 again" in refused[0]
        assert ts.Study.load("r", study.storage).trials[trial.number].intermediate == {1: reported[0]}
