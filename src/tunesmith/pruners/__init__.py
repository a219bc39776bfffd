"""Pruners: pure early-stopping decisions over intermediate reports."""

from __future__ import annotations

from typing import Any

from .base import Decision, NopPruner, Pruner
from .curves import RESUMED_ATTR
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
    """Make ``Study(pruner=name)`` build ``cls``."""
    _BUILTIN[name] = cls


def make_pruner(spec: str | Pruner | dict[str, Any] | None) -> Pruner:
    """A pruner from a name, a description (as stored with a study) or an instance."""
    if spec is None:
        return NopPruner()
    if isinstance(spec, Pruner):
        return spec
    options: dict[str, Any] = {}
    if isinstance(spec, dict):
        options = dict(spec)
        spec = options.pop("name")
    if not isinstance(spec, str) or spec.lower() not in _BUILTIN:
        raise ValueError(
            f"unknown pruner {spec!r}; use one of {sorted(_BUILTIN)} or a Pruner instance"
        )
    try:
        return _BUILTIN[spec.lower()](**options)
    except TypeError as exc:
        raise TypeError(f"pruner {spec!r}: {exc}") from None


__all__ = [
    "ASHA",
    "RESUMED_ATTR",
    "Decision",
    "Hyperband",
    "MedianPruner",
    "NopPruner",
    "PercentilePruner",
    "Pruner",
    "SuccessiveHalving",
    "make_pruner",
    "register",
]
