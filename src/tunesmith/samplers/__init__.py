"""Samplers: pure search strategies (trials in, configurations out)."""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING, Any

from ..space.params import check_options, did_you_mean
from .auto import AutoSampler
from .base import Sampler, Suggestion
from .fidelity import MultiFidelitySampler, fidelity_history
from .simple import GridSampler, RandomSampler, SobolSampler

if TYPE_CHECKING:
    from .bayes import BayesOptions, BayesSampler
    from .tpe import TPESampler

#: the model-based samplers need scipy; they are imported on first use so
#: that ``import tunesmith`` (and every Ray actor or worker process) stays fast
_LAZY = {"BayesOptions": ".bayes", "BayesSampler": ".bayes", "TPESampler": ".tpe"}

_BUILTIN: dict[str, type[Sampler] | str] = {
    "random": RandomSampler,
    "sobol": SobolSampler,
    "grid": GridSampler,
    "auto": AutoSampler,
    "bayes": "BayesSampler",
    "tpe": "TPESampler",
    "multifidelity": MultiFidelitySampler,
}


#: other names for the built-in strategies (a study records the sampler's own name)
ALIASES = {"quasi-random": "sobol", "quasi_random": "sobol", "quasirandom": "sobol", "qmc": "sobol",
           "gp": "bayes", "bayesian": "bayes", "exhaustive": "grid"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register(name: str, cls: type[Sampler]) -> None:
    """Make ``Study(sampler=name)`` build ``cls``; ``cls.name`` becomes ``name``, so a
    study stored with it reopens with it (``describe()`` must give its settings)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"register: the name must be a non-empty string, got {name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Sampler)):
        raise TypeError(f"register: {cls!r} is not a subclass of tunesmith.samplers.Sampler")
    known = cls.__dict__.get("name")
    if known is not None and known != name.lower() and _resolve(str(known)) is cls:
        raise ValueError(
            f"register: {cls.__name__} is registered as {known!r} already; register a subclass "
            "to give it a second name"
        )
    cls.name = name.lower()
    _BUILTIN[name.lower()] = cls


def _resolve(name: str) -> type[Sampler] | None:
    cls = _BUILTIN.get(name.lower())
    return __getattr__(cls) if isinstance(cls, str) else cls


def is_known(name: Any) -> bool:
    """Whether ``name`` names a sampler this process can build (built in, registered or an alias)."""
    return isinstance(name, str) and (name.lower() in _BUILTIN or name.lower() in ALIASES)


def unknown(name: Any) -> str:
    """``unknown sampler 'gird' (did you mean 'grid'?)``: what is said of a name no sampler has."""
    return f"unknown sampler {name!r}{did_you_mean(name.lower() if isinstance(name, str) else name, [*_BUILTIN, *ALIASES])}"


def names() -> list[str]:
    """The names :func:`make_sampler` builds (built in and registered), sorted; aliases aside."""
    return sorted(_BUILTIN)


def make_sampler(spec: str | Sampler | type[Sampler] | dict[str, Any], seed: int | None = None) -> Sampler:
    """A sampler from a name ("random", "sobol", "grid", ...), a description
    (as stored with a study) or an instance (returned as is) or a Sampler class (built with ``seed``)."""
    if isinstance(spec, Sampler):
        return spec
    if isinstance(spec, type) and issubclass(spec, Sampler):  # the class itself: built with the seed
        return spec(seed=seed) if "seed" in inspect.signature(spec.__init__).parameters else spec()
    options: dict[str, Any] = {}
    if isinstance(spec, dict):
        options = dict(spec)
        if "name" not in options:
            raise ValueError(f"a sampler description needs a 'name' (one of {sorted(_BUILTIN)}), got {spec!r}; "
                             "e.g. {'name': 'tpe', 'n_startup': 10}")
        spec = options.pop("name")
        stored = options.pop("seed", None)
        seed = seed if seed is not None else stored  # an explicit seed wins over a stored one
    if isinstance(spec, str) and spec.lower() not in _BUILTIN and spec.lower() in ALIASES:
        spec = ALIASES[spec.lower()]  # the README's words for the strategies; stored under the name
    if not isinstance(spec, str) or spec.lower() not in _BUILTIN:
        raise ValueError(
            f"{unknown(spec)}; use one of {names()} or a Sampler instance (a study "
            "stored with a custom sampler reopens once its class is registered in this process: "
            "tunesmith.samplers.register(name, cls))"
        )
    cls = _resolve(spec)
    assert cls is not None  # checked just above
    check_options(f"sampler {spec!r}", cls.__init__, options)
    return cls(seed=seed, **options)


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
    "is_known",
    "make_sampler",
    "register",
]
