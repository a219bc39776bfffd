"""Samplers: pure search strategies (trials in, configurations out)."""

from __future__ import annotations

from typing import Any

from .auto import AutoSampler
from .base import Sampler, Suggestion
from .bayes import BayesOptions, BayesSampler
from .fidelity import MultiFidelitySampler, fidelity_history
from .simple import GridSampler, RandomSampler, SobolSampler
from .tpe import TPESampler

_BUILTIN: dict[str, type[Sampler]] = {
    "random": RandomSampler,
    "sobol": SobolSampler,
    "grid": GridSampler,
    "auto": AutoSampler,
    "bayes": BayesSampler,
    "tpe": TPESampler,
    "multifidelity": MultiFidelitySampler,
}


def register(name: str, cls: type[Sampler]) -> None:
    """Make ``Study(sampler=name)`` build ``cls``."""
    _BUILTIN[name] = cls


def make_sampler(spec: str | Sampler | dict[str, Any], seed: int | None = None) -> Sampler:
    """A sampler from a name ("random", "sobol", "grid", ...), a description
    (as stored with a study) or an instance (returned as is)."""
    if isinstance(spec, Sampler):
        return spec
    options: dict[str, Any] = {}
    if isinstance(spec, dict):
        options = dict(spec)
        spec = options.pop("name")
        stored = options.pop("seed", None)
        seed = seed if seed is not None else stored  # an explicit seed wins over a stored one
    if not isinstance(spec, str) or spec.lower() not in _BUILTIN:
        raise ValueError(
            f"unknown sampler {spec!r}; use one of {sorted(_BUILTIN)} or a Sampler instance"
        )
    return _BUILTIN[spec.lower()](seed=seed, **options)


__all__ = [
    "AutoSampler",
    "BayesOptions",
    "BayesSampler",
    "GridSampler",
    "MultiFidelitySampler",
    "RandomSampler",
    "Sampler",
    "SobolSampler",
    "Suggestion",
    "TPESampler",
    "fidelity_history",
    "make_sampler",
    "register",
]
