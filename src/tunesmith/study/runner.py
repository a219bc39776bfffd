"""How ``Study.optimize`` reaches the executors without importing them.

The study layer sits below the executors (tunesmith.execution drives studies
through their public verbs). ``import tunesmith`` imports the executors, which
register their entry point here with :func:`use_runner`.
"""

from __future__ import annotations

from collections.abc import Callable

_runner: Callable[..., str | None] | None = None


def use_runner(fn: Callable[..., str | None]) -> None:
    """Make ``fn(study, objective, **options)`` the function ``Study.optimize`` calls; it returns the
    error of the trials an interrupt stopped, if one stopped the run (``Study.interrupted``), else None."""
    global _runner
    _runner = fn


def runner() -> Callable[..., str | None]:
    if _runner is None:
        raise RuntimeError("no executor is registered: import tunesmith (or tunesmith.execution) first")
    return _runner
