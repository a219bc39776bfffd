"""XGBoost: a pruning callback (boosting rounds as steps) and a preset space.

    cb = XGBoostPruningCallback(trial)                 # the last eval set's last metric
    xgb.train(params, dtrain, 300, evals=[(dvalid, "valid")], callbacks=[cb])
    XGBClassifier(n_estimators=300, callbacks=[cb]).fit(X, y, eval_set=[(Xv, yv)])

Round ``i`` (counted from 1) is reported as ``trial.report(value, i)``, so a
pruner's ``max_resource`` is the number of rounds. Needs ``tunesmith[xgboost]``.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..space import Float, Int, Space
from ._common import (
    ROUNDS,
    check_direction,
    check_names,
    check_pruner,
    refuse_unknown,
    report_and_decide,
    require,
    span,
    stop_alike,
    warn_direction,
)

xgb = require("xgboost", extra="xgboost", what="tunesmith.integrations.xgboost")

_TrainingCallback: Any = xgb.callback.TrainingCallback

# the built-in metrics that are better when higher (xgboost's own EarlyStopping's list, and the
# accuracy of interval regression, which it minimizes)
_MAXIMIZED = ("auc", "aucpr", "pre", "map", "ndcg", "interval-regression-accuracy")
# xgboost's built-in metrics (a name may end in "@..."); any other is a custom metric
# (custom_metric=, or a callable eval_metric in the scikit-learn wrappers)
_BUILTIN = ("rmse", "rmsle", "mae", "mape", "mphe", "logloss", "error", "merror", "mlogloss", "auc",
            "aucpr", "pre", "ndcg", "map", "poisson-nloglik", "gamma-nloglik", "cox-nloglik",
            "gamma-deviance", "tweedie-nloglik", "aft-nloglik", "interval-regression-accuracy")  # fmt: skip


#: XGBoost's native names (and a slip or two) for what :func:`xgboost_space` calls otherwise, or a note
_XGB_ALIASES = {
    "eta": "learning_rate", "alpha": "reg_alpha", "lambda": "reg_lambda", "depth": "max_depth",
    **dict.fromkeys(("n_estimators", "num_boost_round", "num_rounds", "rounds"), ROUNDS.format(
        "xgb.train's num_boost_round, XGBClassifier(n_estimators=...)")),
}


def xgboost_space(
    *,
    learning_rate: tuple[float, float] | float = (1e-3, 0.3),
    max_depth: tuple[int, int] | int = (2, 10),
    min_child_weight: tuple[float, float] | float = (1e-2, 20.0),
    subsample: tuple[float, float] | float = (0.5, 1.0),
    colsample_bytree: tuple[float, float] | float = (0.5, 1.0),
    reg_alpha: tuple[float, float] | float = (1e-8, 10.0),
    reg_lambda: tuple[float, float] | float = (1e-8, 10.0),
    **unknown: Any,
) -> Space:
    """A search space for gradient-boosted trees from common practice.

    Names are the scikit-learn wrapper's, which ``xgb.train`` accepts too (as
    aliases of eta, alpha, lambda): pass ``trial.params`` to either. Learning
    rate, min child weight and the L1/L2 terms are log-uniform. Change one range
    with its keyword (a plain number fixes it: ``max_depth=6``), or edit the result: ``ts.Space({**xgboost_space(), ...})``.
    Another keyword is refused naming the one meant (XGBoost's own ``eta=`` is ``learning_rate=``).
    """
    refuse_unknown("xgboost_space", unknown, list(xgboost_space.__kwdefaults__ or {}), _XGB_ALIASES,
                   library=xgb.XGBModel)
    return Space({
        "learning_rate": span("xgboost_space", "learning_rate", learning_rate, Float, log=True),
        "max_depth": span("xgboost_space", "max_depth", max_depth, Int),
        "min_child_weight": span("xgboost_space", "min_child_weight", min_child_weight, Float, log=True),
        "subsample": span("xgboost_space", "subsample", subsample, Float, within="(0, 1]"),
        "colsample_bytree": span("xgboost_space", "colsample_bytree", colsample_bytree, Float, within="(0, 1]"),
        "reg_alpha": span("xgboost_space", "reg_alpha", reg_alpha, Float, log=True),
        "reg_lambda": span("xgboost_space", "reg_lambda", reg_lambda, Float, log=True),
    })  # fmt: skip


class XGBoostPruningCallback(_TrainingCallback):
    """Reports a validation metric after every boosting round and prunes through the study.

    Args:
        trial: the running :class:`tunesmith.Trial`.
        data: the eval set's name (``"validation_0"`` for the first ``eval_set`` of the
            scikit-learn wrapper); default: the last one, as xgboost's early stopping does.
        metric: the metric's name (``"logloss"``, ``"auc"``...); default: the set's last.
        maximize: whether the metric is better higher (default for a built-in metric: as
            xgboost decides for early stopping: auc, aucpr, map, ndcg, pre); checked against the
            study's direction. A custom metric (``custom_metric=``, a callable ``eval_metric``)
            is checked only when this is given (a name that says the other direction than the
            study's, such as ``my_loss`` maximized, is warned about).

    Raises :class:`tunesmith.TrialPruned` out of training when the pruner stops the trial
    (the study records it pruned). Pruners that pause are refused: a boosting run restarts.
    Make a new callback per trial (it holds the trial). Its place among ``callbacks`` does not
    matter: when one listed before it (``xgb.callback.EarlyStopping``) stops training, it reports
    the stopping round after training, and the pruner decides on it as on any round.
    """

    def __init__(
        self, trial: Any, *, data: str | None = None, metric: str | None = None,
        maximize: bool | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        check_pruner(trial, "XGBoostPruningCallback")
        check_names("XGBoostPruningCallback", data=data, metric=metric)
        if maximize is not None and not isinstance(maximize, bool):  # "yes": read as true
            raise TypeError(f"XGBoostPruningCallback: maximize must be True, False or None (the metric's own), got {maximize!r}")
        self.trial, self.data, self.metric, self.maximize = trial, data, metric, maximize
        self._checked = False
        # the training running with this callback (its thread), with its evaluation log (xgboost fills the
        # one dict in place), its first round and the last round reported: for after_training to report a
        # round a callback listed before this one stopped at (xgboost calls no later after_iteration once
        # one returns True). One at a time: a second training started in another thread meanwhile (clones
        # fitted in threads share this callback) is refused, and does not touch the first one's state.
        self._lock = threading.Lock()
        self._fit: _Fit | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> XGBoostPruningCallback:
        """Itself: a handle on the running trial, which ``sklearn.base.clone`` of an estimator that
        holds it (``cross_val_score``, ``GridSearchCV``) cannot copy."""
        return self

    def __getstate__(self) -> dict[str, Any]:
        """Without the trial, so that a fitted ``XGBClassifier`` that holds it can be pickled."""
        return {**self.__dict__, "trial": None, "_lock": None, "_fit": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    def before_training(self, model: Any) -> Any:
        me = threading.get_ident()
        with self._lock:
            if self._fit is not None and self._fit.thread != me and self._fit.running():
                number = getattr(self.trial, "number", "?")
                raise ValueError(
                    f"XGBoostPruningCallback: a second training started with trial {number}'s callback while "
                    "another thread trains with it (clones of one estimator fitted in threads, as GridSearchCV "
                    "or cross_val_score with n_jobs under joblib's threading backend, share its callback); one "
                    "trial's callback follows one training. To cross-validate, use xgb.cv with the callback "
                    "(it reports the folds' mean), or fit the folds without it and report their mean yourself"
                )
            self._fit = _Fit(me, model)  # a model fitted again in this thread (or one ended by an error): a new training
        return model

    def before_iteration(self, model: Any, epoch: int, evals_log: Mapping[str, Any]) -> bool:
        fit = self._fit
        if fit is not None and fit.log is None:
            fit.log, fit.first = evals_log, epoch
        return False

    def after_iteration(self, model: Any, epoch: int, evals_log: Mapping[str, Any]) -> bool:
        try:
            self._report(model, evals_log, epoch)
        except BaseException:  # pruned or refused: this training ends here (xgboost calls no after_training)
            self._end()
            raise
        return False

    def after_training(self, model: Any) -> Any:
        """Reports the round training stopped at when a callback listed before this one stopped it
        (``callbacks=[EarlyStopping(...), cb]``): xgboost then called this one's after_iteration no more."""
        fit = self._end()
        if fit is not None and fit.log and self.trial is not None:
            _, history = self._pick(fit.log, model)
            last = fit.first + len(history) - 1
            if last > fit.reported:
                self._report(model, fit.log, last)
        return model

    def _end(self) -> _Fit | None:
        """The state of this thread's training, which ends (None when there is none: a callback from a pickle)."""
        with self._lock:
            fit, mine = self._fit, self._fit is not None and self._fit.thread == threading.get_ident()
            if mine:
                self._fit = None
        return fit if mine else None

    def _report(self, model: Any, evals_log: Mapping[str, Any], epoch: int) -> None:
        if self.trial is None:
            raise ValueError(
                "XGBoostPruningCallback: this callback came from a pickle, without its trial; make "
                "a new one for the running trial: XGBoostPruningCallback(trial)"
            )
        try:
            metric, history = self._pick(evals_log, model)
            if not self._checked:
                self._check_direction(metric, evals_log)
                self._checked = True
        except ValueError as exc:
            raise stop_alike(self.trial, exc) from None
        last = history[-1]
        value = last[0] if isinstance(last, Sequence) else last  # xgb.cv: (mean, std)
        if self._fit is not None:
            self._fit.reported = epoch
        report_and_decide(self.trial, float(value), epoch + 1)

    def _check_direction(self, metric: str, evals_log: Mapping[str, Any]) -> None:
        """A built-in metric's direction (or the one given as ``maximize``) must be the study's; a
        custom metric's is not known: only a name that says the other direction is warned about."""
        what = "XGBoostPruningCallback"
        maximize, name = self.maximize, metric.split("@")[0]
        if maximize is None and name not in _BUILTIN:
            warn_direction(self.trial, metric, what=f"{what} (pass maximize= to say the custom metric's direction)")
            return
        if maximize is None:
            maximize = name in _MAXIMIZED
        data = self.data if self.data is not None else list(evals_log)[-1]
        others = [m for m in evals_log[data] if m.split("@")[0] in _BUILTIN and (m.split("@")[0] in _MAXIMIZED) is not maximize]
        check_direction(self.trial, metric, maximize=maximize, what=what, others=others)

    def __call__(self, env: Any) -> None:
        """LightGBM calls its callbacks with one argument: this one is XGBoost's (the error said only that it
        is not callable). Of one argument, so that ``study.optimize(callbacks=...)`` still refuses it at once."""
        raise TypeError("XGBoostPruningCallback is for xgb.train and XGBoost's estimators; for LightGBM use "
                        "tunesmith.integrations.lightgbm.LightGBMPruningCallback(trial)")

    def _pick(self, evals_log: Mapping[str, Any], model: Any) -> tuple[str, Any]:
        if not evals_log and _no_default_metric(model):  # with or without eval sets: the callback cannot tell
            raise ValueError(
                "XGBoostPruningCallback: training evaluates no metric (disable_default_eval_metric is set "
                "and eval_metric is not); set eval_metric in the parameters, e.g. 'eval_metric': 'logloss', "
                "with validation data: evals=[(dvalid, 'valid')] to xgb.train, or eval_set=[(X_valid, y_valid)] to fit()"
            )
        if not evals_log:
            raise ValueError(
                "XGBoostPruningCallback: training has no validation data to report; pass "
                "evals=[(dvalid, 'valid')] to xgb.train, or eval_set=[(X_valid, y_valid)] to fit()"
            )
        data = self.data if self.data is not None else list(evals_log)[-1]
        if data not in evals_log:
            raise ValueError(f"XGBoostPruningCallback: no eval set named {data!r}; have {list(evals_log)}")
        metrics = evals_log[data]
        metric = self.metric if self.metric is not None else list(metrics)[-1]
        if metric not in metrics:
            raise ValueError(
                f"XGBoostPruningCallback: eval set {data!r} has no metric {metric!r}; have "
                f"{list(metrics)} (set eval_metric in the parameters)"
            )
        return metric, metrics[metric]


class _Fit:
    """One training's state: its thread, its booster (weakly: a training that an error outside the callback
    ended calls no after_training, and its booster is gone once the error is handled), evaluation log, first
    round and last round reported."""

    def __init__(self, thread: int, model: Any) -> None:
        self.thread = thread
        try:
            self.model: Callable[[], Any] = weakref.ref(model)
        except TypeError:  # a booster that cannot be referenced weakly: taken as running
            self.model = lambda: model
        self.log: Mapping[str, Any] | None = None
        self.first = self.reported = -1

    def running(self) -> bool:
        """Whether the training may still be running: its booster is alive."""
        return self.model() is not None


def _no_default_metric(model: Any) -> bool:
    """Whether the booster evaluates no metric by default (``disable_default_eval_metric``) and none was set."""
    try:
        learner = json.loads(model.save_config())["learner"]
        return bool(int(learner["learner_train_param"]["disable_default_eval_metric"])) and not learner["metrics"]
    except (AttributeError, KeyError, TypeError, ValueError):  # a config of another shape: say what is sure
        return False
