"""Automatic focus: with many parameters and enough trials, search the ones that matter.

The GP learns one lengthscale ``l_j`` per parameter; its relevance is the inverse
squared lengthscale ``x_j = 1 / l_j^2`` (how fast the objective can change along it).
In a space of ``d >= min_dims`` parameters, once ``n >= per_dim * d`` observations
are in, the parameters whose relevance is at least ``ratio`` times the largest are
*relevant*. If fewer than all are, the acquisition is maximized in the subspace of the
relevant ones: every candidate takes the incumbent's values (the best trial's) on
the others, which stay where the best configuration has them (as Dropout BO, Li et
al. 2017, fills the dimensions it does not search from the best point). One
suggestion in ``explore`` (every ``round(1 / explore)``-th) searches the whole
space, so a parameter wrongly judged irrelevant is still searched and its lengthscale
learned.

Notation as in :mod:`.encoding`; ``theta = [log l (d), log s, log noise]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...space import Space
from .encoding import Encoding, canonical
from .optimizer import AcqOptimizer
from .options import BayesOptions


@dataclass(frozen=True)
class FocusRule:
    """When and where the acquisition is searched in the subspace of relevant parameters."""

    min_dims: int = 12
    per_dim: float = 2.0
    ratio: float = 0.1
    explore: float = 0.25

    def relevant(self, theta: np.ndarray, d: int, n_obs: int, index: int) -> np.ndarray | None:
        """(d,) bool mask of relevant parameters, or None to search the whole space
        (few parameters, few observations, every parameter relevant, or an exploring turn)."""
        if d < self.min_dims or n_obs < self.per_dim * d:
            return None
        if self.explore > 0 and index % max(1, round(1 / self.explore)) == 0:
            return None
        x = np.exp(-2.0 * np.asarray(theta[:d], dtype=float))
        mask = x >= self.ratio * x.max()
        return None if mask.all() else mask


class FocusedOptimizer(AcqOptimizer):
    """:class:`AcqOptimizer` over the relevant coordinates only: random candidates take
    the incumbent's values elsewhere, perturbations of the anchors move only relevant
    coordinates, and refinement and discrete moves touch relevant ones only."""

    def __init__(self, space: Space, enc: Encoding, options: BayesOptions, rng: np.random.Generator,
                 relevant: np.ndarray, incumbent: np.ndarray) -> None:
        super().__init__(space, enc, options, rng)
        self.relevant, self.incumbent = relevant, incumbent
        self.numeric = self.numeric[relevant[self.numeric]]
        self.discrete = [j for j in self.discrete if relevant[j]]

    def _random(self) -> np.ndarray:
        return self._pinned(super()._random(), self.incumbent[None, :])

    def _local(self, anchors: np.ndarray) -> np.ndarray:
        return self._pinned(super()._local(anchors), self.incumbent[None, :])

    def _pinned(self, U: np.ndarray, base: np.ndarray) -> np.ndarray:
        """``U`` on relevant coordinates, ``base`` elsewhere (NaN where inactive there)."""
        return canonical(self.space, np.where(self.relevant[None, :], U, base))


def acq_optimizer(space: Space, enc: Encoding, options: BayesOptions, rng: np.random.Generator, *,
                  theta: np.ndarray, n_obs: int, index: int, anchors: np.ndarray) -> AcqOptimizer:
    """The optimizer of this suggestion: focused on the relevant parameters when
    ``options.focus`` and :meth:`FocusRule.relevant` say so (``anchors[0]``: the
    incumbent; ``index``: the number of trials so far), else the whole space's."""
    mask = FocusRule().relevant(theta, space.ndim, n_obs, index) if options.focus and len(anchors) else None
    if mask is None:
        return AcqOptimizer(space, enc, options, rng)
    return FocusedOptimizer(space, enc, options, rng, mask, anchors[0])
