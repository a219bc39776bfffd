"""Pruners: pure early-stopping decisions over intermediate reports."""

from __future__ import annotations

from typing import Any

from ..space.params import check_options, did_you_mean
from .base import REPORTED_STATES, Decision, NopPruner, Pruner
from .halving import ASHA, SuccessiveHalving
from .hyperband import Hyperband
from .percentile import MedianPruner, PercentilePruner

_BUILTIN: dict[str, type[Pruner]] = {
    "none": NopPruner,
    "median": MedianPruner,
    "percentile": PercentilePruner,
    "sh": SuccessiveHalving,
    "asha": ASHA,
    "hyperband": Hyperband,
}


def register(name: str, cls: type[Pruner]) -> None:
    """Make ``Study(pruner=name)`` build ``cls``; ``cls.name`` becomes ``name``, so a
    study stored with it reopens with it (``describe()`` must give its settings)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"register: the name must be a non-empty string, got {name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Pruner)):
        raise TypeError(f"register: {cls!r} is not a subclass of tunesmith.pruners.Pruner")
    known = cls.__dict__.get("name")
    if _BUILTIN.get(str(known)) is cls and known != name.lower():
        raise ValueError(
            f"register: {cls.__name__} is registered as {known!r} already; register a subclass "
            "to give it a second name"
        )
    current = _BUILTIN.get(name.lower())
    if current is not None and current is not cls and current.__module__.startswith("tunesmith."):
        raise ValueError(
            f"register: {name.lower()!r} is the name of tunesmith's {current.__name__}; studies stored with it "
            "would reopen with your class and decide differently. Register it under another name"
        )
    cls.name = name.lower()
    _BUILTIN[name.lower()] = cls


def as_stored(spec: Any) -> Any:
    """A pruner's description as stored with a study, with the settings it lacks (stored before
    they existed) as :attr:`Pruner.stored_before` says they were then; anything else as it is."""
    name = spec.get("name") if isinstance(spec, dict) else None
    if not isinstance(name, str) or not is_known(name):
        return spec
    return {**_BUILTIN[_builtin_name(name)].stored_before, **spec}


def _builtin_name(spec: str) -> str:
    """``spec`` lowered, or the name of the pruner whose class it names ("MedianPruner": "median")."""
    if spec.lower() in _BUILTIN:
        return spec.lower()
    return next((n for n, c in _BUILTIN.items() if c.__name__.lower() == spec.lower()), spec)


def is_known(name: Any) -> bool:
    """Whether ``name`` names a pruner this process can build (built in or registered, or its class's name)."""
    return isinstance(name, str) and _builtin_name(name) in _BUILTIN


def unknown(name: Any) -> str:
    """``unknown pruner 'medain' (did you mean 'median'?)``: what is said of a name no pruner has."""
    return f"unknown pruner {name!r}{did_you_mean(name, names())}"


def names() -> list[str]:
    """The names :func:`make_pruner` builds (built in and registered), sorted."""
    return sorted(_BUILTIN)


def make_pruner(spec: str | Pruner | dict[str, Any] | None) -> Pruner:
    """A pruner from a name, a description (as stored with a study) or an instance."""
    if spec is None:
        return NopPruner()
    if isinstance(spec, Pruner):
        return spec
    options: dict[str, Any] = {}
    if isinstance(spec, dict):
        options = dict(spec)
        if "name" not in options:
            raise ValueError(
                f"a pruner description needs a 'name' (one of {sorted(_BUILTIN)}), got {spec!r}; "
                "e.g. {'name': 'asha', 'reduction_factor': 2}"
            )
        spec = options.pop("name")
    if isinstance(spec, type) and issubclass(spec, Pruner):
        raise ValueError(
            f"pruner={spec.__name__} is the class; pass an instance: {spec.__name__}() "
            "(with its settings), or its name"
        )
    if isinstance(spec, bool):
        raise ValueError(
            f"pruner={spec} is not a pruner: pass a name ({sorted(_BUILTIN)}; \"asha\" for the defaults), "
            "a Pruner instance, or leave pruner out (or pass 'none') for no pruning"
        )
    if isinstance(spec, str):  # a class's name: "MedianPruner"
        spec = _builtin_name(spec)
    if not isinstance(spec, str) or not is_known(spec):
        raise ValueError(f"{unknown(spec)}; use one of {names()} or a Pruner instance")
    check_options(f"pruner {spec!r}", _BUILTIN[spec.lower()].__init__, options)
    try:
        return _BUILTIN[spec.lower()](**options)
    except TypeError as exc:
        raise TypeError(f"pruner {spec!r}: {exc}") from None


__all__ = [
    "ASHA",
    "REPORTED_STATES",
    "Decision",
    "as_stored",
    "Hyperband",
    "MedianPruner",
    "NopPruner",
    "PercentilePruner",
    "Pruner",
    "SuccessiveHalving",
    "make_pruner",
    "register",
]
