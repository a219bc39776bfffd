"""How ``Study.optimize`` reaches the executors without importing them.

The study layer sits below the executors (tunesmith.execution drives studies
through their public verbs). ``import tunesmith`` imports the executors, which
register their entry point here with :func:`use_runner`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_runner: Callable[..., None] | None = None


def use_runner(fn: Callable[..., None]) -> None:
    """Make ``fn(study, objective, **options)`` the function ``Study.optimize`` calls."""
    global _runner
    _runner = fn


def runner() -> Callable[..., Any]:
    if _runner is None:
        raise RuntimeError("no executor is registered: import tunesmith (or tunesmith.execution) first")
    return _runner
