"""Hyperband (Li et al., 2017) as brackets of ASHA.

Bracket ``b`` is an ASHA whose first rung is ``min_resource * eta**b``: bracket
0 stops trials most aggressively, the last bracket runs every trial to the
full budget. A trial's bracket is a pure function of its number, so every
worker (and a restarted one) agrees on it without storing anything. Brackets
get trials in Hyperband's proportions, ``n_b = ceil(B / (s + 1) * eta**s)`` with
``s = s_max - b`` halvings and ``B = s_max + 1`` brackets, interleaved so that
any run of consecutive trial numbers samples every bracket.
"""

from __future__ import annotations

import math
from typing import Any

from ..space.params import check_int
from ..trial import FrozenTrial
from .halving import ASHA, check_options


class Hyperband(ASHA):
    """Hyperband: several ASHA brackets with different early-stopping rates.

    Args:
        min_resource, reduction_factor, max_resource, warmup_steps,
            bootstrap_count, pause, curve, quota, calibrate: as for :class:`ASHA`.
        n_brackets: number of brackets (default 2: bracket 0 stops from
            ``min_resource`` on, bracket 1 from ``min_resource * eta``; more
            brackets run more trials further, the last of ``s_max + 1`` runs
            every trial in full).
    """

    name = "hyperband"

    def __init__(self, *, n_brackets: int | None = None, **options: Any) -> None:
        if "min_early_stopping_rate" in options:
            raise ValueError(
                "Hyperband sets each bracket's min_early_stopping_rate itself; drop it"
            )
        check_options("Hyperband", options, ["n_brackets"], drop=["min_early_stopping_rate"])
        super().__init__(**options)
        self.n_brackets = check_int("n_brackets", 2 if n_brackets is None else n_brackets, 1)
        # checked first, by bits when past MAX_PERIOD's (reduction_factor >= 2): with n_brackets=10**12 the powers never end
        if self.n_brackets > MAX_PERIOD.bit_length() or self.reduction_factor ** (self.n_brackets - 1) > MAX_PERIOD:
            most = 1 + math.floor(math.log(MAX_PERIOD, self.reduction_factor) + 1e-9)
            raise ValueError(
                f"n_brackets ({self.n_brackets}) must be at most {most} with reduction_factor "
                f"({self.reduction_factor}): in Hyperband's proportions bracket 0 gets reduction_factor ** "
                f"(n_brackets - 1) = {self.reduction_factor}**{self.n_brackets - 1} trials for each trial of the "
                "last bracket, more than any study runs (its schedule alone would fill the memory). Use fewer "
                "brackets: at most the number of rungs below the full budget, plus one"
            )
        # bracket b's first rung is min_resource * eta**b; the last bracket may run every trial in full
        last_stopping = self.n_brackets - 2  # the last bracket whose first rung must lie below max_resource
        if (self.max_resource is not None and last_stopping >= 0
                and self.min_resource * self.reduction_factor**last_stopping >= self.max_resource):
            rungs = _rungs_below(self.min_resource, self.reduction_factor, self.max_resource)
            raise ValueError(
                f"n_brackets ({self.n_brackets}) must be at most {len(rungs) + 1} with min_resource "
                f"({self.min_resource}), reduction_factor ({self.reduction_factor}) and max_resource "
                f"({self.max_resource}): bracket b's first rung is min_resource * reduction_factor ** b, and "
                f"the rungs below max_resource are {rungs}, so bracket {len(rungs)} already runs every trial in "
                "full and later ones would too. Lower n_brackets, or raise max_resource"
            )
        self._schedule = bracket_schedule(self.n_brackets, self.reduction_factor)

    def bracket(self, number: int) -> int:
        """The bracket of trial ``number`` (0 = most aggressive)."""
        return self._schedule[number % len(self._schedule)]

    def _first_rate(self, trial: FrozenTrial | None) -> int:
        return 0 if trial is None else self.bracket(trial.number)

    def group(self, number: int) -> int:
        return self.bracket(number)

    def describe(self) -> dict[str, Any]:
        out = {**super().describe(), "n_brackets": self.n_brackets}
        del out["min_early_stopping_rate"]
        return out


#: the most trials of bracket 0 per trial of the last bracket (the schedule's period grows as this)
MAX_PERIOD = 2**20


def _rungs_below(min_resource: int, eta: int, max_resource: int) -> list[int]:
    out, step = [], min_resource
    while step < max_resource:
        out.append(step)
        step *= eta
    return out


def bracket_schedule(n_brackets: int, eta: int) -> list[int]:
    """One period of bracket assignments: bracket ``b`` appears ``n_b`` times, interleaved."""
    s_max = n_brackets - 1
    counts = [
        math.ceil(n_brackets / (s_max - b + 1) * eta ** (s_max - b)) for b in range(n_brackets)
    ]
    slots = [((i + 0.5) / n, b) for b, n in enumerate(counts) for i in range(n)]
    return [b for _, b in sorted(slots)]
