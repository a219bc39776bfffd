"""The search space: named parameters, their conditions, encodings and grids."""

from __future__ import annotations

import functools
import json
import logging
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml

from ..exceptions import UnreadableSpaceError
from ..nested import TooDeep, walk
from ..trial import as_count
from .params import (
    CHOICE_DEPTH,
    DEFINITION_KEYS,
    HALF_A_PAIR,
    MAX_GRID,
    PARAM_TYPES,
    Categorical,
    Fixed,
    Float,
    Param,
    _tuples,
    did_you_mean,
    did_you_mean_each,
    frozen,
    half_a_pair,
    param_from_dict,
    same_definition,
)

Config = dict[str, Any]


def _check_plain(name: str, p: Any) -> None:
    """A plain value given for a parameter is fixed; refuse one that was surely meant as a search:
    a list (ambiguous), another library's search distribution (``tune.loguniform(...)``, also inside a dict),
    a parameter class (``ts.Float`` without its range) or a definition as YAML writes it (``{"type": "float", ...}``, a misspelt type, or ``{"low": ..., "high": ...}`` alone)."""
    if isinstance(p, list):
        raise ValueError(
            f"parameter {name!r}: a plain list is ambiguous; write Categorical({p!r}) to search "
            f"over these values (what a list means in YAML and JSON), or Fixed({p!r}) for a "
            "constant list"
        )
    peer = _peer_inside(p)
    if peer is not None:
        at, what = peer
        raise TypeError(
            f"parameter {name!r}: " + (f"{what} is" if not at else f"its value holds at {list(at)!r} {what},")
            + " another library's search distribution, which here would be "
            + ("a fixed value; write " if not at else "part of a fixed value; a Space is flat: give each searched "
               "value a parameter of its own and build the nested dict in the objective; write ")
            + "ts.Float(low, high, log=True), ts.Int(low, high) or ts.Categorical([...]) (with sampler='grid' for "
            "tune.grid_search), or ts.Fixed(value) to pass the object itself (docs/guide.md, 'Coming from Optuna'); "
            "TunedSearchCV takes scipy's, Optuna's and skopt's distributions as they are"
        )
    if isinstance(p, type) and issubclass(p, Param):
        call = {"Float": "Float(low, high)", "Int": "Int(low, high)", "Categorical": "Categorical([...])"}
        raise TypeError(f"parameter {name!r}: {p.__name__} is the class, which would be a fixed value; "
                        f"write ts.{call.get(p.__name__, p.__name__ + '(...)')} with its settings")
    if isinstance(p, Mapping) and (p.get("type") in PARAM_TYPES
                                   or DEFINITION_KEYS & set(p) and set(p) <= DEFINITION_KEYS | _SPEC_EXTRA):
        kind = p.get("type")
        slip = (f" with an unknown type {kind!r}{did_you_mean(kind, list(PARAM_TYPES))}"
                if kind is not None and kind not in PARAM_TYPES else "")
        raise ValueError(
            f"parameter {name!r}: {dict(p)!r} is a definition as YAML writes it{slip}, which in Python "
            "would be a fixed dict; write ts.Float(low, high), ts.Int, ts.Categorical([...]), "
            "read the whole space with ts.Space.from_dict({...}), or Fixed({...}) for a constant dict"
        )


#: the modules of the search distributions of Optuna, Ray Tune (tune.loguniform(...); ray.tune.sample before
#: Ray 2), skopt and hyperopt; scipy.stats's are its objects with an ``rvs`` (its qmc engines are none)
_PEER_DISTRIBUTIONS = ("optuna.distributions", "ray.tune.search.sample", "ray.tune.sample", "skopt.space", "hyperopt.pyll")


def _peer_inside(p: Any) -> tuple[tuple[Any, ...], str] | None:
    """Where in ``p`` (``()``: ``p`` itself; a key path into its dicts, lists and tuples) another library's search
    distribution is, and what it is ("ray's Float", "Ray Tune's tune.grid_search([...])"); None where there is none."""
    try:
        for at, v in walk(p):
            module = type(v).__module__ or ""
            if module.startswith(_PEER_DISTRIBUTIONS) or module.startswith("scipy.stats") and hasattr(v, "rvs"):
                return at, f"{module.split('.')[0]}'s {type(v).__name__}"
            if type(v) is dict and list(v) == ["grid_search"]:  # what tune.grid_search returns
                return at, "Ray Tune's tune.grid_search([...])"
    except TooDeep:
        pass  # Fixed says so
    return None


#: the keys a definition has beside DEFINITION_KEYS
_SPEC_EXTRA = frozenset({"type", "when", "prior"})



def same_spaces(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two :meth:`Space.to_dict` define the same space (the parameters' order aside)."""
    return a.keys() == b.keys() and all(same_definition(a[n], b[n]) for n in a)


@dataclass(frozen=True)
class Dim:
    """One coordinate of the encoded vector.

    ``kind`` is "float", "int" or "categorical"; ``levels`` is the number of
    distinct values (``inf`` for continuous floats); ``log`` tells the scale.
    """

    name: str
    kind: str
    levels: float
    log: bool
    conditional: bool


class Space(Mapping[str, Param]):
    """A validated set of named parameters.

    Example::

        Space({
            "kernel": Categorical(["linear", "poly", "rbf"]),
            "C": Float(1e-3, 1e3, log=True),
            "gamma": Float(1e-5, 10.0, log=True, when={"kernel": ["poly", "rbf"]}),
            "degree": Int(2, 5, when={"kernel": ["poly"]}),
            "max_iter": 10_000,          # a plain value is a fixed parameter
        })

    A configuration (``dict``) holds exactly the active parameters. Encoded
    vectors hold one coordinate per free (non-fixed) parameter, in definition
    order, on [0, 1]; an inactive parameter encodes as NaN.
    """

    def __init__(self, params: Mapping[str, Any]) -> None:
        if isinstance(params, Space):
            params = params._params
        if not isinstance(params, Mapping):
            call = "; a function that returns the space's dict: call it" if callable(params) and not isinstance(params, type) else ""
            raise TypeError(f"Space takes a mapping of name -> parameter, got {type(params).__name__}{call}")
        if not params:
            raise ValueError("a Space needs at least one parameter")
        self._params: dict[str, Param] = {}
        for name, p in params.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"parameter names must be non-empty strings, got {name!r}")
            if half_a_pair(name):
                raise ValueError(f"parameter name {name!r} {HALF_A_PAIR}")
            if not isinstance(p, Param):
                _check_plain(name, p)
                p = Fixed(p)
            p._bind(name)
            self._params[name] = p
        self._order = self._topological_order()
        self._check_conditions()
        self.free: tuple[str, ...] = tuple(n for n, p in self._params.items() if not isinstance(p, Fixed))
        self.dims: tuple[Dim, ...] = tuple(self._dim(n) for n in self.free)
        self._col = {n: i for i, n in enumerate(self.free)}
        # without conditions every parameter is active and _order is the definition order:
        # validate and decode then skip is_active and the reordering (once per space, not per trial)
        self._conditional = any(p.when for p in self._params.values())

    # -- Mapping ------------------------------------------------------------
    def __getitem__(self, name: str) -> Param:
        return self._params[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and same_spaces(self.to_dict(), other.to_dict())

    def __hash__(self) -> int:
        return hash(frozen(self.to_dict()))  # not of to_json: Float(0, 1) == Float(0.0, 1.0) had another hash

    def __repr__(self) -> str:
        inner = ", ".join(f"{n!r}: {p!r}" for n, p in self._params.items())
        return f"Space({{{inner}}})"

    @property
    def ndim(self) -> int:
        return len(self.free)

    @property
    def is_conditional(self) -> bool:
        return self._conditional

    # -- validation of the definition ----------------------------------------
    def _topological_order(self) -> list[str]:
        for name, p in self._params.items():
            for parent in p.when:
                if parent not in self._params:
                    raise ValueError(
                        f"parameter {name!r}: condition on unknown parameter {parent!r}; "
                        f"known parameters are {sorted(self._params)}"
                    )
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(n: str, path: list[str]) -> None:
            if state.get(n) == 2:
                return
            if state.get(n) == 1:
                cycle = path[path.index(n):] + [n]
                raise ValueError(f"parameter {n!r}: conditions form a cycle: {' -> '.join(cycle)}")
            state[n] = 1
            for parent in self._params[n].when:
                visit(parent, path + [n])
            state[n] = 2
            order.append(n)

        for n in self._params:
            visit(n, [])
        return order

    def _check_conditions(self) -> None:
        for name, p in self._params.items():
            for parent, values in p.when.items():
                pp = self._params[parent]
                if isinstance(pp, Float):
                    raise ValueError(
                        f"parameter {name!r}: condition on {parent!r}, a Float, which almost never "
                        "equals a listed value; a condition's parent must be a Categorical, an Int "
                        "or a fixed value (make it Categorical([...]) to branch on a few values)"
                    )
                bad = [v for v in values if not pp.contains(v)]
                if bad:
                    hint = ""
                    if isinstance(pp, Fixed) and isinstance(pp.value, (list, tuple)):
                        hint = f"; for choices write {parent!r}: Categorical({list(pp.value)!r})"
                    raise ValueError(
                        f"parameter {name!r}: condition {parent!r} in {list(values)} can never "
                        f"hold for {bad}: {parent!r} is {pp!r}{hint}"
                    )

    def _dim(self, name: str) -> Dim:
        p = self._params[name]
        return Dim(name, p.kind, p.n_values, bool(getattr(p, "log", False)), bool(p.when))

    # -- configurations -------------------------------------------------------
    def is_active(self, name: str, config: Mapping[str, Any]) -> bool:
        """Whether ``name`` is active given the (possibly partial) values of its parents."""
        for parent, values in self._params[name].when.items():
            if parent not in config or not self.is_active(parent, config):
                return False
            if not any(_same(config[parent], v) for v in values):
                return False
        return True

    def fits(self, config: Mapping[str, Any]) -> bool:
        """Whether :meth:`validate` accepts ``config``."""
        try:
            self.validate(config)
        except (ValueError, TypeError, OverflowError):
            return False
        return True

    def validate(self, config: Mapping[str, Any]) -> Config:
        """Return the canonical form of ``config`` or raise ValueError naming the problem.

        The canonical form holds exactly the active parameters, in definition
        order, with values of the parameter's type (fixed values filled in).
        """
        if not isinstance(config, Mapping):
            raise TypeError(f"a configuration is a dict, got {type(config).__name__}")
        unknown = sorted(n for n in config if n not in self._params)
        if unknown:
            hint = did_you_mean_each(unknown, list(self._params))
            raise ValueError(f"unknown parameter(s) {unknown}{hint}; the space has {list(self._params)}")
        out: Config = {}
        missing: list[str] = []
        undecided: set[str] = set()
        conditional = self._conditional
        for name in self._order:
            p = self._params[name]
            if conditional and not self.is_active(name, out):
                if any(parent in undecided for parent in p.when):
                    undecided.add(name)  # its parent is missing: whether it is active is unknown
                elif name in config and not isinstance(p, Fixed):
                    raise ValueError(
                        f"parameter {name!r} is inactive here (it needs {dict(p.when)}) "
                        "and must be left out"
                    )
                continue
            if name not in config:
                if isinstance(p, Fixed):
                    out[name] = p.value
                    continue
                missing.append(name)
                undecided.add(name)
                continue
            out[name] = p.validate(config[name])
        if missing:
            which = (f"parameter {missing[0]!r} is" if len(missing) == 1
                     else f"parameters {', '.join(map(repr, missing))} are")
            raise ValueError(f"{which} missing from the configuration: give a value for every active "
                             "parameter (inactive and fixed ones may be left out)")
        return self._in_definition_order(out)

    def sample(self, rng: np.random.Generator) -> Config:
        """A uniformly random configuration (uniform on each parameter's scale)."""
        return self.decode(rng.random(self.ndim))

    def encode(self, config: Mapping[str, Any]) -> np.ndarray:
        """Vector on [0, 1]^ndim; inactive coordinates are NaN."""
        x = np.full(self.ndim, np.nan)
        for name, value in config.items():
            j = self._col.get(name)
            if j is not None:
                x[j] = self._params[name].to_unit(value)
        return x

    def encode_many(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Matrix of shape (len(configs), ndim)."""
        out = np.full((len(configs), self.ndim), np.nan)
        for i, c in enumerate(configs):
            out[i] = self.encode(c)
        return out

    def decode(self, x: Sequence[float] | np.ndarray) -> Config:
        """The configuration at ``x``; coordinates of inactive parameters are ignored
        (NaN there is fine)."""
        if len(x) != self.ndim:
            raise ValueError(f"vector has {len(x)} coordinates, the space has {self.ndim}")
        out: Config = {}
        conditional = self._conditional
        for name in self._order:
            if conditional and not self.is_active(name, out):
                continue
            p = self._params[name]
            if isinstance(p, Fixed):
                out[name] = p.value
                continue
            u = float(x[self._col[name]])
            out[name] = p.from_unit(0.5 if math.isnan(u) else u)
        return self._in_definition_order(out)

    def _in_definition_order(self, config: Config) -> Config:
        """``config`` (built in ``_order``) in definition order; a space without conditions
        builds it in that order already."""
        if not self._conditional:
            return config
        return {n: config[n] for n in self._params if n in config}

    def key(self, config: Mapping[str, Any]) -> str:
        """A canonical string of a configuration: equal configurations, equal keys."""
        canon = self.validate(config)
        return json.dumps({n: canon[n] for n in sorted(canon)}, sort_keys=True, default=repr)

    def fix(self, values: Mapping[str, Any]) -> Space:
        """A new space with each parameter of ``values`` fixed at its value; a parameter
        whose condition can no longer hold is dropped, one that now always holds is
        removed (:mod:`tunesmith.space.narrow`)."""
        from .narrow import fix

        return fix(self, values)

    # -- grids --------------------------------------------------------------
    def grid(self, points: Mapping[str, Any] | None = None) -> list[Config]:
        """Every configuration of the grid, conditional-aware.

        ``points`` maps a parameter to a number of points or a list of values
        (overriding the parameter's own ``grid=``). Two configurations that
        differ only in an inactive parameter are never both listed.
        """
        values = self.grid_values(points)
        configs: list[Config] = [{}]
        for name in self._order:
            nxt: list[Config] = []
            for c in configs:
                if self.is_active(name, c):
                    nxt.extend({**c, name: v} for v in values[name])
                else:
                    nxt.append(c)
                if len(nxt) > MAX_GRID:  # refused as it grows past: three parameters of 1,000 choices
                    raise self._too_big(values)  # built a billion configurations before it was checked
            configs = nxt
        return [{n: c[n] for n in self._params if n in c} for c in configs]

    def grid_values(self, points: Mapping[str, Any] | None = None) -> dict[str, list[Any]]:
        """Each parameter's grid values (``points`` as :meth:`grid` takes them), in the order
        conditions are resolved; a ValueError for points of an unknown parameter or bad ones."""
        points = dict(points or {})
        unknown = sorted(set(points) - set(self._params))
        if unknown:
            hint = did_you_mean_each(unknown, list(self))
            raise ValueError(f"grid points given for unknown parameter(s) {unknown}{hint}")
        return {n: self._params[n].grid(points.get(n)) for n in self._order}

    def _too_big(self, values: Mapping[str, Sequence[Any]]) -> ValueError:
        sizes = ", ".join(f"{n}: {len(values[n])}" for n in self.free[:8]) + (
            f", ... ({len(self.free)} parameters)" if len(self.free) > 8 else "")
        return ValueError(
            f"the grid has more than {MAX_GRID:,} configurations (points per parameter: {sizes}); "
            "give fewer points (grid=3 on a parameter, or GridSampler({'name': [...]})) or search "
            "this space with sampler='random', 'sobol' or 'auto'"
        )

    def grid_size(self, points: Mapping[str, Any] | None = None) -> int:
        return len(self.grid(points))

    @property
    def cardinality(self) -> float:
        """Number of distinct configurations (``inf`` if any float is continuous).

        Exact for spaces of up to 100,000 unconditioned combinations, an upper
        bound beyond."""
        bound = _product_bound(self)
        if math.isinf(bound) or bound > 100_000:
            return bound
        return float(len(self.grid(self.every_value())))

    def every_value(self) -> dict[str, list[Any]]:
        """The grid points of each numeric free parameter that cover all its values (a
        ``GridSampler``'s ``points``): with them the grid is every configuration of a finite space."""
        return {n: self._params[n].every_value() for n in self.free  # type: ignore[attr-defined]
                if self._params[n].kind != "categorical"}

    # -- serialization --------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {name: p.to_dict() for name, p in self._params.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Space:
        """Inverse of :meth:`to_dict`. Plain values (not mappings with a ``type``)
        are fixed parameters; a list is a categorical shorthand."""
        if not isinstance(d, Mapping):
            raise TypeError(f"Space.from_dict takes a mapping of parameter name -> definition, got {type(d).__name__}")
        params: dict[str, Any] = {}
        for name, spec in d.items():
            if isinstance(spec, Mapping) and "type" in spec:
                try:
                    params[name] = param_from_dict(spec)
                except ValueError as exc:
                    raise ValueError(f"parameter {name!r}: {exc}") from None
            elif isinstance(spec, Mapping) and (DEFINITION_KEYS & set(spec) or any(did_you_mean(k, ["type"]) for k in spec)):
                slip = next((f"unknown key {k!r}{did_you_mean(k, ['type'])}; " for k in spec if did_you_mean(k, ["type"])), "")
                raise ValueError(f"parameter {name!r}: {slip}a definition needs a 'type' (float, int, categorical "
                                 "or fixed); a mapping as a fixed value is {type: fixed, value: ...}")
            elif isinstance(spec, Mapping) and spec and all(v is None for v in spec.values()):
                raise ValueError(f"parameter {name!r}: {{{', '.join(map(str, spec))}}} is a mapping of keys without "
                                 f"values in YAML, not a list of choices: write [{', '.join(map(str, spec))}] for "
                                 "choices, or {type: fixed, value: {...}} for a constant mapping")
            elif isinstance(spec, list):  # a list in a choice too, as to_dict writes it (stored {name: {"choices": [c]}})
                try:
                    params[name] = Categorical([_tuples(c, "choice", CHOICE_DEPTH) for c in spec])
                except TooDeep as exc:
                    raise ValueError(f"parameter {name!r}: {exc}") from None
            else:
                params[name] = Fixed(spec)
        return cls(params)

    @classmethod
    def stored(cls, d: Mapping[str, Any], where: str) -> Space:
        """:meth:`from_dict` of a space read back from storage: a space that this refuses (an
        older tunesmith's checks let it pass, or it was changed outside tunesmith) is a
        UnreadableSpaceError (a StorageError) that names ``where`` (the study) and how to keep its trials."""
        try:
            return cls.from_dict(finite_weights(d, where) if isinstance(d, Mapping) else d)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            raise UnreadableSpaceError(
                f"{where}: its stored space is unreadable ({exc}). An older tunesmith may have accepted it "
                "(or it was changed outside tunesmith); its trials are still stored. To keep them, copy them "
                "into the space of your study file: tunesmith copy NAME NEW_NAME --space STUDY.yaml (the "
                "trials that fit it), or export the study with the tunesmith that wrote it (on a copy of the "
                "database made before the upgrade: tunesmith export NAME --format json), change the space in "
                "the file as this message says, and tunesmith import the file here"
            ) from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=False)

    @classmethod
    def from_json(cls, text: str) -> Space:
        return cls.from_dict(json.loads(text))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> Space:
        data = load_yaml(text)
        if not isinstance(data, Mapping):
            path = isinstance(text, str) and text.strip().endswith((".yaml", ".yml")) and "\n" not in text.strip()
            raise ValueError("a space in YAML is a mapping of parameter name -> definition" + (
                f"; from_yaml takes the text, not a file's name: ts.Space.from_yaml(Path({text!r}).read_text())"
                if path else ""))
        return cls.from_dict(data)


def for_display(config: Mapping[str, Any], digits: int = 10) -> dict[str, Any]:
    """``config`` with floats rounded to ``digits`` significant digits, for printing
    only (``0.30000000000000004`` shows as ``0.3``); what is stored keeps every bit."""
    return {k: _rounded(v, digits) for k, v in config.items()}


def display_names(space: Mapping[str, Any]) -> dict[str, str]:
    """The names tables and plots show for a space's parameters. A list of dicts searched
    by ``TunedSearchCV`` stores parameter ``C`` of dict ``i`` as ``"i:C"``, active when the
    hidden ``branch`` parameter (which dict: 0 for the first) is ``i``; it is shown as ``C``
    when no other dict has a ``C``, else as ``C [branch i]``. Every other name, and any that
    would print like another, is shown as it is stored (what is stored never changes)."""
    branch = space.get("branch")
    out = {key: key for key in space}
    if branch is None or getattr(branch, "kind", "") != "categorical":
        return out
    found: dict[str, tuple[int, str]] = {}
    for key, p in space.items():
        head, sep, name = key.partition(":")
        when = dict(getattr(p, "when", None) or {})
        i = as_count(head)  # a stored name's "²:C" passes str.isdigit, not int()
        if sep and i is not None and name and set(when) == {"branch"} and list(when["branch"]) == [i]:
            found[key] = (i, name)
    shared = Counter(name for _, name in found.values())
    for key, (i, name) in found.items():
        out[key] = name if shared[name] == 1 else f"{name} [branch {i}]"
    counts = Counter(out.values())
    return {key: shown if counts[shown] == 1 else key for key, shown in out.items()}


def value_labels(values: Sequence[Any], digits: int = 6) -> list[str]:
    """Labels of parameter values for plots and tables: floats with ``digits`` significant
    digits (``1.0000000000000009``, a log range's centre, shows as ``1``), more where fewer
    would print two distinct values alike; anything else as ``str``. Display only."""
    distinct = len({repr(v) for v in values})
    for d in range(digits, 18):
        labels = [_label(v, d) for v in values]
        if len(set(labels)) >= distinct:
            return _shortened(labels)
    labels = [str(v) for v in values]  # alike at every precision: 1 and "1", None and "None"
    seen = Counter(labels)
    return _shortened([repr(v) if seen[label] > 1 else label for v, label in zip(values, labels, strict=True)])


#: a label or table cell shows at most this many characters of a value (a choice may be 10 MB)
MAX_LABEL = 200


def shortened(text: str) -> str:
    """``text``, or its start and its length when longer than :data:`MAX_LABEL` (as the dashboard's
    tables and ``tunesmith show`` print a value)."""
    return text if len(text) <= MAX_LABEL else f"{text[:MAX_LABEL // 2]}... ({len(text):,} characters)"


def _shortened(labels: list[str]) -> list[str]:
    """Each label :func:`shortened`, in order; two long ones that would read alike also say which choice they are."""
    short = [shortened(label) for label in labels]
    seen = Counter(short)
    return [s if seen[s] == 1 or s == label else f"{label[:MAX_LABEL // 2]}... (choice {i + 1}, {len(label):,} characters)"
            for i, (s, label) in enumerate(zip(short, labels, strict=True))]


def _label(v: Any, digits: int) -> str:
    if isinstance(v, (float, np.floating)) and math.isfinite(v):
        return f"{float(v):.{digits}g}"
    if isinstance(v, tuple):
        return "(" + ", ".join(_label(x, digits) for x in v) + ("," if len(v) == 1 else "") + ")"
    return str(v)


def _rounded(v: Any, digits: int) -> Any:
    if isinstance(v, (float, np.floating)) and math.isfinite(v):
        return float(f"{float(v):.{digits}g}")
    if isinstance(v, (tuple, list)):
        return type(v)(_rounded(x, digits) for x in v)
    if isinstance(v, Mapping):
        return {k: _rounded(x, digits) for k, x in v.items()}
    return v


class DuplicateKeyError(yaml.YAMLError, ValueError):
    """A YAML mapping gives the same key twice."""


class UnreadableValueError(yaml.YAMLError, ValueError):
    """A YAML value that cannot be made: an int of 5,000 digits (Python's limit), the date 2024-13-45."""


class UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain
    ``safe_load`` silently keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key: the base class says so
            if first is not None:
                raise DuplicateKeyError(
                    f"line {key_node.start_mark.line + 1}: the key {key!r} is given twice (first on line "
                    f"{first.line + 1}); give each key once"
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


#: the most values a YAML text may expand to, and its deepest nesting (a file is settings, not data)
MAX_YAML_VALUES = 1_000_000
MAX_YAML_DEPTH = 100


def load_yaml(text: str) -> Any:
    """``yaml.safe_load(text)``, refusing duplicate keys, and a text that nests deeper than
    :data:`MAX_YAML_DEPTH` or expands to more than :data:`MAX_YAML_VALUES` values (aliases ``*a``
    repeating anchors ``&a`` nine times over, nine levels deep, held 387 million: it filled the memory)."""
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise yaml.YAMLError(f"it nests deeper than {MAX_YAML_DEPTH} levels") from None
    except DuplicateKeyError:
        raise
    except ValueError as exc:  # int() of a number of 5,000 digits, a date 2024-13-45: said as YAML's own errors
        raise UnreadableValueError(f"a value cannot be read ({exc})") from None
    _check_yaml_size(data)
    return data


def _check_yaml_size(data: Any) -> None:
    stack, n = [(data, 0)], 0
    while stack:
        x, depth = stack.pop()
        n += 1
        if n > MAX_YAML_VALUES:
            raise yaml.YAMLError(f"it holds more than {MAX_YAML_VALUES:,} values once its aliases (*name) are "
                                 "expanded; write the settings without repeating anchored (&name) parts")
        if depth > MAX_YAML_DEPTH:
            raise yaml.YAMLError(f"it nests deeper than {MAX_YAML_DEPTH} levels")
        items = [*x.keys(), *x.values()] if isinstance(x, dict) else x if isinstance(x, list) else ()
        stack.extend((v, depth + 1) for v in items)


def finite_weights(d: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A stored space without the prior weights of a parameter that has a NaN or infinite one (an older
    tunesmith took them, then its bayes sampler failed on them; refused now), a mode kept; and without
    the weights an older tunesmith stored, unread, on the prior of a Float or Int; a categorical's choices
    that the storage reads back alike listed once (:func:`_alike_as_one`). :meth:`Space.stored`
    reads a stored space so, and a copy of a study stores its space so."""
    out = dict(d)
    for name, spec in d.items():
        if isinstance(spec, Mapping) and spec.get("type") == "categorical":
            spec = out[name] = _alike_as_one(spec, where, str(name))
        prior = spec.get("prior") if isinstance(spec, Mapping) else None
        weight = prior.get("weight") if isinstance(prior, Mapping) else None
        if not isinstance(prior, Mapping) or weight is None:
            continue
        if spec.get("type") in ("float", "int"):  # weights on a number's prior: stored and never read before
            out[name] = {**spec, "prior": {k: v for k, v in prior.items() if k != "weight"}}  # they were refused
            continue
        if spec.get("type") != "categorical" or not isinstance(weight, Mapping):  # a fixed's prior is refused
            continue
        if any(isinstance(w, float) and not math.isfinite(w) for w in weight.values()):
            _say_weights_dropped(where, str(name), repr(dict(weight)))
            rest = {k: v for k, v in prior.items() if k != "weight"}
            out[name] = {k: v for k, v in spec.items() if k != "prior"}
            if rest.get("mode") is not None:
                out[name]["prior"] = rest
    return out


def _alike_as_one(spec: Mapping[str, Any], where: str, name: str) -> Mapping[str, Any]:
    """A stored categorical with each of its texts that the storage reads back alike listed once: the storage
    reads half a surrogate pair as U+FFFD, so "caf\\udce9" and "caf\\udce8" (file names, from os.listdir, that
    an older tunesmith took) both read as "caf\\ufffd\\ufffd\\ufffd", their trials too (refused as "listed twice")."""
    choices = spec.get("choices")
    if not isinstance(choices, list):
        return spec
    alike = Counter(c for c in choices if isinstance(c, str) and "\ufffd" in c)
    twice = {c for c, n in alike.items() if n > 1}
    if not twice:
        return spec
    for c in twice:
        _say_alike(where, name, c, alike[c])
    kept = [c for i, c in enumerate(choices) if not (isinstance(c, str) and c in twice) or choices.index(c) == i]
    return {**spec, "choices": kept}


@functools.lru_cache(maxsize=64)
def _say_alike(where: str, name: str, choice: str, times: int) -> None:
    logging.getLogger("tunesmith").log(
        logging.WARNING if SAY_DROPPED else logging.DEBUG,
        "%s: parameter %r: choice %r is stored %d times: the storage reads half a surrogate pair (a file name "
        "whose bytes are not UTF-8) as U+FFFD, so choices that differed there read alike, and so do their "
        "trials: they are read as one choice (a new space refuses such a choice, naming the repair)",
        where, name, choice, times)


#: False in a Ray actor: the driver opened the study first and said which weights are left out
SAY_DROPPED = True


@functools.lru_cache(maxsize=64)
def _say_weights_dropped(where: str, name: str, weight: str) -> None:
    """Once per study and parameter (the dashboard reads the space again and again)."""
    logging.getLogger("tunesmith").log(
        logging.WARNING if SAY_DROPPED else logging.DEBUG,
        "%s: the prior weights of %r are not all finite (%s), which the bayes sampler cannot use; they are "
        "left out (its choices are drawn alike, or by the prior's mode where it has one). To keep weights, "
        "copy the study into a space with finite ones (tunesmith copy NAME NEW_NAME --space STUDY.yaml)",
        where, name, weight)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (type(a) is type(b) and a == b)
    return bool(a == b)


def _product_bound(space: Space) -> float:
    return float(np.prod([space[n].n_values for n in space.free])) if space.free else 1.0

