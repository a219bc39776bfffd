"""LightGBM: a pruning callback (boosting rounds as steps) and a preset space.

    cb = LightGBMPruningCallback(trial)                # the last validation set's first metric
    lgb.train(params, dtrain, 300, valid_sets=[dvalid], callbacks=[cb])
    LGBMClassifier(n_estimators=300).fit(X, y, eval_X=(Xv,), eval_y=(yv,), callbacks=[cb])

Round ``i`` (counted from 1) is reported as ``trial.report(value, i)``, so a
pruner's ``max_resource`` is the number of rounds. Needs ``tunesmith[lightgbm]``.
"""

from __future__ import annotations

import warnings
from typing import Any

from ..space import Fixed, Float, Int, Space
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
)

lgb = require("lightgbm", extra="lightgbm", what="tunesmith.integrations.lightgbm")


#: LightGBM's native names (its aliases) for what :func:`lightgbm_space` calls otherwise, or a note
_LGB_ALIASES = {
    "eta": "learning_rate", "shrinkage_rate": "learning_rate", "num_leaf": "num_leaves", "max_leaves": "num_leaves",
    "min_sum_hessian_in_leaf": "min_child_weight", "bagging_fraction": "subsample", "feature_fraction": "colsample_bytree",
    "lambda_l1": "reg_alpha", "lambda_l2": "reg_lambda",
    **dict.fromkeys(("bagging_freq", "subsample_freq"), "subsample_freq is fixed at 1, so that subsample takes effect; "
                    "to change it, edit the space: ts.Space({**lightgbm_space(), 'subsample_freq': 5})"),
    **dict.fromkeys(("n_estimators", "num_boost_round", "num_iterations", "num_rounds"), ROUNDS.format(
        "lgb.train's num_boost_round, LGBMClassifier(n_estimators=...)")),
}


def lightgbm_space(
    *,
    learning_rate: tuple[float, float] | float = (1e-3, 0.3),
    num_leaves: tuple[int, int] | int = (4, 256),
    min_child_weight: tuple[float, float] | float = (1e-3, 20.0),
    subsample: tuple[float, float] | float = (0.5, 1.0),
    colsample_bytree: tuple[float, float] | float = (0.5, 1.0),
    reg_alpha: tuple[float, float] | float = (1e-8, 10.0),
    reg_lambda: tuple[float, float] | float = (1e-8, 10.0),
    **unknown: Any,
) -> Space:
    """A search space for LightGBM from common practice.

    Names are the scikit-learn wrapper's, which ``lgb.train`` accepts too (as
    aliases): pass ``trial.params`` to either. ``subsample_freq`` is fixed at 1 so
    that ``subsample`` (bagging) takes effect. Learning rate, leaves, min child
    weight and the L1/L2 terms are log-uniform. Change one range with its keyword
    (a plain number fixes it: ``num_leaves=31``), or edit the result: ``ts.Space({**lightgbm_space(), ...})``.
    Another keyword is refused naming the one meant (LightGBM's own ``bagging_fraction=`` is ``subsample=``).
    """
    refuse_unknown("lightgbm_space", unknown, list(lightgbm_space.__kwdefaults__ or {}), _LGB_ALIASES,
                   library=lgb.LGBMModel)
    return Space({
        "learning_rate": span("lightgbm_space", "learning_rate", learning_rate, Float, log=True),
        "num_leaves": span("lightgbm_space", "num_leaves", num_leaves, Int, log=True, within="[2, 131072]"),
        "min_child_weight": span("lightgbm_space", "min_child_weight", min_child_weight, Float, log=True),
        "subsample": span("lightgbm_space", "subsample", subsample, Float, within="(0, 1]"),
        "subsample_freq": Fixed(1),
        "colsample_bytree": span("lightgbm_space", "colsample_bytree", colsample_bytree, Float, within="(0, 1]"),
        "reg_alpha": span("lightgbm_space", "reg_alpha", reg_alpha, Float, log=True),
        "reg_lambda": span("lightgbm_space", "reg_lambda", reg_lambda, Float, log=True),
    })  # fmt: skip


class LightGBMPruningCallback:
    """Reports a validation metric after every boosting round and prunes through the study.

    Args:
        trial: the running :class:`tunesmith.Trial`.
        data: the validation set's name (``"valid_0"`` for the first; ``valid_names``
            renames them); default: the last one that is not the training set.
        metric: the metric's name (``"binary_logloss"``, ``"auc"``...); default: the
            set's first, as LightGBM's early stopping does. Its direction (LightGBM
            says whether it is better higher) is checked against the study's.

    Raises :class:`tunesmith.TrialPruned` out of training when the pruner stops the trial
    (the study records it pruned). Pruners that pause are refused: a boosting run restarts.
    """

    def __init__(self, trial: Any, *, data: str | None = None, metric: str | None = None) -> None:
        # on the instance: LightGBM gives a callback without its own order its place in the list, before
        # its recorders (log_evaluation 10, record_evaluation 20), which then missed the round that pruned;
        # 29: after them, and before early stopping (30), which would skip the last round's report
        self.order = 29
        check_pruner(trial, "LightGBMPruningCallback")
        check_names("LightGBMPruningCallback", data=data, metric=metric)
        self.trial, self.data, self.metric = trial, data, metric
        self._checked = False

    def __call__(self, env: Any) -> None:
        train = getattr(env.model, "_train_data_name", "training")  # as lgb.early_stopping tells it
        results = env.evaluation_result_list or []
        try:
            data, name, value, higher_better = self._pick(results, train, env.model)
            if not self._checked:
                others = [r[1] for r in results if r[0] == data and bool(r[3]) is not higher_better]
                check_direction(self.trial, name, maximize=higher_better, what="LightGBMPruningCallback",
                                others=others)
                self._checked = True
        except ValueError as exc:
            raise stop_alike(self.trial, exc) from None
        report_and_decide(self.trial, float(value), env.iteration - env.begin_iteration + 1)

    def _pick(self, results: list[tuple[Any, ...]], train: str, model: Any) -> tuple[str, str, float, bool]:
        sets = [r[0] for r in results if r[0] not in ("training", train)]
        if not sets and results and not self._checked and self.data is None:
            warnings.warn(
                "LightGBMPruningCallback: the only evaluation is on the training data, so the trial is "
                "reported and pruned on its training metric; pass validation data (valid_sets=[dvalid] "
                "to lgb.train, eval_X=(X_valid,), eval_y=(y_valid,) to fit())",
                UserWarning, stacklevel=3,
            )  # fmt: skip
        sets = sets or [r[0] for r in results]
        given = ["valid"] if isinstance(model, lgb.CVBooster) else getattr(model, "name_valid_sets", [])
        if not sets and given:  # given, but "metric": "None"
            raise ValueError(
                f"LightGBMPruningCallback: the validation sets {given} evaluate no metric "
                "(the parameters' 'metric' is 'None', 'na', 'null', or 'custom' without feval=); set one, "
                "e.g. 'metric': 'binary_logloss'"
            )
        if not sets:
            raise ValueError(
                "LightGBMPruningCallback: training has no validation data to report; pass "
                "valid_sets=[dvalid] to lgb.train, or eval_X=(X_valid,), eval_y=(y_valid,) to fit()"
            )
        data = self.data if self.data is not None else sets[-1]
        mine = [r for r in results if r[0] == data]
        if not mine:
            raise ValueError(f"LightGBMPruningCallback: no validation set named {data!r}; have {sorted(set(sets))}")
        metric = self.metric if self.metric is not None else mine[0][1]
        row = next((r for r in mine if r[1] == metric), None)
        if row is None:
            raise ValueError(
                f"LightGBMPruningCallback: validation set {data!r} has no metric {metric!r}; have "
                f"{[r[1] for r in mine]} (set 'metric' in the parameters)"
            )
        return data, str(metric), float(row[2]), bool(row[3])  # lgb.cv rows: (name, metric, mean, higher, std)
