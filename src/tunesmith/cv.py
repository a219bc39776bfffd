"""Cross-validation inside an objective: splits, one report per fold, pruning.

    def objective(trial):
        def score(train_idx, val_idx):
            model = make_model(trial.params).fit(x[train_idx], y[train_idx])
            return model.score(x[val_idx], y[val_idx])
        return ts.cv.cross_validate(trial, score, ts.cv.stratified(y, k=5, seed=0))

Fold k (counted from 1) is reported as step k with the mean of the first k
fold scores, so a pruner compares configurations fold by fold and a clearly
worse one stops after its first folds. The per-fold scores, their mean and
their spread are stored on the trial as ``trial.attrs["cv"]``.

The split functions need only NumPy; any scikit-learn splitter (``KFold(5)``,
``GroupKFold``, ...) works too, through :func:`split`.
"""

from __future__ import annotations

import functools
import logging
import math
import pickle
import statistics
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .exceptions import TrialPruned, add_exception_note
from .pruners import REPORTED_STATES, Decision, Pruner, register
from .space.params import check_int, check_seed, did_you_mean
from .trial import (
    Direction,
    FrozenTrial,
    TrialState,
    _as_float_or_nan,
    best_of,
    finite_float,
    mean_and_spread,
    short_repr,
)

logger = logging.getLogger("tunesmith")

Fold = tuple[np.ndarray, np.ndarray]
FoldScore = Callable[[np.ndarray, np.ndarray], Any]
CV_ATTR = "cv"
#: the trial attribute describing a stored TunedSearchCV's estimator (its parameters that are not searched)
#: and scoring, written with the data fingerprint; here, not in tunesmith.sklearn (which needs scikit-learn),
#: so that importance reads it by the name the search writes
SETUP_ATTR = "search_setup"


# -- splits ----------------------------------------------------------------------------------------


def kfold(n: int, k: int = 5, *, shuffle: bool = True, seed: int | None = 0) -> list[Fold]:
    """``k`` folds of ``range(n)``: each sample is validated once (shuffled first unless told not to)."""
    _check_n(n, "kfold")
    _check_k(k, n, "samples")
    order = np.random.default_rng(check_seed(seed, "kfold: seed")).permutation(n) if shuffle else np.arange(n)
    return _from_parts(np.array_split(order, k), n)


def stratified(y: Sequence[Any] | np.ndarray, k: int = 5, *, shuffle: bool = True, seed: int | None = 0) -> list[Fold]:
    """``k`` folds that keep each class's share of ``y`` (labels) in every fold."""
    labels = _labels(y, "y", "stratified")
    _check_k(k, len(labels), "samples")
    fractional = np.flatnonzero(labels != np.round(labels)) if labels.dtype.kind == "f" else np.array([], dtype=int)
    if len(fractional):  # scikit-learn's "continuous"
        raise ValueError(f"stratified() takes class labels, but y holds {len(_unique(labels[fractional]))} distinct "
                         f"fractional values (a regression target, such as {float(labels[fractional[0]])!r}): use "
                         f"cv.kfold(len(y), k={k}) for a regression, or stratify by binned values (np.digitize(y, "
                         "np.quantile(y, [0.25, 0.5, 0.75]))); classes coded as fractions (0.5, 1.5) are labels once "
                         "written as integers or strings")
    rare = {c: n for c in _unique(labels) if (n := int(np.sum(labels == c))) < k}
    if rare:  # as scikit-learn's StratifiedKFold warns: some validation folds miss these classes
        warnings.warn(f"stratified(): {len(rare)} class(es) have fewer members than k={k} folds ("
                      + ", ".join(f"{c!r}: {n}" for c, n in list(rare.items())[:5])
                      + "): some validation folds hold none of them", UserWarning, stacklevel=2)
    rng = np.random.default_rng(check_seed(seed, "stratified: seed"))
    parts: list[list[np.ndarray]] = [[] for _ in range(k)]
    offset = 0
    for c in _unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = rng.permutation(idx) if shuffle else idx
        for j, chunk in enumerate(np.array_split(idx, k)):  # rotate, so small classes spread over folds
            parts[(j + offset) % k].append(chunk)
        offset += len(idx) % k
    return _from_parts([np.sort(np.concatenate(p)) for p in parts], len(labels))


def grouped(groups: Sequence[Any] | np.ndarray, k: int = 5) -> list[Fold]:
    """``k`` folds in which no group (patient, user, site) is on both sides; groups are
    dealt largest first to the fold with the fewest samples, so folds have similar sizes."""
    g = _labels(groups, "groups", "grouped")
    names = _unique(g)
    _check_k(k, len(names), "groups")
    sizes = {name: int(np.sum(g == name)) for name in names}
    load = [0] * k
    members: list[list[Any]] = [[] for _ in range(k)]
    for name in sorted(names, key=lambda n: (-sizes[n], str(n))):
        j = int(np.argmin(load))
        members[j].append(name)
        load[j] += sizes[name]
    return _from_parts([np.flatnonzero(np.isin(g, m)) for m in members], len(g))


def time_series(n: int, k: int = 5, *, gap: int = 0) -> list[Fold]:
    """``k`` forward-chaining folds: train on everything before a block, validate on the
    block (``gap`` samples between them are left out); never trains on the future."""
    _check_n(n, "time_series")
    _check_k(k, n, "samples", low=1, blocks=1)
    if gap < 0:
        raise ValueError(f"gap must be >= 0, got {gap}")
    bounds = np.array_split(np.arange(n), k + 1)
    folds = []
    for block in bounds[1:]:
        end = int(block[0]) - gap
        if end <= 0:
            raise ValueError(f"gap={gap} leaves no training samples before the block at {int(block[0])}")
        folds.append((np.arange(end), block))
    return folds


def split(splitter: Any, x: Any, y: Any = None, groups: Any = None) -> list[Fold]:
    """The folds of a scikit-learn splitter (``KFold(5)``, ``StratifiedKFold``, ...)."""
    if isinstance(splitter, type):
        raise TypeError(f"split() takes a splitter object, not the class {splitter.__name__}: "
                        f"write {splitter.__name__}(...), e.g. {splitter.__name__}(5)")
    if not hasattr(splitter, "split"):
        raise TypeError(f"split() takes a splitter with .split(x, y, groups), got {splitter!r}")
    return [(np.asarray(a), np.asarray(b)) for a, b in splitter.split(x, y, groups)]


def _unique(values: np.ndarray) -> list[Any]:
    seen: dict[Any, None] = {}
    for v in values.tolist():
        seen.setdefault(v, None)
    return sorted(seen, key=str)


def _check_n(n: Any, fn: str) -> None:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
        shape = f" of shape {np.shape(n)}" if hasattr(n, "__len__") else ""
        raise TypeError(f"{fn}(n, ...) takes the number of samples, an integer; got {type(n).__name__}{shape}: "
                        f"write {fn}(len(x), ...)")
    if n < 2:
        raise ValueError(f"{fn}(n, ...) takes the number of samples, at least 2 (no fewer make two parts); got {n}")


def _labels(values: Any, name: str, fn: str) -> np.ndarray:
    """One label per sample (a 1-d array); anything else is refused by name."""
    arr = np.asarray(values)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr.ravel()  # a column vector, as scikit-learn accepts it
    if arr.ndim != 1:
        raise ValueError(f"{fn}() takes {name} as one label per sample (1-d); got an array of shape {arr.shape}")
    missing = np.flatnonzero(np.isnan(arr)) if arr.dtype.kind == "f" else np.array([], dtype=int)
    if len(missing):  # NaN equals nothing, itself included: those samples would never be validated
        raise ValueError(f"{fn}() got {name} with {len(missing)} NaN value(s) (at positions "
                         f"{missing[:5].tolist()}); give every sample a label, or leave those samples out")
    return arr


def _check_k(k: int, n: int, what: str, *, low: int = 2, blocks: int = 0) -> None:
    """``k`` folds of ``n`` samples (or groups), each fold taking one part and ``blocks`` more
    parts besides (a time series' first training block): k from ``low`` to ``n - blocks``."""
    high = n - blocks
    span = f"k from {low} to n{f' - {blocks}' if blocks else ''}"
    if high < low:
        raise ValueError(f"cannot make folds from {n} {what}: at least {low + blocks} are needed ({span})")
    valid = f"k can be {low} to {high}" if high > low else f"k can only be {low}"
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < low:
        raise ValueError(f"k must be an integer >= {low} (the number of folds), got {k!r}; {valid} with {n} {what}")
    if k > high:
        why = f" (time series folds need k + {blocks} blocks)" if blocks else ""
        raise ValueError(f"cannot make {k} folds from {n} {what}{why}; {valid}")


def _from_parts(parts: list[np.ndarray], n: int) -> list[Fold]:
    everything = np.arange(n)
    return [(np.setdiff1d(everything, p, assume_unique=True), np.sort(p)) for p in parts]


# -- running folds in a trial -----------------------------------------------------------------------


def cross_validate(
    trial: Any,
    score: FoldScore,
    folds: Iterable[Fold],
    *,
    key: str | None = None,
    n_jobs: int = 1,
) -> float:
    """Score each fold, report it, honour the pruner; return the mean score.

    Args:
        trial: the running :class:`~tunesmith.Trial`.
        score: ``score(train_idx, val_idx) -> float`` (or a mapping of named
            values, then ``key`` names the one that is reported and averaged;
            the others, such as a training score or a fit time, are recorded;
            a ``key`` other than ``"score"`` with a plain number is refused).
        folds: ``(train_idx, val_idx)`` pairs: :func:`kfold`, :func:`stratified`,
            :func:`grouped`, :func:`time_series`, or :func:`split` of a
            scikit-learn splitter.
        n_jobs: folds run in parallel (joblib) when the study has no pruner;
            with one, folds run in order so that the pruner can stop early.

    Step k (from 1) reports the mean of the first k folds. When the pruner says
    stop, the folds done so far are recorded and :class:`~tunesmith.TrialPruned`
    is raised. An error ``score`` raises keeps its type, with a note naming the fold and its
    sizes (the failed trial's error says it too). ``trial.attrs["cv"]`` holds ``{"folds": k, "scores": {name: [...]},
    "mean": m, "std": s}`` (std over folds, ``ddof=0`` like scikit-learn).
    """
    return validate(trial, score, folds, key=key, n_jobs=n_jobs)


def validate(
    trial: Any, score: FoldScore, folds: Iterable[Fold], *, key: str | None, n_jobs: int, every_fold: bool = False
) -> float:
    """:func:`cross_validate`; ``every_fold``: a fold scored infinite (``inf`` or ``-inf``) does not end
    the run (the folds after it are scored and recorded, as scikit-learn's searches score every fold)."""
    if hasattr(folds, "split") or isinstance(folds, (int, np.integer)):
        write = f"cv.split({folds!r}, x, y)" if hasattr(folds, "split") else f"cv.kfold(len(x), {folds}) or cv.stratified(y, {folds})"
        raise TypeError(f"cross_validate takes folds as (train_idx, val_idx) pairs, got {folds!r}: write {write}")
    if not isinstance(n_jobs, (int, np.integer)) or isinstance(n_jobs, bool) or n_jobs == 0:  # joblib: "has no meaning"
        raise ValueError(f"n_jobs must be a non-zero integer (folds in parallel; -1: one per core), got {n_jobs!r}")
    fold_list = list(folds)
    if not fold_list:
        used_up = (": a generator such as KFold(5).split(x) made once outside the objective is used up by the "
                   "first trial; pass list(...) of it, or cv.split(splitter, x, y)") if iter(folds) is folds else ""
        raise ValueError(f"cross_validate needs at least one (train_idx, val_idx) fold; folds is empty{used_up}")
    table, done = _resumed(trial, "score" if key is None else key)
    n = len(fold_list)
    todo = [(k, n, a, b) for k, (a, b) in enumerate(fold_list[done:], start=done + 1)]
    if n_jobs != 1 and not _has_pruner(trial):
        return _run(trial, iter(_parallel(score, todo, n_jobs, getattr(trial.study, "name", ""))), n, key, table, done,
                    every_fold)
    if n_jobs != 1:
        _say_folds_in_order(getattr(trial.study, "name", ""), n_jobs)
    return _run(trial, (_fold(score, *fold) for fold in todo), n, key, table, done, every_fold)


def _fold(score: FoldScore, k: int, n: int, train: np.ndarray, val: np.ndarray) -> Any:
    """``score(train, val)``; an error it raises keeps its type and gets a note naming the fold
    and its sizes (shown in the traceback and in the failed trial's error)."""
    try:
        return score(train, val)
    except Exception as exc:
        add_exception_note(exc, f"in fold {k} of {n}: {_size(train)} training, {_size(val)} validation samples")
        raise


def _size(idx: Any) -> str:
    """How many samples a fold's index array selects (a boolean mask: its True ones)."""
    arr = np.asarray(idx)
    return str(int(arr.sum()) if arr.dtype == bool else len(arr)) if arr.ndim == 1 else f"shape {arr.shape}"


@functools.lru_cache(maxsize=64)
def _say_folds_in_order(study: str, n_jobs: int) -> None:
    """Once per study: with a pruner, ``n_jobs`` does not parallelize the folds."""
    logger.info("study %r: cross_validate(n_jobs=%d) runs its folds in order, since the study's pruner may stop a "
                "configuration after any fold; run trials in parallel instead: study.optimize(..., n_jobs=%d)",
                study, n_jobs, n_jobs)


@functools.lru_cache(maxsize=64)
def _say_folds_in_threads(study: str, n_jobs: int) -> None:
    """Once per study (before: once per trial): a fold function that cannot be pickled runs in threads."""
    logger.info("study %r: the fold function cannot be pickled for worker processes (it uses the trial, or "
                "another object a process cannot take); cross_validate(n_jobs=%d) runs its folds in threads",
                study, n_jobs)


def _resumed(trial: Any, name: str) -> tuple[dict[str, list[Any]], int]:
    """A paused trial that is resumed continues after the folds it recorded; a record that no longer
    holds their scores ``name`` as :func:`summary` wrote them (another writer changed it) is an error."""
    if not getattr(trial, "is_resumed", False):
        return {}, 0
    table = {n: list(v) for n, v in stored_scores(trial.attrs.get(CV_ATTR)).items()}
    done = min((len(v) for v in table.values()), default=0)
    paused_at, scores = getattr(trial, "start_step", 1) - 1, table.get(name, [])[:done]
    if done < paused_at or len(scores) < done or not all(x is None or finite_float(x) is not None for x in scores):
        raise ValueError(f"trial {trial.number} resumes after fold {paused_at}, but its record attrs['cv'] no longer "
                         "holds the scores of its folds as cross_validate wrote them (another program changed it, or the "
                         "objective paused before calling cross_validate): it cannot continue")
    return {n: v[:done] for n, v in table.items()}, done


def _has_pruner(trial: Any) -> bool:
    from .pruners import NopPruner

    return not isinstance(getattr(trial.study, "pruner", None), NopPruner)


def _parallel(
    score: FoldScore, folds: list[tuple[int, int, np.ndarray, np.ndarray]], n_jobs: int, study: str = ""
) -> list[Any]:
    try:
        from joblib import Parallel, delayed
    except ImportError:
        raise ImportError("parallel folds (n_jobs > 1) need joblib: pip install 'tunesmith[sklearn]'") from None
    try:
        return list(Parallel(n_jobs=n_jobs)(delayed(_fold)(score, *fold) for fold in folds))
    except pickle.PicklingError:  # a closure over the trial (its study's locks): processes cannot take it
        _say_folds_in_threads(study, n_jobs)
        return list(Parallel(n_jobs=n_jobs, backend="threading")(delayed(_fold)(score, *fold) for fold in folds))


def _run(
    trial: Any, results: Iterable[Any], n_folds: int, key: str | None, table: dict[str, list[Any]], done: int,
    every_fold: bool = False,
) -> float:
    name = key if key is not None and done else "score"
    for k, result in enumerate(results, start=done + 1):
        name = _record(table, result, key)
        mean = mean_and_spread(table[name])[0]  # inf and -inf folds: NaN; huge finite ones: finite
        trial.set_attr(CV_ATTR, summary(table, name, n_folds))
        if not math.isfinite(mean) and every_fold and not np.isnan(np.asarray(table[name], dtype=float)).any():
            continue  # infinite folds (inf and -inf: a NaN mean): no report, no pruning; the trial fails once all are scored
        if not math.isfinite(mean):
            if not every_fold:  # the trial's error says only "objective returned nan"
                _say_fold_failed(trial, k, n_folds, name, table[name][-1])
            return mean  # a failed fold: the study marks the trial failed with this value
        trial.report(mean, k)
        if k < n_folds and trial.decision() is not Decision.CONTINUE:  # without a pruner: nothing to say
            raise TrialPruned(f"stopped after fold {k} of {n_folds}")
    return mean_and_spread(table[name])[0]


def _say_fold_failed(trial: Any, k: int, n_folds: int, name: str, value: float) -> None:
    """Which fold ended a trial with a value that is no score (NaN, an infinity)."""
    logger.warning("trial %s: fold %d of %d scored %s (%r); the trial fails, and no fold after it is recorded (its "
                   "fold scores are in trial.attrs[%r])", getattr(trial, "number", "?"), k, n_folds, value, name, CV_ATTR)


def _record(table: dict[str, list[Any]], result: Any, key: str | None) -> str:
    if isinstance(result, Mapping):
        if key is None or key not in result:
            raise ValueError(
                f"the fold function returned {sorted(result)}: pass key= naming the value to report" if key is None
                else f"key={key!r} is not a value the fold function returned{did_you_mean(key, sorted(result))}; "
                     f"it returned {sorted(result)}"
            )
        for n, v in result.items():
            flag = n != key and isinstance(v, (bool, np.bool_))  # a recorded flag ("converged") stays 1.0 / 0.0
            table.setdefault(n, []).append(v if isinstance(v, str) or v is None else float(v) if flag else _number(v, n))
        return key
    if key not in (None, "score"):  # before: key= was ignored, the number reported as "score"
        raise ValueError(f"key={key!r} names a value of a dict the fold function returns, but it returned "
                         f"{short_repr(result)}: return {{{key!r}: ...}} (with any other values), or drop key=")
    table.setdefault("score", []).append(_number(result, "score"))
    return "score"


def _number(value: Any, name: str) -> float:
    """A fold's value as a float (as a trial's value is taken: 10**400 is inf, a boolean is no
    score, a tensor is detached), or an error naming what the fold function returned."""
    v = _as_float_or_nan(value)
    if v is None:
        raise TypeError(f"the fold function returned {short_repr(value)} as {name!r}; return a number (or a dict "
                        "of named numbers, with key= naming the one to report)")
    return v


def summary(table: Mapping[str, Sequence[Any]], name: str, n_folds: int) -> dict[str, Any]:
    """What ``trial.attrs["cv"]`` holds: the folds planned, every named value by fold
    (text, such as a fold's error message, is kept as it is), and the mean and
    spread of the reported one over the folds done."""
    mean, std = mean_and_spread(table[name])  # a NaN or infinite fold: stored as None, said by the trial
    return {
        "folds": n_folds,
        "key": name,
        "scores": {n: [v if isinstance(v, str) or v is None else _finite(v) for v in vs] for n, vs in table.items()},
        "mean": _finite(mean),
        "std": _finite(std),
    }


def stored_scores(record: Any) -> dict[str, list[Any]]:
    """The per-fold scores by name of a fold record read from storage (a trial's ``attrs["cv"]``):
    each a list as :func:`summary` writes it; a record or a name holding anything else (an attribute
    another writer set) reads as none, so that a stored search or a resumed trial reads the others."""
    scores = record.get("scores") if isinstance(record, Mapping) else None
    return {k: v for k, v in scores.items() if isinstance(v, list)} if isinstance(scores, Mapping) else {}


def is_summary(value: Any) -> bool:
    """Whether ``value`` (a trial's ``attrs["cv"]``) is what :func:`summary` writes, not an
    attribute of that name an objective set itself."""
    return isinstance(value, Mapping) and isinstance(value.get("scores"), Mapping) and "folds" in value


def is_search_trial(t: Any) -> bool:
    """Whether trial record ``t`` is a TunedSearchCV's: a stored search's setup, or its folds' fit times (any
    search's). Such a study has no objective: it goes on by fitting a search again."""
    record: Any = t.attrs.get(CV_ATTR)
    return SETUP_ATTR in t.attrs or (is_summary(record) and "fit_time" in record["scores"])


def fold_metric(trials: Iterable[Any]) -> str | None:
    """The name of the score the folds of ``trials`` averaged into each trial's value, for a column or an axis
    title: ``TunedSearchCV(scoring=["accuracy", "roc_auc"], refit="roc_auc")`` stores "test_roc_auc" and gives
    "roc_auc"; a search with one named scorer stores "test_score" and gives the scorer it recorded
    (``scoring="f1"``: "f1"); a fold function's named value its name ("loss"). None where nothing names it (the
    estimator's own score, a fold function's plain number, trials without folds, another writer's attrs)."""
    key, scoring = None, None
    for t in trials:
        record, setup = t.attrs.get(CV_ATTR), t.attrs.get(SETUP_ATTR)
        if key is None and is_summary(record) and isinstance(record.get("key"), str):
            key = record["key"]
        if scoring is None and isinstance(setup, Mapping) and isinstance(setup.get("scoring"), str):
            scoring = setup["scoring"]
        if key is not None and (key != "test_score" or scoring is not None):
            break  # all it needs: the rest of a long history is not read
    if key in (None, "score", "test_score"):
        return scoring.rsplit(".", 1)[-1] if key == "test_score" and scoring else None  # a scorer's function by name
    return key.removeprefix("test_") or None


def train_and_validation(record: Any) -> tuple[float, float] | None:
    """A fold record's mean training score and mean validation score over the folds that have both (the
    training score: the value named ``train_<name>`` beside ``test_<name>``, as ``TunedSearchCV`` with
    ``return_train_score=True`` records it, or ``train_<key>`` or ``train`` beside the reported ``key``); None
    without one. Where some validated folds have no training score (a scorer that failed on the training
    folds only), the validation mean is over the others, not the trial's value: see :func:`paired_folds`."""
    paired = _paired(record)
    if paired is None:
        return None
    pairs = paired[0]
    tr, val = (math.fsum(x) / len(pairs) for x in zip(*pairs, strict=True))
    return tr, val


def paired_folds(record: Any) -> tuple[int, int] | None:
    """The folds :func:`train_and_validation` averages, and the folds validated (what the trial's value
    averages); None where it gives nothing."""
    paired = _paired(record)
    return None if paired is None else (len(paired[0]), paired[1])


def _paired(record: Any) -> tuple[list[tuple[float, float]], int] | None:
    """A fold record's (training, validation) scores of the folds that have both, and how many folds have a
    validation score; None without a training score or a fold that has both."""
    if not is_summary(record) or not isinstance(record.get("key", "score"), str):
        return None
    key, scores = record.get("key", "score"), stored_scores(record)
    names = ["train_" + key.removeprefix("test_") if key.startswith("test_") else "train_" + key, "train"]
    train = next((scores[n] for n in names if n in scores), None)
    if key not in scores or train is None:
        return None
    validation = list(map(_stored_number, scores[key]))
    pairs = [(a, b) for a, b in zip(map(_stored_number, train), validation, strict=False)
             if a is not None and b is not None]
    return (pairs, sum(v is not None for v in validation)) if pairs else None


def _stored_number(value: Any) -> float | None:
    """A stored fold score as a finite float; another writer's text or boolean as None."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return _finite(value) if ok else None


def _finite(v: Any) -> float | None:
    """A number as stored (JSON): NaN and infinities become None."""
    f = float(v)
    return f if math.isfinite(f) else None


# -- racing folds against the best configuration ------------------------------------------------------


class FoldPruner(Pruner):
    """Fold racing (``pruner="folds"``): stop a configuration after fold k when its mean
    over folds 1..k is worse than the best finished configuration's mean over the
    same k folds (by more than ``margin``). The best is the one ``study.best_trial``
    would name among them: finished configurations tied on the mean are ranked by
    their running means, read from the last fold backwards (:func:`tunesmith.trial.tie_key`).

    Every trial must run the same folds in the same order (as :func:`cross_validate`
    with a fixed list of folds, and ``TunedSearchCV``, do): the comparison is then
    paired, fold by fold, so how hard a fold is cancels out. The median rule keeps
    anything better than the middle of the others; racing keeps only what is still
    level with the best, so most configurations stop after one or two folds
    (benchmarks/sklearn.md). The price: a configuration that is behind on its first
    folds but would have ended ahead is stopped; with folds of a few hundred
    samples such differences are mostly noise (the same benchmark, 10 seeds: 0.39
    of the fits at 0.0013 lower test score, standard error 0.0017; on test sets of
    thousands the forest and the boosting lost 0.0027 each).

    Args:
        margin: how far behind (in score units, e.g. 0.01 accuracy) a configuration
            may be on its first folds and still go on. 0: only ties go on.
        spread: how many standard errors of the best's fold scores (their standard
            deviation over its folds, divided by the square root of k) a configuration
            may be behind after k folds, on top of ``margin``: a tolerance that follows
            how much the folds disagree. 0: none.
        n_startup_trials: never stop before this many trials completed every fold.
        ties: stop a configuration whose first k fold scores, k >= ``ties``, equal a
            finished configuration's, fold by fold: the same scores on several folds
            usually mean the same predictions, so it would end where that one ended,
            which is not ahead of the best (ties go to the configuration that finished
            first). 0: never (a configuration level with the best runs on). A study
            stored before this setting existed reopens with 0, the rule it was made with.

    A configuration at the last fold (no finished one went further) is never stopped:
    it has run every fold, and its mean is what the best is chosen by.
    """

    name = "folds"
    reads = REPORTED_STATES  # it compares with complete trials: a queue adds nothing to read
    # most configurations stop after a fold or two and TPE counts only complete ones, so it
    # would draw quasi-random points all along; racing was benchmarked with "bayes"
    auto_tpe = False
    stored_before = {"ties": 0}  # noqa: RUF012 (a study stored before ties existed ran every tie to the end)

    def __init__(self, *, margin: float = 0.0, spread: float = 0.0, n_startup_trials: int = 1,
                 ties: int = 2) -> None:
        for name, x, unit in (("margin", margin, "score units"), ("spread", spread, "standard errors")):
            if (v := finite_float(x)) is None or v < 0:  # text, a bool, NaN, an infinity, 10**400: refused
                raise ValueError(f"{name} must be a number >= 0 ({unit}), got {x!r}")
        self.margin = float(margin)
        self.spread = float(spread)
        self.n_startup_trials = check_int("n_startup_trials", n_startup_trials, 1)
        self.ties = check_int("ties", ties, 0)

    def decide(self, trial: FrozenTrial, trials: Sequence[FrozenTrial], direction: Direction) -> Decision:
        step = trial.last_step
        if step is None:
            return Decision.CONTINUE
        sign = direction.sign()
        done = [
            t for t in trials
            if t.number != trial.number and t.state is TrialState.COMPLETE and t.value is not None
            and math.isfinite(t.value) and math.isfinite(t.intermediate.get(step, math.nan))
        ]  # fmt: skip
        if len(done) < self.n_startup_trials:
            return Decision.CONTINUE
        if not any((t.last_step or 0) > step for t in done):
            # the last fold: a configuration that has run every fold is never stopped (its
            # mean is complete; the best is chosen among such means), as with ASHA
            return Decision.CONTINUE
        if self.ties and step >= self.ties and any(_same_folds(trial, t, step) for t in done):
            return Decision.PRUNE
        # the incumbent is the trial the study names best among these (ties ranked by their reports,
        # as best_trial ranks them): which configurations stop depends on it
        if (best := best_of(done, direction)) is None:
            return Decision.CONTINUE
        mine, theirs = sign * trial.intermediate[step], sign * best.intermediate[step]
        tolerance = self.margin + (self.spread * _fold_sd(best) / math.sqrt(step) if self.spread else 0.0)
        return Decision.PRUNE if mine > theirs + tolerance else Decision.CONTINUE

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "margin": self.margin, "spread": self.spread,
                "n_startup_trials": self.n_startup_trials, "ties": self.ties}


def refuse_racing(trial: Any, what: str, unit: str, fix: str) -> None:
    """A ValueError when ``trial``'s study races folds (``pruner="folds"``) while ``what`` reports
    a value per ``unit`` (an epoch, a boosting round): racing reads step k as the mean over folds
    1..k, so it stopped every trial behind the best one's first ``unit``, without a word. ``fix``
    is the first way out, ending in "or" (the second: another pruner)."""
    if isinstance(getattr(getattr(trial, "study", None), "pruner", None), FoldPruner):
        raise ValueError(f"the study's pruner is fold racing (pruner='folds'), which compares the mean over folds "
                         f"1..k, but {what} reports a value per {unit}: a trial behind the best one's first {unit} "
                         f"would be stopped there. {fix} create the study with another pruner (pruner='asha', 'median' "
                         "or 'hyperband')")


def _same_folds(trial: FrozenTrial, other: FrozenTrial, step: int) -> bool:
    """Whether ``trial``'s first ``step`` fold scores equal ``other``'s, fold by fold (their
    running means are equal at every step up to ``step``). Relative only: scores of any scale
    (a squared error of 1e-13) tie only when equal, up to a storage's last digit."""
    return all(
        k in other.intermediate and k in trial.intermediate
        and math.isclose(trial.intermediate[k], other.intermediate[k], rel_tol=1e-12)
        for k in range(1, step + 1)
    )


def _fold_sd(trial: FrozenTrial) -> float:
    """The standard deviation of a finished trial's fold scores, recovered from its
    running means (step k reports the mean over folds 1..k); 0 with fewer than 2 folds."""
    steps = sorted(trial.intermediate)
    if len(steps) < 2 or steps != list(range(1, len(steps) + 1)):
        return 0.0
    means = [trial.intermediate[k] for k in steps]
    folds = [means[0]] + [k * means[k - 1] - (k - 1) * means[k - 2] for k in steps[1:]]
    return statistics.stdev(folds) if all(math.isfinite(f) for f in folds) else 0.0


register("folds", FoldPruner)

__all__ = ["Fold", "FoldPruner", "cross_validate", "grouped", "kfold", "split", "stratified", "summary", "time_series"]
