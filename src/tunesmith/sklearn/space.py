"""The search spaces scikit-learn users write, as a :class:`~tunesmith.Space`.

* a list is a categorical (one value: a fixed parameter); values that are not
  plain JSON (estimators, functions), and lists with values equal across types
  (``max_features=[1, 1.0]``: one feature or all of them), are searched by a label
  a user recognises, stored in their place: an estimator's repr on one line
  (``"SVC(C=10)"``), a function's name, a value's repr (``"1.0"``); by their
  position in the list where two would read alike or one has no stable text (an
  object shown by its address);
* ``scipy.stats.loguniform(a, b)`` is ``Float(a, b, log=True)``,
  ``uniform(loc, scale)`` is ``Float(loc, loc + scale)``, ``randint(a, b)`` is
  ``Int(a, b - 1)`` (scipy's upper bound is exclusive);
* Optuna's ``FloatDistribution``, ``IntDistribution`` and ``CategoricalDistribution``
  (``OptunaSearchCV``) and skopt's ``Real``, ``Integer``, ``Categorical`` and
  ``(low, high, "log-uniform")`` (``BayesSearchCV``) are the matching tunesmith parameters;
* a tunesmith parameter (``ts.Float(...)``) is used as it is;
* a list of such dicts is a conditional space: a hidden parameter ``branch``
  picks one dict and only that dict's parameters are active.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from ..nested import nan_inside
from ..space import Categorical, Fixed, Float, Int, Param, Space
from ..space.params import _key_not_text

BRANCH = "branch"
_PLAIN = (str, int, float, bool, type(None))


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """A tunesmith space and the way back from its configurations to estimator parameters.

    ``names[key]`` is the estimator parameter of space parameter ``key``;
    ``objects[key]``, when present, lists the values a categorical of labels
    (``labels[key]``, in the same order) or of positions stands for.
    """

    space: Space
    names: Mapping[str, str]
    objects: Mapping[str, tuple[Any, ...]]
    labels: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    def decode(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The estimator parameters (``set_params`` keywords) of a configuration."""
        out: dict[str, Any] = {}
        for key, value in config.items():
            if key == BRANCH:
                continue
            values = self.objects.get(key)
            if values is None:
                out[self.names[key]] = _tuple(value)
            else:
                labels = self.labels.get(key)
                out[self.names[key]] = values[labels.index(value) if labels is not None else int(value)]
        return out


def as_search_space(spec: Any, *, labels: bool = True) -> SearchSpace:
    """Turn ``spec`` (a ``ts.Space``, a dict, or a list of dicts) into a :class:`SearchSpace`.
    ``labels=False``: objects by their position only (as a study stored before labels has them)."""
    if isinstance(spec, Space):
        return SearchSpace(spec, {n: n for n in spec}, {})
    if isinstance(spec, Mapping):
        return _branches([spec], labels)
    if isinstance(spec, Sequence) and not isinstance(spec, (str, bytes)) and not spec:
        raise ValueError(f"space={spec!r} is empty: give a dict of parameters to search, or a list of such dicts")
    if isinstance(spec, Sequence) and not isinstance(spec, (str, bytes)):
        if any(isinstance(s, tuple) and len(s) == 2 and isinstance(s[0], Mapping) for s in spec):  # dicts too
            raise TypeError("a list of (space, n_iter) pairs is skopt's BayesSearchCV's: pass the list of the dicts, "
                            "[space for space, _ in pairs], with n_trials= the sum of their n_iter (one budget over "
                            "the dicts: which dict is a parameter the sampler searches)")
        if not all(isinstance(s, Mapping) for s in spec):
            raise TypeError("a list of spaces must hold only dicts, e.g. [{'kernel': ['rbf'], 'gamma': [...]}, ...]")
        return _branches(list(spec), labels)
    raise TypeError(
        f"space must be a ts.Space, a dict of parameter -> values/distribution, or a list of such dicts; got {spec!r}"
    )


def _branches(specs: list[Mapping[str, Any]], labelled: bool) -> SearchSpace:
    if any(not s for s in specs):
        raise ValueError("a space dict is empty: list at least one parameter to search")
    params: dict[str, Param] = {}
    names: dict[str, str] = {}
    objects: dict[str, tuple[Any, ...]] = {}
    labels: dict[str, tuple[str, ...]] = {}
    single = len(specs) == 1
    if not single:
        params[BRANCH] = Categorical(list(range(len(specs))))
    for i, spec in enumerate(specs):
        for name, value in spec.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"parameter names must be non-empty strings, got {name!r}")
            key = name if single else f"{i}:{name}"
            param, values = to_param(name, value)
            shown = _labels(values) if labelled and values is not None else None
            if shown is not None:  # stored by label, not position: what tables, plots and show print
                param, labels[key] = (Categorical(list(shown)) if len(shown) > 1 else Fixed(shown[0])), shown
            if not single:
                param = _when(param, {BRANCH: [i]})
            params[key], names[key] = param, name
            if values is not None:
                objects[key] = values
    return SearchSpace(Space(params), names, objects, labels)


def _labels(values: Sequence[Any]) -> tuple[str, ...] | None:
    """Labels of a list's objects that a user recognises and that read the same in every process:
    None (search by position) where two read alike or one has no stable text (an address)."""
    from sklearn import config_context

    with config_context(print_changed_only=True):  # scikit-learn's default: the same whatever the caller set
        out = tuple(_label(v) for v in values)
    return out if len(set(out)) == len(out) and all(out) and not any(" at 0x" in t for t in out) else None


def _label(value: Any) -> str:
    """An estimator's repr (scikit-learn's: its changed parameters) on one line, a function's or
    class's name, a string as it is, any other value's repr (a NumPy number's as Python's)."""
    if isinstance(value, str):
        return value
    if (callable(value) or isinstance(value, type)) and not hasattr(value, "get_params"):
        name = getattr(value, "__qualname__", None)
        if isinstance(name, str):
            return name
    return " ".join(repr(_freeze(value) if _plain(value) else value).split())


def to_param(name: str, value: Any) -> tuple[Param, tuple[Any, ...] | None]:
    """One parameter from a list, a scipy.stats distribution or a tunesmith parameter;
    the second item lists the objects a positional categorical stands for."""
    if isinstance(value, Categorical) and not all(_plain(c) for c in value.choices):
        if value.when or value.prior is not None:  # positions would drop them
            raise TypeError(f"parameter {name!r}: a ts.Categorical holds plain values (stored as JSON); for "
                            f"estimators or other objects write a list: {name!r}: {list(value.choices)!r}")
        return to_param(name, list(value.choices))  # objects: searched by position, as a list of them is
    if isinstance(value, Fixed) and not value.when and _key_not_text(value.value) is not None:
        return to_param(name, [value.value])  # {0: 1, 1: 5} (a class_weight): by position, as in a list; JSON
    if isinstance(value, Param):  # would give its keys back as text, so a study's space refuses it
        return value, None
    if hasattr(value, "rvs") and hasattr(value, "dist"):
        return _from_distribution(name, value), None
    peer = _from_peer(name, value)
    if peer is not None:
        return peer
    if isinstance(value, (set, frozenset)):
        raise TypeError(f"parameter {name!r}: {value!r} is a set, which has no order; write a list: {sorted(value, key=str)!r}")
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) and not hasattr(value, "__array__"):
        raise TypeError(
            f"parameter {name!r}: {value!r} is neither a list of values nor a scipy.stats, Optuna or skopt distribution; "
            f"for a constant write {name!r}: [{value!r}]"
        )
    if getattr(value, "ndim", 1) != 1:  # as GridSearchCV refuses it: a row of a 2-D array is no value to set
        raise ValueError(f"parameter {name!r}: an array of values is one-dimensional, got one of shape "
                         f"{value.shape}; pass a 1-D array or a list (for a constant, [value])")
    choices = list(value)
    numbers = len(choices) == 2 and all(_is_number(c) for c in choices)
    if isinstance(value, tuple) and numbers:  # skopt's BayesSearchCV reads (low, high) as a range
        warnings.warn(
            f"parameter {name!r}: the tuple {value!r} is two choices, as in GridSearchCV (skopt reads it as a "
            f"range); for a range write loguniform{value!r} or ts.Float{value!r}, for two choices a list",
            UserWarning, stacklevel=4,
        )  # fmt: skip
    if not choices:
        raise ValueError(f"parameter {name!r}: the list of values is empty")
    plain = [_freeze(c) for c in choices] if all(_plain(c) for c in choices) else []
    if nan_inside(plain) is not None:  # np.nan (SimpleImputer's missing_values): never equal to itself, no choice
        plain = []
    twins = len(set(plain)) < len({(type(v), v) for v in plain})  # 1 and 1.0: different to scikit-learn
    if plain and not twins:
        return (Fixed(plain[0]) if len(plain) == 1 else Categorical(plain)), None
    return Categorical(list(range(len(choices)))) if len(choices) > 1 else Fixed(0), tuple(choices)


def _from_peer(name: str, value: Any) -> tuple[Param, tuple[Any, ...] | None] | None:
    """Optuna's distributions (``OptunaSearchCV``), skopt's dimensions and its
    ``(low, high, "log-uniform")`` shorthand (``BayesSearchCV``); None for anything else."""
    module, kind = type(value).__module__ or "", type(value).__name__
    if module.startswith("optuna.distributions") and kind in ("FloatDistribution", "IntDistribution"):
        step = {} if value.step is None or kind == "IntDistribution" and value.step == 1 else {"step": value.step}
        return (Float if kind == "FloatDistribution" else Int)(value.low, value.high, log=value.log, **step), None
    if module.startswith("skopt.space") and kind in ("Real", "Integer"):
        return (Float if kind == "Real" else Int)(value.low, value.high, log=value.prior == "log-uniform"), None
    if module.startswith("optuna.distributions") and kind == "CategoricalDistribution":
        return to_param(name, list(value.choices))
    if module.startswith("skopt.space") and kind == "Categorical":
        return to_param(name, list(value.categories))
    bounds = isinstance(value, tuple) and len(value) in (3, 4) and all(_is_number(b) for b in value[:2])
    if bounds and value[2] in ("uniform", "log-uniform"):  # ("a", "b", "uniform") stays three choices
        low, high = value[:2]
        integral = all(isinstance(b, int) and not isinstance(b, bool) for b in (low, high))
        return (Int if integral else Float)(low, high, log=value[2] == "log-uniform"), None
    return None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _call_args(dist: Any) -> str:
    """A frozen distribution's arguments as written: ``0.1, scale=0`` (keywords too, not only the positional ones)."""
    return ", ".join([*map(repr, dist.args), *(f"{k}={v!r}" for k, v in dist.kwds.items())])


def _from_distribution(name: str, dist: Any) -> Param:
    kind = dist.dist.name
    support = dist.support()
    low, high = (float(b) for b in support)
    if math.isnan(low) or math.isnan(high):  # scipy's own argument check failed: uniform(0.1, 0), loguniform(1, 1)
        raise ValueError(
            f"parameter {name!r}: scipy.stats.{kind}({_call_args(dist)}) is not a valid distribution (scipy refuses "
            "it: uniform(loc, scale) needs scale > 0, loguniform(a, b) needs 0 < a < b, randint(a, b) a < b); "
            "for a constant write a list of one value, e.g. [0.01]"
        )
    if kind in ("loguniform", "reciprocal"):
        if float(dist.kwds.get("loc", dist.args[2] if len(dist.args) > 2 else 0.0)) != 0.0:
            raise ValueError(
                f"parameter {name!r}: loguniform(a, b, loc=...) shifts a log-uniform distribution, which is then "
                f"not log-uniform on [{low:g}, {high:g}]; write loguniform(low, high) (scale= is fine)"
            )
        return Float(low, high, log=True)
    if kind == "uniform":
        return Float(low, high)
    if kind == "randint":
        first, last = (int(b) for b in support)  # NumPy ints, exact where float() rounds past 2**53
        return Int(first, last) if last > first else Fixed(first)  # randint(a, a + 1) is always a
    raise ValueError(
        f"parameter {name!r}: scipy.stats.{kind} has no tunesmith equivalent; use loguniform(a, b), "
        "uniform(loc, scale), randint(a, b), a list of values, or a ts.Float/ts.Int with a prior"
    )


def _when(param: Param, when: Mapping[str, Any]) -> Param:
    """``param`` with a condition added (a parameter of one branch of a list of dicts)."""
    if param.when:
        raise ValueError(f"parameter {param!r} already has a condition; in a list of dicts leave when= out")
    spec = param.to_dict()
    spec["when"] = dict(when)
    from ..space.params import param_from_dict

    return param_from_dict(spec)


def _plain(v: Any) -> bool:
    if isinstance(v, (tuple, list)):
        return all(_plain(x) for x in v)
    return isinstance(v, _PLAIN) or hasattr(v, "item") and isinstance(getattr(v, "ndim", 1), int) and v.ndim == 0


def _freeze(v: Any) -> Any:
    """A hashable JSON-plain value: NumPy scalars as Python ones, lists as tuples."""
    if isinstance(v, (tuple, list)):
        return tuple(_freeze(x) for x in v)
    return v.item() if hasattr(v, "item") and not isinstance(v, _PLAIN) else v


def _tuple(v: Any) -> Any:
    """JSON gives tuples back as lists: estimators expect the tuple they were given."""
    return tuple(_tuple(x) for x in v) if isinstance(v, list) else v
