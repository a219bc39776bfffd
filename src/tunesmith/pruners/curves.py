"""Reading learning curves: the pure helpers every pruner shares.

A *curve* is a trial's intermediate reports, ``{step: value}``. Pruners
compare trials at a step through a *score*, in loss units (smaller is better
whatever the direction): ``curve="last"``, the value reported at that step
(the default of ASHA, SH and Hyperband: the same kind of value the objective
returns and the study's best trial is chosen by); ``curve="best"``, the best
value reported up to that step (the median and percentile rules' default: one
bad epoch cannot make a trial's score worse, only a trial that has *never*
been good enough by that step is stopped); ``curve="ema"``, an exponential
moving average (weight 0.5 on the newest report) that damps one bad epoch
without forgetting a real degradation.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence

from ..trial import Direction, FrozenTrial, TrialState

CURVES = ("best", "last", "ema")

def check_curve(curve: str) -> str:
    if curve not in CURVES:
        raise ValueError(f"curve must be one of {CURVES}, got {curve!r}")
    return curve


def score(
    curve: Mapping[int, float], upto: int, direction: Direction, how: str = "best"
) -> float | None:
    """The trial's score from its reports at steps ``<= upto`` (a loss), or None."""
    steps = sorted(s for s in curve if s <= upto)
    if not steps:
        return None
    sign = direction.sign()
    if how == "best":
        return min(sign * curve[s] for s in steps)
    if how == "last":
        return sign * curve[steps[-1]]
    ema = sign * curve[steps[0]]
    for s in steps[1:]:
        ema = 0.5 * ema + 0.5 * sign * curve[s]
    return ema


class Runs:
    """Each trial's steps (sorted) and its :func:`score` at each of them; a finished trial's
    computed once.

    A pruner's decision scores every other trial at the step; a finished trial's curve
    never changes, so sorting and scanning its reports on every decision made each one
    cost time in proportion to all the reports of the study (11.9 ms a decision at 2,000
    trials of 50 reports). Kept per trial number for the record object last seen (a
    record read again is computed again); an unfinished trial's are computed each time."""

    def __init__(self) -> None:
        self._runs: dict[tuple[int, Direction, str], tuple[FrozenTrial, list[int], list[float]]] = {}

    def of(self, trial: FrozenTrial, direction: Direction, how: str) -> tuple[list[int], list[float]]:
        key = (trial.number, direction, how)
        hit = self._runs.get(key)
        if hit is None or hit[0] is not trial:
            steps = sorted(trial.intermediate)
            hit = (trial, steps, _running(trial.intermediate, steps, direction.sign(), how))
            if trial.state.is_finished:
                self._runs[key] = hit
        return hit[1], hit[2]

    def rung_score(self, trial: FrozenTrial, rung_step: int, direction: Direction, how: str) -> float | None:
        """:func:`rung_score`: the score at the first step reported at or past the rung."""
        steps, run = self.of(trial, direction, how)
        i = bisect.bisect_left(steps, rung_step)
        return run[i] if i < len(steps) else None


def _running(curve: Mapping[int, float], steps: list[int], sign: float, how: str) -> list[float]:
    """:func:`score` at each of ``steps`` (sorted), the same operations in the same order."""
    out: list[float] = []
    for s in steps:
        v = sign * curve[s]
        if out and how == "best":
            v = v if v < out[-1] else out[-1]
        elif out and how == "ema":
            v = 0.5 * out[-1] + 0.5 * v
        out.append(v)
    return out


def crossing(curve: Mapping[int, float], rung_step: int) -> int | None:
    """The first reported step ``>= rung_step``: where the trial reached the rung."""
    later = [s for s in curve if s >= rung_step]
    return min(later) if later else None


def rung_score(trial: FrozenTrial, rung_step: int, direction: Direction, how: str) -> float | None:
    """The trial's score when it reached the rung (None if it has not)."""
    at = crossing(trial.intermediate, rung_step)
    return None if at is None else score(trial.intermediate, at, direction, how)


def already_resumed(trial: FrozenTrial, step: int) -> bool:
    """Whether the study promoted the trial past ``step`` (never stop it there again):
    ``system.resumed_step`` is the last step it had reported when it was promoted."""
    resumed = trial.system.resumed_step
    return resumed is not None and step <= resumed


def comparable(trials: Sequence[FrozenTrial], me: FrozenTrial) -> list[FrozenTrial]:
    """The other trials worth comparing against: every one that reported, except failed."""
    return [
        t
        for t in trials
        if t.number != me.number and t.intermediate and t.state is not TrialState.FAILED
    ]
