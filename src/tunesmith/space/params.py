"""Parameters of a search space.

Each parameter knows two representations of a value: the user's value and a
position ``u`` on the unit interval [0, 1]. Log scales and steps live here and
nowhere else; samplers work on ``u``.

Integer and stepped parameters map each allowed value to the centre of an
equal-width bin of [0, 1], so a uniform ``u`` gives every value the same chance
(for log-scaled integers the bins are equal in log space).
"""

from __future__ import annotations

import copy
import dataclasses
import decimal
import difflib
import functools
import inspect
import json
import math
import numbers
import sys
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np

from ..exceptions import PEER_ARGUMENTS, peer_hint
from ..nested import (
    MAX_DEPTH,
    PLAIN_TYPES,
    TooDeep,
    nan_inside,
    python_scalar,
    rebuilder,
    too_deep,
    walk,
)
from ..trial import short_repr

Condition = Mapping[str, tuple[Any, ...]]

_EPS = 1e-12
#: the most configurations a grid may list (each is a dict held in memory), and so the most points of one parameter
MAX_GRID = 1_000_000
#: how many levels a value may nest where a study's stored space keeps it: a fixed value two levels down
#: ({name: {"value": v}}), a choice or a prior's mode three ({name: {"choices": [c]}}), a condition's value four
FIXED_DEPTH, CHOICE_DEPTH, WHEN_DEPTH = MAX_DEPTH - 2, MAX_DEPTH - 3, MAX_DEPTH - 4

#: why a text holding half a surrogate pair is refused, and what to write instead
HALF_A_PAIR = ("holds half a surrogate pair (as os.listdir gives a file name whose bytes are not UTF-8), which no "
               "storage keeps: its trials would read back with another text (U+FFFD) and fit no choice; repair the "
               "text as the storage reads it back (name.encode('utf-8', 'surrogatepass').decode('utf-8', 'replace'): "
               "a study an older tunesmith stored with it resumes so), or list indices and look the names up in the "
               "objective")


def half_a_pair(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate ("\\udcff"), a character UTF-8 cannot write."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


@dataclass(frozen=True)
class Prior:
    """A prior belief about where good values of a parameter lie.

    Args:
        mode: the most likely good value, in the parameter's own units.
        width: spread of the belief as a fraction of the parameter's range on
            its own scale (log range for log parameters); 0.1 means "within
            about a tenth of the range".
        weight: for categorical parameters only: relative belief per choice.
    """

    mode: Any = None
    width: float = 0.15
    weight: Mapping[Any, float] | None = None

    def __post_init__(self) -> None:
        if not (_is_number(self.width) and 0 < self.width <= 1):  # "0.1": a comparison TypeError
            raise ValueError(f"prior width must be a number in (0, 1], got {self.width!r}")


def _check_prior_as_weights(param: Param, prior: Prior, choices: Sequence[Any] = ()) -> None:
    """Refuse a mapping given as ``prior=`` (a categorical's weights) that holds a prior's keys instead, as
    a study file writes a prior (``prior={"mode": 0.5}``): it failed with "prior needs a mode value", or
    "prior choice 'mode' is not one of the choices", with the mode given."""
    keys = [f.name for f in dataclasses.fields(Prior)]
    weight = prior.weight if isinstance(prior.weight, Mapping) else {}
    key = next((k for k in weight if isinstance(k, str) and k in keys and k not in choices), None)
    if key is not None:
        args = ", ".join(f"{k}={v!r}" for k, v in weight.items() if k in keys)
        whose = f"the choices {list(choices)!r}, and {key!r} is none of them" if choices else "a categorical's choices"
        raise param._err(f"prior {dict(weight)!r} is read as the weights of {whose} (prior={{choice: weight}}); a "
                         f"prior's {', '.join(keys)} go in ts.Prior({args}) in Python (a study file writes them as "
                         f"prior: {{{key}: ...}})")


def _as_prior(value: Any) -> Prior | None:
    if value is None or isinstance(value, Prior):
        return value
    if isinstance(value, Mapping):
        return Prior(weight=dict(value))
    return Prior(mode=value)


def _normalize_when(name: str, when: Mapping[str, Any] | None) -> Condition:
    if when is None:
        return {}
    if not isinstance(when, Mapping):
        raise ValueError(
            f"parameter {name!r}: when= must be a mapping such as "
            f"{{'kernel': ['rbf', 'poly']}}, got {when!r}"
        )
    out: dict[str, tuple[Any, ...]] = {}
    for parent, values in when.items():
        if isinstance(values, (list, tuple, set, frozenset)):
            vals = tuple(values)
        else:
            vals = (values,)
        if not vals:
            raise ValueError(f"parameter {name!r}: condition on {parent!r} lists no values")
        if any(too_deep(v, WHEN_DEPTH) for v in vals):  # on the deepest choice stored: stored, then not read back
            raise ValueError(f"parameter {name!r}: {TooDeep(f'condition on {parent!r}', WHEN_DEPTH)}")
        # a tuple choice comes back from JSON as a list: keep the canonical tuple (nested ones too)
        out[str(parent)] = tuple(_tuples(v) for v in vals)
    return out


class Param(ABC):
    """A parameter of a :class:`~tunesmith.Space`."""

    kind: str = ""
    when: Condition
    prior: Prior | None

    def __init__(self, *, when: Mapping[str, Any] | None = None, prior: Any = None) -> None:
        self.name = "?"
        self.when = when or {}  # normalized by _bind
        self.prior = _as_prior(prior)

    # -- set by Space -------------------------------------------------------
    def _bind(self, name: str) -> None:
        self.name = name
        self.when = _normalize_when(name, self.when)
        self._check()
        if self.prior is not None:
            self._check_prior(self.prior)

    @abstractmethod
    def _check(self) -> None:
        """Raise ValueError naming the parameter if the definition is bad."""

    def _check_prior(self, prior: Prior) -> None:
        _check_prior_as_weights(self, prior)
        if prior.mode is None:
            weights = " (weight= is for a Categorical's choices)" if prior.weight is not None else ""
            raise ValueError(f"parameter {self.name!r}: prior needs a mode value{weights}")
        if prior.weight is not None:  # was stored, and ignored
            raise self._err(f"prior weight= is for a Categorical's choices; leave it out of this {self.kind} "
                            f"parameter's prior (its mode is {prior.mode!r})")
        self.validate(prior.mode, what="prior")

    def _err(self, msg: str) -> ValueError:
        return ValueError(f"parameter {self.name!r}: {msg}")

    def _check_depth(self, value: Any, what: str, limit: int) -> None:
        """A ValueError for a ``value`` whose lists nest deeper than a study's stored space may (it is
        kept ``below`` levels down in it): the study was created, then refused as "changed outside
        tunesmith" when opened; 5,000 levels ended ``Space(...)`` in a RecursionError."""
        if isinstance(value, (list, tuple, dict)) and too_deep(value, limit):
            raise self._err(str(TooDeep(what, limit)))

    # -- values -------------------------------------------------------------
    @abstractmethod
    def validate(self, value: Any, *, what: str = "value") -> Any:
        """Return ``value`` in canonical form or raise ValueError."""

    @abstractmethod
    def to_unit(self, value: Any) -> float:
        """Position of a (valid) value on [0, 1]."""

    @abstractmethod
    def from_unit(self, u: float) -> Any:
        """The value at position ``u`` (clipped into [0, 1])."""

    @abstractmethod
    def grid(self, points: int | Sequence[Any] | None = None) -> list[Any]:
        """Values for grid search: explicit list, a number of points, or the default."""

    @property
    @abstractmethod
    def n_values(self) -> float:
        """Number of distinct values (``math.inf`` for continuous ones)."""

    def contains(self, value: Any) -> bool:
        try:
            self.validate(value)
        except (ValueError, TypeError):
            return False
        return True

    # -- serialization ------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.kind}
        d.update(self._fields())
        if self.when:
            d["when"] = {k: [_plain(_plain_choice(x)) for x in v] for k, v in self.when.items()}
        if self.prior is not None:
            p: dict[str, Any] = {"width": self.prior.width}
            if self.prior.mode is not None:
                p["mode"] = _plain_choice(self.prior.mode)
            if self.prior.weight is not None:
                p["weight"] = {_weight_key(k): w for k, w in self.prior.weight.items()}
            d["prior"] = p
        return _python(d)  # Float(np.int64(0), 1), Fixed(np.float64(0.5)): JSON and YAML write no NumPy scalar

    @abstractmethod
    def _fields(self) -> dict[str, Any]: ...

    def __repr__(self) -> str:
        try:
            return self._repr()
        except TooDeep as exc:  # in no Space yet (one refuses it, named): shown short, as a repr never raises
            return f"{type(self).__name__}(<a value nesting more than {exc.limit} levels, not shown>)"

    def _named_dict(self) -> dict[str, Any]:
        """:meth:`to_dict`, where a value nests deeper than a study stores (``==`` and ``hash`` before a
        Space refuses it) a ValueError naming the parameter: by its name in a Space, else by its kind."""
        try:
            return self.to_dict()
        except TooDeep as exc:
            who = f"parameter {self.name!r}" if self.name != "?" else f"a {self.kind} parameter (in no Space yet)"
            raise ValueError(f"{who}: its {exc}") from None

    def _repr(self) -> str:
        # the values themselves where the plain form differs (a tuple choice is a list in JSON)
        own = {k: getattr(self, k) for k in ("choices", "value") if hasattr(self, k)}
        if "choices" in own:
            own["choices"] = list(own["choices"])
        own["when"] = {parent: list(values) for parent, values in self.when.items()}
        if self.prior is not None and self.prior.weight is not None:  # a tuple choice's key, not its JSON text
            own["prior"] = {**self.to_dict()["prior"], "weight": {_plain_choice(k): w for k, w in self.prior.weight.items()}}
        args = ", ".join(f"{k}={own.get(k, v)!r}" for k, v in self.to_dict().items() if k not in ("type", "tuple", "tuples"))
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and same_definition(self._named_dict(), other._named_dict())

    def __hash__(self) -> int:
        return hash(frozen(self._named_dict()))  # not of repr: Float(0, 1, prior=1) == ...prior=1.0 had another hash


def same_definition(a: Any, b: Any) -> bool:
    """Whether two :meth:`Param.to_dict` define the same parameter: equal, and the values a trial is given
    (its choices, a fixed value) of the same types: ``[True, False] == [1, 0]`` in Python, and a study stored
    with the choices ``[1, 0]`` was reopened with ``[True, False]`` in code, giving the objective ``1``."""
    if not isinstance(a, Mapping) or not isinstance(b, Mapping):
        return bool(a == b)
    return bool(a == b) and _same_types(a.get("choices"), b.get("choices")) and _typed(a.get("value")) == _typed(b.get("value"))


#: ``x`` with each value beside its type (a NumPy scalar's as Python's): 1, 1.0 and True told apart
_typed = rebuilder(plain=lambda v: (type(v), v), leaf=lambda v: (type(python_scalar(v)), v))


def _same_types(a: Any, b: Any) -> bool:
    """Whether equal choices ``a`` and ``b`` are of the same types, one by one: lists of plain values by
    their types alone, listed by C (a Python call for each of 100,000 choices made ``==`` of two spaces
    take 0.15 s); others by :data:`_typed`."""
    types_a, types_b = _plain_types(a), _plain_types(b)
    if types_a is not None and types_b is not None:
        return types_a == types_b
    return bool(_typed(a) == _typed(b))


def _plain_types(choices: Any) -> list[type] | None:
    """The type of each choice where ``choices`` is a list of plain values (int, float, str, bool, None), else None."""
    if not isinstance(choices, list):
        return None
    types = list(map(type, choices))
    return types if PLAIN_TYPES.issuperset(types) else None


#: a hashable form of a :meth:`Param.to_dict`, equal where the definitions are equal (a mapping's order aside)
frozen = rebuilder(mapping=frozenset, sequence=tuple)


def _key_not_text(x: Any) -> tuple[Any] | None:
    """The first mapping key in ``x``, at any depth, that is not a string (in a 1-tuple), or None."""
    for _, v in walk(x):
        bad = [k for k in v if not isinstance(k, str)] if isinstance(v, Mapping) else None
        if bad:
            return (bad[0],)
    return None


def _set_inside(x: Any) -> Any:
    """The first set or array in ``x`` at any depth (a study stores it as a list: another value), or None."""
    return next((v for _, v in walk(x) if isinstance(v, (set, frozenset, np.ndarray))), None)


#: a value as JSON gives it back: its tuples lists, at every depth (inside mappings too)
_as_json = rebuilder()


#: ``x`` with its NumPy scalars as Python's, at every depth (inside mappings too)
_python = rebuilder(leaf=python_scalar, sequence=None)


def _plain(x: Any) -> Any:
    """A value as JSON writes it (tuples become lists)."""
    return list(x) if isinstance(x, tuple) else x


def _decimals(x: Any) -> int:
    """Decimal places of ``x`` as Python writes it (0.1: 1, 2.5e-07: 8, 3: 0)."""
    exponent = decimal.Decimal(repr(float(x))).as_tuple().exponent
    return max(-exponent, 0) if isinstance(exponent, int) else 99


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _finite(x: Any) -> bool:
    """Whether number ``x`` is finite as a float (an int beyond a float's range is not)."""
    try:
        return math.isfinite(float(x))
    except OverflowError:
        return False


class _Numeric(Param):
    """Shared logic of Float and Int: scale, step, unit mapping, grids."""

    def __init__(
        self,
        low: float,
        high: float,
        *,
        log: bool = False,
        step: float | None = None,
        grid: int | Sequence[Any] | None = None,
        when: Mapping[str, Any] | None = None,
        prior: Any = None,
    ) -> None:
        super().__init__(when=when, prior=prior)
        self.low = low
        self.high = high
        self.log = bool(log)
        self._log_given = log  # "false" (a quoted YAML value, a stored space edited by hand) was bool("false"): True
        self.step = step
        self.grid_spec = list(grid) if isinstance(grid, Iterable) else grid

    _CACHED = ("_levels", "_tolerant_bounds", "_step_places")
    _DEFINING = frozenset({"low", "high", "step", "log"})

    def __setattr__(self, name: str, value: Any) -> None:
        # the values cached from low, high, step and log follow them, whoever sets them: a Float's
        # np.float32 bounds taken as written at binding, a parameter copied after use and changed
        if name in self._DEFINING:
            for cached in self._CACHED:
                self.__dict__.pop(cached, None)
        super().__setattr__(name, value)

    def _check(self) -> None:
        if not isinstance(getattr(self, "_log_given", self.log), (bool, np.bool_)):
            raise self._err(f"log must be True or False, got {self._log_given!r}")
        for label, v in (("low", self.low), ("high", self.high)):
            if not _is_number(v) or not _finite(v):
                raise self._err(f"{label} must be a finite number, got {v!r}")
        if self.low >= self.high:
            raise self._err(
                f"low ({self.low}) must be smaller than high ({self.high}); "
                "for a constant use a plain value instead of a range"
            )
        if not math.isfinite(float(self.high) - float(self.low)):
            raise self._err(
                f"the range [{self.low:g}, {self.high:g}] is wider than the largest float "
                f"({sys.float_info.max:.4g}): high - low must be finite; narrow it, or search "
                "a positive range on a log scale (log=True)"
            )
        if self.log and self.low <= 0:
            raise self._err(f"a log scale needs low > 0, got low={self.low}")
        if self.step is not None:
            if not _is_number(self.step) or self.step <= 0:
                raise self._err(f"step must be a positive number, got {self.step!r}")
            if self.log and self.kind == "float":
                raise self._err("step and log=True cannot be combined; choose one")
            span = self.high - self.low
            if self.kind == "int":  # exact: a float forgives a step in a range past 2**53
                off, fit = span % self.step != 0, str(self.low + span // self.step * self.step)
            else:  # past ~1e9 levels a relative 1e-9 forgave whole steps, leaving high itself off the step
                n = span / self.step
                off = abs(n - round(n)) > min(1e-9 * max(1.0, abs(n)), self._step_tolerance(self.high))
                fit = f"{self.low + math.floor(n) * self.step:g}"
            if off:
                raise self._err(f"step {self.step} does not divide the range [{self.low}, {self.high}]; "
                                f"adjust high to {fit} or change the step")
        if self.grid_spec is not None:
            self.grid(self.grid_spec)

    # values on the step lattice, if any (once per parameter: each ask read it 4-6 times)
    @functools.cached_property
    def _levels(self) -> int | None:
        return self._lattice_size()

    def _lattice_size(self) -> int | None:
        if self.step is None:
            return None
        return int(round((self.high - self.low) / self.step)) + 1

    def _step_tolerance(self, x: float) -> float:
        """How far ``(x - low) / step`` may fall from a whole number and ``x`` still be on the step:
        its rounding error grows with it (a step of 1e-12 on [0, 1] has 1e12 levels)."""
        assert self.step is not None
        return max(1e-6, 4 * sys.float_info.epsilon * (abs(float(x)) + abs(float(self.low))) / float(self.step))

    def _range_check(self, x: float, what: str) -> None:
        low, high = self._tolerant_bounds
        if not (low <= x <= high):
            raise self._err(f"{what} {x!r} is outside [{self.low}, {self.high}]")

    @functools.cached_property
    def _tolerant_bounds(self) -> tuple[float, float]:
        """``[low, high]`` widened by a relative 1e-12 for rounding (once per parameter, not per value)."""
        return self.low - _EPS * max(1.0, abs(self.low)), self.high + _EPS * max(1.0, abs(self.high))

    def _off_step(self, x: float, what: str) -> ValueError:
        return self._err(f"{what} {x} is not on the step {self.step} from {self.low}; "
                         f"the nearest allowed value is {self._snap(x)!r}")

    def _snap(self, x: float) -> float:
        levels = self._levels
        if levels is None:
            return min(max(x, self.low), self.high)
        assert self.step is not None
        k = min(max(round((x - self.low) / self.step), 0), levels - 1)
        return self._on_step(k)

    def _on_step(self, k: int) -> Any:
        """The k-th value of the step lattice, as written: ``low + k * step`` rounded to the
        decimals of ``low`` and ``step`` (0.3, not 0.30000000000000004), ``high`` at the top."""
        assert self.step is not None and self._levels is not None
        if k >= self._levels - 1:
            return self.high
        x = self.low + k * self.step
        if isinstance(x, float) and self._step_places <= 15:
            x = round(x, self._step_places)
        return x

    @functools.cached_property
    def _step_places(self) -> int:
        """Decimals of ``low`` and ``step`` as written (once per parameter, not per value)."""
        return max(_decimals(self.low), _decimals(self.step))

    def to_unit(self, value: Any) -> float:
        x = float(value)
        levels = self._levels
        if levels is not None:
            assert self.step is not None
            # an int's offset from low is exact in ints: float(value) - low rounds it beyond 2**53
            k = round(((int(value) - self.low) if self.kind == "int" else x - self.low) / self.step)
            return (k + 0.5) / levels
        lo, hi = self._scaled_bounds()
        return float(np.clip((self._scale(x) - lo) / (hi - lo), 0.0, 1.0))

    def from_unit(self, u: float) -> Any:
        u = min(max(float(u), 0.0), 1.0)
        levels = self._levels
        if levels is not None:
            assert self.step is not None
            k = min(int(u * levels), levels - 1)
            return self._cast(self._on_step(k))
        lo, hi = self._scaled_bounds()
        # the bounds as written: exp(log(high)) may miss high
        x = float(self.low) if u == 0.0 else float(self.high) if u == 1.0 else self._unscale(lo + u * (hi - lo))
        return self._cast(self._snap(x))

    def _scaled_bounds(self) -> tuple[float, float]:
        return self._scale(self.low), self._scale(self.high)

    def _scale(self, x: float) -> float:
        return math.log(x) if self.log else x

    def _unscale(self, y: float) -> float:
        # 15 significant digits: exp(log(1e-3)) is 0.0010000000000000002, a prior mode written 1e-3
        return float(f"{math.exp(y):.15g}") if self.log else y

    @abstractmethod
    def _cast(self, x: float) -> Any: ...

    def grid(self, points: int | Sequence[Any] | None = None) -> list[Any]:
        points = self.grid_spec if points is None else points
        if points is None:
            levels = self.n_values
            points = int(levels) if levels <= 10 else 5
        if isinstance(points, (int, np.integer)) and not isinstance(points, bool):
            return self._spaced(int(points))
        if isinstance(points, (str, bytes)) or not isinstance(points, Iterable):
            raise self._err(f"grid must be a number of points or a list of values, got {points!r}")
        values = [self.validate(v, what="grid value") for v in points]
        if not values:
            raise self._err("grid lists no values")
        if len(set(values)) != len(values):
            raise self._err(f"grid lists a value twice: {values}")
        return values

    def every_value(self) -> list[Any]:
        """Each value the parameter takes, in order: the grid that covers it (an integer's, or a
        stepped float's; a log integer's too, which ``grid=n_values`` log-spaced did not: 424 of
        ``Int(1, 1000, log=True)``'s 1,000). A continuous float has no such list: a ValueError."""
        if self.kind == "int":
            assert self.step is not None
            return list(range(int(self.low), int(self.high) + 1, int(self.step)))
        if self._levels is None:
            raise self._err("a continuous float takes infinitely many values; give it a step or a grid")
        return [self._cast(self._on_step(k)) for k in range(self._levels)]

    def _spaced(self, n: int) -> list[Any]:
        if n < 1:
            raise self._err(f"grid needs at least 1 point, got {n}")
        if n > MAX_GRID:  # grid=10**9 (or stored so): the points filled the memory before the grid was checked
            raise self._err(f"grid of {n:,} points: a grid lists at most {MAX_GRID:,} configurations; give fewer")
        if n == 1:
            return [self.from_unit(0.5)]
        if self.log:
            xs = np.geomspace(float(self.low), float(self.high), n)
        else:
            xs = np.linspace(float(self.low), float(self.high), n)
        # 12 significant digits: 0.7425 for a quarter of 0.99, not 0.7424999999999999
        raw = [self._cast(self._snap(float(f"{x:.12g}"))) for x in xs]
        return list(dict.fromkeys(raw))  # stepped/int lattices can merge neighbours (a list's `in`: n**2)

    def _fields(self) -> dict[str, Any]:
        d: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            d["log"] = True
        if self.step is not None and not (self.kind == "int" and self.step == 1):
            d["step"] = self.step
        if self.grid_spec is not None:
            d["grid"] = self.grid_spec
        return d


class Float(_Numeric):
    """A real-valued parameter in ``[low, high]``.

    Args:
        low, high: bounds, inclusive.
        log: search on a log scale (needs ``low > 0``); for learning rates,
            regularization strengths, SVM's C and gamma.
        step: restrict to ``low, low + step, ..., high`` (must divide the range).
        grid: points for grid search: a number of points (log-spaced on a log
            scale) or an explicit list. Default: 5 points.
        when: condition on other parameters, e.g. ``{"kernel": ["rbf", "poly"]}``.
        prior: belief about good values: a value or a :class:`Prior`.
    """

    kind = "float"

    def __init__(
        self,
        low: float,
        high: float,
        *,
        log: bool = False,
        step: float | None = None,
        grid: int | Sequence[float] | None = None,
        when: Mapping[str, Any] | None = None,
        prior: Any = None,
    ) -> None:
        super().__init__(low, high, log=log, step=step, grid=grid, when=when, prior=prior)

    def _check(self) -> None:
        # NumPy's float32 0.1 is 0.10000000149011612 as a float: take each bound as written (its shortest repr)
        self.low, self.high = (float(str(v)) if isinstance(v, np.floating) else v for v in (self.low, self.high))
        if isinstance(self.step, np.floating):
            self.step = float(str(self.step))
        super()._check()

    def validate(self, value: Any, *, what: str = "value") -> float:
        if not _is_number(value) or not _finite(value):  # float(10**400) raised OverflowError
            raise self._err(f"{what} must be a finite number, got {value!r}")
        x = float(value)
        self._range_check(x, what)
        if self.step is not None:
            k = (x - self.low) / self.step
            if abs(k - round(k)) > self._step_tolerance(x):
                raise self._off_step(x, what)
            return float(self._snap(x))
        return min(max(x, float(self.low)), float(self.high))

    def _cast(self, x: float) -> float:
        return float(x)

    @property
    def n_values(self) -> float:
        return float(self._levels) if self._levels is not None else math.inf


class Int(_Numeric):
    """An integer parameter in ``[low, high]`` (both inclusive).

    ``log=True`` spaces values geometrically (needs ``low >= 1``); ``step``
    keeps every ``step``-th integer from ``low``.
    """

    kind = "int"

    def __init__(
        self,
        low: int,
        high: int,
        *,
        log: bool = False,
        step: int = 1,
        grid: int | Sequence[int] | None = None,
        when: Mapping[str, Any] | None = None,
        prior: Any = None,
    ) -> None:
        super().__init__(low, high, log=log, step=step, grid=grid, when=when, prior=prior)

    def _check(self) -> None:
        for label, v in (("low", self.low), ("high", self.high), ("step", self.step)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
                raise self._err(f"{label} must be an integer, got {v!r}")
        self.low, self.high, self.step = int(self.low), int(self.high), int(self.step or 0)  # 0: refused below (it was taken for 1)
        if self.log and self.step != 1:
            raise self._err("step and log=True cannot be combined; choose one")
        super()._check()

    def _lattice_size(self) -> int | None:
        if self.log:
            return None
        return super()._lattice_size()

    @functools.cached_property
    def _tolerant_bounds(self) -> tuple[float, float]:
        """The bounds exactly: an integer needs no margin for rounding, and 1e-12 of one past 1e12
        is a whole integer or more (Int(10**13, 10**13 + 100) took 10**13 - 10)."""
        return self.low, self.high

    def _scaled_bounds(self) -> tuple[float, float]:
        if not self.log:
            return float(self.low), float(self.high)
        # log ints: bins of equal log width around each integer
        return math.log(self.low - 0.5), math.log(self.high + 0.5)

    def validate(self, value: Any, *, what: str = "value") -> int:
        if isinstance(value, bool) or not _is_number(value):
            raise self._err(f"{what} must be an integer, got {value!r}")
        try:  # an int is whole as it is: float() would round one beyond 2**53 (2**53 + 1 != 2.0**53)
            whole = isinstance(value, (int, np.integer)) or float(value) == int(value)
        except OverflowError:  # an integer of more than 300 digits (or an infinite float): in no range
            raise self._err(f"{what} must be an integer in [{self.low}, {self.high}], got one too large") from None
        except ValueError:  # NaN: int() said "cannot convert float NaN to integer", naming no parameter
            whole = False
        if not whole:
            raise self._err(f"{what} must be an integer, got {value!r}")
        x = int(value)
        self._range_check(x, what)
        assert self.step is not None
        if (x - self.low) % self.step:
            raise self._off_step(x, what)
        return x

    def _cast(self, x: float) -> int:
        return int(min(max(round(x), self.low), self.high))

    def to_unit(self, value: Any) -> float:
        if not self.log:
            return super().to_unit(value)
        lo, hi = self._scaled_bounds()
        return float(np.clip((math.log(int(value)) - lo) / (hi - lo), 0.0, 1.0))

    @property
    def n_values(self) -> float:
        assert self.step is not None
        return float((self.high - self.low) // self.step + 1)


def _plain_choice(choice: Any) -> Any:
    """A NumPy scalar choice (``np.int64(3)`` from an array) as Python's, inside tuples too: the
    value a stored space holds (JSON took no ``int64``: the study failed at its first write)."""
    if type(choice) in PLAIN_TYPES:
        return choice
    return _choice_walk(choice)  # np.array(3): a scalar


_choice_walk = rebuilder(leaf=python_scalar, mapping=None, sequence=tuple, into=(tuple,))


class Categorical(Param):
    """One of a list of choices (any hashable values: strings, numbers, None, tuples).

    The choices have no order: Bayesian samplers use a categorical kernel.
    """

    kind = "categorical"

    def __init__(
        self,
        choices: Sequence[Hashable],
        *,
        when: Mapping[str, Any] | None = None,
        prior: Any = None,
    ) -> None:
        super().__init__(when=when, prior=prior)
        unordered = (str, bytes, set, frozenset, Mapping)  # kept as given, to be refused when bound
        try:
            self.choices = (tuple(map(_plain_choice, choices)) if isinstance(choices, Iterable)
                            and not isinstance(choices, unordered) else choices)
        except TooDeep:  # a tuple thousands of levels deep: refused as too deep (named) when bound
            self.choices = tuple(choices)

    def _check(self) -> None:
        if isinstance(self.choices, (set, frozenset)):
            raise self._err(f"choices must be a list, got the set {self.choices!r}: a set has no fixed order (it "
                            "differs between processes), so workers and a reopened study would disagree on the "
                            f"choices; write sorted({self.choices!r}) or a list")
        if isinstance(self.choices, Mapping):
            raise self._err(f"choices must be a list, got the mapping {dict(self.choices)!r}; list the choices, and "
                            "give weights as prior=Prior(weight={choice: weight})")
        if not isinstance(self.choices, tuple):
            raise self._err(f"choices must be a list, got {self.choices!r}")
        if not self.choices:
            raise self._err("choices is empty; list at least one value")
        seen: dict[Any, Any] = {}  # looked up by hash: a list scan was quadratic (100,000 choices: minutes)
        for c in self.choices:
            if type(c) is tuple:  # stored three levels down: {name: {"choices": [c]}}
                self._check_depth(c, "choice", CHOICE_DEPTH)
            try:
                twin = seen.get(c, seen)  # seen itself: none yet (None may be a choice)
            except TypeError:
                part = _unhashable(c)  # a list inside a tuple choice: not "use a tuple instead of a tuple"
                kind = "an array" if isinstance(part, np.ndarray) else a_type(part)
                raise self._err(f"choice {c!r} is not hashable; use a tuple instead of {kind}") from None
            if twin is not seen and type(c) is type(twin):
                raise self._err(f"choice {c!r} is listed twice")
            if twin is not seen:  # 2 and 2.0, True and 1: one stored value, so a grid loops and a draw loses one
                raise self._err(
                    f"choices {twin!r} and {c!r} are equal in Python ({twin!r} == {c!r}), so a stored "
                    "configuration cannot tell them apart; keep one, or list strings and convert in the objective"
                )
            nan = c if c != c else nan_inside(c) if type(c) is tuple else None  # (1, nan) == itself: the same nan
            if nan is not None:  # NaN: never equal to itself, so never matched, stored or compared
                holds = "is" if nan is c else f"holds {nan!r}, which is"
                raise self._err(
                    f"choice {c!r} {holds} not equal to itself, so it cannot be matched or stored; "
                    "use None or the string 'nan' for a missing value"
                )
            seen[c] = c
        texts = [c for c in self.choices if isinstance(c, str)]
        if half_a_pair("".join(texts)):  # one encoding of all: one a choice took 50% longer (100,000 choices)
            raise self._err(f"choice {next(c for c in texts if half_a_pair(c))!r} {HALF_A_PAIR}")

    def _check_prior(self, prior: Prior) -> None:
        if prior.weight is not None and not isinstance(prior.weight, Mapping):  # 'list' object has no attribute 'items'
            listed = isinstance(prior.weight, (list, tuple)) and len(prior.weight) == len(self.choices)
            example = dict(zip(self.choices, prior.weight, strict=True)) if listed else {c: 1 for c in self.choices[:2]}
            raise self._err(f"prior weight must map each choice to its weight, such as {example!r}; got "
                            f"{type(prior.weight).__name__} {prior.weight!r}")
        if prior.weight is not None:
            _check_prior_as_weights(self, prior, self.choices)
            for k, w in prior.weight.items():
                self.validate(k, what="prior choice")
                if not _is_number(w) or not _finite(w) or w < 0:  # NaN or inf: the bayes sampler's NaN probabilities
                    raise self._err(f"prior weight of {k!r} must be a finite number >= 0, got {w!r}")
            if sum(prior.weight.values()) <= 0:
                raise self._err("prior weights are all zero")
            texts = {c for c in self.choices if isinstance(c, str)}
            for k in prior.weight:
                key = _weight_key(self.validate(k))  # stored under its choice's key: np.int64(1)'s is 1, so "1"
                scalar = key is None or isinstance(key, (bool, int, float))
                text = json.dumps(key) if scalar else key if isinstance(k, tuple) else None
                if text in texts:
                    raise self._err(f"the prior weight of {k!r} would be stored under the key {text!r} (JSON "
                                    "writes every key as text), which is also a choice's, and read back as that string "
                                    "choice's: rename the string choice, or leave this one without a weight")
            # keyed by the choices themselves: (1, 2.0) of the choice (1, 2) was stored as '[1, 2.0]', read back
            # as (1, 2), and the same space given again was refused as another
            self.prior = dataclasses.replace(prior, weight={self.validate(k): w for k, w in prior.weight.items()})
            if prior.mode is not None:  # beside weights: was neither checked nor ever refused
                self.validate(prior.mode, what="prior")
        else:
            super()._check_prior(prior)

    def index(self, value: Any) -> int:
        value = _plain_choice(value)  # np.str_("b") from a DataFrame row is the choice "b"; np.array(3) is 3
        try:  # by hash first: a scan cost each ask 0.3-1.2 s on a stored space of 100,000 choices
            i = self._positions().get(value)
        except TypeError:  # a list (a JSON tuple) or choices not checked yet
            i = None
        found = None if i is None else self.choices[i]
        if i is not None and (type(found) is type(value) or (_is_number(value) and _is_number(found))):
            return i
        for i, c in enumerate(self.choices):
            if c == value and (type(c) is type(value) or (_is_number(c) and _is_number(value))):
                return i
        # JSON round trips turn tuples into lists
        if isinstance(value, list):
            return self.index(_tuples(value))
        raise self._err(f"{value!r} is not one of the choices {list(self.choices)}")

    def _positions(self) -> dict[Any, int]:
        if self.__dict__.get("_by_value", (None,))[0] is not self.choices:
            self.__dict__["_by_value"] = (self.choices, {c: i for i, c in reversed(list(enumerate(self.choices)))})
        positions: dict[Any, int] = self.__dict__["_by_value"][1]
        return positions

    def validate(self, value: Any, *, what: str = "value") -> Any:
        try:
            return self.choices[self.index(value)]
        except ValueError:
            raise self._err(f"{what} {value!r} is not one of the choices {list(self.choices)}") from None

    def to_unit(self, value: Any) -> float:
        return (self.index(value) + 0.5) / len(self.choices)

    def from_unit(self, u: float) -> Any:
        k = len(self.choices)
        return self.choices[min(int(min(max(u, 0.0), 1.0) * k), k - 1)]

    def grid(self, points: int | Sequence[Any] | None = None) -> list[Any]:
        if points is None:
            return list(self.choices)
        if isinstance(points, int):
            raise self._err("a categorical grid is its choices, or a list of some of them")
        return [self.validate(v, what="grid value") for v in points]

    @property
    def n_values(self) -> float:
        return float(len(self.choices))

    def _fields(self) -> dict[str, Any]:
        return {"choices": [list(c) if isinstance(c, tuple) else c for c in self.choices]}


class Fixed(Param):
    """A constant that is part of every configuration (while its condition holds)."""

    kind = "fixed"

    def __init__(self, value: Any, *, when: Mapping[str, Any] | None = None) -> None:
        super().__init__(when=when)
        self.value = value

    def _check(self) -> None:
        self._check_depth(self.value, "fixed value", FIXED_DEPTH)
        try:
            hash(self.value)
        except TypeError:
            if not isinstance(self.value, (list, dict)):  # a tuple holding a list or dict, a set, an array
                listed = isinstance(self.value, tuple) and isinstance(_unhashable(self.value), (list, dict))
                fix = (f"write it as a list, ts.Fixed({list(self.value)!r})" if listed  # not a set's, an array's
                       else "give a number, a string, a tuple, a list or a dict (an array: its .tolist())")
                raise self._err(f"fixed value {self.value!r} is not hashable; {fix}") from None
        part = _set_inside(self.value) if isinstance(self.value, (list, dict)) else None
        if part is not None:  # [{1, 2}] came back as [[1, 2]]: every trial "differs from the fixed value"
            raise self._err(f"fixed value {self.value!r} holds {part!r}, which a study stores as a "
                            "list, so its trials would not match it; write a list (sorted(...), an array's .tolist())")
        key = _key_not_text(self.value)
        if key is not None:  # {1: "a"} came back from SQLite and PostgreSQL as {"1": "a"}
            text = json.dumps(key[0]) if key[0] is None or isinstance(key[0], (bool, int, float)) else None
            back = f"it would come back from a database as {text!r}" if text else "it cannot be stored"
            raise self._err(f"fixed value {self.value!r} has the key {key[0]!r}, which is not a string: a study stores "
                            f"its space as JSON, whose keys are strings, so {back}; write the keys as strings, or give "
                            "a list of (key, value) pairs")
        nan = nan_inside(self.value)
        if nan is not None:  # [1, nan] == itself (the same nan), not the [1, nan] a study reads back
            holds = "is" if nan is self.value else f"holds {nan!r}, which is"
            raise self._err(f"fixed value {self.value!r} {holds} not equal to itself, so the trials a study reads "
                            "back would not match it; use None or the string 'nan' for a missing value")

    def validate(self, value: Any, *, what: str = "value") -> Any:
        # a list for a tuple (JSON has no tuples) and the other way round: the same constant
        # at every depth: a stored trial's (1, (2, 3)) is [1, [2, 3]], and was refused ("do not fit the space")
        try:
            same = _as_json(value, what) == _as_json(self.value)
        except TooDeep as exc:  # never equal: the fixed value nests at most FIXED_DEPTH levels
            raise self._err(str(exc)) from None
        if not same:
            raise self._err(f"{what} {value!r} differs from the fixed value {self.value!r}")
        return self._copy()

    def _copy(self) -> Any:
        """The value, a fresh copy when it is mutable: an objective that appends to its
        list must not change the space's constant (and every other trial's)."""
        return copy.deepcopy(self.value) if isinstance(self.value, (list, dict)) else self.value

    def to_unit(self, value: Any) -> float:
        return 0.5

    def from_unit(self, u: float) -> Any:
        return self._copy()

    def grid(self, points: int | Sequence[Any] | None = None) -> list[Any]:
        return [self._copy()]

    @property
    def n_values(self) -> float:
        return 1.0

    def _fields(self) -> dict[str, Any]:
        # JSON and YAML read a tuple back as a list: say it was one, so it comes back as one
        if isinstance(self.value, tuple):
            return {"value": _plain(self.value), "tuple": True}
        cached = getattr(self, "_inside", None)  # (value, its tuples' paths): None, not looked yet (Fixed(None) too)
        if cached is None or cached[0] is not self.value:  # looked for once (to_json at every grid ask)
            cached = self._inside = (self.value, _tuple_paths(self.value) if isinstance(self.value, (list, dict)) else [])
        inside = cached[1]
        # and where a list or mapping holds them: {"shape": (3, 4)} came back as {"shape": [3, 4]}
        return {"value": _as_json(self.value), "tuples": inside} if inside else {"value": self.value}


def _tuple_paths(x: Any) -> list[list[Any]]:
    """Where ``x`` holds tuples, at any depth: each one's keys and indices from the top."""
    return [list(at) for at, v in walk(x) if isinstance(v, tuple)]


def _with_tuples(value: Any, marks: Any) -> Any:
    """A stored fixed value with the lists at ``marks`` (see :func:`_tuple_paths`) as tuples again; a
    mark that names no list in it (written by another program) is refused. Each path is followed in
    the value as it is read (every prefix of each kept took memory of its length squared), and only
    the marked items are walked (a list of 10^6 numbers is not)."""
    if not isinstance(marks, list) or not all(isinstance(m, list) and len(m) <= MAX_DEPTH and all(
            isinstance(k, str) or type(k) is int for k in m) for m in marks):
        raise ValueError(f"tuples must be a list of paths (lists of at most {MAX_DEPTH} keys and indices), "
                         f"got {short_repr(marks)}")
    tree: dict[Any, Any] = {}  # a node per marked item, at most one per item of the value
    for m in marks:
        node, x = tree, value
        for i, k in enumerate(m):
            if not (isinstance(k, str) and k in x if isinstance(x, Mapping) else
                    isinstance(x, list) and type(k) is int and 0 <= k < len(x)):
                raise ValueError(f"tuples: the path {short_repr(m[:i + 1])} marks nothing in the value")
            node, x = node.setdefault(k, {}), x[k]
        if not isinstance(x, list):
            raise ValueError(f"tuples: the path {short_repr(m)} marks {short_repr(x)}, not a list")
        node[None] = True  # a tuple here (None is no key of a path)

    def back(x: Any, node: dict[Any, Any]) -> Any:
        out = dict(x) if isinstance(x, Mapping) else list(x)
        for k, below in node.items():
            if k is not None:
                out[k] = back(out[k], below)
        return tuple(out) if None in node else out

    return back(value, tree) if tree else value


def _yaml_numbers(d: dict[str, Any]) -> dict[str, Any]:
    """YAML 1.1 reads ``1e-5`` (no dot) as text: take such strings as the numbers meant."""

    def num(v: Any) -> Any:
        if isinstance(v, str):
            try:
                return float(v)
            except ValueError:
                return v
        return v

    out = {k: num(v) if k in ("low", "high", "step") else v for k, v in d.items()}
    if isinstance(out.get("grid"), list):
        out["grid"] = [num(v) for v in out["grid"]]
    return out


def _weight_key(choice: Any) -> Any:
    """A prior weight's key as stored: a tuple choice's is its JSON text (JSON took no tuple key: a study
    with weights on tuple choices failed at its first write with "keys must be str, int, ...")."""
    choice = _plain_choice(choice)
    try:
        return json.dumps(choice) if isinstance(choice, tuple) else choice
    except TypeError:  # a tuple holding what JSON cannot write (an Enum): kept, as the choice itself is (in memory)
        return choice


def _stored_weights(weight: Mapping[Any, float], choices: Sequence[Any]) -> dict[Any, float]:
    """A prior's weights as read back: JSON writes every key as text (``{1: 3.0}`` as ``{"1": 3.0}``), so a
    key that is no choice but the JSON text of one (``"1"``, ``"0.5"``, ``"true"``, ``"null"``) is that
    choice (a study with weights on numbers was stored, then could not be opened); a number's text is also
    the choice it equals (a weight on ``1.0`` of the choice ``1``, stored as ``"1.0"``)."""
    texts = {c for c in choices if isinstance(c, str)}
    by_text = {json.dumps(c): c for c in choices if c is None or isinstance(c, (bool, int, float))}
    return {_stored_key(k, by_text, choices) if isinstance(k, str) and k not in texts else k: w
            for k, w in weight.items()}


def _stored_key(key: str, by_text: Mapping[str, Any], choices: Sequence[Any]) -> Any:
    if key in by_text:
        return by_text[key]
    try:
        number = json.loads(key)
    except ValueError:
        return key
    if isinstance(number, list):  # a tuple choice's text
        return next((c for c in choices if isinstance(c, tuple) and c == _tuples(number)), key)
    return next((c for c in choices if _is_number(number) and _is_number(c) and c == number), key)


def _unhashable(value: Any) -> Any:
    """The part of an unhashable choice that is not hashable: the list in ``((0, [1]), 2)``."""
    return next((v for _, v in walk(value) if not isinstance(v, tuple) and not _hashable(v)), value)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _tuples(value: Any, what: str = "value", limit: int = MAX_DEPTH) -> Any:
    """``value`` with its lists tuples, at every depth (JSON's lists are the tuples a space stored)."""
    if type(value) in PLAIN_TYPES:
        return value
    return _tuples_walk(value, what, limit)


_tuples_walk = rebuilder(mapping=None, sequence=tuple, into=(list,))


def param_from_dict(d: Mapping[str, Any]) -> Param:
    """Inverse of :meth:`Param.to_dict` (also reads hand-written YAML)."""
    d = dict(d)
    kind = d.pop("type", None)
    prior = d.pop("prior", None)
    if isinstance(prior, Mapping):
        _check_prior_keys(kind, prior)
        prior = Prior(mode=prior.get("mode"), width=prior.get("width", 0.15), weight=prior.get("weight"))
    if prior is not None:
        d["prior"] = prior
    _check_definition_keys(kind, d)
    try:
        if kind == "float":
            return Float(**_yaml_numbers(d))
        if kind == "int":
            return Int(**d)
        if kind == "categorical":
            choices = [_tuples(c, "choice", CHOICE_DEPTH) for c in d.pop("choices")]  # JSON's lists are the tuples stored
            if isinstance(d.get("prior"), Prior) and isinstance(d["prior"].weight, Mapping):
                d["prior"] = dataclasses.replace(d["prior"], weight=_stored_weights(d["prior"].weight, choices))
            if isinstance(d.get("prior"), Prior) and isinstance(d["prior"].mode, list):  # a tuple choice's
                d["prior"] = dataclasses.replace(d["prior"], mode=_tuples(d["prior"].mode, "prior", CHOICE_DEPTH))
            return Categorical(choices, **d)
        if kind == "fixed":
            d.pop("prior", None)
            value = d.pop("value")
            if "tuples" in d:
                value = _with_tuples(value, d.pop("tuples"))
            if d.pop("tuple", False) and isinstance(value, list):
                value = _tuples(value, "fixed value", FIXED_DEPTH)
            return Fixed(value, **d)
    except TypeError as exc:
        raise ValueError(f"bad parameter definition {dict(d, type=kind)}: {exc}") from None
    except KeyError as exc:
        raise ValueError(f"bad parameter definition {dict(d, type=kind)}: {kind} needs {exc.args[0]!r}") from None
    raise ValueError(
        f"unknown parameter type {kind!r}{did_you_mean(kind, list(PARAM_TYPES))}; use one of float, int, categorical, fixed"
    )


PARAM_TYPES: dict[str, type[Param]] = {"float": Float, "int": Int, "categorical": Categorical, "fixed": Fixed}
#: keys only a parameter's definition has: a mapping with one of them but no ``type`` is a slip
DEFINITION_KEYS = frozenset({"low", "high", "log", "step", "grid", "choices"})


def did_you_mean(word: Any, options: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the option closest to ``word``, or ``""``."""
    if not isinstance(word, str):
        return ""
    close = _closest(word.lower(), tuple(options))
    return f" (did you mean {close!r}?)" if close is not None else ""


@functools.lru_cache(maxsize=1024)
def _closest(word: str, options: tuple[str, ...]) -> str | None:
    """The option closest to ``word`` (lower case), case aside: 'X' is likely 'x'. Cached: a copy
    into a space without some parameters asks the same for each trial it leaves out (room for a
    trial's every unknown name: fewer, asked in turn, would each push the next out)."""
    lowered = {o.lower(): o for o in reversed(options)}
    close = difflib.get_close_matches(word, list(lowered), n=1)
    return lowered[close[0]] if close else None


def did_you_mean_each(words: Sequence[Any], options: list[str]) -> str:
    """:func:`did_you_mean` for one word; for several, each's own: `` ('lrr': did you mean 'lr'?;
    'zz': nothing close)``."""
    if len(words) == 1:
        return did_you_mean(words[0], options)
    said = [f"{w!r}: {did_you_mean(w, options)[2:-1] or 'nothing close'}" for w in words]
    return f" ({'; '.join(said)})"


def an(word: str) -> str:
    """``word`` after its article: "an int", "a float", "an ndarray" (by its sound; "a uint8", "a UUID")."""
    return f"{'an' if word[:1].lower() in ('a', 'e', 'i', 'o') or word.startswith('nd') else 'a'} {word}"


def a_type(value: Any) -> str:
    """What ``value`` is, for a message: "an int", "a Tensor", "None" (not "a int", "a NoneType")."""
    return "None" if value is None else an(type(value).__name__)


def check_seed(seed: Any, what: str = "seed") -> int | None:
    """``seed`` as an int (a NumPy integer too), or a ValueError naming ``what``: NumPy's own
    ("expected non-negative integer") named no argument."""
    if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0):
        raise ValueError(f"{what} must be a non-negative integer or None, got {seed!r}")
    return None if seed is None else int(seed)


def check_int(name: str, value: object, minimum: int, *, or_none: bool = False) -> int:
    """``value`` as an int (Python or NumPy integers) when it is one and >= ``minimum``, else a
    ValueError naming ``name`` (``or_none``: the message says None is taken too)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be {'None or ' if or_none else ''}an integer >= {minimum}, got {short_repr(value)}")
    if int(value) > MAX_INT:  # a stored 10**400 (JSON keeps it whole) failed later inside range() or islice()
        raise ValueError(f"{name} must be at most 2**63 - 1, got {short_repr(value)}")
    return int(value)


#: the largest count or step :func:`check_int` takes (what range(), islice() and a SQL storage's
#: 64-bit integers hold)
MAX_INT = 2**63 - 1


@overload
def check_count(name: str, value: Any) -> int: ...
@overload
def check_count(name: str, value: Any, *, optional: bool) -> int | None: ...
def check_count(name: str, value: Any, *, optional: bool = False) -> int | None:
    """``value`` as a positive int (:func:`check_int` from 1; None where ``optional``): True was
    taken as 1, and "5" failed later in a comparison ("'<' not supported")."""
    if value is None and optional:
        return None
    return check_int(name, value, 1, or_none=optional)


def uncallable_with(fn: Any, n_args: int) -> str | None:
    """``name(signature)`` of ``fn`` when it cannot be called with ``n_args`` positional arguments,
    else None (also when its signature cannot be read: a builtin's call tells for itself)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(*[None] * n_args)
    except TypeError:
        return f"{getattr(fn, '__qualname__', type(fn).__name__)}{signature}"
    return None


def check_field_types(options: Any) -> None:
    """Each field of the dataclass ``options`` whose default is a bool, an int or a float holds a
    value of that kind (True/False; an integer; a number): "64" for a count failed in a comparison
    ("'<' not supported"), and "x" for a flag was kept, read as true."""
    kinds = {bool: ("True or False", (bool, np.bool_)), int: ("an integer", (int, np.integer)),
             float: ("a number", (int, float, np.integer, np.floating))}
    for f in dataclasses.fields(options):
        if type(f.default) not in kinds:
            continue
        what, accepted = kinds[type(f.default)]
        value = getattr(options, f.name)
        flag = isinstance(value, (bool, np.bool_))  # a flag for a count (True is an int) or a NumPy one for a flag
        if not isinstance(value, accepted) or flag is not (type(f.default) is bool):
            raise ValueError(f"{type(options).__name__}.{f.name} must be {what}, got {value!r}")


def check_flag(name: str, value: Any) -> bool:
    """``value`` of the flag ``name`` as a bool: True or False (NumPy's too); a TypeError for
    anything else ("no" was read as true)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``"1 trial"``, ``"3 trials"`` (``nouns``: a plural other than noun + "s")."""
    return f"{n} {noun if n == 1 else nouns or noun + 's'}"


def check_options(what: str, fn: Any, given: Mapping[str, Any]) -> None:
    """A TypeError, as the call would raise, but naming the closest keyword ``fn`` takes
    (``n_startp`` -> ``n_startup``) for the first key of ``given`` it does not take."""
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    allowed = [n for n, p in params.items() if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key in given:
        if key not in allowed:  # Optuna's and Ray Tune's names (a study file's pruner: {grace_period: 1}) with ours
            hint = peer_hint(key, allowed) if key in PEER_ARGUMENTS else did_you_mean(key, allowed)
            raise TypeError(f"{what}: unknown option {key!r}{hint}; its options are {allowed}")


def _check_prior_keys(kind: Any, prior: Mapping[str, Any]) -> None:
    """A key a prior does not take (``weights:`` for ``weight:``): a ValueError naming it and the keys a
    prior takes, rather than a prior read without it ("prior needs a mode value")."""
    keys = [f.name for f in dataclasses.fields(Prior)]
    for key in prior if kind in ("float", "int", "categorical") else ():  # a fixed takes no prior: refused after
        if key not in keys:
            raise ValueError(f"unknown key {key!r} in {an(kind)} parameter's prior{did_you_mean(key, keys)}; its keys "
                             f"are {keys} (weight: a categorical's, a mapping of each choice to its weight)")


def _check_definition_keys(kind: Any, d: Mapping[str, Any]) -> None:
    """A key a parameter of ``kind`` does not take (``logg: true``): a ValueError naming it
    and the closest valid key, rather than the constructor's unexpected-keyword TypeError."""
    cls = PARAM_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        return
    allowed = [n for n in inspect.signature(cls.__init__).parameters if n != "self"]
    allowed = [*(["value", "tuple", "tuples"] if cls is Fixed else []), *(n for n in allowed if n != "value")]  # see to_dict
    for key in d:
        if key not in allowed:
            raise ValueError(f"unknown key {key!r} in {an(kind)} parameter{did_you_mean(key, allowed)}; "
                             f"its keys are {['type', *allowed]}")
