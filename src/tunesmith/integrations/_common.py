"""What every integration shares: the lazy import and report-then-decide."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from ..exceptions import TrialPruned
from ..pruners import Decision


def require(module: str, *, extra: str, what: str) -> ModuleType:
    """``import module``, or an ImportError that names the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{what} needs the '{module}' package, which is not installed: "
            f"pip install 'tunesmith[{extra}]'"
        ) from exc


def report_and_decide(trial: Any, value: float, step: int) -> None:
    """Report ``value`` at ``step``, ask the pruner once, and raise :class:`TrialPruned` when it
    stops the trial (for callbacks that cannot pause: see :func:`refuse_pausing`)."""
    reported = trial.intermediate
    if reported and step <= max(reported):
        raise ValueError(
            f"trial {trial.number} reported boosting round {max(reported)} and now round {step} again: "
            "one trial's callback follows one training. To cross-validate, use xgb.cv / lgb.cv with "
            "the callback (it reports the folds' mean), or train the folds without it and report "
            "their mean yourself"
        )
    trial.report(value, step)
    if trial.decision() is not Decision.CONTINUE:  # asked once: another worker may report meanwhile
        raise TrialPruned(f"trial {trial.number} pruned at step {step}")


def refuse_pausing(trial: Any, what: str) -> None:
    """A ValueError when the study's pruner pauses: ``what`` cannot resume a paused run."""
    if getattr(trial.study.pruner, "pause", False):
        raise ValueError(
            f"{what} cannot resume a paused trial, but study {trial.study.name!r} has a pruner "
            f"that pauses ({trial.study.pruner.describe()}); use it without pause=True "
            "(e.g. ts.pruners.ASHA(max_resource=...))"
        )


def check_direction(trial: Any, metric: str, *, maximize: bool, what: str) -> None:
    """A ValueError when the study's direction is not the metric's (``maximize``)."""
    want = "maximize" if maximize else "minimize"
    have = str(getattr(trial.study.direction, "value", trial.study.direction))
    if have != want:
        raise ValueError(
            f"{what}: the metric {metric!r} is better when {'higher' if maximize else 'lower'}, "
            f"but the study's direction is {have!r}; create the study with direction={want!r} "
            "or monitor another metric"
        )
