"""TunedSearchCV: a scikit-learn search estimator driven by a tunesmith study."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import difflib
import functools
import inspect
import itertools
import json
import logging
import math
import numbers
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

import numpy as np
from sklearn import config_context, get_config
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone, is_classifier
from sklearn.exceptions import FitFailedWarning, NotFittedError
from sklearn.metrics import check_scoring, get_scorer, get_scorer_names
from sklearn.model_selection import check_cv
from sklearn.model_selection._search import BaseSearchCV
from sklearn.utils import _safe_indexing, get_tags
from sklearn.utils.metadata_routing import (
    MetadataRouter,
    MethodMapping,
    _raise_for_params,
    _routing_enabled,
    process_routing,
)
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, indexable

from ..cv import CV_ATTR, SETUP_ATTR, fold_metric, validate
from ..exceptions import OPTUNA_SEARCH_NAMES, StudyNotFound, no_attribute
from ..pruners import NopPruner
from ..samplers import make_sampler
from ..samplers.simple import GridSampler
from ..space.params import MAX_GRID, check_seed, did_you_mean, plural
from ..storage import MemoryStorage, make_storage
from ..storage.base import mask_url, password_note, worker_gone, worker_id
from ..study import Study
from ..study.manage import DROP, SAMPLER_RECORDED, change_setting, exists
from ..study.study import RESUMING
from ..trial import FrozenTrial, TrialState, best_of, finite_float
from .checks import VALUE_KEY, PeerArgs, same_setup, same_value, space_change
from .interrupts import (
    evaluated,
    noting_ctrl_c,
    noting_interrupts,
    rerun_interrupted,
    was_interrupted,
)
from .results import INFINITE, cv_results, fold_scores, fold_values
from .space import SearchSpace, as_search_space

#: "auto"'s expected-improvement margin in score units (skopt's ``xi``): at 16 trials it kept the
#: Gaussian process from sampling beside its incumbent (benchmarks/LOG.md, TunedSearchCV, fourth round)
SCORE_MARGIN = 0.01

#: the trial attribute holding the fingerprint of the data and folds of a stored search (written
#: once per fit, on the first trial the fit starts)
DATA_ATTR = "search_data"
#: written beside it since the per-sample fit parameters join the fingerprint: their names (a trial
#: without it was fingerprinted by X, y and the folds alone)
FIT_ATTR = "search_fit_params"
#: the study setting holding what the first fit of a stored search recorded of its data, fit
#: parameters and setup (the attributes above and cv.SETUP_ATTR) and its worker: written once,
#: compare-and-set, so that fits on other data started at once cannot both pass the check
CLAIM_KEY = "search_claim"

logger = logging.getLogger("tunesmith")


#: the fold record's key naming a scorer that raised (the fit succeeded)
SCORE_ERROR = "score_error"


class FitFailedError(RuntimeError):
    """A configuration whose fit failed on a fold (its score: a non-finite ``error_score``)."""


class ScoringFailedError(RuntimeError):
    """A configuration whose fit succeeded but whose scorer raised on a fold (its score: a
    non-finite ``error_score``): a row of NaN scores, as scikit-learn records it, not a failed fit."""


class TunedSearchCV(MetaEstimatorMixin, BaseEstimator, PeerArgs):
    """Search an estimator's hyperparameters with cross-validation; a drop-in for
    ``GridSearchCV``, ``RandomizedSearchCV``, skopt's ``BayesSearchCV`` and
    Optuna's ``OptunaSearchCV``.

    Args:
        estimator: the estimator (or Pipeline) to tune; cloned for every fit.
        space: a ``ts.Space``, or the dict scikit-learn users write
            (``{"C": loguniform(1e-3, 1e3), "kernel": ["rbf", "linear"]}``), or
            a list of such dicts (a conditional space). See
            :mod:`tunesmith.sklearn.space`.
        n_trials: configurations to evaluate; None: every configuration of a
            finite space (a grid), else pass a number.
        sampler: "auto" (default), "grid", "random", "sobol", "tpe", "bayes", or
            a :class:`~tunesmith.samplers.Sampler`. Where "auto" picks Bayesian
            optimization, expected improvement is measured against the best score
            plus :data:`SCORE_MARGIN` (0.01, as skopt's ``xi``: sized for scores such
            as accuracy; ``{"name": "auto"}`` leaves it out).
        cv: folds: an int, a splitter or an iterable of (train, test) pairs
            (as in scikit-learn; stratified for classifiers).
        scoring: None (the estimator's ``score``), a name, a callable, or a
            list/dict of them (multimetric; then ``refit`` names the one to
            optimize and refit with, or is a callable choosing the index).
        refit: refit the best configuration on all the data (True), by a
            metric name, by a callable ``refit(cv_results_) -> index``, or not.
        n_jobs: without a pruner, folds run in parallel (joblib); with a
            pruner, trials run in parallel threads (folds stay in order).
            Negative as in joblib: -1 every CPU, -2 all but one.
        pruner: fold k is reported as step k (mean of the first k folds), so a
            configuration worse after its first folds stops: "folds" (fold racing,
            :class:`tunesmith.cv.FoldPruner`: behind the best one on the same
            folds, or tied fold by fold with a finished one), or any pruner ("median", ...).
        timeout: seconds after which no new trial starts.
        storage, name: a persistent study (``"sqlite:///search.db"``); fitting
            again with the same name resumes it: trials already finished count
            toward ``n_trials``. Resume with the same data, cv, estimator, scoring and
            space (another is refused, naming what changed; under ``cross_validate``
            leave ``name=None``); a study of that name that no search filled is refused.
            Fits started at once on one stored search (several processes) share
            ``n_trials``: the study ends with ``n_trials`` trials in all. A trial asked
            for past it goes back to the queue (``waiting``; a later fit with a larger
            ``n_trials`` runs it first), and each fit's ``cv_results_`` holds the trials
            finished when it ended. A trial left running by a fit killed on this
            machine holds no part of ``n_trials``; one killed on another machine
            does until it is failed (``load_study(name, storage).fail_trial(number,
            "killed")``).
        random_state: seed of the sampler (and of the space's random draws).
        error_score: the score of a fold whose fit fails ("raise": raise).
        return_train_score: also score the training folds.
        verbose: 0 silent, but for one line when a fit resumes a stored study (its earlier trials count
            toward ``n_trials``); 1 progress bar and tunesmith's info lines.

    Attributes after ``fit``: ``cv_results_`` (scikit-learn's keys, plus
    ``state`` and ``trial_number``), ``best_index_``, ``best_params_``,
    ``best_score_``, ``best_estimator_``, ``refit_time_``, ``n_splits_``,
    ``scorer_``, ``multimetric_``, ``study_`` (the :class:`~tunesmith.Study`).
    """

    def __init__(
        self,
        estimator: Any,
        space: Any,
        *,
        n_trials: int | None = None,
        sampler: Any = "auto",
        cv: Any = 5,
        scoring: Any = None,
        refit: bool | str | Callable[..., int] = True,
        n_jobs: int | None = 1,
        pruner: Any = None,
        timeout: float | None = None,
        storage: Any = None,
        name: str | None = None,
        random_state: Any = None,
        error_score: Any = np.nan,
        return_train_score: bool = False,
        verbose: int = 0,
    ) -> None:
        self.estimator = estimator
        self.space = space
        self.n_trials = n_trials
        self.sampler = sampler
        self.cv = cv
        self.scoring = scoring
        self.refit = refit
        self.n_jobs = n_jobs
        self.pruner = pruner
        self.timeout = timeout
        self.storage = storage
        self.name = name
        self.random_state = random_state
        self.error_score = error_score
        self.return_train_score = return_train_score
        self.verbose = verbose

    # -- fit ------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None, *, groups: Any = None, **fit_params: Any) -> TunedSearchCV:
        """Run the search (resuming a stored study of the same name), then refit the best."""
        self._check_options()
        search = as_search_space(self.space)
        _check_names(self.estimator, search)
        scorers, self.multimetric_ = _scorers(self.estimator, self.scoring)
        metric = self._refit_metric(scorers)
        X, y, groups = indexable(X, y, groups)
        cv, folds, fit_with, score_params = self._folds(scorers, X, y, groups, fit_params)
        self.n_splits_ = len(folds)
        budget = self._budget(search)
        prior = _prior_study(self.name, self.storage)  # checked before this fit opens it (and records its sampler)
        marks = self._resumable(prior, X, y, folds, cv, fit_params, metric=metric) if prior is not None else None
        with _opening(self.verbose):
            study = self._open_study(search, budget)
        if prior is not None and prior.trials:  # at any verbose: the earlier fits' trials change this one's results
            logger.info("TunedSearchCV resumes study %r in %s: its %s from earlier fits count toward n_trials "
                        "(%d); another name (or name=None) starts a new search", study.name,
                        study.storage.display_url, plural(len(prior.trials), "trial"), budget)
        search = _as_stored(self.space, study)
        if marks is None and _outlives_the_fit(study, self.storage):
            marks = self._resumable(study, X, y, folds, cv, fit_params, metric=metric)
        claim = self._claim(study, marks, X, y, folds, cv, fit_params, metric) if marks is not None else None
        _fail_left_by_killed_fits(study)
        fold = functools.partial(_with_config, get_config(), functools.partial(
            _fit_and_score, self.estimator, X, y, scorers, fit_with, self.return_train_score, self.error_score,
            score_params,
        ))  # fmt: skip

        unsaid = [marks] if marks is not None else []  # to this fit's first trial

        def objective(trial: Any) -> float:
            if _beyond_the_budget(study, trial.number, budget):
                study.stop()
                study.unstart(trial.number)
                raise _BeyondTheBudget(trial.number)  # not recorded: the trial is waiting again
            score = functools.partial(fold, search.decode(trial.params))
            try:
                for key, value in unsaid.pop().items():  # pop: atomic, so one trial even in threads
                    trial.set_attr(key, value)
            except IndexError:
                pass
            fold_jobs = _jobs(self.n_jobs) if isinstance(study.pruner, NopPruner) else 1  # else: trials in parallel
            value = validate(trial, score, folds, key=f"test_{metric}", n_jobs=fold_jobs, every_fold=True)
            return _checked_value(value, trial.number, fold_scores(trial), metric, self.error_score)

        with _quiet(self.verbose, raising=self.error_score == "raise"), noting_ctrl_c() as ctrl_c:
            try:
                self._optimize(study, budget, noting_interrupts(objective, ctrl_c))
            finally:  # a fit that recorded nothing (its timeout passed first, it was interrupted) leaves the study free
                if claim is not None and not study.trials:  # another fit on the same data may rely on it: kept then
                    change_setting(study, CLAIM_KEY, functools.partial(_released, claim["worker"]))
        self.study_ = study
        if ctrl_c:  # optimize returned after failing the running trials: no refit on a part of the budget
            raise KeyboardInterrupt(_interrupted_fit(study, self.name is not None and _outlives_the_fit(study, self.storage)))
        self._finish(study, search, list(scorers), X, y, fit_with)
        self.scorer_ = scorers if self.multimetric_ else scorers["score"]
        return self

    def _folds(
        self, scorers: Mapping[str, Any], X: Any, y: Any, groups: Any, fit_params: Mapping[str, Any]
    ) -> tuple[Any, list[tuple[Any, Any]], Mapping[str, Any], dict[str, Mapping[str, Any]]]:
        """The splitter, its folds of ``X``, and the fit and score parameters routed to each."""
        if isinstance(self.cv, type):
            raise TypeError(f"cv={self.cv.__name__} is the class; pass an instance, e.g. cv={self.cv.__name__}(5), "
                            "or a number of folds")
        cv = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        fit_with, split_params, score_params = self._routed(scorers, X, groups, fit_params)
        folds = list(cv.split(X, y, **split_params))
        if not folds:
            raise ValueError(_no_folds(self.cv))
        return cv, folds, fit_with, score_params

    def _resumable(
        self, study: Study, X: Any, y: Any, folds: list[tuple[Any, Any]], cv: Any, fit_params: Mapping[str, Any],
        recorded: list[Mapping[str, Any]] | None = None, metric: str | None = None,
    ) -> dict[str, Any] | None:
        """What this fit's first trial records of its data and setup, once ``study`` (one that
        outlives the fit) is found to be one it may resume: filled by a search, on the same data,
        with the same estimator and scoring (as ``recorded``: by its trials and its claim unless given), its values
        of the same scorer (``metric``: refit's, where given). None where its space differs: opening it says so."""
        search = _as_stored(self.space, study)
        if search.space.to_dict() != study.space.to_dict():
            return None
        _check_filled_by_a_search(study)
        recorded = [t.attrs for t in study.trials] + _claimed(study) if recorded is None else recorded
        marks = {**_same_data(study, recorded, X, y, folds, cv, fit_params),
                 SETUP_ATTR: same_setup(study, recorded, self.estimator, search, self.scoring)}
        if metric is not None:  # the same scoring: refit may still name another of its scorers
            same_value(study, metric, [r for r in recorded if VALUE_KEY in r], refit=self.refit)
        return marks

    def _claim(
        self, study: Study, marks: Mapping[str, Any], X: Any, y: Any, folds: list[tuple[Any, Any]], cv: Any,
        fit_params: Mapping[str, Any], metric: str,
    ) -> dict[str, Any] | None:
        """Store this fit's ``marks`` as the study's search (:data:`CLAIM_KEY`), with the fold score it records
        as values (:data:`VALUE_KEY`, ``refit``'s), unless a fit stored its own: compare-and-set, so of fits on
        other data or with another ``refit`` started at once (each passed the check of the trials, none recorded
        yet) exactly one runs; the others are refused as a later one would be. Returns the claim where this
        fit's was stored."""
        me, now = _fit_id(), study.storage.clock()
        taken: list[Any] = []
        value = f"test_{metric}"

        def other(stored: Any) -> bool:  # another fit's data, setup or values (a claim without values: older)
            claimed = _as_marks(stored, study)
            return {k: claimed.get(k) for k in marks} != marks or claimed.get(VALUE_KEY, value) != value

        def change(stored: Any) -> Any:
            taken.clear()
            if stored is None or _stale_claim(study, stored, now):
                taken.extend([stored] if stored is not None else [])
                return {**marks, VALUE_KEY: value, "worker": me, "holders": [me], "since": now}
            held = _holders(stored)
            if other(stored) or me in held or study.trials:
                return stored
            return {**stored, "holders": [*held, me], "since": now}  # a fit on the same data relies on it too

        stored = change_setting(study, CLAIM_KEY, change)
        if stored is None:  # nothing written: the name is another study's now (a claim is never None)
            raise ValueError(f"study {study.name!r} in {study.storage.display_url} was renamed or deleted (and maybe "
                             "made anew) while this fit claimed it: nothing of this fit is recorded; fit again")
        if taken:
            logger.warning("study %r: %s", study.name, _taken_over(taken[0], now))
        if other(stored):
            self._resumable(study, X, y, folds, cv, fit_params, recorded=[_as_marks(stored, study)], metric=metric)
        return {**stored, "worker": me} if me in _holders(stored) else None

    def _routed(
        self, scorers: Mapping[str, Any], X: Any, groups: Any, params: Mapping[str, Any]
    ) -> tuple[Mapping[str, Any], Mapping[str, Any], dict[str, Mapping[str, Any]]]:
        """What fit passes to the estimator's fit, the splitter's split and each scorer (by name):
        with ``sklearn.set_config(enable_metadata_routing=True)``, what each one requested (as
        GridSearchCV routes them); else all to fit, ``groups`` to split, ``sample_weight`` to the
        scorers that take it."""
        if not _routing_enabled():
            weights = {"sample_weight": params.get("sample_weight")}
            return params, {"groups": groups}, {n: weights for n in _weighted(scorers, params, X)}
        routed = process_routing(self, "fit", **params, **({} if groups is None else {"groups": groups}))
        return routed.estimator.fit, routed.splitter.split, _by_scorer(scorers, routed.scorer.score)

    def get_metadata_routing(self) -> MetadataRouter:
        """scikit-learn's metadata routing, as GridSearchCV's: the metadata passed to ``fit`` go to
        the estimator's ``fit``, the scorers and the splitter's ``split``; those passed to ``score``
        to the scorers."""
        scorers, _ = _scorers(self.estimator, self.scoring)
        router = MetadataRouter(owner=type(self).__name__)  # a name: what older scikit-learn takes
        router.add(estimator=self.estimator, method_mapping=MethodMapping().add(caller="fit", callee="fit"))
        router.add(scorer=scorers["score"] if list(scorers) == ["score"] else _scoring_router(scorers),
                   method_mapping=MethodMapping().add(caller="score", callee="score").add(caller="fit", callee="score"))
        router.add(splitter=self.cv, method_mapping=MethodMapping().add(caller="fit", callee="split"))
        return router

    def _optimize(self, study: Study, budget: int, objective: Callable[[Any], float]) -> None:
        done = len(_results(study))
        todo = max(0, budget - done)
        if todo == 0:
            return
        rerun_interrupted(study, todo)
        trial_jobs = 1 if isinstance(study.pruner, NopPruner) else _jobs(self.n_jobs)
        study.optimize(
            objective, n_trials=todo, timeout=self.timeout, n_jobs=trial_jobs,
            catch=(_BeyondTheBudget, ScoringFailedError, *(() if self.error_score == "raise" else (FitFailedError,))),
            show_progress=self.verbose > 0, executor="thread" if trial_jobs > 1 else None,
        )  # fmt: skip

    def _finish(self, study: Study, search: SearchSpace, metrics: list[str], X: Any, y: Any, fit_params: Any) -> None:
        trials = _results(study)
        if not trials:
            why = f": timeout={self.timeout!r} s passed before the first one started; raise it" if self.timeout else ""
            raise ValueError(f"no configuration was evaluated{why}")
        _check_failures(trials)
        self.cv_results_ = cv_results(trials, search, metrics, self.n_splits_, train_score=self.return_train_score)
        metric = self._refit_metric({m: None for m in metrics})
        for m in metrics:
            means = self.cv_results_[f"mean_test_{m}"]
            if not np.isfinite(means).all():  # scikit-learn's warning (failed fits, failed scorers)
                warnings.warn(f"One or more of the test scores are non-finite: {means}", UserWarning, stacklevel=3)
        if self.multimetric_ and not self.refit:  # no metric named to pick the best by: none, as GridSearchCV's
            return
        if callable(self.refit):
            self.best_index_ = _refit_index(self.refit, self.cv_results_)
        else:
            best = best_of(trials, study.direction)
            self.best_index_ = _first_best(self.cv_results_[f"rank_test_{metric}"], self.cv_results_["params"],
                                           self.space, list(self.cv_results_["trial_number"]),
                                           None if best is None else best.number)
            self.best_score_ = float(self.cv_results_[f"mean_test_{metric}"][self.best_index_])
        self.best_params_ = self.cv_results_["params"][self.best_index_]
        if self.refit:
            start = time.perf_counter()
            best = clone(self.estimator).set_params(**clone(self.best_params_, safe=False))
            self.best_estimator_ = best.fit(X, y, **fit_params)
            self.refit_time_ = time.perf_counter() - start
            if hasattr(self.best_estimator_, "feature_names_in_"):
                self.feature_names_in_ = self.best_estimator_.feature_names_in_

    def evaluate_best(
        self, X: Any, y: Any, X_test: Any, y_test: Any, *, k: int = 5, seeds: Any = None, **fit_params: Any
    ) -> Any:
        """Refit the ``k`` best configurations on ``X, y`` (with ``fit_params``, such as the
        ``sample_weight`` the search was fitted with) and score them on a test split the search
        never saw (:meth:`tunesmith.Study.evaluate_best`): validation next to test, the gap, the
        winner by test, each with the estimator's parameter names. ``seeds=[0, 1, 2]`` refits each
        once per seed (set as every ``random_state`` the search does not set): mean and spread.
        ``best_params_`` stays what the search found."""
        check_is_fitted(self, "cv_results_")
        _check_split_order(X, y, X_test, y_test)
        search = _as_stored(self.space, self.study_)
        scorer = self._scorer()
        seeded = _random_states(self.estimator, search) if seeds is not None else []

        def test_score(trial: Any, seed: Any = None) -> float:
            params = clone(search.decode(trial.params), safe=False) | {name: seed for name in seeded}
            est = clone(self.estimator).set_params(**params)
            return float(scorer(est.fit(X, y, **fit_params), X_test, y_test))

        result = self.study_.evaluate_best(test_score if seeds is not None else lambda t: test_score(t), k=k,
                                           seeds=seeds)
        named = (dataclasses.replace(r, params=search.decode(r.params)) for r in result.results)
        return dataclasses.replace(result, results=tuple(named), metric=fold_metric(self.study_.trials))

    # -- options ---------------------------------------------------------------------------------
    def _check_options(self) -> None:
        if isinstance(self.estimator, type):
            name = self.estimator.__name__
            raise TypeError(f"estimator={name} is the class; pass an instance: {name}() (with its fixed settings)")
        if self.n_trials is not None and (
            not isinstance(self.n_trials, numbers.Integral) or isinstance(self.n_trials, bool) or self.n_trials < 1
        ):
            raise ValueError(f"n_trials must be a positive integer or None (the whole grid), got {self.n_trials!r}")
        if self.n_jobs is not None and (not isinstance(self.n_jobs, numbers.Integral) or self.n_jobs == 0):
            raise ValueError(f"n_jobs must be a non-zero integer or None, got {self.n_jobs!r}")
        if isinstance(self.cv, str) or isinstance(self.cv, numbers.Integral) and not isinstance(self.cv, bool) and self.cv < 2:
            raise ValueError(f"cv must be a number of folds >= 2, a scikit-learn splitter or a list of (train, test) "
                             f"pairs, got cv={self.cv!r}")
        if not isinstance(self.verbose, numbers.Integral):
            raise ValueError(f"verbose must be an integer (0: silent but for a resume, 1: a progress bar and info lines), got {self.verbose!r}")
        if not (self.error_score == "raise" or isinstance(self.error_score, numbers.Number)):
            raise ValueError(f"error_score must be 'raise' or a number, got {self.error_score!r}")

    def _scorer(self) -> Any:
        """The scorer of the refit metric."""
        return self.scorer_[self._refit_metric(self.scorer_)] if self.multimetric_ else self.scorer_

    def _refit_metric(self, scorers: Mapping[str, Any]) -> str:
        if not self.multimetric_:
            if isinstance(self.refit, str) and self.refit != self.scoring:  # refit="f1" with scoring=None
                several = (f"pass scoring={{'{self.refit}': scorer, ...}} (a scoring callable that returns a dict of "
                           "metrics is not supported)") if callable(self.scoring) else (
                           f"pass scoring={self.refit!r} to optimize it (or a list of scorers with refit naming one)")
                raise ValueError(f"refit={self.refit!r} names a scorer, but the search scores with one, "
                                 f"scoring={self.scoring!r}: {several}, or refit=True")
            return "score"
        if isinstance(self.refit, str):
            if self.refit not in scorers:
                raise ValueError(f"refit={self.refit!r} is not one of the scorers {sorted(scorers)}"
                                 f"{did_you_mean(self.refit, sorted(scorers))}")
            return self.refit
        if self.refit is True:
            raise ValueError(
                "with several scorers, refit must name the one to optimize and refit with "
                f"(one of {sorted(scorers)}), be a callable choosing the index, or be False"
            )
        return next(iter(scorers))  # refit False or callable: the search optimizes the first scorer

    def _budget(self, search: SearchSpace) -> int:
        """``n_trials``, capped at the number of configurations of a finite space (with a
        warning naming both, as ``RandomizedSearchCV`` caps ``n_iter``); None: the whole grid (of a
        finite space, or of ``sampler="grid"``'s points on its continuous parameters)."""
        size = search.space.cardinality
        points = _grid_points(self.sampler)
        if points is not None and math.isinf(size):  # sampler="grid" over floats: its grid (n_trials=None: all of it)
            size = len(search.space.grid(points))
            what = ("The grid of sampler='grid' (5 points on a continuous parameter unless ts.Float(..., grid=n) "
                    "or a list says otherwise)")
        else:
            what = "The search space"
        if self.n_trials is not None:
            if size < self.n_trials:
                warnings.warn(
                    f"{what} has {plural(int(size), 'configuration')}, fewer than n_trials={self.n_trials}: "
                    f"running {plural(int(size), 'trial')}, each configuration once",
                    UserWarning, stacklevel=3,
                )  # fmt: skip
                return int(size)
            return int(self.n_trials)
        if math.isinf(size) or size > 100_000:
            huge = "" if math.isinf(size) else f" ({what[0].lower()}{what[1:]} has {int(size):,} configurations)"
            raise ValueError(
                f"n_trials=None searches the whole grid, but this space is continuous or huge{huge}: "
                "pass n_trials=... (the number of configurations to evaluate)"
            )
        return int(size)

    def _open_study(self, search: SearchSpace, budget: int) -> Study:
        name = self.name or f"tunedsearchcv-{uuid.uuid4().hex[:8]}"
        sampler = _sampler(self.sampler)
        make_sampler(sampler)  # an unknown name is refused even where the grid replaces it
        size = search.space.cardinality  # a grid lists at most MAX_GRID; a grid's own points (as settings too) stay
        if size <= min(budget, MAX_GRID) and not isinstance(sampler, GridSampler) and not _grid_points(sampler):
            # the budget covers the space: each configuration once, whatever the sampler (each value of an Int
            # range: sampler="grid"'s default 5 points of Int(1, 50) ran 5 trials where 50 were said)
            sampler = {"name": "grid", "points": search.space.every_value()}
        try:
            return Study(
                search.space, direction="maximize", sampler=sampler, pruner=self.pruner,
                seed=_seed(self.random_state), storage=self.storage, name=name,
            )  # fmt: skip
        except ValueError as exc:  # Study's advice (omit space=) does not apply: a search always passes one
            try:
                stored = Study.load(name, self.storage)
            except StudyNotFound:
                raise exc from None  # not a stored study's space: a sampler or pruner refused, ...
            if stored.space.to_dict() == search.space.to_dict():
                raise
            if stored.space.to_dict() == as_search_space(self.space, labels=False).space.to_dict():
                return self._open_study(as_search_space(self.space, labels=False), budget)  # stored before labels
            raise ValueError(
                f"study {name!r} in {stored.storage.display_url} was searched over another space "
                f"({space_change(stored.space, search.space)}); a search resumes only with the same space. "
                "For a new search give another name"
            ) from exc

    # -- the fitted estimator --------------------------------------------------------------------
    @property
    def study_(self) -> Study:
        """The study behind the search (after unpickling: reopened from a persistent storage)."""
        return self._opened("_study", lambda study: study is None, lambda _: self._reopen_study())

    @study_.setter
    def study_(self, study: Study) -> None:
        self.__dict__["_study"] = study
        storage = study.storage
        if isinstance(storage, MemoryStorage):  # nothing to reopen, and no SQLAlchemy to import (a third of a second)
            self.__dict__["_study_ref"] = None
            return
        from ..storage.sql import SQLStorage

        # a SQL storage is reopened by its absolute URL: a relative SQLite path is this cwd's, and only
        # when study_ is read: unpickling the fitted search opens no database (it may be out of reach there)
        where = storage._reopener() if isinstance(storage, SQLStorage) else storage.url
        self.__dict__["_study_ref"] = (study.name, where)

    @property
    def storage(self) -> Any:
        """The ``storage`` passed (a URL or a Storage object). A Storage object of a pickled search
        is opened again when first used (fit, get_params, clone), not when the search is loaded."""
        # once: get_params returns the same object
        return self._opened("storage", lambda value: isinstance(value, _Reopen), lambda value: value.open())

    @storage.setter
    def storage(self, value: Any) -> None:
        self.__dict__["storage"] = value

    def _reopen_study(self) -> Study:
        if "_study_ref" not in self.__dict__:  # scikit-learn's error for a fitted attribute read before fit
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet: study_ exists after fit. "
                                 "Call 'fit' with appropriate arguments before using study_")
        ref = self.__dict__["_study_ref"]
        if ref is None:
            raise AttributeError("study_ exists after fit (a study kept in memory, with storage=None or a MemoryStorage, "
                                 "is not pickled: pass storage= a database URL)")
        return Study.load(ref[0], ref[1]() if callable(ref[1]) else ref[1])

    def _opened(self, key: str, pending: Callable[[Any], bool], open_: Callable[[Any], Any]) -> Any:
        """``self.__dict__[key]``, replaced by ``open_(it)`` where ``pending(it)``: once, under the search's
        lock, so that threads using an unpickled search at the same moment open it once (they opened
        one storage, or study, each)."""
        value = self.__dict__.get(key)
        if not pending(value):
            return value
        with self.__dict__.get("_opening", _OPENING):
            value = self.__dict__.get(key)
            if pending(value):
                value = self.__dict__[key] = open_(value)
        return value

    def __getstate__(self) -> dict[str, Any]:
        from ..storage.sql import SQLStorage

        state = dict(super().__getstate__())
        state.pop("_study", None)  # locks and connections; reopened by name from a persistent storage
        state.pop("_opening", None)
        if isinstance(state.get("storage"), (SQLStorage, MemoryStorage)):  # opened on use (a model loads without it)
            state["storage"] = _Reopen(state["storage"])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__["_opening"] = threading.Lock()  # what is left to open is opened under it, once

    def __getattr__(self, name: str) -> Any:  # only names no attribute, property or method holds
        return no_attribute(self, name, OPTUNA_SEARCH_NAMES, "OptunaSearchCV's name",
                            "docs/trust.md, 'Migrating from GridSearchCV'")

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        """scikit-learn's repr, with a storage URL's password hidden (``get_params`` returns it as passed)."""
        return BaseEstimator.__repr__(self._shown(), N_CHAR_MAX)

    def _html_repr(self) -> str:
        """The HTML diagram (Jupyter), with a storage URL's password hidden."""
        from sklearn.utils import estimator_html_repr

        return estimator_html_repr(self._shown())

    def _shown(self) -> TunedSearchCV:
        """A copy of this search to print: its storage as its URL with the password hidden (a
        Storage object of a pickled search as it will be opened, without opening it)."""
        shown = object.__new__(type(self))
        shown.__dict__.update(self.__dict__)
        storage = self.__dict__.get("storage")
        if isinstance(storage, str):
            shown.__dict__["storage"] = mask_url(storage)
        elif isinstance(storage, _Reopen):
            shown.__dict__["storage"] = storage.shown
        return shown

    def _best(self) -> Any:
        check_is_fitted(self)
        return self.best_estimator_

    @property
    def classes_(self) -> Any:
        _check_refit(self, "classes_")
        return self.best_estimator_.classes_

    @property
    def n_features_in_(self) -> int:
        try:
            check_is_fitted(self)
        except NotFittedError as exc:
            raise AttributeError(f"{type(self).__name__} has no n_features_in_ before fit") from exc
        return int(self.best_estimator_.n_features_in_)

    @available_if(lambda self: _has(self, "predict"))
    def predict(self, X: Any) -> Any:
        return self._best().predict(X)

    @available_if(lambda self: _has(self, "predict_proba"))
    def predict_proba(self, X: Any) -> Any:
        return self._best().predict_proba(X)

    @available_if(lambda self: _has(self, "predict_log_proba"))
    def predict_log_proba(self, X: Any) -> Any:
        return self._best().predict_log_proba(X)

    @available_if(lambda self: _has(self, "decision_function"))
    def decision_function(self, X: Any) -> Any:
        return self._best().decision_function(X)

    @available_if(lambda self: _has(self, "score_samples"))
    def score_samples(self, X: Any) -> Any:
        return self._best().score_samples(X)

    @available_if(lambda self: _has(self, "transform"))
    def transform(self, X: Any) -> Any:
        return self._best().transform(X)

    @available_if(lambda self: _has(self, "inverse_transform"))
    def inverse_transform(self, X: Any) -> Any:
        return self._best().inverse_transform(X)

    def score(self, X: Any, y: Any = None, **params: Any) -> float:
        """The best estimator's score by the search's scorer (the refit metric if several);
        ``params`` (such as ``sample_weight``) go to the scorer that requested them, with metadata
        routing enabled (as GridSearchCV's)."""
        _check_refit(self, "score")
        _raise_for_params(params, self, "score")
        kw: Mapping[str, Any] = {}
        if _routing_enabled():
            scorers = self.scorer_ if self.multimetric_ else {"score": self.scorer_}
            routed = process_routing(self, "score", **params).scorer.score
            kw = _by_scorer(scorers, routed)[self._refit_metric(scorers)]
        return float(self._scorer()(self.best_estimator_, X, y, **kw))

    def _sk_visual_block_(self) -> Any:
        """The HTML diagram draws the best estimator once refitted, as GridSearchCV's does (its
        method: scikit-learn's drawing of a search), else the estimator."""
        return BaseSearchCV._sk_visual_block_(self)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        inner = get_tags(self.estimator)
        tags.estimator_type = inner.estimator_type
        tags.classifier_tags = inner.classifier_tags
        tags.regressor_tags = inner.regressor_tags
        tags.target_tags = inner.target_tags
        tags.input_tags.pairwise = inner.input_tags.pairwise
        tags.input_tags.sparse = inner.input_tags.sparse
        tags.input_tags.allow_nan = inner.input_tags.allow_nan
        return tags


# -- helpers -------------------------------------------------------------------------------------


#: the lock of a search made otherwise than by unpickling (which gives each its own)
_OPENING = threading.Lock()


class _Reopen:
    """What a pickled search keeps of a SQL Storage object passed as ``storage``: its URL and
    settings (password included, to connect), opened when the search first uses it. Of a
    MemoryStorage (whose studies stay in the process that ran them): a new, empty one of its class
    (pickling failed on its lock)."""

    def __init__(self, storage: Any) -> None:
        self.open = type(storage) if isinstance(storage, MemoryStorage) else storage._reopener()
        self.shown = _Shown(repr(storage))


class _Shown(str):
    """Text printed as it is (a Storage's repr inside the search's repr), not quoted."""

    def __repr__(self) -> str:
        return str(self)


def _has(search: TunedSearchCV, attr: str) -> bool:
    """Whether ``search`` can delegate ``attr`` (raising AttributeError hides the method)."""
    _check_refit(search, attr)
    getattr(search.__dict__.get("best_estimator_", search.estimator), attr)
    return True


def _check_refit(search: TunedSearchCV, attr: str) -> None:
    if not search.refit:
        raise AttributeError(f"{attr} is available only after refitting on the best parameters: pass refit=True")
    if "best_estimator_" not in search.__dict__ and attr in ("classes_", "score"):
        check_is_fitted(search, "best_estimator_")


def _first_best(ranks: np.ndarray, params: list[dict[str, Any]], space: Any, numbers: list[int],
                best: int | None) -> int:
    """The row ranked first; among ties, the first in GridSearchCV's order of the grid (its
    ``ParameterGrid``), so that a grid run in a random order picks what GridSearchCV picks. A space
    with no grid order (distributions, a ts.Space; no scikit-learn search has an order to keep) takes
    the study's own pick, trial ``best`` (``study_.best_trial``), where it is among the tied rows."""
    from sklearn.model_selection import ParameterGrid

    tied = [int(i) for i in np.flatnonzero(ranks == ranks.min())]
    try:
        grid = ParameterGrid(space) if len(tied) > 1 else []
        order = {_config_key(p): i for i, p in enumerate(grid)} if len(grid) <= 100_000 else {}
    except (TypeError, ValueError):  # distributions, a ts.Space: no grid order
        order = {}
    if not order and best is not None and best in (studied := [numbers[i] for i in tied]):
        return tied[studied.index(best)]
    return min(tied, key=lambda i: (order.get(_config_key(params[i]), len(order)), i))


def _config_key(params: Mapping[str, Any]) -> str:
    """A configuration's identity; NumPy scalars (np.logspace's) as the Python values the space holds."""
    return repr(sorted((k, repr(v.item() if isinstance(v, np.generic) else v)) for k, v in params.items()))


def _refit_index(refit: Callable[..., Any], results: Mapping[str, Any]) -> int:
    """The row a refit callable chose: an integer of ``range(len(params))`` (TypeError,
    IndexError otherwise, as scikit-learn; -1 or 1.5 were taken as the last row or row 1)."""
    index = refit(results)
    n = len(results["params"])
    if not isinstance(index, numbers.Integral) or isinstance(index, bool):
        raise TypeError(f"best_index_ returned is not an integer: refit returned {index!r}; return the index of "
                        f"a row of cv_results_ (0 to {n - 1})")
    row = int(index)
    if not 0 <= row < n:
        raise IndexError(f"best_index_ index out of range: refit returned {row}; cv_results_ has rows 0 to {n - 1}")
    return row


def _outlives_the_fit(study: Study, storage: Any) -> bool:
    """Whether another fit may resume ``study`` (so it is checked and fingerprinted): it is stored,
    or kept in a MemoryStorage object passed as ``storage`` (``storage=None``: a study per fit)."""
    return not isinstance(study.storage, MemoryStorage) or storage is study.storage


def _prior_study(name: str | None, storage: Any) -> Study | None:
    """The stored study ``name`` a fit would resume, as it is stored (None: there is none)."""
    if name is None or storage is None:
        return None
    st = make_storage(storage, create=False)  # as Study.load opens it
    if not exists(st, name):  # not Study.load's error, said to no one: it looks for the name in the files beside
        return None
    return Study.load(name, st)


class _BeyondTheBudget(Exception):
    """A trial asked for once ``n_trials`` were spent by fits of the same stored search
    that started at once: it goes back to the queue and this fit starts no more."""


def _beyond_the_budget(study: Study, number: int, budget: int) -> bool:
    """Whether trial ``number`` comes after ``budget`` trials of the study, counted in the order
    the storage numbered them (atomic across processes): started or finished ones, a lost trial
    re-queued counted as its copy. Fits of one stored search started at once each see few
    finished trials and ask for more: the trials past the budget go back to the queue. A trial Ctrl-C
    failed holds no part of it (its configuration was not evaluated)."""
    counted = [t for t in study.trials if t.number < number and t.state is not TrialState.WAITING
               and t.system.requeued_as is None and not _left_by_a_killed_fit(t) and not was_interrupted(t)]  # fmt: skip
    return len(counted) >= budget


def _left_by_a_killed_fit(trial: FrozenTrial) -> bool:
    """A running trial whose process (on this machine) is gone: it will never finish, so it holds
    no part of the budget (it held it for ever: each fit after it stopped one trial short)."""
    return trial.state is TrialState.RUNNING and worker_gone(trial.worker)


def _fail_left_by_killed_fits(study: Study) -> None:
    """Fail the trials that fits killed on this machine left running (they never end: before, they stayed
    running for good) and queue each again, once (a copy is not queued again: a configuration that kills
    its fit would kill each fit after it): this fit runs the copy, the failed record points to it. A study
    given heartbeats says whether lost trials are queued again (``requeue_failed``): as its heartbeat check."""
    beat = study.heartbeat_config
    requeue = beat.interval is None or beat.requeue  # without heartbeats, no requeue_failed was (or can be) set
    for t in [t for t in study.trials if _left_by_a_killed_fit(t)]:
        study.fail_trial(t.number, "its fit's process is gone (killed before the trial ended)",
                         requeue=requeue and t.system.retry_of is None)  # fmt: skip


def _results(study: Study) -> list[FrozenTrial]:
    """The finished trials of ``study`` that are results: a failed one queued again is not (its copy is),
    nor one a Ctrl-C failed (it is run again)."""
    return [t for t in evaluated(study.trials) if t.system.requeued_as is None]


def _claimed(study: Study) -> list[Mapping[str, Any]]:
    """The search claim stored in ``study``'s settings, read as the marks of a first trial (so that a
    fit it refuses is refused before it opens the study, and records nothing there): none where none
    is stored or it is stale."""
    claim = study.storage.get_study(study.name).config.get(CLAIM_KEY)
    return [] if claim is None or _stale_claim(study, claim) else [_as_marks(claim, study)]


def _as_marks(claim: Any, study: Study) -> Mapping[str, Any]:
    """A search claim that no stale check took over: the mapping a fit stores, or refused. Another program
    that wrote text, a list or a number there over a study holding trials (whose own marks say what it was
    searched on) made every fit fail as "searched on other data or folds"."""
    if isinstance(claim, Mapping):
        return claim
    url = study.storage.display_url
    raise ValueError(
        f"study {study.name!r} in {url}: its search claim (the study setting "
        f"{CLAIM_KEY!r}) is {type(claim).__name__} data, not the mapping TunedSearchCV stores; another program "
        "changed it. Its trials record what it was searched on, so the claim may go: run `import tunesmith; "
        "from tunesmith.study.manage import DROP, change_setting; change_setting(tunesmith.load_study("
        f"{study.name!r}, {url!r}), {CLAIM_KEY!r}, lambda stored: DROP)`"
        f"{password_note(url)} and fit again")


#: seconds after which a search claim over a study that still holds no trial is taken over, where its fits
#: cannot be looked up (another machine's): a fit records its first trial moments after its claim
CLAIM_MAX_AGE = 3600.0


#: numbers the fits of this process: two fits in threads of one process are two holders of a claim
_FITS = itertools.count(1)


def _fit_id() -> str:
    """``host:pid#n``: this fit, as a search claim names it; ``n`` tells the fits of one process apart
    (fits on the same data in threads: the one that records nothing gives up its own hold only)."""
    return f"{worker_id()}#{next(_FITS)}"


def _fit_gone(holder: Any) -> bool:
    """Whether the fit ``holder`` (``host:pid#n``, or ``host:pid`` as claims stored before named
    it) is a process of this machine that no longer runs."""
    return worker_gone(holder.partition("#")[0] if isinstance(holder, str) else holder)


def _holders(claim: Any) -> list[Any]:
    """The fits (``host:pid#n``) that rely on a search claim: the one that made it, and each one on the same
    data that found it before a trial was recorded."""
    if not isinstance(claim, Mapping):
        return []
    held = claim.get("holders")
    return list(held) if isinstance(held, list) else [claim.get("worker")]


def _stale_claim(study: Study, claim: Any, now: float | None = None) -> bool:
    """Whether the search ``claim`` stored in ``study`` was left by fits that are gone before one recorded
    a trial: each one's process (on this machine) is gone, or the claim is older than
    :data:`CLAIM_MAX_AGE` (a fit on another machine that died), or it names no fit at all (no mapping: another
    writer's, which no fit could ever give up). Another fit may claim the study."""
    if study.trials:
        return False
    if not isinstance(claim, Mapping):
        return True
    age = _claim_age(claim, study.storage.clock() if now is None else now)
    aged = age is not None and not age <= CLAIM_MAX_AGE  # NaN too
    return aged or all(_fit_gone(w) for w in _holders(claim))


def _claim_age(claim: Mapping[str, Any], now: float) -> float | None:
    """Seconds since a search claim was made (or last joined): None where it holds no time (a claim of
    an earlier tunesmith); NaN for a time that is no clock's (NaN, infinite, text, a number of hundreds
    of digits that float() refuses, one more than :data:`CLAIM_MAX_AGE` ahead of ``now``), which is no
    live fit's: such a claim is taken over, as an old one is (it would have bound the study for ever)."""
    if "since" not in claim:
        return None
    since = finite_float(claim["since"])
    return math.nan if since is None or since - now > CLAIM_MAX_AGE else now - since


#: how many of a taken-over search claim's fits its warning names
NAMED_HOLDERS = 5


def _taken_over(claim: Any, now: float) -> str:
    """What a fit that takes a stale search claim over says of it."""
    age = _claim_age(claim, now) if isinstance(claim, Mapping) else None
    made = "" if age is None else f"made {age:.0f} s ago, " if math.isfinite(age) else "made at no readable time, "
    held = _holders(claim)
    whose = ", ".join(str(w)[:256] for w in held[:NAMED_HOLDERS]) + (
        f" and {len(held) - NAMED_HOLDERS} more" if len(held) > NAMED_HOLDERS else "")
    return (f"the search claim {f'of {whose}' if held else 'that names no fit'} ({made}no trial recorded since: its "
            "fit died before its first trial) is taken over by this fit")


def _interrupted_fit(study: Study, resumable: bool) -> str:
    """What a ``fit`` that Ctrl-C stopped says: what was kept, and how to go on (``resumable``: a study that
    a fit of the same name resumes, not one of its own per fit)."""
    kept = plural(len(_results(study)), "configuration")
    if not resumable:
        return f"TunedSearchCV.fit interrupted (Ctrl-C) after {kept}; give storage= and name= to resume a search"
    return (f"TunedSearchCV.fit interrupted (Ctrl-C): {kept} kept in study {study.name!r} in {study.storage.display_url}; "
            "fit again with the same storage and name to resume (search.study_ holds the study)")


def _released(me: str, stored: Any) -> Any:
    """A search claim without fit ``me``, which recorded no trial: removed once no fit relies on it."""
    held = _holders(stored)
    if me not in held:
        return stored
    rest = [w for w in held if w != me]
    return {**stored, "holders": rest} if rest else DROP


def _check_filled_by_a_search(study: Study) -> None:
    """A study that holds finished trials no search recorded (one that an objective filled) is
    refused: its values are no fold scores."""
    finished = [t for t in study.trials if t.state.is_finished]
    # a search's fold records hold fit times (those of a search stored before the fingerprint too)
    if finished and not any(DATA_ATTR in t.attrs or "fit_time" in fold_scores(t) for t in study.trials):
        raise ValueError(
            f"study {study.name!r} in {study.storage.display_url} holds {plural(len(finished), 'finished trial')} "
            "that no TunedSearchCV recorded (no fold scores of a search); a search resumes only a study that a "
            "search filled. Give another name, or name=None for a new study"
        )


def _same_data(
    study: Study, recorded: list[Mapping[str, Any]], X: Any, y: Any, folds: list[tuple[Any, Any]], cv: Any = None,
    params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The fingerprint of the data, folds and per-sample fit ``params`` (``sample_weight``) a study
    that outlives the fit is searched on, as the attributes its first trial gets. Resuming a study
    searched on other data (as ``recorded`` by its trials or its first fit) is refused: its
    scores would not be this data's (a fixed ``name`` under ``cross_validate`` reused the first outer
    fold's search in every fold; a resume with other weights mixed weighted and unweighted scores)."""
    from joblib import hash as joblib_hash

    per_sample = {k: np.asarray(v) for k, v in sorted((params or {}).items()) if _per_sample(v, X)}
    key = (X, y, [(np.asarray(a), np.asarray(b)) for a, b in folds])
    data = str(joblib_hash(key + (per_sample,) if per_sample else key))  # unweighted: as before
    # any state: a fit writes it once, on its first trial, which may have been left running
    other = [marks for marks in recorded if marks.get(DATA_ATTR) not in (None, data)]
    # trials without FIT_ATTR (written before it) were fingerprinted by X, y and the folds alone: weights unknown
    if other and not (per_sample and not any(FIT_ATTR in marks for marks in other)
                      and {str(marks[DATA_ATTR]) for marks in other} == {str(joblib_hash(key))}):
        random = getattr(cv, "shuffle", False) and getattr(cv, "random_state", 0) is None
        why = (f" ({type(cv).__name__}(shuffle=True) without random_state draws other folds at every fit: pass "
               "random_state=0 to the splitter to resume)") if random else ""
        raise ValueError(
            f"study {study.name!r} in {study.storage.display_url} was searched on other data or folds{why}, or "
            f"other per-sample fit parameters (this fit's: {', '.join(per_sample) or 'none'}); a search resumes only "
            "with the same X, y, cv and sample_weight. For a new search give another name (under "
            "cross_validate or clone, as in nested cross-validation, leave name=None: each fit gets its own study)"
        )
    return {DATA_ATTR: data, FIT_ATTR: list(per_sample)}


def _as_stored(spec: Any, study: Study) -> SearchSpace:
    """The search space of ``spec`` as ``study`` stores it: objects by label, or by position in a
    study stored before labels (resumed as it is)."""
    search = as_search_space(spec)
    if search.space.to_dict() != study.space.to_dict():
        positional = as_search_space(spec, labels=False)
        if positional.space.to_dict() == study.space.to_dict():
            return positional
    return search


def _random_states(estimator: Any, search: SearchSpace) -> list[str]:
    """The ``random_state`` parameters of ``estimator`` (and of its steps) the search does not set."""
    searched = set(search.names.values())
    names = [n for n in estimator.get_params(deep=True) if n.split("__")[-1] == "random_state" and n not in searched]
    if not names:
        raise ValueError(f"seeds= refits with each seed as the estimator's random_state, but {estimator!r} has no "
                         "random_state the search does not set; leave seeds out for a deterministic estimator")
    return names


def _check_names(estimator: Any, search: SearchSpace) -> None:
    """Every searched name is a parameter of ``estimator`` (or of an estimator the search sets):
    a misspelt name is refused before the first fit, as scikit-learn's searches do."""
    if not hasattr(estimator, "get_params"):
        return  # not an estimator: the scorer check says so
    valid = set(estimator.get_params(deep=True))
    searched = set(search.names.values())
    invalid = [name for name in sorted(searched - valid)  # not of an estimator the search itself sets
               if not any("__".join(name.split("__")[:i]) in searched for i in range(1, len(name.split("__"))))]
    if not invalid:
        return
    prefix = _missing_prefix(invalid, valid)
    if prefix is not None:
        how = (f"Prefix the names: {{{prefix!r} + k: v for k, v in space.items()}}" if set(invalid) == searched
               else f"Prefix these names with {prefix!r} (the space's other names have their prefix)")
        raise ValueError(
            f"Invalid parameters {invalid} in the search space for estimator {type(estimator).__name__}: they are "
            f"the parameters of its step {prefix[:-2]!r} without the step's prefix (scikit-learn names a step's "
            f"parameter {prefix}{invalid[0]}). {how} "
            "(a preset space such as lightgbm_space() or xgboost_space() names the model's own parameters)"
        )
    close = difflib.get_close_matches(invalid[0], sorted(valid), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(
        f"Invalid parameter {invalid[0]!r} in the search space for estimator {estimator!r}{hint}. "
        f"Valid parameters are: {sorted(valid)}."
    )


def _missing_prefix(invalid: list[str], valid: set[str]) -> str | None:
    """The step prefix ("clf__") that makes every name of ``invalid`` a valid parameter, where there is one
    and more than one name is missing it (one misspelt name gets the closest valid one instead)."""
    steps = {n.rsplit("__", 1)[0] + "__" for n in valid if "__" in n}
    fits = [p for p in steps if all(p + name in valid for name in invalid)]
    return min(sorted(fits), key=len) if len(invalid) > 1 and fits else None  # of steps alike: the first by name


def _scorers(estimator: Any, scoring: Any) -> tuple[dict[str, Any], bool]:
    """Name -> scorer, and whether there are several (multimetric); a misspelt scorer name is
    refused with the closest one (scikit-learn lists all fifty)."""
    for name in [scoring] if isinstance(scoring, str) else [v for v in _values(scoring) if isinstance(v, str)]:
        if name not in get_scorer_names():
            close = difflib.get_close_matches(name, get_scorer_names(), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "; sklearn.metrics.get_scorer_names() lists them"
            raise ValueError(f"scoring: {name!r} is not a scikit-learn scorer name{hint}")
    if scoring is None or isinstance(scoring, str) or callable(scoring):
        return {"score": check_scoring(estimator, scoring=scoring)}, False
    if isinstance(scoring, Mapping):
        if not scoring:
            raise ValueError("scoring={} names no scorer")
        # check_scoring refuses a metric function (accuracy_score) where a scorer belongs, as GridSearchCV does
        return {str(k): check_scoring(estimator, scoring=v) for k, v in scoring.items()}, True
    if isinstance(scoring, (list, tuple, set)):
        names = list(scoring)
        if not names or not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
            raise ValueError(f"scoring as a list must hold distinct scorer names, got {scoring!r}")
        return {n: get_scorer(n) for n in names}, True
    raise ValueError(f"scoring must be None, a name, a callable, a list or a dict, got {scoring!r}")


def _values(scoring: Any) -> list[Any]:
    """The scorers a list or dict ``scoring`` names (nothing for a single one)."""
    if isinstance(scoring, Mapping):
        return list(scoring.values())
    return list(scoring) if isinstance(scoring, (list, tuple, set)) else []


def _checked_value(value: float, number: int, scores: Mapping[str, Any], metric: str, error_score: Any) -> float:
    """A trial's mean score over its folds (``scores``, as recorded), or the error that says
    why it is not a finite number: a failed fit, a failed scorer, infinite or NaN scores."""
    errors = [e for e in scores.get("error") or [] if e]
    ran = len(scores.get(f"test_{metric}") or [])  # the fold that failed, if one did
    if errors and not math.isfinite(value):  # the trial's error (and log line) names the failed fit
        raise FitFailedError(f"the fit of fold {ran} failed (error_score={error_score!r}): {errors[-1]}")
    _warn_scoring(number, scores, error_score)
    if not math.isfinite(value) and any(scores.get(SCORE_ERROR) or []):  # scored error_score: not a failed fit
        raise ScoringFailedError(f"scoring failed on fold {ran} (error_score={error_score!r}): "
                                 f"{[e for e in scores[SCORE_ERROR] if e][-1]}")
    if not math.isfinite(value) and not np.isnan(fold_values(scores, f"test_{metric}")).any():
        # every fold scored, some inf or -inf: cv_results_ keeps their mean and ranks by it, as scikit-learn
        raise ScoringFailedError(f"the scorer returned infinite scores: their mean over {ran} folds is {value}")
    if not math.isfinite(value):  # the scorer returned NaN: a row of NaN scores, as scikit-learn keeps it
        raise ScoringFailedError(f"the scorer returned {value} on fold {ran}")
    return value


def _fit_and_score(
    estimator: Any, X: Any, y: Any, scorers: Mapping[str, Any], fit_params: Mapping[str, Any],
    train_score: bool, error_score: Any, score_params: Mapping[str, Mapping[str, Any]], params: Mapping[str, Any],
    train: np.ndarray, test: np.ndarray,
) -> dict[str, Any]:  # fmt: skip
    """One fold: fit a clone with ``params`` on ``train``, score ``test`` (and ``train``); each
    scorer gets the fold's rows of its ``score_params`` (``sample_weight``), as scikit-learn's searches do."""
    fold_params = _rows(fit_params, X, train)
    if "callbacks" in fold_params:  # stateful (lgb.early_stopping): one copy per fit, as threads share them
        with contextlib.suppress(TypeError, copy.Error):  # one that cannot be copied (holds a lock) is shared
            fold_params["callbacks"] = copy.deepcopy(fold_params["callbacks"])
    start = time.perf_counter()
    try:  # setting the parameters can fail too: a step's parameter where the step is "passthrough"
        est = clone(estimator).set_params(**clone(dict(params), safe=False))
        x_tr, y_tr = _split(est, X, y, train, train)
        x_te, y_te = _split(est, X, y, test, train)
        est.fit(x_tr, y_tr, **fold_params)
    except Exception as exc:
        if error_score == "raise":
            raise
        out: dict[str, Any] = {"fit_time": time.perf_counter() - start, "score_time": 0.0}
        for name in scorers:
            out[f"test_{name}"] = error_score
            if train_score:
                out[f"train_{name}"] = error_score
        out["error"] = f"{type(exc).__name__}: {exc}"
        out[SCORE_ERROR] = None
        out[INFINITE] = _infinite(out)
        return out
    out = {"fit_time": time.perf_counter() - start}
    start = time.perf_counter()
    failed: list[str] = []
    for name, scorer in scorers.items():
        kw = _rows(score_params.get(name, {}), X, test)
        out[f"test_{name}"] = _score(scorer, est, x_te, y_te, error_score, name, failed, kw)
    out["score_time"] = time.perf_counter() - start
    if train_score:
        for name, scorer in scorers.items():
            kw = _rows(score_params.get(name, {}), X, train)
            out[f"train_{name}"] = _score(scorer, est, x_tr, y_tr, error_score, f"{name} (train)", failed, kw)
    out[SCORE_ERROR] = "; ".join(failed) or None  # every fold has the key: position k is fold k + 1
    out[INFINITE] = _infinite(out)
    return out


def _infinite(out: Mapping[str, Any]) -> str | None:
    """A fold's infinite scores as JSON text (``{"test_score": Infinity}``), beside the record
    that stores them as None (JSON numbers are finite): cv_results_ shows them as scikit-learn does."""
    marks = {k: v for k, v in out.items() if k.startswith(("test_", "train_")) and isinstance(v, float) and math.isinf(v)}
    return json.dumps(marks) if marks else None


def _with_config(config: Mapping[str, Any], fit_and_score: Callable[..., Any], *args: Any) -> Any:
    """``fit_and_score(*args)`` under the scikit-learn configuration of the search's caller
    (``enable_metadata_routing``, ``transform_output``...), which worker threads and processes
    would not see otherwise: scikit-learn's own Parallel carries it the same way."""
    with config_context(**config):
        return fit_and_score(*args)


def _score(
    scorer: Any, est: Any, X: Any, y: Any, error_score: Any, name: str, failed: list[str], kw: Mapping[str, Any]
) -> float:  # fmt: skip
    """A scorer's value; when it raises (scikit-learn's ``_score``): ``error_score``, and the
    error noted in ``failed`` (``error_score="raise"``: raised)."""
    try:
        value = scorer(est, X, y, **kw)
    except Exception as exc:
        if error_score == "raise":
            raise
        failed.append(f"scorer {name!r} raised {type(exc).__name__}: {exc}")
        return float(error_score)
    if isinstance(value, Mapping):  # scikit-learn's multimetric callable: a setting to change, not a failed fold
        raise TypeError(
            f"the scorer {name!r} returned a dict {sorted(value)}: a scoring callable returns one number here; "
            f"for several metrics pass scoring={{'name': scorer, ...}} (or a list of scorer names) and refit='name'"
        )
    return float(value)


def _weighted(scorers: Mapping[str, Any], fit_params: Mapping[str, Any], X: Any) -> frozenset[str]:
    """The scorers that score with ``sample_weight`` (a per-sample one was passed to fit and
    they take it), as scikit-learn's searches weight their scores; the others are warned about."""
    weights = fit_params.get("sample_weight")
    if weights is None or not _per_sample(weights, X):
        return frozenset()
    takes = {name: _takes_weight(s) for name, s in scorers.items()}
    for name in (n for n, ok in takes.items() if not ok):
        warnings.warn(
            f"The scorer {name!r} ({scorers[name]!r}) does not take sample_weight: its scores are unweighted, "
            "while the fits are weighted", UserWarning, stacklevel=3,
        )  # fmt: skip
    return frozenset(n for n, ok in takes.items() if ok)


def _takes_weight(scorer: Any) -> bool:
    accept = getattr(scorer, "_accept_sample_weight", None)
    if callable(accept):
        return bool(accept())
    try:
        return "sample_weight" in inspect.signature(scorer).parameters
    except (TypeError, ValueError):
        return False


def _warn_scoring(number: int, scores: Mapping[str, Any], error_score: Any) -> None:
    """scikit-learn's "Scoring failed" warning, naming the trial, the fold and the scorer's error."""
    for k, error in enumerate(scores.get(SCORE_ERROR) or [], start=1):
        if error:
            warnings.warn(
                f"Scoring failed on fold {k} of trial {number}: the score is set to error_score={error_score!r}. "
                f"Details: {error}",
                UserWarning, stacklevel=2,
            )  # fmt: skip


def _split(est: Any, X: Any, y: Any, rows: np.ndarray, train: np.ndarray) -> tuple[Any, Any]:
    """Rows of X and y; for a pairwise (precomputed kernel) estimator, columns of the training rows."""
    x = _safe_indexing(X, rows)
    if get_tags(est).input_tags.pairwise:
        x = _safe_indexing(x, train, axis=1)
    return x, None if y is None else _safe_indexing(y, rows)


def _rows(params: Mapping[str, Any], X: Any, rows: np.ndarray) -> dict[str, Any]:
    """``params`` with the per-sample ones (as long as X) cut to ``rows``."""
    return {k: _safe_indexing(v, rows) if _per_sample(v, X) else v for k, v in params.items()}


def _scoring_router(scorers: Mapping[str, Any]) -> MetadataRouter:
    """Several scorers as one router (scikit-learn's multimetric scorer's), so that each gets what it requested."""
    return MetadataRouter(owner="TunedSearchCV's scorers").add(
        **scorers, method_mapping=MethodMapping().add(caller="score", callee="score"))


def _by_scorer(scorers: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The metadata routed to the search's scoring, by scorer: what each requested."""
    if list(scorers) == ["score"]:  # one scorer: the router's child itself, as GridSearchCV's
        return {"score": params}
    routed = _scoring_router(scorers).route_params(caller="score", params=params)
    return {n: routed[n].score for n in scorers}


def _per_sample(value: Any, X: Any) -> bool:
    return hasattr(value, "__len__") and not isinstance(value, (str, bytes, Mapping)) and len(value) == _n(X)


def _n(X: Any) -> int:
    return int(X.shape[0]) if hasattr(X, "shape") else len(X)


def _no_folds(cv: Any) -> str:
    """Why ``cv`` gave no fold: a generator (``KFold(5).split(X)``) is used up by the first fit."""
    if isinstance(cv, Iterator):
        return (f"cv={cv!r} gave no (train, test) fold: a generator such as KFold(5).split(X) is used up by the "
                "first fit; pass cv=KFold(5) (the splitter), or list(KFold(5).split(X)) to fit more than once")
    return f"cv={cv!r} gave no (train, test) fold; pass a number of folds, a splitter or a list of (train, test) pairs"


def _check_failures(trials: list[Any]) -> None:
    """scikit-learn's rule: every fit failed -> ValueError; some -> FitFailedWarning."""
    errors = [e for t in trials for e in (fold_scores(t).get("error") or []) if e and isinstance(e, str)]
    errors += [t.error for t in trials if t.state is TrialState.FAILED and t.error and not t.attrs.get(CV_ATTR)]
    scored = [t for t in trials if any(fold_scores(t).get(SCORE_ERROR) or [])
              or (t.error or "").startswith(f"{ScoringFailedError.__name__}:")]
    complete = [t for t in trials if t.state is TrialState.COMPLETE]
    if not complete and not scored:  # a scorer that raised is no failed fit: NaN rows, as scikit-learn
        detail = "; ".join(sorted(set(errors))[:5]) or "no trial completed"
        raise ValueError(f"All the {len(trials)} configurations failed to fit. Errors: {detail}. It is very likely "
                         "that the estimator is misconfigured: error_score='raise' raises the first error with its "
                         "traceback (or fit the estimator alone on the data)")
    if errors:
        warnings.warn(
            f"{len(errors)} fits failed (their folds scored error_score); first errors: "
            + "; ".join(sorted(set(errors))[:3]),
            FitFailedWarning, stacklevel=3,
        )  # fmt: skip


def _sampler(spec: Any) -> Any:
    """"auto" with :data:`SCORE_MARGIN` for its Gaussian process; anything else as given."""
    if isinstance(spec, str) and spec.lower() == "auto":
        return {"name": "auto", "bayes": {"ei_margin": SCORE_MARGIN}}
    return spec


def _check_split_order(X: Any, y: Any, X_test: Any, y_test: Any) -> None:
    """``evaluate_best(X, y, X_test, y_test)``: rows that do not pair up (``train_test_split``'s order,
    ``X_train, X_test, y_train, y_test``, passed as it returns them) are refused before any refit,
    naming the order, rather than by the first refit's "y should be a 1d array"."""
    if y is None or y_test is None:
        return
    order = ("pass the training data, then the test data (train_test_split returns X_train, X_test, y_train, "
             "y_test: write evaluate_best(X_train, y_train, X_test, y_test))")
    rows = [_n_samples(a) for a in (X, y, X_test, y_test)]
    if rows[0] != rows[1] or rows[2] != rows[3]:
        raise ValueError(f"evaluate_best(X, y, X_test, y_test) got {rows[0]} rows of X with {rows[1]} of y and "
                         f"{rows[2]} rows of X_test with {rows[3]} of y_test: {order}")
    dims = [_ndim(a) for a in (X, X_test)]
    if dims[0] != dims[1]:  # a split in halves passed in that order: X_test is y_train, one value per row
        raise ValueError(f"evaluate_best(X, y, X_test, y_test) got X of {dims[0]} dimension(s) and X_test of "
                         f"{dims[1]}: {order}")


def _n_samples(a: Any) -> int:
    """The number of samples of a data set: its first dimension (an array, a DataFrame, a sparse matrix), or
    its length (a list of rows). Not scikit-learn's private ``_num_samples``, which an upgrade may move."""
    shape = getattr(a, "shape", None)
    if isinstance(shape, tuple) and shape and isinstance(shape[0], (int, np.integer)):
        return int(shape[0])
    try:
        return len(a)
    except TypeError:  # a number, or an iterator that has no length
        raise TypeError(f"evaluate_best expects arrays of samples (an array, a DataFrame, a list of rows), got "
                        f"{type(a).__name__}") from None


def _ndim(a: Any) -> int:
    """The number of dimensions of a data set (an array, a DataFrame, a sparse matrix, a list of rows)."""
    shape = getattr(a, "shape", None)
    if shape is None:
        try:
            shape = np.shape(a)
        except ValueError:  # a list of rows of different lengths
            return 2
    return len(shape)


def _grid_points(spec: Any) -> Mapping[str, Any] | None:
    """The points of a grid sampler given as ``sampler`` ({} for its defaults); None for another sampler."""
    if isinstance(spec, GridSampler):
        return spec.points
    if isinstance(spec, str):
        return {} if spec.lower() == "grid" else None
    if isinstance(spec, Mapping) and spec.get("name") == "grid":
        return dict(spec.get("points") or {})
    return None


def _seed(random_state: Any) -> int | None:
    if random_state is None or isinstance(random_state, numbers.Integral):
        return check_seed(random_state, "random_state")
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31 - 1))
    raise ValueError(f"random_state must be None, an int or a numpy RandomState, got {random_state!r}")


def _jobs(n_jobs: int | None) -> int:
    """Workers for ``n_jobs`` as joblib counts them: None 1, -1 every CPU, -2 all but one, ..."""
    import os

    if n_jobs is None:
        return 1
    return max(1, (os.cpu_count() or 1) + 1 + int(n_jobs)) if n_jobs < 0 else int(n_jobs)


#: the filter of the fit running in this context at verbose=0 (None: not quiet); a ThreadExecutor's
#: workers run in a copy of their caller's context, so a fit's own trial threads are quiet with it
_QUIET: ContextVar[Callable[[logging.LogRecord], bool] | None] = ContextVar("tunesmith_quiet", default=None)


def _quiet_here(record: logging.LogRecord) -> bool:
    """The "tunesmith" logger's filter: a quiet fit's own lines (its thread and its trial threads)
    are its warnings only; every other thread's lines pass as the logger's level says."""
    said = _QUIET.get()
    return said is None or (record.levelno >= logging.WARNING and said(record))


@contextlib.contextmanager
def _quiet(verbose: int, *, raising: bool = False) -> Iterator[None]:
    """tunesmith's info lines only with verbose > 0 (warnings always, but for the line of a trial
    whose fit or scorer failed: the search's FitFailedWarning or "Scoring failed" warning says it,
    or with error_score="raise" the error that stops fit). Scoped to this fit: the logger's level is
    left as the user set it, and another thread's lines meanwhile are said."""
    if verbose > 0:
        yield
        return
    logger.addFilter(_quiet_here)  # once: a no-op outside a quiet fit
    token = _QUIET.set(_said_by_the_error if raising else _said_by_a_warning)
    try:
        yield
    finally:
        _QUIET.reset(token)


@contextlib.contextmanager
def _opening(verbose: int) -> Iterator[None]:
    """The study's own lines while a fit opens it: its resume line never (the fit says its own), the
    sampler it records only with verbose > 0. Only this thread's: the filter is on the process's logger,
    and another thread opening a study meanwhile says its lines. A logger's filter runs in the thread that
    logs: that thread is asked, not ``record.thread``, which is None under ``logging.logThreads = False``."""
    dropped = {RESUMING} if verbose > 0 else {RESUMING, SAMPLER_RECORDED}
    opener = threading.get_ident()

    def said(record: logging.LogRecord) -> bool:
        return threading.get_ident() != opener or record.msg not in dropped

    logger.addFilter(said)
    try:
        yield
    finally:
        logger.removeFilter(said)


def _said_by_the_error(record: logging.LogRecord) -> bool:
    """False for a "trial N failed" line: with error_score="raise" its error stops fit."""
    return record.msg != "trial %d failed: %s"


def _said_by_a_warning(record: logging.LogRecord) -> bool:
    """False for the "trial N failed" line of a fit or a scorer that failed (a warning says it)."""
    error = record.args[-1] if isinstance(record.args, tuple) and record.args else None
    return not (record.msg == "trial %d failed: %s" and isinstance(error, str)
                and error.startswith((f"{FitFailedError.__name__}:", f"{ScoringFailedError.__name__}:")))  # fmt: skip
