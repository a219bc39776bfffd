"""One tunesmith Space, mapped faithfully onto each peer's space language.

Same parameters, same ranges, same scales for everyone:

* Optuna: define-by-run; parameters are suggested in dependency order and an
  inactive conditional parameter is never suggested.
* Hyperopt: a conditional parameter lives inside ``hp.choice`` of its parent
  (one label per branch, as Hyperopt requires: ``gamma|kernel=1``).
* scikit-optimize has no conditions: the space is flattened and inactive
  parameters are sampled but ignored when the configuration is built.

Log floats map to log-uniform, log ints to log-uniform integers, steps to the
peer's quantized forms, snapped back onto tunesmith's lattice.
"""

from __future__ import annotations

import math
from typing import Any

import tunesmith as ts
from tunesmith.space.params import Categorical, Fixed, Float, Int, Param


def dependency_order(space: ts.Space) -> list[str]:
    """Parameter names with every parent before its children."""
    done: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        for parent in space[name].when:
            visit(parent)
        done.append(name)

    for name in space:
        visit(name)
    return done


def snap(p: Param, value: Any) -> Any:
    """A peer's raw number moved onto the parameter's range and lattice."""
    if isinstance(p, (Float, Int)):
        x = min(max(float(value), float(p.low)), float(p.high))
        if p.step is not None:
            k = round((x - p.low) / p.step)
            x = p.low + k * p.step
        return int(round(x)) if isinstance(p, Int) else float(x)
    return value


# -- Optuna ---------------------------------------------------------------------
def optuna_config(trial: Any, space: ts.Space) -> dict[str, Any]:
    """Suggest the active parameters of ``space`` on an Optuna trial."""
    cfg: dict[str, Any] = {}
    for name in dependency_order(space):
        if not space.is_active(name, cfg):
            continue
        cfg[name] = _optuna_suggest(trial, name, space[name])
    return space.validate(cfg)


def _optuna_suggest(trial: Any, name: str, p: Param) -> Any:
    if isinstance(p, Fixed):
        return p.value
    if isinstance(p, Float):
        return trial.suggest_float(name, p.low, p.high, log=p.log, step=p.step)
    if isinstance(p, Int):
        return trial.suggest_int(name, p.low, p.high, step=p.step or 1, log=p.log)
    if isinstance(p, Categorical):
        if all(isinstance(c, (str, int, float, bool)) or c is None for c in p.choices):
            return trial.suggest_categorical(name, list(p.choices))
        return p.choices[trial.suggest_categorical(name, list(range(len(p.choices))))]
    raise TypeError(f"parameter {name!r}: no Optuna mapping for {type(p).__name__}")


# -- Hyperopt -------------------------------------------------------------------
_VALUE = "__value__"


def hyperopt_space(space: ts.Space) -> dict[str, Any]:
    """A Hyperopt search space (nested ``hp.choice`` for conditions)."""
    children: dict[str, list[str]] = {n: [] for n in space}
    for name in space:
        when = space[name].when
        if len(when) > 1:
            raise ValueError(f"parameter {name!r}: Hyperopt mapping supports one parent per condition")
        for parent in when:
            if not isinstance(space[parent], Categorical):
                raise ValueError(f"parameter {name!r}: Hyperopt mapping needs a categorical parent")
            children[parent].append(name)
    return {n: _hp_node(space, children, n, "") for n in space if not space[n].when}


def _hp_node(space: ts.Space, children: dict[str, list[str]], name: str, suffix: str) -> Any:
    from hyperopt import hp

    p = space[name]
    kids = children[name]
    if not kids:
        return _hp_leaf(p, name + suffix)
    assert isinstance(p, Categorical)
    options = []
    for i, value in enumerate(p.choices):
        branch: dict[str, Any] = {_VALUE: i}
        for kid in kids:
            if any(value == v for v in space[kid].when[name]):
                branch[kid] = _hp_node(space, children, kid, f"{suffix}|{name}={i}")
        options.append(branch)
    return hp.choice(name + suffix, options)


def _hp_leaf(p: Param, label: str) -> Any:
    from hyperopt import hp

    if isinstance(p, Fixed):
        return p.value
    if isinstance(p, Categorical):
        return hp.choice(label, list(range(len(p.choices))))
    assert isinstance(p, (Float, Int))
    if p.step is not None and not (isinstance(p, Int) and p.step == 1):
        return hp.quniform(label, p.low, p.high, p.step)
    if isinstance(p, Int):
        if p.log:
            return hp.qloguniform(label, math.log(p.low - 0.5), math.log(p.high + 0.5), 1)
        return hp.quniform(label, p.low - 0.5, p.high + 0.5, 1)
    if p.log:
        return hp.loguniform(label, math.log(p.low), math.log(p.high))
    return hp.uniform(label, p.low, p.high)


def hyperopt_config(sample: dict[str, Any], space: ts.Space) -> dict[str, Any]:
    """Flatten what Hyperopt passes to the objective into a configuration."""
    flat: dict[str, Any] = {}

    def walk(name: str, value: Any) -> None:
        p = space[name]
        if isinstance(value, dict) and _VALUE in value:
            flat[name] = p.choices[value[_VALUE]]  # type: ignore[attr-defined]
            for k, v in value.items():
                if k != _VALUE:
                    walk(k, v)
        elif isinstance(p, Categorical):
            flat[name] = p.choices[int(value)]
        else:
            flat[name] = snap(p, value)

    for name, value in sample.items():
        walk(name, value)
    return space.validate(flat)


# -- scikit-optimize ---------------------------------------------------------------
def skopt_dimensions(space: ts.Space) -> tuple[list[str], list[Any]]:
    """Flattened skopt dimensions (fixed parameters left out) and their names."""
    names = [n for n in dependency_order(space) if not isinstance(space[n], Fixed)]
    return names, [_skopt_dim(space[n], n) for n in names]


def _skopt_dim(p: Param, name: str) -> Any:
    from skopt.space import Categorical as SkCat
    from skopt.space import Integer, Real

    if isinstance(p, Categorical):
        return SkCat(list(range(len(p.choices))), name=name)
    assert isinstance(p, (Float, Int))
    if p.step is not None and not (isinstance(p, Int) and p.step == 1):
        return Integer(0, round((p.high - p.low) / p.step), name=name)
    prior = "log-uniform" if p.log else "uniform"
    if isinstance(p, Int):
        return Integer(p.low, p.high, prior=prior, name=name)
    return Real(p.low, p.high, prior=prior, name=name)


def skopt_config(x: list[Any], names: list[str], space: ts.Space) -> dict[str, Any]:
    """The configuration at skopt's point ``x``; inactive coordinates ignored."""
    return raw_config(dict(zip(names, x, strict=True)), space)


def raw_config(raw: dict[str, Any], space: ts.Space) -> dict[str, Any]:
    """The configuration of a flat point (categoricals and stepped numbers as indices,
    as :func:`skopt_dimensions` lays them out); inactive or missing coordinates ignored."""
    cfg: dict[str, Any] = {}
    for name in dependency_order(space):
        p = space[name]
        if not space.is_active(name, cfg):
            continue
        if isinstance(p, Fixed):
            cfg[name] = p.value
        elif isinstance(p, Categorical):
            cfg[name] = p.choices[int(raw[name])]
        elif p.step is not None and not (isinstance(p, Int) and p.step == 1):
            cfg[name] = snap(p, p.low + int(raw[name]) * p.step)
        else:
            cfg[name] = snap(p, raw[name])
    return space.validate(cfg)
