"""Narrowing a space: some parameters fixed at given values, conditions resolved.

``fix(space, {"kernel": "rbf", "C": 3.0})`` is the space with ``kernel`` and ``C``
turned into fixed parameters. Conditions follow:

- a parameter whose condition on a fixed parent can no longer hold (``degree``
  needs ``kernel == "poly"``) is dropped, and so is everything below it;
- a condition that always holds now (``gamma`` needs ``kernel`` in ``["rbf", "poly"]``)
  is removed, so the parameter becomes unconditional (a parent that is itself
  conditional passes its own activity on: the condition keeps just the fixed value).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .params import Condition, Fixed, Param, param_from_dict
from .space import Space, _same


def fix(space: Space, values: Mapping[str, Any]) -> Space:
    """``space`` with each parameter of ``values`` fixed at its value (validated
    against the parameter); see the module's docstring for conditions."""
    unknown = sorted(set(values) - set(space))
    if unknown:
        raise ValueError(f"cannot fix unknown parameter(s) {unknown}; the space has {list(space)}")
    new: dict[str, Param] = {}
    for name in space._order:
        when = _resolved(space[name].when, new)
        if when is None:
            continue  # its condition can never hold: dropped
        new[name] = _fixed(space[name], values[name], when) if name in values else _with_when(space[name], when)
    return Space({n: new[n] for n in space if n in new})


def dropped(space: Space, narrowed: Space) -> list[str]:
    """The parameters of ``space`` that ``narrowed`` no longer has (never active there)."""
    return [n for n in space if n not in narrowed]


def _resolved(when: Condition, new: Mapping[str, Param]) -> dict[str, tuple[Any, ...]] | None:
    """``when`` given the parents already narrowed in ``new``; None if it can never hold."""
    out: dict[str, tuple[Any, ...]] = {}
    for parent, allowed in when.items():
        pp = new.get(parent)
        if pp is None:
            return None  # the parent itself was dropped
        if not isinstance(pp, Fixed):
            out[parent] = allowed
        elif not any(_same(pp.value, v) for v in allowed):
            return None
        elif pp.when:
            out[parent] = (pp.value,)  # holds whenever the parent is active
    return out


def _fixed(p: Param, value: Any, when: Mapping[str, Any]) -> Fixed:
    return Fixed(p.validate(value), when=dict(when) or None)


def _with_when(p: Param, when: Mapping[str, tuple[Any, ...]]) -> Param:
    if dict(when) == dict(p.when):
        return param_from_dict(p.to_dict())  # a fresh copy: a Param is bound to one Space
    d = {k: v for k, v in p.to_dict().items() if k != "when"}
    if when:
        d["when"] = {k: list(v) for k, v in when.items()}
    return param_from_dict(d)
