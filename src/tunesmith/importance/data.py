"""Trials to a design matrix: which trials count, and how each parameter is measured.

Notation (used by both methods):

- ``X``: array (n, D), one row per complete trial, one column per free parameter,
  on the parameter's unit scale (log parameters on their log scale, integers at
  their position, a categorical's choice ``i`` of ``k`` at ``(i + 0.5) / k``). Where a
  conditional parameter is inactive the objective does not depend on it, so its
  entry is drawn at random from its reference measure: it then carries nothing, and
  its parent (whose value switched it off) carries the difference it makes. A parameter
  inactive in every trial gets one value throughout (importance 0).
- ``y``: array (n,), the objective as a loss (``sign * value``: smaller is better).
- the reference measure of column ``d``: uniform on [0, 1] for numeric parameters,
  uniform over the ``k`` choices for a categorical. Importances are fractions of variance under this
  measure (fANOVA) or divergences from it (PED-ANOVA).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..cv import CV_ATTR, is_search_trial, is_summary
from ..space import Param, Space
from ..space.params import did_you_mean_each, plural
from ..trial import Direction, FrozenTrial, TrialState, one_line

ABSENT = object()  # a parameter missing from a trial (inactive)


@dataclass(frozen=True)
class Column:
    """One parameter's column: its name, its choices (0 for numeric), the share of
    trials in which it was inactive (0 for an unconditional parameter; then drawn), and
    for a numeric parameter with a step its number of levels (each at the centre of its
    bin, as a categorical's choices; 0 for a continuous one or a log-scaled integer)."""

    name: str
    choices: int
    inactive: float
    levels: int = 0

    def atoms(self) -> np.ndarray:
        """Positions of a categorical's choices on the unit scale."""
        return (np.arange(self.choices) + 0.5) / self.choices

    def measure(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Reference measure of the intervals (lo, hi] (arrays of the same shape)."""
        if self.choices:
            a = self.atoms()
            inside = ((a > lo[..., None]) & (a <= hi[..., None])).sum(axis=-1) / self.choices
        else:
            inside = np.clip(np.minimum(hi, 1.0) - np.maximum(lo, 0.0), 0.0, None)
        return inside.astype(float)

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` values from the reference measure."""
        return self.atoms()[rng.integers(0, self.choices, n)] if self.choices else rng.random(n)


@dataclass(frozen=True)
class Design:
    """What the methods read: X, y (a loss), the columns, what was left out, and the pairs of
    columns (by index, the smaller first) that no trial has active together: parameters of two
    branches of a conditional space, whose interaction is zero by construction."""

    X: np.ndarray
    y: np.ndarray
    columns: tuple[Column, ...]
    left_out: dict[str, int]
    apart: frozenset[tuple[int, int]] = frozenset()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


#: the complete trials either method needs: with fewer, fANOVA's forest splits on what few values there
#: are (fractions of any size, bands of about +-0.5) and PED-ANOVA's good set is two trials
MIN_TRIALS = 10


def design(
    trials: Sequence[FrozenTrial],
    space: Space,
    *,
    direction: Direction | str = Direction.MINIMIZE,
    params: Sequence[str] | None = None,
    min_trials: int = MIN_TRIALS,
    seed: int = 0,
) -> Design:
    """The complete trials as X and y.

    Only complete trials count: a failed trial has no value, and a pruned trial's
    value is its last report at a smaller budget, not comparable with the others.
    Trials whose parameters do not fit ``space`` (another space's trials) are left
    out too; ``left_out`` counts each reason.
    """
    names = param_names(space, params)
    sign = Direction.parse(direction).sign()
    left_out: Counter[str] = Counter()
    done: list[FrozenTrial] = []
    for t in trials:
        if t.state is TrialState.COMPLETE:
            done.append(t)
        else:
            left_out[t.state.value] += 1
    params_of = [t.params for t in done]
    cols = [encode_column(space[n], [p.get(n, ABSENT) for p in params_of]) for n in names]
    bad = _unknown_names(space, params_of)
    for n, (u, wrong) in zip(names, cols, strict=True):
        bad |= wrong | (np.isnan(u) & (not space[n].when))  # an unconditional parameter is never absent
    n_bad = int(bad.sum())
    if n_bad:
        left_out["outside the space"] += n_bad
    if len(done) - n_bad < min_trials:
        more = min_trials - (len(done) - n_bad)
        left = left_out_text(left_out)
        raise ValueError(
            f"importance needs at least {min_trials} complete trials, got {len(done) - n_bad}"
            f"{f' (left out: {left})' if left else ''}; {_how_to_add(trials, more, space)} and ask again"
        )
    X = np.stack([u for u, _ in cols], axis=1)
    y = sign * np.fromiter((t.value for t in done), float, len(done))
    if n_bad:
        X, y = X[~bad], y[~bad]
    columns = tuple(_column(space, n, X[:, j]) for j, n in enumerate(names))
    apart = _apart(X, columns)
    _fill_inactive(X, columns, np.random.default_rng(seed))
    return Design(X, y, columns, dict(left_out), apart)


def _fill_inactive(X: np.ndarray, columns: tuple[Column, ...], rng: np.random.Generator) -> None:
    """Each conditional column's inactive entries (NaN) drawn from its reference measure, in place;
    a column inactive in every row gets one value throughout: the objective never depended on it,
    and values drawn at random would let the forest split on them (with few trials, first)."""
    for j, c in enumerate(columns):
        if c.inactive == 1.0:
            X[:, j] = c.draw(rng, 1)[0]
        elif c.inactive:
            holes = np.isnan(X[:, j])
            X[holes, j] = c.draw(rng, int(holes.sum()))


def _apart(X: np.ndarray, columns: tuple[Column, ...]) -> frozenset[tuple[int, int]]:
    """The pairs of conditional columns that are never active (not NaN) in the same row."""
    cond = np.array([j for j, c in enumerate(columns) if c.inactive], dtype=int)
    active = (~np.isnan(X[:, cond])).astype(float)
    met = active.T @ active  # rows where both are active, by pair
    i, k = np.nonzero(np.triu(met == 0, 1))
    return frozenset(zip(cond[i].tolist(), cond[k].tolist(), strict=True))


def left_out_text(left_out: Mapping[str, int]) -> str:
    """The trials importance left out, by why: "1 failed, 2 pruned" ("" for none)."""
    return ", ".join(f"{n} {why}" for why, n in left_out.items())


def _how_to_add(trials: Sequence[FrozenTrial], more: int, space: Space) -> str:
    """How to record ``more`` trials: a study of hypertune's steps (``attrs["outer_step"]``, failed ones
    too) has no objective, nor has a TunedSearchCV's (it fits again, or has run its whole space)."""
    failed = [t for t in trials if t.state is TrialState.FAILED]
    if failed and not any(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.PAUSED) for t in trials):
        return _all_failed(trials, failed, more)
    if any("outer_step" in t.attrs for t in trials):
        return (f"record at least {more} more outer steps (hypertune(..., append=True) records another run's "
                "steps after these)")
    runs, advice = _runs_for(trials, more)
    if any(is_search_trial(t) for t in trials):  # TunedSearchCV's: no objective to optimize
        size = space.cardinality
        if len({repr(sorted(t.params.items())) for t in trials}) >= size:  # each configuration once: no more to run
            return (f"the search evaluated each of the {int(size)} configurations of its space: give its parameters "
                    "more values (or distributions, with n_trials=...), fit it again")
        total = len(trials) + runs  # n_trials=None (the whole grid) has no n_trials to add to
        return (f"{advice} (fit the search again with n_trials={total}: search.set_params(n_trials={total}).fit(X, "
                "y); with its storage= and name= it resumes, the configurations it evaluated counting toward "
                "n_trials)")
    return (f"{advice} (study.optimize(objective, n_trials={runs}), tunesmith run STUDY.yaml "
            f"--n-trials {runs}, or another worker on the study)")


def _all_failed(trials: Sequence[FrozenTrial], failed: Sequence[FrozenTrial], more: int) -> str:
    """The advice where every finished trial failed: more trials fail alike ("run at least 10 more" was all
    it said), so the objective's error comes first; the last one's first line, as ``tunesmith show`` lists it.
    A TunedSearchCV has no objective ("fix what fails in the objective" was all it said): its estimator's fit to
    fix, and once fixed a search of another name, as the stored one refuses a changed estimator. Nor has a study
    of hypertune's steps: its training to fix, then more outer steps recorded (``append=True``)."""
    last = max(failed, key=lambda t: t.number)
    error = one_line((last.error or "").strip().split("\n")[0] or "no error recorded", 200)
    which = "the one finished trial" if len(failed) == 1 else f"every one of the {len(failed)} finished trials"
    what, then = "the objective", f"run at least {more} more"
    if any("outer_step" in t.attrs for t in trials):  # hypertune's steps: no objective, and its run records more
        what, then = "the training", (f"record at least {more} more outer steps (hypertune(..., append=True) records "
                                      "another run's steps after these)")
    elif any(is_search_trial(t) for t in trials):  # the fixed search is another: a stored one resumes only unchanged
        what, then = "the estimator's fit", (f"fit the search again with n_trials={more} or more under another name= "
                                              "(a stored search resumes only with the same estimator, data and space)")
    return (f"{which} failed (the last, #{last.number}: {error}): fix what fails in {what} (tunesmith show lists "
            f"each trial's error), then {then}")


def _runs_for(trials: Sequence[FrozenTrial], more: int) -> tuple[int, str]:
    """How many trials give ``more`` complete ones at the rate the pruner let trials complete (it said "8 more"
    where ASHA had completed 2 of 24: 8 more trials gave about one), and the advice with that rate. The rate of
    the later half of the trials it decided where that is lower: a pruner with rungs (ASHA) lets fewer complete
    as its rungs fill ("80 more" at 2 of the first 20 gave 3 complete trials, not 8)."""
    stops = (TrialState.PRUNED, TrialState.PAUSED)  # ASHA(pause=True) stops as many (it said "2 more" at 8 of 33)
    decided = [t for t in sorted(trials, key=lambda t: t.number) if t.state is TrialState.COMPLETE or t.state in stops]
    complete = sum(t.state is TrialState.COMPLETE for t in decided)
    pruned = sum(t.state is TrialState.PRUNED for t in decided)
    stopped = len(decided) - complete
    if not stopped:
        return more, f"run at least {more} more"
    how = "stopped or paused" if pruned and stopped > pruned else "stopped" if pruned else "paused"
    if not complete:
        return more, (f"run at least {more} more complete ones (the pruner {how} {plural(stopped, 'trial')} and let "
                      "none complete: give it a later first rung, or fewer rungs)")
    later = decided[len(decided) // 2:]
    done_later = sum(t.state is TrialState.COMPLETE for t in later)
    # a pruner on folds (fold racing) has no rungs: it compares with the best configurations found so far
    folds = any(is_summary(t.attrs.get(CV_ATTR)) for t in decided)
    falls = f"and lets fewer complete as {'better configurations are found' if folds else 'its rungs fill'}"
    if 0 < done_later * len(decided) < complete * len(later):  # fewer complete now than at first
        runs = math.ceil(more * len(later) / done_later)
        return runs, (f"run about {runs} more, as {done_later} of the last {len(later)} completed ({complete} of "
                      f"{len(decided)} in all: the pruner {how} the others, {falls})")
    runs = math.ceil(more * len(decided) / complete)
    if not done_later:
        return runs, (f"run more than {runs} more, as {complete} of {len(decided)} completed and none of the last "
                      f"{len(later)} (the pruner {how} the others, {falls})")
    return runs, f"run about {runs} more, as {complete} of {len(decided)} completed (the pruner {how} the others)"


def _unknown_names(space: Space, params_of: list[Mapping[str, Any]]) -> np.ndarray:
    """Which trials name a parameter the space does not have (another space's trials)."""
    known = set(space)
    if known.issuperset(set().union(*params_of)):  # the common case: one pass in C
        return np.zeros(len(params_of), dtype=bool)
    return np.array([not known.issuperset(p) for p in params_of], dtype=bool)


def encode_column(p: Param, values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """One parameter's values (:data:`ABSENT` where inactive) on its unit scale, as
    :meth:`Param.to_unit` (NaN where absent),
    for many trials at once, and which values do not fit it."""
    present = np.array([v is not ABSENT for v in values], dtype=bool)
    if p.kind == "categorical":
        return _encode_choices(p, values, present)
    x, wrong = _numbers(values)
    lo, hi = float(p.low), float(p.high)  # type: ignore[attr-defined]
    slack = 1e-9 * max(1.0, abs(lo), abs(hi))
    wrong |= present & ~wrong & ((x < lo - slack) | (x > hi + slack))
    return _unit(p, x, lo, hi), wrong


def _numbers(values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Values as floats (NaN where absent), and which are not numbers."""
    try:  # the common case, all numbers: one conversion
        return np.array([math.nan if v is ABSENT else v for v in values], dtype=float), np.zeros(len(values), dtype=bool)
    except (TypeError, ValueError, OverflowError):
        pass
    x = np.full(len(values), np.nan)
    wrong = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values):
        if v is not ABSENT:
            if isinstance(v, float) or (isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**1023):
                x[i] = float(v)
            else:
                wrong[i] = True
    return x, wrong


def _unit(p: Param, x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if p.kind == "int" and getattr(p, "log", False):  # bins of equal log width around each integer
        a, b = np.log(lo - 0.5), np.log(hi + 0.5)
        return np.clip((np.log(np.round(x)) - a) / (b - a), 0.0, 1.0)
    if math.isfinite(p.n_values):  # a step: the middle of its level's bin
        step = float(p.step)  # type: ignore[attr-defined]
        return (np.round((x - lo) / step) + 0.5) / p.n_values
    if getattr(p, "log", False):
        return np.clip((np.log(x) - math.log(lo)) / (math.log(hi) - math.log(lo)), 0.0, 1.0)
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


def _encode_choices(p: Param, values: list[Any], present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    try:  # the common case, hashable values: each distinct value placed once
        keys = [(v.__class__, v) for v in values]
        place = {key: _choice_unit(p, key[1]) for key in set(keys)}
    except TypeError:
        return _encode_choices_slowly(p, values, present)
    x = np.fromiter((place[key] for key in keys), float, len(keys))
    x[~present] = np.nan
    return x, present & np.isnan(x)


def _choice_unit(p: Param, v: Any) -> float:
    """A choice's position on the unit scale, NaN for a value that is not a choice."""
    if v is ABSENT:
        return math.nan
    try:
        return (p.index(v) + 0.5) / int(p.n_values)  # type: ignore[attr-defined]
    except (ValueError, TypeError):
        return math.nan


def _encode_choices_slowly(p: Param, values: list[Any], present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.full(len(values), np.nan)
    wrong = np.zeros(len(values), dtype=bool)
    k = int(p.n_values)
    seen: dict[Any, float] = {}  # (type, value) -> position: p.index once per distinct value
    for i, v in enumerate(values):
        if present[i]:
            key = (type(v), v) if v.__hash__ is not None else None
            if key is None or key not in seen:
                try:
                    u = (p.index(v) + 0.5) / k  # type: ignore[attr-defined]
                except (ValueError, TypeError):
                    u = math.nan
                if key is not None:
                    seen[key] = u
            else:
                u = seen[key]
            x[i] = u
            wrong[i] = math.isnan(u)
    return x, wrong


def param_names(space: Space, params: Sequence[str] | None) -> tuple[str, ...]:
    """The free parameters named by ``params`` (each once), or every one; a clear error otherwise."""
    if params is None:
        names = tuple(space.free)
        if not names:
            raise ValueError("importance needs at least one free (searched) parameter; the space has none")
        return names
    if isinstance(params, str):
        raise TypeError(f"params is a list of parameter names, got the string {params!r}; write params=[{params!r}]")
    names = tuple(dict.fromkeys(params))  # a name given twice is one column, not two that share its effect
    unknown = [p for p in names if p not in space.free]
    if unknown:
        raise ValueError(f"params {unknown} are not free parameters of the space"
                         f"{did_you_mean_each(unknown, list(space.free))}; choose from {list(space.free)}")
    if not names:
        raise ValueError(f"params names no parameter; name at least one of {list(space.free)} (or None for all)")
    return names


def _column(space: Space, name: str, values: np.ndarray) -> Column:
    p = space[name]
    choices = int(p.n_values) if p.kind == "categorical" else 0
    stepped = not choices and math.isfinite(p.n_values) and not getattr(p, "log", False)
    return Column(name, choices, float(np.mean(np.isnan(values))), int(p.n_values) if stepped else 0)
