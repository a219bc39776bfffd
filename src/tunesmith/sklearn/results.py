"""``cv_results_`` from a study's trials, with scikit-learn's keys.

Every finished trial is a row. A pruned trial ran only its first folds: the
folds it did not run are NaN, its mean is over the folds it ran, and it ranks
after every complete trial (failed ones rank last), so ``rank_test_* == 1`` is
always a configuration that ran every fold. A failed trial (a fold whose fit or
scorer failed scored a NaN ``error_score``) has a NaN mean and std, as in scikit-learn,
even where its earlier folds scored. A scorer that returns ``inf`` or ``-inf`` fails the
trial too (a study's value is finite), but its row is scikit-learn's: the infinite fold
scores, their mean (``inf``, ``-inf``, or NaN for both), a NaN std, ranked by that mean.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..cv import CV_ATTR, stored_scores
from ..trial import FrozenTrial, TrialState, finite_float
from .space import SearchSpace

_STATE_ORDER = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1, TrialState.FAILED: 2}

#: the fold record's key holding a fold's infinite scores (JSON text), which the record stores as None
INFINITE = "infinite"


def cv_results(
    trials: Sequence[FrozenTrial],
    search: SearchSpace,
    metrics: Sequence[str],
    n_splits: int,
    *,
    train_score: bool,
) -> dict[str, Any]:
    """The ``cv_results_`` dict of the finished ``trials`` (in trial order)."""
    # each configuration's names in order, as scikit-learn's ParameterGrid and ParameterSampler give them
    params = [dict(sorted(search.decode(t.params).items())) for t in trials]
    out: dict[str, Any] = {}
    for timing in ("fit_time", "score_time"):
        _mean_std(out, timing, _table(trials, timing, n_splits))
    out.update(_param_columns(params))
    out["params"] = params
    splits = ("test", "train") if train_score else ("test",)
    failed = np.array([t.state is TrialState.FAILED for t in trials], dtype=bool)
    for m in metrics:  # scikit-learn's order: each scorer's test columns, then its train columns
        for split in splits:
            table = _table(trials, f"{split}_{m}", n_splits)
            for k in range(n_splits):
                out[f"split{k}_{split}_{m}"] = table[:, k]
            _mean_std(out, f"{split}_{m}", table)
            # a fold scored a NaN error_score (or NaN): NaN, as scikit-learn averages it; a failed trial
            # whose every fold scored (infinite test scores) keeps its means and stds, as scikit-learn's
            unscored = failed & np.isnan(table).any(axis=1)
            for stat in ("mean", "std"):
                out[f"{stat}_{split}_{m}"][unscored] = np.nan
            if split == "test":
                # a row with an infinite mean ran every fold: ranked by it, as scikit-learn ranks
                states = [TrialState.COMPLETE if t.state is TrialState.FAILED and np.isinf(mean) else t.state
                          for t, mean in zip(trials, out[f"mean_test_{m}"], strict=True)]
                out[f"rank_test_{m}"] = rank(out[f"mean_test_{m}"], states)
    out["state"] = np.array([t.state.value for t in trials], dtype=object)
    out["trial_number"] = np.array([t.number for t in trials], dtype=int)
    return out


def fold_scores(t: Any) -> Mapping[str, Any]:
    """A trial's per-fold scores by name (``test_score``, ``error``...) as cross_validate
    recorded them; empty when it recorded none."""
    return stored_scores(t.attrs.get(CV_ATTR))


def _table(trials: Sequence[FrozenTrial], name: str, n_splits: int) -> np.ndarray:
    """Values by (trial, fold); folds a trial did not run are NaN."""
    table = np.full((len(trials), n_splits), np.nan)
    for i, t in enumerate(trials):
        values = fold_values(fold_scores(t), name)[:n_splits]
        table[i, : len(values)] = values
    return table


def fold_values(scores: Mapping[str, Any], name: str) -> list[float]:
    """The values ``name`` of a trial's fold record (:func:`fold_scores`), fold by fold: its infinite
    ones as they were (the record stores them as None), NaN where it holds no number (an int beyond a
    float's range too: JSON keeps another writer's ``10**400`` whole)."""
    marks = scores.get(INFINITE) or []
    values = scores.get(name) or []
    return [v if isinstance(v, float) else x if (x := finite_float(v)) is not None else
            _infinite(marks[k], name) if k < len(marks) and isinstance(marks[k], str) else np.nan
            for k, v in enumerate(values)]


def _infinite(marks: str, name: str) -> float:
    """A fold's infinite score ``name`` from its record's :data:`INFINITE` text; NaN when not there."""
    try:
        value = json.loads(marks).get(name)
    except (ValueError, AttributeError):  # not written by a search: no infinite score to read
        return np.nan
    return float(value) if isinstance(value, float) and np.isinf(value) else np.nan


def _mean_std(out: dict[str, Any], name: str, table: np.ndarray) -> None:
    ran = ~np.isnan(table)
    n = ran.sum(axis=1)
    filled = np.where(ran, table, 0.0)
    with np.errstate(invalid="ignore"):  # infinite folds: inf - inf is NaN (scikit-learn's std of them)
        mean = np.divide(filled.sum(axis=1), n, out=np.full(len(table), np.nan), where=n > 0)
        sq = np.where(ran, (table - mean[:, None]) ** 2, 0.0)
        std = np.sqrt(np.divide(sq.sum(axis=1), n, out=np.full(len(table), np.nan), where=n > 0))
    out[f"mean_{name}"], out[f"std_{name}"] = mean, std


def rank(means: np.ndarray, states: Sequence[TrialState]) -> np.ndarray:
    """1 = best; ties share the smaller rank (scikit-learn's ``method="min"``).
    Complete trials first, then pruned, then failed; NaN means last in their group."""
    keys = [(_STATE_ORDER.get(s, 3), np.inf if np.isnan(m) else -m) for s, m in zip(states, means, strict=True)]
    return np.array([1 + sum(other < key for other in keys) for key in keys], dtype=np.int32)


def _param_columns(params: Sequence[Mapping[str, Any]]) -> dict[str, np.ma.MaskedArray]:
    """``param_<name>``: a masked array, masked where a parameter is inactive, of the dtype
    scikit-learn's searches give it: the values' own (float64, int64, bool) when NumPy infers
    a one-dimensional non-string array from them, else object."""
    names: list[str] = []
    for p in params:
        names.extend(n for n in p if n not in names)
    out = {}
    for name in names:
        present = [(i, p[name]) for i, p in enumerate(params) if name in p]
        col = np.ma.MaskedArray(np.empty(len(params), dtype=_dtype([v for _, v in present])), mask=True)
        for i, value in present:
            col[i] = value
        out[f"param_{name}"] = col
    return out


def _dtype(values: list[Any]) -> np.dtype:
    """scikit-learn's rule (``_yield_masked_array_for_each_param``): strings, ragged
    sequences and sequences of sequences stay objects."""
    try:
        arr = np.array(values)
    except ValueError:
        return np.dtype(object)
    return arr.dtype if arr.dtype.kind != "U" and arr.ndim == 1 else np.dtype(object)
