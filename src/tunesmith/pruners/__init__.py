"""Pruners: pure early-stopping decisions over intermediate reports."""

from __future__ import annotations

from typing import Any

from .base import Decision, NopPruner, Pruner

_BUILTIN: dict[str, type[Pruner]] = {"none": NopPruner}


def register(name: str, cls: type[Pruner]) -> None:
    """Make ``Study(pruner=name)`` build ``cls``."""
    _BUILTIN[name] = cls


def make_pruner(spec: str | Pruner | dict[str, Any] | None) -> Pruner:
    if spec is None:
        return NopPruner()
    if isinstance(spec, Pruner):
        return spec
    options: dict[str, Any] = {}
    if isinstance(spec, dict):
        options = dict(spec)
        spec = options.pop("name")
    if not isinstance(spec, str) or spec.lower() not in _BUILTIN:
        raise ValueError(f"unknown pruner {spec!r}; use one of {sorted(_BUILTIN)} or a Pruner instance")
    return _BUILTIN[spec.lower()](**options)


__all__ = ["Decision", "NopPruner", "Pruner", "make_pruner", "register"]
