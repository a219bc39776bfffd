"""The automatic default: picks a strategy from the space and the budget."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from ..space import Space
from ..space.params import MAX_GRID, check_count
from ..trial import Direction, FrozenTrial
from .base import Sampler, Suggestion
from .simple import GridSampler, qmc

logger = logging.getLogger("tunesmith")

#: above this many trials, or this many parameters, "auto" prefers TPE
LARGE_BUDGET = 1000
HIGH_DIM = 30

#: False in a process pool's workers but the first: every worker picks the same sampler, and one says which
SAY_PICK = True


class AutoSampler(Sampler):
    """Grid when the space is finite and the budget covers it (a grid of at most ``MAX_GRID``,
    a million, configurations); with a pruner that stops trials early, TPE
    (benchmarks/pruning-replay.md); TPE for very large budgets (> 1,000 trials) or many
    parameters (> 30); Bayesian optimization (Gaussian process) otherwise.

    The choice is made at the first suggestion, logged, and exposed as
    :attr:`chosen`. ``bayes``: options of :class:`~tunesmith.samplers.BayesSampler`
    used where it is picked (e.g. ``{"ei_margin": 0.01}``).
    """

    name = "auto"

    def __init__(self, seed: int | None = None, *, budget: int | None = None,
                 bayes: Mapping[str, Any] | None = None) -> None:
        super().__init__(seed)
        if bayes is not None and not isinstance(bayes, Mapping):
            raise TypeError(f"AutoSampler's bayes takes a mapping of BayesSampler options, e.g. "
                            f"{{'ei_margin': 0.01}}, got {bayes!r}")
        self.budget = check_count("budget", budget, optional=True)
        self._hint: int | None = None  # the coming run's n_trials (set_budget), where no budget is given
        self._space = ""  # the space (its JSON) that chosen was picked for
        self._space_seen: Space | None = None
        self.bayes = dict(bayes or {})
        if self.bayes:
            from .bayes import BayesOptions

            BayesOptions.build(dict(self.bayes))  # a wrong option fails here, not at the first suggestion
        self.early_stopping = False
        self.chosen: Sampler | None = None
        qmc()  # import now, before any worker process forks

    @property
    def uses_history(self) -> bool:  # type: ignore[override]
        return True

    def reseed(self, *key: int) -> None:
        super().reseed(*key)
        if self.chosen is not None:
            self.chosen.reseed(*key)
        self._key = key

    def set_budget(self, n_trials: int | None) -> None:
        self._hint = n_trials  # read when a sampler is picked: at the first suggestion for a space

    def set_early_stopping(self, stops: bool) -> None:
        self.early_stopping = bool(stops)

    def choose(self, space: Space, budget: int | None) -> Sampler:
        picked, why = pick(space, budget, self.seed, early_stopping=self.early_stopping, bayes=self.bayes)
        if getattr(self, "_key", None):
            picked.reseed(*self._key)
        logger.log(logging.INFO if SAY_PICK else logging.DEBUG, "sampler 'auto' picked %r: %s", picked.name, why)
        return picked

    def suggest(
        self, space: Space, trials: Sequence[FrozenTrial], direction: Direction
    ) -> Suggestion | None:
        if self.chosen is None or (space is not self._space_seen and space.to_json() != self._space):
            # picked again for another space: one AutoSampler given to a second study (a grid picked
            # for a finite space ran 25 points of a continuous one, then said the search was exhausted)
            self.chosen = self.choose(space, self.budget if self.budget is not None else self._hint)
            self._space = space.to_json()
        self._space_seen = space  # the same Space object as the last ask's: no JSON compared (0.13 ms at 40 parameters)
        return self.chosen.suggest(space, trials, direction)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "seed": self.seed, **({"bayes": dict(self.bayes)} if self.bayes else {})}


def pick(
    space: Space, budget: int | None, seed: int, *, early_stopping: bool = False,
    bayes: Mapping[str, Any] | None = None,
) -> tuple[Sampler, str]:
    """The sampler "auto" uses for ``space`` and ``budget``, and why."""
    from .bayes import BayesSampler
    from .tpe import TPESampler

    size = space.cardinality
    # each value of each parameter (grid= aside): every configuration, where a grid can list them all (a budget
    # of 10**9 on 214 million: the grid failed at the first ask, saying to search with sampler='auto')
    if budget is not None and size <= min(budget, MAX_GRID):
        return GridSampler(space.every_value(), seed=seed), (
            f"the space has {int(size)} configurations and the budget is {budget}")
    if early_stopping:
        tpe = TPESampler(seed=seed)
        return tpe, (
            f"the pruner stops trials early: TPE, which draws Sobol points until {tpe.startup(space)} "
            "trials have completed (stopped ones do not count), then models every finished or paused "
            "trial, a stopped one by its last report (see docs/pruning.md)"
        )
    if space.ndim > HIGH_DIM:
        return TPESampler(seed=seed), f"the space has {space.ndim} parameters (> {HIGH_DIM}); a GP would be slow and weak"
    if budget is not None and budget > LARGE_BUDGET:
        return TPESampler(seed=seed), f"the budget of {budget} trials is very large (> {LARGE_BUDGET})"
    return BayesSampler(seed=seed, **(bayes or {})), (
        f"{space.ndim} parameter(s), budget {budget if budget is not None else 'open'}: "
        "Gaussian-process Bayesian optimization"
    )
