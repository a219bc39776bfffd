"""Median and percentile stopping: stop a trial worse than most others at its step."""

from __future__ import annotations

import bisect
import itertools
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..space.params import check_int
from ..trial import Direction, FrozenTrial, TrialState, short_repr
from .base import REPORTED_STATES, Decision, Pruner
from .curves import Runs, already_resumed, check_curve, comparable, score


class PercentilePruner(Pruner):
    """Stop a trial whose score is worse than the given percentile of the others'.

    At each checked step ``s`` the trial's score (best value reported up to
    ``s``, see :mod:`tunesmith.pruners.curves`) is compared with the scores
    at ``s`` of every other trial that reported up to ``s`` (running, paused
    and finished ones alike; failed ones excluded). ``percentile=25`` keeps the
    best quarter: a trial is stopped when its score is worse than the 25th
    percentile of the others' (a quarter of them or more were better by that step).
    Optuna's pruner compares with the *complete* trials' values *at* ``s`` instead (laxer on
    noisy curves: docs/pruning.md, "What the median compares").

    Args:
        percentile: the share of trials to keep, in (0, 100).
        n_startup_trials: never stop before this many trials have finished.
        warmup_steps: never stop a trial before it reported this step.
        interval: check every ``interval`` steps after the warm-up.
        min_trials_at_step: compare only when at least this many other trials
            reached the step.
        curve: "best" (best-so-far, the default; robust to one bad epoch),
            "ema" (smoothed) or "last" (last value, noise-sensitive).
    """

    name = "percentile"
    reads = REPORTED_STATES

    def __init__(
        self,
        percentile: float = 25.0,
        *,
        n_startup_trials: int = 5,
        warmup_steps: int = 0,
        interval: int = 1,
        min_trials_at_step: int = 1,
        curve: str = "best",
    ) -> None:
        real = isinstance(percentile, numbers.Real) and not isinstance(percentile, bool)  # NumPy numbers too
        try:
            value = float(percentile) if real else float("nan")
        except OverflowError:  # an int beyond a float's range (JSON keeps a stored 10**400 whole)
            value = float("nan")
        if not 0.0 < value < 100.0:
            raise ValueError(f"percentile must be a number in (0, 100), got {short_repr(percentile)}")
        self.percentile = value
        self.n_startup_trials = check_int("n_startup_trials", n_startup_trials, 0)
        self.warmup_steps = check_int("warmup_steps", warmup_steps, 0)
        self.interval = check_int("interval", interval, 1)
        self.min_trials_at_step = check_int("min_trials_at_step", min_trials_at_step, 1)
        self.curve = check_curve(curve)
        self._runs = Runs()  # finished peers' running scores, computed once

    def needs_trials(self, trial: FrozenTrial) -> bool:
        """Only at the steps it checks (after the warm-up, every ``interval``)."""
        step = trial.last_step
        return not (
            step is None
            or step < self.warmup_steps
            or already_resumed(trial, step)
            or (step - self.warmup_steps) % self.interval != 0
        )

    def idle_warning(self, trial: FrozenTrial) -> str | None:
        last = trial.last_step
        if last is None or last >= self.warmup_steps:
            return None
        return (
            f"{self!r}: trial {trial.number} completed at step {last}, before warmup_steps "
            f"({self.warmup_steps}), so trials of {last} steps are never stopped. Lower warmup_steps"
        )

    def decide(
        self, trial: FrozenTrial, trials: Sequence[FrozenTrial], direction: Direction
    ) -> Decision:
        step = trial.last_step
        if step is None or not self.needs_trials(trial):
            return Decision.CONTINUE
        done = (t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED))
        if sum(1 for _ in itertools.islice(done, self.n_startup_trials)) < self.n_startup_trials:  # counted to it
            return Decision.CONTINUE
        runs = [self._runs.of(t, direction, self.curve) for t in comparable(trials, trial)]  # each has reports
        if not any(steps[-1] > step for steps, _ in runs):
            # no other trial went past this step: it may be the last of a full run, and a trial
            # that trained in full is never stopped (the best is chosen among them, as with ASHA)
            return Decision.CONTINUE
        others = [run[i - 1] for steps, run in runs if steps[-1] >= step and (i := bisect.bisect_right(steps, step))]
        if len(others) < self.min_trials_at_step:
            return Decision.CONTINUE
        mine = score(trial.intermediate, step, direction, self.curve)
        threshold = float(np.percentile(np.array(others), self.percentile))
        return Decision.PRUNE if mine is not None and mine > threshold else Decision.CONTINUE

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "percentile": self.percentile,
            "n_startup_trials": self.n_startup_trials,
            "warmup_steps": self.warmup_steps,
            "interval": self.interval,
            "min_trials_at_step": self.min_trials_at_step,
            "curve": self.curve,
        }


class MedianPruner(PercentilePruner):
    """Median stopping rule: stop a trial worse than the median of the others at its step.

    Same settings as :class:`PercentilePruner` with the percentile fixed at 50.
    """

    name = "median"

    def __init__(
        self,
        *,
        n_startup_trials: int = 5,
        warmup_steps: int = 0,
        interval: int = 1,
        min_trials_at_step: int = 1,
        curve: str = "best",
    ) -> None:
        super().__init__(
            50.0,
            n_startup_trials=n_startup_trials,
            warmup_steps=warmup_steps,
            interval=interval,
            min_trials_at_step=min_trials_at_step,
            curve=curve,
        )

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        del out["percentile"]
        return out
