"""Multi-fidelity observations: let a sampler learn from early-stopped trials (BOHB's rule).

With a pruner most trials stop early, so few are *complete*; a model-based
sampler that only reads complete trials learns from a handful of points. BOHB
(Falkner et al., 2018) instead fits its model on the observations at the
largest budget that has enough of them. :func:`fidelity_history` does that on
plain trial records:

* if at least ``min_points`` trials are complete, the history is returned as is
  (full-budget observations are plenty);
* else it picks the largest step ``b`` that at least ``min_points`` trials
  (complete, pruned, paused or running; failed ones excluded) reported at or
  beyond, with a report at or before ``b`` (trials may report on different
  step grids), and returns each of those trials as a *complete* observation whose
  value is its best report up to ``b`` (the same best-so-far score the pruners
  use); every other trial is returned unchanged, in the same order, so the
  sampler still sees what is pending and what was already tried (trials
  stopped below ``b`` stay pruned: samplers that penalize pruned trials learn
  that region is poor).

:class:`MultiFidelitySampler` wraps any sampler with that view, TPE by default
(BOHB's model), e.g. ``Study(sampler=MultiFidelitySampler("bayes"), pruner="hyperband")``.
With a pruner the ``"auto"`` sampler is plain TPE: Sobol points until enough trials have
completed (stopped ones do not count), then a model of every finished or paused trial, a stopped one
by its last report. On the pruning replay benchmark it reached the best validation error
as often as this wrapper with fewer epochs (benchmarks/pruning-replay.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..space import Space
from ..space.params import check_count
from ..trial import Direction, FrozenTrial, TrialState
from .base import Sampler, Suggestion


def fidelity_history(
    trials: Sequence[FrozenTrial], direction: Direction, *, min_points: int
) -> list[FrozenTrial]:
    """The trials as observations at the largest budget with ``min_points`` of them."""
    if sum(t.state is TrialState.COMPLETE for t in trials) >= min_points:
        return list(trials)
    usable = [t for t in trials if t.intermediate and t.state is not TrialState.FAILED]
    for budget in sorted({t.last_step for t in usable if t.last_step is not None}, reverse=True):
        # reached the budget, with a report at or before it (trials may report on other step grids)
        at = [t for t in usable if (t.last_step or 0) >= budget and min(t.intermediate) <= budget]
        if len(at) >= min_points:
            seen = {t.number for t in at}
            return [_observation(t, budget, direction) if t.number in seen else t for t in trials]
    return list(trials)


def _observation(trial: FrozenTrial, budget: int, direction: Direction) -> FrozenTrial:
    sign = direction.sign()
    best = min(sign * v for s, v in trial.intermediate.items() if s <= budget)
    return trial.replace(state=TrialState.COMPLETE, value=sign * best)


class MultiFidelitySampler(Sampler):
    """Any sampler, fed the observations of early-stopped trials too (BOHB's rule).

    Args:
        base: the sampler that models the observations ("tpe", the default and
            BOHB's choice; "bayes"; an instance...).
        seed: seed of the base sampler when it is built from a name.
        min_points: observations needed at a budget; default ``ndim + 2`` (at least 4).
    """

    name = "multifidelity"

    def __init__(
        self,
        base: str | Sampler | dict[str, Any] = "tpe",
        seed: int | None = None,
        *,
        min_points: int | None = None,
    ) -> None:
        from . import make_sampler

        self.base = make_sampler(base, seed)
        super().__init__(self.base.seed)
        self.uses_history = self.base.uses_history
        self.min_points = check_count("min_points", min_points, optional=True)

    def reseed(self, *key: int) -> None:
        self.base.reseed(*key)

    def set_budget(self, n_trials: int | None) -> None:
        self.base.set_budget(n_trials)

    def check(self, space: Space) -> None:
        self.base.check(space)

    def suggest(
        self, space: Space, trials: Sequence[FrozenTrial], direction: Direction
    ) -> Suggestion | None:
        need = self.min_points if self.min_points is not None else max(4, space.ndim + 2)
        return self.base.suggest(
            space, fidelity_history(trials, direction, min_points=need), direction
        )

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seed": self.seed,
            "base": self.base.describe(),
            "min_points": self.min_points,
        }
