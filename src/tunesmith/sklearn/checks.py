"""What a search refuses before it runs: the arguments of other searches, spelt otherwise here,
and resuming a stored study with another estimator, scoring or space."""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Iterable, Mapping
from typing import Any

from ..cv import CV_ATTR, SETUP_ATTR, is_summary
from ..study import Study
from .space import SearchSpace

#: estimator parameters that change how fast, not what, a fit computes: a resume may change them
HOW_FAST = ("n_jobs", "verbose", "memory", "copy", "copy_X", "warm_start")

_SPACE = "pass the space as the second argument (space=): a dict, a list of dicts or a ts.Space"
_RACING = "pass pruner='folds': fold racing stops a configuration behind the best one after its first folds"
#: the arguments of GridSearchCV, RandomizedSearchCV, HalvingRandomSearchCV, skopt's BayesSearchCV and
#: Optuna's OptunaSearchCV that TunedSearchCV spells otherwise (or needs not), and what to write instead
PEER_ARGS = {
    "param_grid": _SPACE, "param_distributions": _SPACE, "search_spaces": _SPACE,
    "n_iter": "write n_trials=<the number of configurations to evaluate>",
    "n_candidates": "write n_trials=<the number of configurations to evaluate>",
    "pre_dispatch": "leave it out: configurations are dispatched one at a time",
    "n_points": "leave it out: with a pruner, n_jobs runs configurations in parallel",
    "optimizer_kwargs": "pass sampler= ('auto', 'bayes', 'tpe', 'random', ... or a dict of settings)",
    "fit_params": "pass them to fit: search.fit(X, y, **fit_params)",
    "enable_pruning": _RACING, "factor": _RACING, "resource": _RACING, "min_resources": _RACING,
    "max_resources": _RACING, "aggressive_elimination": _RACING,
    "study": "pass storage= and name= (fitting again resumes that study)",
    "max_iter": "leave it out, or search it as a parameter of the estimator",
    "subsample": "leave it out: every fold uses all of its training rows",
    "callbacks": "leave it out, or use search.study_ after fit",
    "catch": "pass error_score= (a number: a fold whose fit raises scores it; 'raise': the error stops fit)",
    "iid": "leave it out: scikit-learn removed it; the mean over folds is unweighted",
}
_DIRECTION = ("leave it out: the search maximizes the score, as scikit-learn's searches do; for a loss or an error "
              "pass its negated scorer (scoring='neg_log_loss', 'neg_mean_squared_error', or make_scorer(fn, "
              "greater_is_better=False))")
#: the arguments of ts.Study and study.optimize (and Ray Tune's) that TunedSearchCV spells otherwise
STUDY_ARGS = {
    "seed": "write random_state=<the sampler's seed>", "direction": _DIRECTION, "mode": _DIRECTION,
    "greater_is_better": _DIRECTION, "metric": "pass scoring= (a scikit-learn scorer name, a callable, or a list)",
    "show_progress": "pass verbose=1 (a progress bar and tunesmith's info lines)",
    "num_samples": "write n_trials=<the number of configurations to evaluate>",
}


class PeerArgs:
    """A base that refuses a peer's argument (``n_iter``, ``param_distributions``, ...) by saying
    what to write instead, and a misspelt one with the closest name, before ``__init__`` sees them
    (a base, not the class itself, so that ``inspect.signature`` still reads ``__init__``)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        valid = set(inspect.signature(cls.__init__).parameters) - {"self"}
        for name in kwargs.keys() - valid:
            if name in PEER_ARGS:
                raise TypeError(f"{cls.__name__} takes no {name}= (an argument of other searches): {PEER_ARGS[name]}")
            if name in STUDY_ARGS:
                raise TypeError(f"{cls.__name__} takes no {name}= (an argument of ts.Study, optimize or Ray Tune): "
                                f"{STUDY_ARGS[name]}")
            close = difflib.get_close_matches(name, sorted(valid), n=1)
            hint = f"; did you mean {close[0]}=?" if close else ""
            raise TypeError(f"{cls.__name__} got an unexpected keyword argument {name!r}{hint}")
        return super().__new__(cls)


def space_change(old: Any, new: Any) -> str:
    """The parameters that differ between two spaces, as 'name: before -> after'."""
    a, b = old.to_dict(), new.to_dict()
    return "; ".join(f"{k}: {a.get(k, '-')} -> {b.get(k, '-')}" for k in sorted(a.keys() | b.keys())
                     if a.get(k) != b.get(k))


def same_setup(
    study: Study, recorded: Iterable[Mapping[str, Any]], estimator: Any, search: SearchSpace, scoring: Any
) -> dict[str, Any]:
    """The estimator and scoring a study that outlives the fit is searched with. Resuming a study
    searched with another estimator, other fixed parameters or another scoring (as ``recorded`` by
    its trials or its first fit) is refused, naming what differs: its scores would not be this
    search's (and the best would be refitted here)."""
    setup = {"estimator": type(estimator).__qualname__, "scoring": describe(scoring),
             "params": fixed_params(estimator, set(search.names.values()))}
    for seen in (marks.get(SETUP_ATTR) for marks in recorded):
        if isinstance(seen, Mapping) and seen != setup:
            changed = [f"{k}: {seen.get(k)} -> {setup[k]}" for k in ("estimator", "scoring") if seen.get(k) != setup[k]]
            stored = seen.get("params")  # another writer's: anything
            old, new = dict(stored) if isinstance(stored, Mapping) else {}, setup["params"]
            changed += [f"{k}: {old.get(k, '-')} -> {new.get(k, '-')}" for k in sorted(old.keys() | new.keys())
                        if old.get(k) != new.get(k)]
            raise ValueError(
                f"study {study.name!r} in {study.storage.display_url} was searched with another estimator or "
                f"scoring ({'; '.join(changed[:5])}); a search resumes only with the same estimator, fixed "
                "parameters and scoring. For a new search give another name"
            )
    return setup


#: the key of a search claim naming the fold score its fit records as values (``test_<refit's scorer>``)
VALUE_KEY = "value_key"


def same_value(study: Study, metric: str, claims: Iterable[Mapping[str, Any]] = (), *, refit: Any = None) -> None:
    """Refuse to resume ``study`` where its trials' values are another scorer's than ``metric`` (``refit``'s of
    several scorers, "score" for one), or a fit running there records another's (its search claim among
    ``claims``, :data:`VALUE_KEY`): the scorings match, but ``refit`` changed, and this fit's values would be
    ranked against the other fits' as if they were one score. ``refit``: as the user passed it (named so)."""
    keys = {t.attrs[CV_ATTR]["key"] for t in study.trials
            if is_summary(t.attrs.get(CV_ATTR)) and isinstance(t.attrs[CV_ATTR].get("key"), str)}
    keys |= {c[VALUE_KEY] for c in claims if isinstance(c.get(VALUE_KEY), str) and c[VALUE_KEY].startswith("test_")}
    other = sorted(k.removeprefix("test_") for k in keys - {f"test_{metric}"})
    if other:
        raise ValueError(
            f"study {study.name!r} in {study.storage.display_url} holds values of the scorer {other[0]!r}, and this "
            f"search's are {metric!r}'s ({refit_words(metric if refit is None else refit)}): ranked together they "
            "would mix two scores. Pass "
            f"refit={other[0]!r} to resume it, or another name= for a new search"
        )


def refit_words(refit: Any) -> str:
    """``refit`` as the user wrote it: a scorer's name (``refit='f1'``), or False or a callable, which optimize
    the first scorer (``refit=False optimizes the first scorer``): never a name they did not pass."""
    if isinstance(refit, str):
        return f"refit={refit!r}"
    given = getattr(refit, "__name__", type(refit).__name__) if callable(refit) else repr(refit)
    return f"refit={given} optimizes the first scorer"


def fixed_params(estimator: Any, searched: set[str]) -> dict[str, str]:
    """The estimator's parameters that the search does not set, as text (an estimator by its class)."""
    if not hasattr(estimator, "get_params"):
        return {}
    out = {}
    for name, value in estimator.get_params(deep=True).items():
        parts = name.split("__")
        if parts[-1] in HOW_FAST or any("__".join(parts[:i]) in searched for i in range(1, len(parts) + 1)):
            continue
        out[name] = str(describe(value))
    return out


def describe(value: Any) -> Any:
    """A plain, stable description: plain values as themselves, lists and dicts item by item,
    functions and scorers by name, other objects by their class (never a repr with an address)."""
    if isinstance(value, (str, int, float, bool, type(None))):
        return value if not isinstance(value, float) or math.isfinite(value) else repr(value)
    if isinstance(value, (list, tuple)):
        return [describe(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): describe(v) for k, v in value.items()}
    func = getattr(value, "_score_func", value)  # a scorer made by make_scorer: its metric
    name = getattr(func, "__qualname__", None)
    return f"{getattr(func, '__module__', '')}.{name}" if isinstance(name, str) else type(value).__qualname__
